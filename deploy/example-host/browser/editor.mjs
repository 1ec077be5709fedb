// The wiki's editor page (bundled by build.mjs into dist/editor.js): TipTap v3 with
// StarterKit, Collaboration and CollaborationCaret on a stock y-websocket provider
// or on @hocuspocus/provider (WIKI_EDITOR_PROVIDER=hocuspocus). Chorus-specific are
// only the provider's URL and its token, which the wiki minted for this user and this
// page, two things a page hears from Chorus (who published or discarded, shown as
// "Ann published"; and that the page was deleted, after which the provider stops:
// reconnecting would write the deleted draft back); the title is the document's
// `title` text.
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'

const config = JSON.parse(document.getElementById('wiki-config').textContent)
const statusEl = document.querySelector('[data-testid="status"]')
const titleEl = document.querySelector('[data-testid="title"]')
const hostActionEl = document.querySelector('[data-testid="host-action"]')

/** What the host did, as Chorus credits it. @param {{ action: string, name: string, userId: string }} a */
function showHostAction ({ action, name, userId }) {
  const who = name || userId || 'Someone'
  const what = { published: 'published this page', discarded: 'discarded the unpublished changes', restored: 'restored an earlier version' }[action]
  if (!what) return
  hostActionEl.textContent = `${who} ${what}.` // text, never HTML: the name comes from another user
  hostActionEl.hidden = false
}

/** Chorus closed the page's socket with 4404: the page was deleted. */
let deleted = false
function pageDeleted () {
  deleted = true
  statusEl.textContent = 'This page was deleted.'
  statusEl.dataset.state = 'deleted'
  document.body.dataset.deleted = 'true'
}

const ydoc = new Y.Doc()

/** A fresh session token for this page (the wiki mints one per request). */
async function freshToken () {
  const res = await fetch(config.tokenUrl, { credentials: 'same-origin' })
  if (!res.ok) throw new Error(`token: HTTP ${res.status}`)
  return (await res.json()).token
}

/**
 * The provider the wiki is configured with, behind the three things this page needs
 * from it: the provider itself (for carets), whether it is connected and synced, and
 * a callback when either changes.
 */
function connect () {
  if (config.provider === 'hocuspocus') {
    // The Hocuspocus provider asks for a token at every (re)connect: the first from
    // the page, later ones fresh from the wiki.
    let first = config.token
    let status = 'connecting'
    const provider = new HocuspocusProvider({
      url: config.hocuspocusUrl,
      name: config.room,
      document: ydoc,
      token: async () => { if (first) { const t = first; first = null; return t } return freshToken() },
      // Chorus sends who published or discarded as a stateless message (JSON).
      onStateless: ({ payload }) => {
        try {
          const message = JSON.parse(payload)
          if (message.chorus === 'host-action') showHostAction(message)
        } catch { /* not Chorus's */ }
      },
      onClose: ({ event }) => {
        if (event?.code !== 4404) return
        pageDeleted()
        provider.destroy()
      }
    })
    return {
      provider,
      connected: () => status === 'connected',
      synced: () => provider.isSynced,
      onChange (fn) {
        provider.on('status', (event) => { status = event.status; fn() })
        provider.on('synced', fn)
      }
    }
  }
  // The token as a subprotocol beside `chorus.token` (no Chorus extension messages),
  // never in the URL, which proxies and APM tools log.
  // `chorus.v1` opts in to Chorus's extension messages; the one this page reads is
  // who published or discarded (kind 7), the others are let by.
  const provider = new WebsocketProvider(config.serverUrl, config.room, ydoc, {
    protocols: ['chorus.v1', config.token],
    disableBc: true // every copy syncs through Chorus, even two tabs of one browser
  })
  provider.messageHandlers[100] = (_encoder, decoder) => {
    if (decoding.readVarUint(decoder) !== 7) return
    const action = decoding.readVarString(decoder)
    const userId = decoding.readVarString(decoder)
    showHostAction({ action, userId, name: decoding.readVarString(decoder) })
  }
  provider.on('connection-close', (event) => {
    if (event?.code !== 4404) return
    pageDeleted()
    provider.disconnect() // before its reconnect timer fires: nothing is written back
  })
  // y-websocket reads `protocols` at every (re)connect: keep a fresh token there, so
  // a reconnect after the first token expired is let in (Chorus closes with 4401 for
  // an expired token; y-websocket retries with whatever `protocols` hold by then).
  setInterval(async () => {
    try { provider.protocols = ['chorus.v1', await freshToken()] } catch { /* offline: the next round tries again */ }
  }, config.tokenRefreshSecs * 1000)
  return {
    provider,
    connected: () => provider.wsconnected,
    synced: () => provider.synced,
    onChange (fn) {
      provider.on('status', fn)
      provider.on('sync', fn)
    }
  }
}

const connection = connect()
const { provider } = connection
const showStatus = () => {
  if (deleted) return
  const connected = connection.connected()
  statusEl.textContent = connected ? (connection.synced() ? 'connected' : 'syncing…') : 'offline: edits are kept and sent on reconnect'
  statusEl.dataset.state = connected && connection.synced() ? 'synced' : 'pending'
}
connection.onChange(showStatus)

// The title: a plain input bound to the shared Y.Text, changed by the smallest edit
// so concurrent typing in the title merges instead of overwriting.
const title = ydoc.getText('title')
titleEl.addEventListener('input', () => {
  const was = title.toString()
  const now = titleEl.value
  let start = 0
  while (start < was.length && start < now.length && was[start] === now[start]) start++
  let end = 0
  while (end < was.length - start && end < now.length - start && was[was.length - 1 - end] === now[now.length - 1 - end]) end++
  ydoc.transact(() => {
    if (was.length - start - end > 0) title.delete(start, was.length - start - end)
    if (now.length - start - end > 0) title.insert(start, now.slice(start, now.length - end))
  }, 'title-input')
})
title.observe((event) => {
  if (event.transaction.origin === 'title-input') return
  const { selectionStart, selectionEnd } = titleEl
  titleEl.value = title.toString()
  if (document.activeElement === titleEl) titleEl.setSelectionRange(selectionStart, selectionEnd)
})

// The editor starts once the draft has arrived (the first sync), so it never adds
// an empty paragraph of its own beside the content.
let started = false
connection.onChange(() => { if (connection.synced() && !started) { started = true; startEditor() } })

function startEditor () {
  titleEl.value = title.toString()
  // A reader's token is view-mode (Chorus refuses its edits); the page says so too.
  titleEl.disabled = config.readOnly === true
  const editor = new Editor({
    element: document.getElementById('editor'),
    editable: config.readOnly !== true,
    extensions: [
      StarterKit.configure({ undoRedo: false }), // Collaboration brings its own undo, per user
      Collaboration.configure({ document: ydoc }), // the fragment "default": editor = "tiptap" in chorus.toml
      CollaborationCaret.configure({ provider, user: config.user })
    ]
  })
  const commands = {
    bold: () => editor.chain().focus().toggleBold().run(),
    italic: () => editor.chain().focus().toggleItalic().run(),
    heading: () => editor.chain().focus().toggleHeading({ level: 2 }).run(),
    bulletList: () => editor.chain().focus().toggleBulletList().run()
  }
  for (const button of document.querySelectorAll('[data-command]')) {
    // Keep the editor's focus and selection: a toolbar click must not take them.
    button.addEventListener('mousedown', (event) => event.preventDefault())
    button.addEventListener('click', () => commands[button.dataset.command]())
  }
  // For the example's browser test, and for poking at it from the console.
  window.wiki = { ydoc, provider, editor }
  document.body.dataset.editorReady = 'true'
}

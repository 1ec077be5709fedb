// The wiki's editor page (bundled by build.mjs into dist/editor.js): TipTap v3 with
// StarterKit, Collaboration and CollaborationCaret on a stock y-websocket provider
// or on @hocuspocus/provider (WIKI_EDITOR_PROVIDER=hocuspocus). Nothing here is
// Chorus-specific but the provider's URL and its token, which the wiki minted for
// this user and this page; the title is the document's `title` text.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'

const config = JSON.parse(document.getElementById('wiki-config').textContent)
const statusEl = document.querySelector('[data-testid="status"]')
const titleEl = document.querySelector('[data-testid="title"]')

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
      token: async () => { if (first) { const t = first; first = null; return t } return freshToken() }
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
  const provider = new WebsocketProvider(config.serverUrl, config.room, ydoc, {
    protocols: ['chorus.token', config.token],
    disableBc: true // every copy syncs through Chorus, even two tabs of one browser
  })
  // y-websocket reads `protocols` at every (re)connect: keep a fresh token there, so
  // a reconnect after the first token expired is let in (Chorus closes with 4401 for
  // an expired token; y-websocket retries with whatever `protocols` hold by then).
  setInterval(async () => {
    try { provider.protocols = ['chorus.token', await freshToken()] } catch { /* offline: the next round tries again */ }
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

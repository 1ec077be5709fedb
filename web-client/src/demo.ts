/**
 * The page served by `chorus serve --demo` at /demo: two users side by side, each
 * with its own Y.Doc, ChorusProvider and editor. Tokens come from the demo-only
 * `GET /demo/token`; no secret is in this bundle.
 *
 * URL parameters: `doc` (default `welcome`), `users` (default `alice,bob`),
 * `view` (users that start in view mode, comma-separated), `app` (default `demo`;
 * `/demo/token` only mints demo tokens, so another app needs a page that answers
 * that path itself, as the browser tests do).
 */
import * as Y from 'yjs'
import { DOMSerializer } from 'prosemirror-model'
import { ChorusProvider, clearOfflineData } from './provider'
import type { StatusEvent } from './provider'
import { createEditor } from './editor'
import type { ChorusEditor } from './editor'
import { schema } from './schema'

interface Pane {
  user: string
  mode: 'edit' | 'view'
  doc: Y.Doc
  provider: ChorusProvider
  editor: ChorusEditor
  /** Counts of events seen, for the browser tests. */
  events: {
    externalChange: number
    externalFields: string[][]
    bodyAtEvent: string[]
    saved: number
    readOnly: string[]
    /** Every `can-publish` value, in order. */
    canPublish: boolean[]
    /** Holders announced (exclusive mode), then `editable` as null. */
    holders: Array<string | null>
  }
  root: HTMLElement
}

declare global {
  interface Window {
    chorusDemo: { docId: string, panes: Pane[], Y: typeof Y, clearOfflineData: typeof clearOfflineData }
  }
}

const params = new URLSearchParams(location.search)
const docId = params.get('doc') ?? 'welcome'
const appId = params.get('app') ?? 'demo'
const users = (params.get('users') ?? 'alice,bob').split(',').map((u) => u.trim()).filter((u) => /^[A-Za-z0-9_-]{1,32}$/.test(u))
const viewers = new Set((params.get('view') ?? '').split(','))
// `transport=http|websocket` pins a transport; `upgrade_every_ms` how often a page
// on HTTP tries a websocket again (to try the fallback without waiting a minute).
const transport = params.get('transport')
const upgradeEveryMs = Number(params.get('upgrade_every_ms') ?? '') || undefined

function displayName (user: string): string {
  return user.charAt(0).toUpperCase() + user.slice(1)
}

function el<K extends keyof HTMLElementTagNameMap> (tag: K, props: { className?: string, text?: string, title?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  if (props.className !== undefined) node.className = props.className
  if (props.text !== undefined) node.textContent = props.text
  if (props.title !== undefined) node.title = props.title
  node.append(...children)
  return node
}

async function fetchToken (user: string, mode: 'edit' | 'view'): Promise<string> {
  const q = new URLSearchParams({ user, name: displayName(user), doc: docId, mode })
  const res = await fetch(`/demo/token?${q.toString()}`)
  if (!res.ok) throw new Error(`token request failed: ${res.status}`)
  const body = await res.json() as { token: string }
  return body.token
}

function bodyHtml (editor: ChorusEditor): string {
  const fragment = DOMSerializer.fromSchema(schema).serializeFragment(editor.view.state.doc.content)
  const div = document.createElement('div')
  div.append(fragment)
  return div.innerHTML
}

function button (label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', { text: label, title })
  b.type = 'button'
  // Keep the editor's selection: act on mousedown without taking focus.
  b.addEventListener('mousedown', (e) => { e.preventDefault() })
  b.addEventListener('click', onClick)
  return b
}

function mountPane (host: HTMLElement, user: string, mode: 'edit' | 'view'): Pane {
  const root = el('section', { className: 'pane' })
  root.dataset.user = user
  const status = el('span', { className: 'status', text: 'connecting' })
  status.dataset.status = 'connecting'
  const saved = el('span', { className: 'saved', text: '' })
  // Exclusive mode: who holds the draft while this pane waits (names are text, never HTML).
  const holder = el('span', { className: 'holder', text: '' })
  const modeToggle = el('label', { className: 'mode' })
  const modeBox = el('input')
  modeBox.type = 'checkbox'
  modeBox.checked = mode === 'view'
  modeToggle.append(modeBox, document.createTextNode(' view mode'))
  const header = el('header', {}, el('strong', { text: displayName(user) }), status, saved, holder, modeToggle)

  const title = el('input', { className: 'title' })
  title.placeholder = 'Title'
  title.setAttribute('aria-label', `${displayName(user)}: title`)
  const mount = el('div', { className: 'editor' })
  const toolbar = el('div', { className: 'toolbar' })
  const notice = el('p', { className: 'notice' })
  root.append(header, toolbar, title, mount, notice)
  host.append(root)

  const doc = new Y.Doc()
  const provider = new ChorusProvider(doc, {
    server: location.origin,
    app: appId,
    doc: docId,
    getToken: () => fetchToken(user, mode),
    // The provider keeps one IndexedDB copy per user (two editors share this page),
    // none for a view session.
    readOnly: mode === 'view',
    transport: transport === 'http' || transport === 'websocket' ? transport : 'auto',
    upgradeEveryMs
  })
  const editor = createEditor({
    provider,
    mount,
    titleInput: title,
    readOnly: mode === 'view',
    onUnsupported: (reason) => { notice.textContent = `Body not editable here: ${reason}` }
  })
  const c = editor.commands
  toolbar.append(
    button('B', 'Bold (Ctrl+B)', () => c.bold()),
    button('I', 'Italic (Ctrl+I)', () => c.italic()),
    button('Link', 'Link the selection', () => {
      const href = prompt('Link address (https://…)')
      if (href !== null) c.link(href)
    }),
    button('H2', 'Heading', () => c.heading(2)),
    button('• List', 'Bullet list', () => c.bulletList()),
    button('↶', 'Undo (Ctrl+Z)', () => c.undo()),
    button('↷', 'Redo (Ctrl+Shift+Z)', () => c.redo())
  )

  const pane: Pane = {
    user, mode, doc, provider, editor, root,
    events: { externalChange: 0, externalFields: [], bodyAtEvent: [], saved: 0, readOnly: [], canPublish: [], holders: [] }
  }

  const showStatus = (e: StatusEvent): void => {
    status.dataset.status = e.status
    status.textContent = e.status === 'forbidden' ? `forbidden (${e.reason ?? e.code ?? ''})` : e.status
    // Which transport is live: `http` where a proxy refused the websocket.
    status.dataset.transport = e.transport ?? provider.transport
    status.title = `over ${e.transport === 'http' ? 'HTTP (websockets are blocked on this network)' : 'a websocket'}`
    if (e.status !== 'connected') {
      saved.textContent = ''
      saved.dataset.saved = 'false'
    }
  }
  provider.on('status', showStatus)
  provider.on('saved', () => {
    pane.events.saved++
  })
  provider.on('can-publish', (ok) => {
    pane.events.canPublish.push(ok)
    saved.textContent = ok ? 'Saved' : 'Saving…'
    saved.dataset.saved = String(ok)
  })
  provider.on('external-change', ({ fields, initial }) => {
    if (initial) return
    pane.events.externalChange++
    pane.events.externalFields.push(fields)
    pane.events.bodyAtEvent.push(doc.getXmlFragment('body').toString())
    notice.textContent = `The host changed: ${fields.join(', ')}`
  })
  provider.on('read-only', ({ reason }) => {
    pane.events.readOnly.push(reason)
    notice.textContent = `Read-only: ${reason}`
  })
  provider.on('holder', ({ name }) => {
    pane.events.holders.push(name)
    holder.textContent = `${name} is editing; read-only until they leave`
    holder.dataset.holder = name
  })
  provider.on('editable', () => {
    pane.events.holders.push(null)
    holder.textContent = ''
    delete holder.dataset.holder
    notice.textContent = 'You can edit now.'
  })
  provider.on('error', ({ code }) => {
    notice.textContent = `Server: ${code}`
  })
  provider.on('reload-required', () => {
    // The server refused this copy's last change; its offline copy is cleared:
    // load the server's copy.
    notice.textContent = 'Your last change was refused; reloading the draft…'
    setTimeout(() => location.reload(), 1500)
  })
  modeBox.addEventListener('change', () => {
    const next = modeBox.checked ? 'view' : 'edit'
    const q = new URLSearchParams(location.search)
    const view = new Set((q.get('view') ?? '').split(',').filter((u) => u !== ''))
    if (next === 'view') view.add(user)
    else view.delete(user)
    q.set('view', [...view].join(','))
    location.search = q.toString()
  })
  return pane
}

function main (): void {
  const grid = document.getElementById('panes')
  const externalButton = document.getElementById('external')
  const docLabel = document.getElementById('doc-id')
  if (grid === null) throw new Error('the page lacks #panes')
  if (docLabel !== null) docLabel.textContent = docId
  const panes = users.slice(0, 4).map((u) => mountPane(grid, u, viewers.has(u) ? 'view' : 'edit'))
  window.chorusDemo = { docId, panes, Y, clearOfflineData }

  externalButton?.addEventListener('click', () => {
    const source = panes.find((p) => p.mode === 'edit') ?? panes[0]
    if (source === undefined) return
    const stamp = new Date().toLocaleTimeString()
    const html = `${bodyHtml(source.editor)}<p>The host added this paragraph at ${stamp}.</p>`
    void fetch('/demo/external', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ doc: docId, html })
    })
  })
}

main()

// Bundled by esbuild for tiptap.test.mjs: a real TipTap v3 editor (StarterKit,
// Collaboration, CollaborationCaret) on a stock y-websocket WebsocketProvider, or
// on a stock @hocuspocus/provider HocuspocusProvider (`kind: 'hocuspocus'`).
// Nothing here adapts TipTap to Chorus: the provider's URL and token are all that differ.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
// The web client's WebSocket-compatible classes over the HTTP transport, for a
// network that blocks websockets (`http: true`): dependency-free, so the bundle
// keeps one copy of every package.
import { ChorusHttpSocket } from '../../web-client/src/http-socket.ts'
import { ChorusHocuspocusHttpSocket } from '../../web-client/src/hocuspocus-http-socket.ts'

window.Y = Y

/**
 * One editor per page: `window.chorus` = { ydoc, provider, editor, state, fragment }.
 * opts: { url, room, token, user: { name, color }, timeout, kind, http }
 * (`http: true`: the provider's WebSocketPolyfill is the HTTP transport's class).
 *
 * The editor is created once the provider has synced, so an editor joining a
 * document with content never writes TipTap's initial empty paragraph beside it.
 */
window.makeEditor = async ({ url, room, token, user, timeout = 10000, kind = 'y-websocket', http = false }) => {
  const ydoc = new Y.Doc()
  const state = { synced: false, status: 'connecting', closes: [], errors: 0 }
  let provider
  if (kind === 'hocuspocus') {
    // `url`: the app's Hocuspocus endpoint (…/v1/hocuspocus/{app}); the room is the document.
    provider = new HocuspocusProvider({
      url, name: room, document: ydoc, token, ...(http ? { WebSocketPolyfill: ChorusHocuspocusHttpSocket } : {})
    })
    provider.on('synced', ({ state: s }) => { state.synced = s })
    provider.on('status', (e) => { state.status = e.status })
    provider.on('close', ({ event }) => { if (event) state.closes.push({ code: event.code, reason: String(event.reason ?? '') }) })
  } else {
    // BroadcastChannel off: two pages of one origin would otherwise sync without the server.
    provider = new WebsocketProvider(url, room, ydoc, {
      params: { token }, disableBc: true, ...(http ? { WebSocketPolyfill: ChorusHttpSocket } : {})
    })
    provider.on('sync', (s) => { state.synced = s })
    provider.on('status', (e) => { state.status = e.status })
    provider.on('connection-close', (ev) => { if (ev) state.closes.push({ code: ev.code, reason: String(ev.reason ?? '') }) })
    provider.on('connection-error', () => { state.errors++ })
  }
  window.chorus = { ydoc, provider, editor: null, state, fragment: ydoc.getXmlFragment('default') }
  await new Promise((resolve, reject) => {
    if (state.synced || provider.synced || provider.isSynced) return resolve()
    const timer = setTimeout(() => reject(new Error(`provider not synced after ${timeout} ms: ${JSON.stringify(state)}`)), timeout)
    const done = () => { clearTimeout(timer); resolve() }
    if (kind === 'hocuspocus') provider.on('synced', done)
    else provider.once('sync', done)
  })

  const element = document.createElement('div')
  element.id = 'editor'
  document.body.append(element)
  const editor = new Editor({
    element,
    extensions: [
      StarterKit.configure({ undoRedo: false }), // Collaboration brings its own undo
      Collaboration.configure({ document: ydoc }), // field: "default"
      CollaborationCaret.configure({ provider, user })
    ]
  })
  window.chorus.editor = editor
  return true
}

/** Document positions [from, to) of the first occurrence of `needle` in one text node. */
window.findText = (needle) => {
  let found = null
  window.chorus.editor.state.doc.descendants((node, pos) => {
    if (found) return false
    if (node.isText) {
      const i = node.text.indexOf(needle)
      if (i >= 0) found = { from: pos + i, to: pos + i + needle.length }
    }
    return true
  })
  if (!found) throw new Error(`text not found in the editor: ${JSON.stringify(needle)}`)
  return found
}

/** Where the selection is: its textblock's text and the offsets in it. */
window.selectionInfo = () => {
  const { selection } = window.chorus.editor.state
  const { $from, $to } = selection
  return {
    from: selection.from,
    to: selection.to,
    empty: selection.empty,
    parentType: $from.parent.type.name,
    parentText: $from.parent.textContent,
    fromOffset: $from.parentOffset,
    toOffset: $to.parentOffset,
    sameParent: $from.sameParent($to)
  }
}

/** The Y.XmlFragment as plain data (names, attributes, text deltas), for asserting on what synced. */
window.fragmentTree = () => {
  const tree = (node) => {
    if (node instanceof Y.XmlText) return { text: node.toDelta() }
    if (node instanceof Y.XmlElement) return { name: node.nodeName, attrs: node.getAttributes(), children: node.toArray().map(tree) }
    return { children: node.toArray().map(tree) }
  }
  return tree(window.chorus.fragment)
}

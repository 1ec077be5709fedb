// Document integrity under hand-encoded updates, judged by an independent oracle.
//
// For each whitelist mode (an app of its own per mode, on one server), each endpoint
// (`/v1/ws/{app}` y-websocket, `/v1/hocuspocus/{app}` Hocuspocus framing) and each
// case below, in a document of its own:
//
// - an honest y-websocket client writes `title` "hi" and `body` <p>hi</p><p>barrier</p>;
// - an observer of that endpoint (a stock WebsocketProvider or HocuspocusProvider
//   Y.Doc) and a raw view-mode socket (its frames are applied to a Y.Doc with
//   gc: false, so a removed value the server relays stays visible) follow the room;
// - an attacker connection of that endpoint sends the case's updates, encoded by
//   hand from raw structs (lib/raw-update.mjs, not Yjs' encoder): lone Format items,
//   Format items outside texts or as map entries, format values that are not
//   objects, unmatched end markers, overlapping keys, embeds and non-string content
//   in texts, attributes on texts and roots, non-XML types in the fragment, yrs-only
//   content (weak links, moves) that Yjs 13 cannot decode, foreign roots, GC and
//   skip structs, deletions in the same update;
// - after each update (a sync step 1 → step 2 round trip on the attacker's socket,
//   then an honest edit the observer must receive) the oracle (lib/oracle.mjs) judges
//   the observer's, the honest client's and the frames' documents struct by struct,
//   the host API's JSON render is judged too and neither render may hold the case's
//   marker, and the honest "hi" must survive; an update the server rejected (1008)
//   must have left nothing of itself live;
// - at the end a third honest client joins (its synced document is judged too) and
//   its edit must reach the observer, whatever happened to the attacker; an attacker
//   that sent only allowed content and stayed open must have reached the observer.
//
// Modes (PROTOCOL.md, "Content whitelist" and "Updates"):
// - `strip`: every case; the refused parts are removed, the attacker stays open;
// - `reject`: every case; an update holding refused content is undone as a whole and
//   its sender closed with 1008 `content-rejected`; allowed updates pass as in strip;
// - `off`: only the `unreadable` cases (no policy, but Yjs 13 still cannot read them).
// Content a Yjs 13 client cannot decode (`unreadable`) closes the sender with 4400
// `malformed-payload` in every mode. `expectedFate` below spells the expected
// attacker outcome out from the case's fields.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HocuspocusProvider } from '@hocuspocus/provider'
import {
  Y, WebSocket, startServer, ClientPool, RawClient, DEFAULT_APP, sessionToken, hostToken, waitFor, waitSynced, uid, sleep, SETTLE,
  updateMessage, step1Message, parseMessage, MSG_SYNC, SYNC_STEP2, SYNC_UPDATE, encoding, decoding
} from './harness.mjs'
import { singleClientUpdate, item, gc, skip, content as C, structLength } from './lib/raw-update.mjs'
import { judgeDoc, judgeRenderJson, liveString, describeContent } from './lib/oracle.mjs'

process.setMaxListeners(64)

// One app per whitelist mode, all with the `html` editor profile (roots `title`, `body`)
// and the default policy.
const MODES = [
  { mode: 'strip', app: Object.freeze({ ...DEFAULT_APP, whitelist_mode: 'strip' }), runs: () => true },
  { mode: 'reject', app: Object.freeze({ id: 'wiki-reject', secrets: ['wiki-reject-secret-0123456789abcdef'], whitelist_mode: 'reject' }), runs: () => true },
  { mode: 'off', app: Object.freeze({ id: 'wiki-off', secrets: ['wiki-off-secret-0123456789abcdef'], whitelist_mode: 'off' }), runs: (c) => c.unreadable }
]

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------
//
// `steps(x)`: a list of { structs, deleteSet? } (one update of the attacker's client
// `x.A`, clocks counted from 0 across the case) or { honest(x), label } (an honest edit).
// `x` holds the honest items' ids as [client, clock]: `titleH`/`titleI` (the title's
// characters), `p` (the <p> element), `text` (its Y.XmlText), `h`/`i` (its characters),
// and `a(k)` = [A, k].
// `marker` must never reach a frame or a render; `html` lists what the HTML render
// must not contain; `exact` asks the honest texts to read exactly "hi".
//
// Every case states what it sends (never what the server did):
// - `refused` (required): some update of the case holds content the default policy
//   refuses (reject mode: the first such update closes the attacker with 1008);
// - `unreadable`: content Yjs 13 cannot decode (type ref 7 or 15, content 11), or
//   structs the room cannot apply safely (an item straddling its client's known
//   clocks into another node, a map entry longer than one clock): 4400
//   `malformed-payload` in every mode, `off` included;
// - `may4400`: yrs may refuse to decode it, or it has a dependency gap: a 4400 close
//   (any reason) is accepted besides the mode's outcome;
// - `mayDropText`: strip mode may drop the honest text holding it (reject mode undoes
//   the update instead, so the honest "hi" must stay).

let counter = 0
const nextMarker = () => `XINT${String(++counter).padStart(3, '0')}Z`
const JS = (m) => `javascript:alert("${m}")`

const cases = []
function add (group, name, build, opts = {}) {
  const marker = nextMarker()
  if (typeof opts.refused !== 'boolean') throw new Error(`case ${JSON.stringify(name)}: say whether it sends refused content (refused: true | false)`)
  cases.push({ group, name, marker, unreadable: false, may4400: false, mayDropText: false, html: [], exact: false, ...opts, steps: (x) => build(x, marker) })
}
const fmt = (k, v, o) => item(C.format(k, v), o)
const str = (s, o) => item(C.string(s), o)

// 1. Lone format items (the reported attack and its relatives)
add('lone format', 'lone format after the last character, then text after it in a second update (reported attack)', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.i })] },
  { structs: [str('click me', { origin: x.a(0) })] }
], { refused: true, html: ['<a'] })
add('lone format', 'lone format at the end of a text, nothing after it; an honest client then types at the end', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.i })] },
  { honest: (h) => h.text.insert(h.text.length, ' typed'), label: 'honest types at the end of the text' }
], { refused: true, html: ['<a'] })
add('lone format', 'lone format with a string value (not an object), then text after it', (x, m) => [
  { structs: [fmt('a', JS(m), { origin: x.i })] },
  { structs: [str('click me', { origin: x.a(0) })] }
], { refused: true })
add('lone format', 'lone format at the start of a text (no origins), text before "hi" in a second update', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { parent: x.text })] },
  { structs: [str('click me ', { origin: x.a(0), rightOrigin: x.h })] }
], { refused: true, html: ['<a'] })
add('lone format', 'lone format of an unknown mark (<script>) at the end of a text, then text', (x, m) => [
  { structs: [fmt('script', { src: m }, { origin: x.i })] },
  { structs: [str('click me', { origin: x.a(0) })] }
], { refused: true })
add('title', 'lone format at the end of the title, then text after it', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.titleI })] },
  { structs: [str('click me', { origin: x.a(0) })] }
], { refused: true })
add('title', 'allowed mark wrapped around new title text (the title takes no formatting)', (x) => [
  { structs: [fmt('strong', true, { origin: x.titleI }), str('bold', { origin: x.a(0) }), fmt('strong', null, { origin: x.a(4) })] }
], { refused: true })

// 2. Format items where no text is
add('misplaced format', 'format item as a child of an element (outside any text)', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { parent: x.p })] }
], { refused: true })
add('misplaced format', 'format item after the text node inside the element', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.text })] }
], { refused: true })
add('misplaced format', 'format item directly in the body fragment', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { parent: 'body' })] }
], { refused: true })
add('misplaced format', 'format item as a map entry (parent_sub) of a text, then text after "hi"', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { parent: x.text, parentSub: 'a' })] },
  { structs: [str('click me', { origin: x.i })] }
], { refused: true })
add('misplaced format', 'format item as a map entry of an element (an allowed attribute name)', (x, m) => [
  { structs: [fmt('title', { href: JS(m) }, { parent: x.p, parentSub: 'title' })] },
  { structs: [fmt('class', JS(m), { parent: x.p, parentSub: 'class' })] }
], { refused: true })
add('misplaced format', 'format item as a map entry of the body root', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { parent: 'body', parentSub: 'a' })] }
], { refused: true })

// 3. Format values that are not attribute objects, or bad ones with allowed keys (all refused)
for (const [label, key, value] of [
  ['a string', 'a', JS('M')],
  ['a number', 'strong', 5],
  ['false', 'strong', false],
  ['an array', 'a', [JS('M')]],
  ['a nested object', 'a', { href: { url: JS('M') } }],
  ['an object with the allowed key href and a javascript: value', 'a', { href: JS('M') }],
  ['an object with an on* key', 'a', { href: 'https://ok.example/', onclick: 'alert("M")' }]
]) {
  add('format values', `format value is ${label}, around new text`, (x, m) => [
    { structs: [fmt(key, JSON.parse(JSON.stringify(value).replaceAll('M', m)), { origin: x.i }), str('x', { origin: x.a(0) }), fmt(key, null, { origin: x.a(1) })] }
  ], { refused: true })
}

// 4. Unmatched null end markers: harmless, the text stays
add('end markers', 'unmatched null end markers after, inside and before the text', (x) => [
  { structs: [fmt('strong', null, { origin: x.i }), fmt('em', null, { origin: x.h, rightOrigin: x.i })] },
  { structs: [fmt('a', null, { parent: x.text })] }
], { refused: false, exact: true })
add('end markers', 'unmatched null end marker in the title', (x) => [
  { structs: [fmt('strong', null, { origin: x.titleI })] }
], { refused: false, exact: true })

// 5. Overlapping keys
add('overlapping', 'suffixed copies of an allowed mark (y-prosemirror overlapping marks)', (x) => [
  { structs: [fmt('strong', true, { origin: x.i }), fmt('strong--a1b2c3d4', true, { origin: x.a(0) }), str('x', { origin: x.a(1) }), fmt('strong', null, { origin: x.a(2) }), fmt('strong--a1b2c3d4', null, { origin: x.a(3) })] }
], { refused: false })
add('overlapping', 'a suffixed copy of the link mark carries a javascript: href', (x, m) => [
  { structs: [fmt('a', { href: 'https://ok.example/' }, { origin: x.i }), fmt('a--deadbeef', { href: JS(m) }, { origin: x.a(0) }), str('x', { origin: x.a(1) }), fmt('a', null, { origin: x.a(2) }), fmt('a--deadbeef', null, { origin: x.a(3) })] }
], { refused: true })
add('overlapping', 'same key twice: the later javascript: value is the one in force', (x, m) => [
  { structs: [fmt('a', { href: 'https://ok.example/' }, { origin: x.i }), fmt('a', { href: JS(m) }, { origin: x.a(0) }), str('x', { origin: x.a(1) }), fmt('a', null, { origin: x.a(2) })] }
], { refused: true })
add('overlapping', 'same key twice: a javascript: value overridden by an allowed one (resurfaces if that one goes)', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.i }), fmt('a', { href: 'https://ok.example/' }, { origin: x.a(0) }), str('x', { origin: x.a(1) }), fmt('a', null, { origin: x.a(2) })] }
], { refused: true })

// 6. Embeds and non-string content in texts (all refused: a text holds strings only)
for (const [label, c, opts] of [
  ['an embed (ContentEmbed)', (m) => C.embed({ script: m })],
  // The guard cannot place these inside a text's positions, so it drops the whole
  // text node (or empties the title): nothing leaks, the honest "hi" goes with it
  // (PROTOCOL.md, "Content whitelist").
  ['Any content', (m) => C.any([m, { html: m }]), { mayDropText: true }],
  ['JSON content (yrs 0.28 misreads it: one string too many)', (m) => C.json([m]), { may4400: true }],
  ['binary content', (m) => C.binary(m), { mayDropText: true }],
  ['a sub-document', (m) => C.doc(`sub-${m}`), { mayDropText: true }]
]) {
  add('text content', `${label} inside a text`, (x, m) => [{ structs: [item(c(m), { origin: x.i })] }], { refused: true, ...opts })
  add('text content', `${label} inside the title`, (x, m) => [{ structs: [item(c(m), { origin: x.titleI })] }], { refused: true, ...opts })
}
add('text content', 'a Y.XmlElement <script> embedded in a text', (x, m) => [
  { structs: [item(C.xmlElement('script'), { origin: x.i }), item(C.xmlText(), { parent: x.a(0) }), str(`alert("${m}")`, { parent: x.a(1) })] }
], { refused: true })
add('text content', 'a Y.Map embedded in the title', (x, m) => [
  { structs: [item(C.map(), { origin: x.titleI }), item(C.any([m]), { parent: x.a(0), parentSub: 'html' })] }
], { refused: true })

// 7. Attributes where none may be
add('attributes', 'attributes on a Y.XmlText (onclick, class)', (x, m) => [
  { structs: [item(C.any([`alert("${m}")`]), { parent: x.text, parentSub: 'onclick' })] },
  { structs: [item(C.any([m]), { parent: x.text, parentSub: 'class' })] }
], { refused: true })
add('attributes', 'an attribute on the title root', (x, m) => [
  { structs: [item(C.any([m]), { parent: 'title', parentSub: 'onclick' })] }
], { refused: true })
add('attributes', 'an attribute on the body root', (x, m) => [
  { structs: [item(C.any([JS(m)]), { parent: 'body', parentSub: 'onload' })] }
], { refused: true })
add('attributes', 'element attributes: on* handler, javascript: URL on an allowed name, a shared type as a value', (x, m) => [
  { structs: [item(C.any([`alert("${m}")`]), { parent: x.p, parentSub: 'onclick' }), item(C.any([JS(m)]), { parent: x.p, parentSub: 'data-base-url' })] },
  { structs: [item(C.text(), { parent: x.p, parentSub: 'title' }), str(m, { parent: x.a(2) })] }
], { refused: true })

// 8. Shared types and sub-documents in the fragment (all refused: only Y.XmlElement and Y.XmlText)
for (const [label, build, opts] of [
  ['a Y.Map', (x, m) => [item(C.map(), { parent: 'body' }), item(C.any([m]), { parent: x.a(0), parentSub: 'html' })]],
  ['a Y.Array', (x, m) => [item(C.array(), { parent: 'body' }), item(C.any([m]), { parent: x.a(0) })]],
  ['a Y.Text', (x, m) => [item(C.text(), { parent: 'body' }), str(m, { parent: x.a(0) })]],
  ['a nested Y.XmlFragment holding <p>', (x, m) => [item(C.xmlFragment(), { parent: 'body' }), item(C.xmlElement('p'), { parent: x.a(0) }), item(C.xmlText(), { parent: x.a(1) }), str(m, { parent: x.a(2) })]],
  ['a sub-document (content 9)', (x, m) => [item(C.doc(`sub-${m}`, { autoLoad: true }), { parent: 'body' })]],
  ['a Y.XmlHook', (x, m) => [item(C.xmlHook('hook'), { parent: 'body' }), item(C.any([m]), { parent: x.a(0), parentSub: 'html' })], { may4400: true }],
  ['a type of type ref 15 (yrs Undefined; Yjs 13 cannot decode it)', (x, m) => [item(C.undefinedType(), { parent: 'body' }), str(m, { parent: x.a(0) })], { unreadable: true }],
  ['a Y.Map inside the <p> element', (x, m) => [item(C.map(), { origin: x.text }), item(C.any([m]), { parent: x.a(0), parentSub: 'k' })]]
]) {
  add('types', `${label} in the body fragment`, (x, m) => [{ structs: build(x, m) }], { refused: true, ...opts })
}

// 9. yrs-only content: Yjs 13 cannot decode it, the server must refuse it (the policy
//    refuses it too: neither an element nor a string)
add('yrs-only', 'type ref 7 (yrs weak link) in the body fragment', (x) => [
  { structs: [item(C.weakLink({ start: x.h }), { parent: 'body' })] }
], { refused: true, unreadable: true })
add('yrs-only', 'type ref 7 (yrs weak link quoting "hi") inside the text', (x) => [
  { structs: [item(C.weakLink({ start: x.h, end: x.i }), { origin: x.i })] }
], { refused: true, unreadable: true })
add('yrs-only', 'content 11 (yrs move) in the body fragment', (x) => [
  { structs: [item(C.move({ start: x.p }), { parent: 'body' })] }
], { refused: true, unreadable: true })
add('yrs-only', 'content 11 (yrs move of "hi") inside the text, after an allowed string', (x) => [
  { structs: [str('ok', { origin: x.i }), item(C.move({ start: x.h, end: x.i, priority: 1 }), { origin: x.a(1) })] }
], { refused: true, unreadable: true })

// 10. Foreign roots
add('foreign roots', 'string, map entry and format under foreign roots', (x, m) => [
  { structs: [str(m, { parent: 'evil' }), item(C.any([m]), { parent: 'evil-map', parentSub: 'k' }), fmt('a', { href: JS(m) }, { parent: 'evil-fmt' })] }
], { refused: true })
add('foreign roots', 'a <p> under a case variant of the body root ("Body")', (x, m) => [
  { structs: [item(C.xmlElement('p'), { parent: 'Body' }), item(C.xmlText(), { parent: x.a(0) }), str(m, { parent: x.a(1) })] }
], { refused: true })

// 11. Deletions, GC and skip structs
add('structs', 'format and text deleted in the same update (nothing of them may be relayed)', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.i }), str(`click ${m}`, { origin: x.a(0) })], deleteSet: [{ client: x.A, ranges: [[0, 15]] }] }
], { refused: true })
add('structs', 'a lone format, deleted by the attacker in a later update', (x, m) => [
  { structs: [fmt('a', { href: JS(m) }, { origin: x.i })] },
  { structs: [], deleteSet: [{ client: x.A, ranges: [[0, 1]] }] }
], { refused: true })
add('structs', 'GC struct first, then an allowed string', (x) => [
  { structs: [gc(2), str(' gc', { origin: x.i })] }
], { refused: false, may4400: true })
add('structs', 'a skip struct leaves a gap before the next struct (a dependency gap)', (x, m) => [
  { structs: [str(' a', { origin: x.i }), skip(3), str(m, { origin: x.a(1) })] }
], { refused: false, may4400: true }) // plain text: only the gap is wrong
// An item whose first clocks the room holds is applied from its first unknown clock,
// linked after the known part: refused where that part is in another node (yrs
// counted the tail in one node and linked it into another: the room hung), or
// where the item would be a map entry longer than one clock (split later, a
// removed entry left its left part behind).
add('structs', 'an item re-sent with the clocks of a string in a text, whole under a foreign root', (x, m) => [
  { structs: [str('a', { origin: x.i })] },
  { clock: 0, structs: [str(`a${m}`, { parent: 'notes' })] }
], { refused: false, unreadable: true })
add('structs', 'an item re-sent with the clocks of a string in a text, whole under the title', (x, m) => [
  { structs: [str('a', { origin: x.i })] },
  { clock: 0, structs: [str(`a${m}`, { parent: 'title' })] }
], { refused: false, unreadable: true })
add('structs', 'a later value of an attribute longer than one clock (its key taken from its origin)', (x, m) => [
  { structs: [item(C.any(['a']), { parent: x.p, parentSub: 'class' })] },
  { structs: [str(`on${m}`, { origin: x.a(0) })] }
], { refused: false, unreadable: true })

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

const MSG_HP_AUTH = 2
const MSG_HP_SYNC_STATUS = 8

/**
 * A raw socket on /v1/hocuspocus: frames are `varString name` + a y-protocols message
 * (or a Hocuspocus message). `messages` holds what follows the name of every frame
 * that carries a y-protocols message, so RawClient's helpers work unchanged.
 */
class RawHocuspocusClient extends RawClient {
  constructor (url, name, token) {
    super(url)
    this.name = name
    this.token = token
    this.auth = []
    this.ws.removeAllListeners('message')
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        this.messages.push(data.toString('utf8'))
      } else {
        const bytes = new Uint8Array(data)
        try {
          const dec = decoding.createDecoder(bytes)
          decoding.readVarString(dec)
          const rest = bytes.subarray(dec.pos)
          const type = decoding.readVarUint(dec)
          if (type === MSG_HP_AUTH) this.auth.push({ kind: decoding.readVarUint(dec), text: decoding.readVarString(dec) })
          else if (type !== MSG_HP_SYNC_STATUS) this.messages.push(rest)
        } catch {
          this.messages.push(bytes)
        }
      }
      this._notify()
    })
  }

  send (data) {
    const enc = encoding.createEncoder()
    encoding.writeVarString(enc, this.name)
    encoding.writeUint8Array(enc, data)
    this.ws.send(encoding.toUint8Array(enc))
  }

  async handshake () {
    await this.waitOpen()
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, MSG_HP_AUTH)
    encoding.writeVarUint(enc, 0)
    encoding.writeVarString(enc, this.token)
    this.send(encoding.toUint8Array(enc))
    await waitFor(() => {
      if (this.closeInfo) throw new Error(`closed ${JSON.stringify(this.closeInfo)}`)
      return this.auth.length > 0
    }, 'Hocuspocus auth answer', { describe: () => this.describe() })
    assert.deepEqual(this.auth[0], { kind: 2, text: 'read-write' }, 'Authenticated read-write')
    await super.handshake()
  }
}

/** Sends a sync step 1 and waits for the step 2 answer (or the socket's close): the server has handled everything sent before. */
async function roundTrip (raw, what) {
  const step2s = () => raw.messages.filter((m) => typeof m !== 'string' && isSync(m, SYNC_STEP2)).length
  const before = step2s()
  if (raw.closeInfo) return
  raw.send(step1Message(new Y.Doc()))
  await waitFor(() => raw.closeInfo || step2s() > before, what, { describe: () => raw.describe() })
}

function isSync (m, subtype) {
  try {
    const p = parseMessage(m)
    return p.type === MSG_SYNC && p.subtype === subtype
  } catch {
    return false
  }
}

/** A gc: false Y.Doc holding every sync step 2 / update a raw client received; `errors` lists what Yjs could not apply. */
function framesDoc (raw) {
  const doc = new Y.Doc({ gc: false })
  const errors = []
  raw.messages.forEach((m, i) => {
    if (typeof m === 'string') return
    let p
    try { p = parseMessage(m) } catch { return }
    if (p.type !== MSG_SYNC || (p.subtype !== SYNC_STEP2 && p.subtype !== SYNC_UPDATE)) return
    try {
      Y.applyUpdate(doc, p.payload)
    } catch (e) {
      errors.push(`frame ${i} (${Buffer.from(p.payload).toString('hex').slice(0, 80)}…): Yjs 13 cannot apply it: ${e.message}`)
    }
  })
  return { doc, errors }
}

const framesBytes = (raw) => Buffer.concat(raw.messages.map((m) => Buffer.from(typeof m === 'string' ? Buffer.from(m) : m)))

/** The shared type created by the item with id [client, clock], or null. */
function typeAt (doc, [client, clock]) {
  const structs = doc.store.clients.get(client)
  const s = structs?.find((x) => x.id.clock === clock)
  return s instanceof Y.Item && s.content instanceof Y.ContentType ? s.content.type : null
}
const idOf = (i) => [i.id.client, i.id.clock]

/** Is the character with id [client, clock] a live string character in `doc`? */
function liveChar (doc, [client, clock]) {
  const s = doc.store.clients.get(client)?.find((x) => x.id.clock <= clock && clock < x.id.clock + x.length)
  return s instanceof Y.Item && !s.deleted && s.content instanceof Y.ContentString
}

/** Every text of a JSON render's body, in order. */
const renderText = (nodes) => (Array.isArray(nodes) ? nodes : []).map((n) => n?.type === 'text' ? String(n.text) : renderText(n?.children)).join('')

/** Live items of `client` with a clock in [from, to) in `doc`, described. */
function liveItemsIn (doc, client, [from, to]) {
  return (doc.store.clients.get(client) ?? [])
    .filter((s) => s instanceof Y.Item && !s.deleted && s.id.clock < to && from < s.id.clock + s.length)
    .map((s) => `${s.id.client}:${s.id.clock} ${describeContent(s.content)}`)
}

async function getDraft (server, app, doc, format) {
  const res = await fetch(`${server.httpUrl}/v1/apps/${encodeURIComponent(app.id)}/docs/${encodeURIComponent(doc)}/draft?format=${format}`, {
    headers: { Authorization: `Bearer ${hostToken({ app, doc })}` }
  })
  return { status: res.status, text: await res.text() }
}

/** Messages of stock clients that swallowed an update they could not apply (y-protocols logs them). */
const yjsErrors = []
let restoreConsole = null
function captureYjsErrors () {
  const original = console.error
  console.error = (...args) => {
    const text = args.map((a) => a instanceof Error ? a.message : String(a)).join(' ')
    if (text.includes('Caught error while handling a Yjs update')) yjsErrors.push(text)
    else original(...args)
  }
  restoreConsole = () => { console.error = original }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

const ENDPOINTS = [
  { kind: 'ws', label: 'y-websocket /v1/ws' },
  { kind: 'hocuspocus', label: 'Hocuspocus /v1/hocuspocus' }
]

/**
 * The attacker outcomes a case may end with in `mode`: 'open', or 'CODE reason'
 * ('4400' alone: a 4400 close with any reason). Derived from what the case sends.
 */
function expectedFate (c, mode) {
  if (c.unreadable) return ['4400 malformed-payload']
  const fate = mode === 'reject' && c.refused ? '1008 content-rejected' : 'open'
  return c.may4400 ? [fate, '4400'] : [fate]
}
const fateOf = (closeInfo) => closeInfo ? `${closeInfo.code} ${closeInfo.reason}` : 'open'
const fateMatches = (fate, expected) => fate === expected || (expected === '4400' && fate.startsWith('4400 '))

describe('integrity: hand-encoded updates judged by an independent oracle', () => {
  let server
  let pool
  const hpProviders = []

  before(async () => {
    server = await startServer({ apps: MODES.map((m) => m.app) })
    pool = new ClientPool(server)
    captureYjsErrors()
  })
  after(async () => {
    restoreConsole?.()
    for (const p of hpProviders) { try { p.destroy() } catch {} }
    pool?.destroyAll()
    await server?.stop()
  })

  const token = (app, doc, user, mode = 'edit') => sessionToken({ app, doc, user, mode })
  const hpUrl = (app) => `${server.wsBase.replace('/v1/ws', '/v1/hocuspocus')}/${app.id}`

  /** The observer: a stock provider of the endpoint, synced; { doc, closes(), destroy() }. */
  async function observer (app, endpoint, doc) {
    if (endpoint.kind === 'ws') {
      const p = pool.provider({ app, doc, token: token(app, doc, 'observer') })
      await waitSynced(p, 'observer synced')
      return { doc: p.doc, closes: () => p.closeEvents, destroy: () => { try { p.destroy() } catch {} } }
    }
    const closes = []
    const p = new HocuspocusProvider({
      url: hpUrl(app),
      name: doc,
      token: token(app, doc, 'observer'),
      document: new Y.Doc(),
      WebSocketPolyfill: WebSocket,
      onClose: (e) => closes.push({ code: e?.event?.code, reason: String(e?.event?.reason ?? '') })
    })
    hpProviders.push(p)
    await waitFor(() => p.isSynced, 'Hocuspocus observer synced', { describe: () => `closes ${JSON.stringify(closes)}` })
    return { doc: p.document, closes: () => closes, destroy: () => { try { p.destroy() } catch {} } }
  }

  function attacker (app, endpoint, doc) {
    if (endpoint.kind === 'ws') return pool.raw({ app, doc, token: token(app, doc, 'attacker') })
    const c = new RawHocuspocusClient(hpUrl(app), doc, token(app, doc, 'attacker'))
    pool.raws.push(c)
    return c
  }

  async function runCase (m, endpoint, c, t) {
    const cleanups = []
    try {
      await runCaseIn(m, endpoint, c, t, cleanups)
    } finally {
      for (const f of cleanups) { try { f() } catch {} }
      pool.destroyAll()
    }
  }

  async function runCaseIn ({ mode, app }, endpoint, c, t, cleanups) {
    const doc = uid('integ')
    const problems = []
    const outcomes = []
    const errorsBefore = yjsErrors.length
    // Strip mode may drop a whole text holding a value it cannot place; reject mode undoes the update instead.
    const mayDropText = c.mayDropText && mode === 'strip'

    // honest content
    const honest = pool.provider({ app, doc, token: token(app, doc, 'honest') })
    await waitSynced(honest, 'honest client synced')
    const hdoc = honest.doc
    let hText, barrierText
    hdoc.transact(() => {
      hdoc.getText('title').insert(0, 'hi')
      const body = hdoc.getXmlFragment('body')
      const p = new Y.XmlElement('p')
      const p2 = new Y.XmlElement('p')
      body.insert(0, [p, p2])
      hText = new Y.XmlText()
      p.insert(0, [hText])
      hText.insert(0, 'hi')
      barrierText = new Y.XmlText()
      p2.insert(0, [barrierText])
      barrierText.insert(0, 'barrier')
    })
    // The attacker's client id is below the honest client's: an item sent with no origins
    // then lands before the honest items of its parent (Yjs and yrs order such siblings by
    // client id), at the start, as the cases say, whatever ids the run draws.
    const A = 1 + Math.floor(Math.random() * (hdoc.clientID - 1))
    const titleItem = hdoc.getText('title')._start
    const hiItem = hText._start
    const x = {
      A,
      a: (k) => [A, k],
      titleH: idOf(titleItem),
      titleI: [titleItem.id.client, titleItem.id.clock + 1],
      p: idOf(hText._item.parent._item),
      text: idOf(hText._item),
      h: idOf(hiItem),
      i: [hiItem.id.client, hiItem.id.clock + 1],
      barrier: idOf(barrierText._item)
    }

    const obs = await observer(app, endpoint, doc)
    cleanups.push(obs.destroy)
    await waitFor(() => obs.doc.getText('title').toString() === 'hi' && typeAt(obs.doc, x.text), 'observer has the honest content')
    const frames = pool.raw({ app, doc, token: token(app, doc, 'frames', 'view') })
    await frames.handshake()
    const att = attacker(app, endpoint, doc)
    await att.handshake()

    let barriers = 0
    /** An honest edit after everything sent so far; the observer and the frames must receive it. */
    const barrier = async (label) => {
      const tag = `|${++barriers}`
      barrierText.insert(barrierText.length, tag)
      await waitFor(() => {
        const t = typeAt(obs.doc, x.barrier)
        return t && liveString(t).includes(tag)
      }, `${label}: the observer receives an honest edit`, { describe: () => `observer closes ${JSON.stringify(obs.closes())}; attacker ${att.describe()}` })
      await waitFor(() => {
        if (frames.closeInfo) return true // a raw socket does not come back: reported below, no need to time out
        const t = typeAt(framesDoc(frames).doc, x.barrier)
        return t && liveString(t).includes(tag)
      }, `${label}: the frames observer receives an honest edit`, { describe: () => frames.describe() })
      if (frames.closeInfo) {
        assert.fail(`${c.name} on ${endpoint.label}, whitelist_mode ${mode}: ${label}: the server closed the view-mode frames observer ` +
          `(${fateOf(frames.closeInfo)}); observer closes ${JSON.stringify(obs.closes())}, honest client closes ${JSON.stringify(honest.closeEvents)}, attacker ${fateOf(att.closeInfo)}` +
          (problems.length ? `\n  earlier problems:\n  ${problems.join('\n  ')}` : ''))
      }
    }

    /** Clock ranges [from, to) of the attacker's updates the server rejected (1008): nothing of them may stay live. */
    const rejected = []

    /** Every check after one step. */
    const judge = async (label) => {
      const say = (what) => problems.push(`${label}: ${what}`)
      for (const v of judgeDoc(obs.doc)) say(`observer (${endpoint.kind}) ${v}`)
      for (const v of judgeDoc(hdoc)) say(`honest client ${v}`)
      const f = framesDoc(frames)
      for (const e of f.errors) say(`frames: ${e}`)
      for (const v of judgeDoc(f.doc, { deleted: 'judge' })) say(`frames ${v}`)
      if (framesBytes(frames).includes(c.marker)) say(`the marker ${c.marker} is in a frame the room sent`)
      if (Buffer.from(Y.encodeStateAsUpdate(obs.doc)).includes(c.marker)) say(`the marker ${c.marker} is in the observer's document`)
      for (const [who, d] of [['observer', obs.doc], ['honest client', hdoc], ['frames', f.doc]]) {
        for (const range of rejected) {
          const live = liveItemsIn(d, A, range)
          if (live.length) say(`${who}: the rejected update (clocks ${range[0]}..${range[1] - 1}) left live items: ${live.join(', ')}`)
        }
        const title = liveString(d.getText('title'))
        const t = typeAt(d, x.text)
        const text = t ? liveString(t) : null
        const lost = [['title', x.titleH, x.titleI], ['paragraph', x.h, x.i]]
          .filter(([, ...ids]) => !ids.every((i) => liveChar(d, i)))
          .map(([what]) => what)
        if (lost.length && mayDropText) continue
        if (lost.length) say(`${who}: the honest "hi" is gone from the ${lost.join(' and the ')} (title ${JSON.stringify(title)}, paragraph ${t ? JSON.stringify(text) : 'text node gone'})`)
        else if (c.exact && (title !== 'hi' || text !== 'hi')) say(`${who}: title ${JSON.stringify(title)}, paragraph ${JSON.stringify(text)}; both should read "hi"`)
      }
      const json = await getDraft(server, app, doc, 'json')
      if (json.status !== 200) {
        say(`draft?format=json answered ${json.status}: ${json.text.slice(0, 200)}`)
      } else {
        if (json.text.includes(c.marker)) say(`the JSON render holds the marker: ${json.text.slice(0, 400)}`)
        const parsed = JSON.parse(json.text)
        for (const v of judgeRenderJson(parsed)) say(`${v} (render ${json.text.slice(0, 300)})`)
        if (!mayDropText && !String(parsed.title).includes('hi')) say(`the JSON render's title is ${JSON.stringify(parsed.title)}`)
        if (!mayDropText && !renderText(parsed.body).includes('hi')) say(`the JSON render lost "hi": ${json.text.slice(0, 300)}`)
      }
      const html = await getDraft(server, app, doc, 'html')
      if (html.status !== 200) say(`draft?format=html answered ${html.status}`)
      for (const bad of [c.marker, 'javascript', ...c.html]) if (html.text.includes(bad)) say(`the HTML render holds ${JSON.stringify(bad)}: ${html.text.slice(0, 300)}`)
      const newErrors = yjsErrors.slice(errorsBefore)
      if (newErrors.length) say(`a stock client could not apply an update the room sent: ${newErrors.join(' | ').slice(0, 300)}`)
    }

    let clock = 0
    const steps = c.steps(x)
    for (const [k, step] of steps.entries()) {
      const label = `step ${k + 1}/${steps.length}${step.label ? ` (${step.label})` : ''}`
      if (step.honest) {
        step.honest({ doc: hdoc, text: hText })
      } else {
        if (att.closeInfo) {
          outcomes.push(`${label}: not sent, the attacker is closed`)
          continue
        }
        // `step.clock`: the step restates clocks the attacker already used.
        const from = step.clock ?? clock
        const bytes = singleClientUpdate(A, from, step.structs, step.deleteSet ?? [])
        clock = Math.max(clock, from + step.structs.reduce((n, s) => n + structLength(s), 0))
        att.send(updateMessage(bytes))
        await roundTrip(att, `${label}: the server handles the attacker's update`)
        if (att.closeInfo?.code === 1008) rejected.push([from, clock])
        outcomes.push(`${label}: attacker ${fateOf(att.closeInfo)}`)
      }
      await barrier(label)
      await judge(label)
    }

    // the attacker's fate
    const expected = expectedFate(c, mode)
    if (!expected.includes('open')) await Promise.race([att.closed, sleep(SETTLE)])
    const fate = fateOf(att.closeInfo)
    if (!expected.some((e) => fateMatches(fate, e))) {
      problems.push(`attacker ${fate === 'open' ? 'still open' : `closed ${fate}`}, expected ${expected.join(' or ')} ` +
        `(${mode} mode; the case ${c.refused ? 'sends' : 'sends no'} refused content${c.unreadable ? ', and content Yjs 13 cannot read' : ''})`)
    }
    // allowed content that was not refused reaches the others in every mode
    if (!c.refused && fate === 'open' && Y.getState(obs.doc.store, A) < clock) {
      problems.push(`the observer has the attacker's allowed updates up to clock ${Y.getState(obs.doc.store, A)} of ${clock}`)
    }

    // a third honest client: it syncs a clean document and its edit reaches the observer
    const late = pool.provider({ app, doc, token: token(app, doc, 'late') })
    await waitSynced(late, 'late honest client synced')
    for (const v of judgeDoc(late.doc)) problems.push(`late client ${v}`)
    for (const range of rejected) {
      const live = liveItemsIn(late.doc, A, range)
      if (live.length) problems.push(`late client: the rejected update (clocks ${range[0]}..${range[1] - 1}) left live items: ${live.join(', ')}`)
    }
    const afterText = `AFTER-${doc}`
    late.doc.transact(() => {
      const p = new Y.XmlElement('p')
      const body = late.doc.getXmlFragment('body')
      body.insert(body.length, [p])
      p.insert(0, [new Y.XmlText(afterText)])
    })
    await waitFor(() => obs.doc.getXmlFragment('body').toArray().some((n) => n instanceof Y.XmlElement && n.toString().includes(afterText)),
      'the observer receives a later edit of a third honest client', { describe: () => `observer closes ${JSON.stringify(obs.closes())}` })
    if (obs.closes().length) problems.push(`the observer was disconnected: ${JSON.stringify(obs.closes())}`)
    if (honest.closeEvents.length) problems.push(`the honest client was disconnected: ${JSON.stringify(honest.closeEvents)}`)
    for (const o of outcomes) t.diagnostic(o)

    if (problems.length) assert.fail(`${c.name} on ${endpoint.label}, whitelist_mode ${mode}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}\n  (${outcomes.join('; ')})`)
  }

  for (const m of MODES) {
    describe(`whitelist_mode = "${m.mode}"`, () => {
      for (const endpoint of ENDPOINTS) {
        describe(endpoint.label, () => {
          for (const c of cases.filter(m.runs)) {
            it(`[${c.group}] ${c.name}`, (t) => runCase(m, endpoint, c, t))
          }
        })
      }
    })
  }
})

// Content whitelist enforced on incoming CRDT updates (proto/whitelist-default.json).
//
// - hostile corpus (strip mode, the default): ~290 vectors from corpus/hostile-crdt.mjs,
//   each in its own transaction, spread over a few documents (plus the same content
//   sent "offline first", i.e. inside the sync step 2 of a connecting client). Every
//   vector's marker must be absent from a bystander's document, from every frame
//   any client received, from the host API renders, from the attacker's own document
//   once it converged, and from the bytes the server stored.
// - no false positives: corpus/rich-content.mjs passes unchanged, byte for byte.
// - a mixed update keeps its allowed part; sender and peers converge.
// - opted-in senders get `content-stripped`; reject mode refuses whole updates
//   (`content-rejected`, close 1008) and keeps serving everyone else.
// - /metrics counters.
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, ClientPool, DEFAULT_APP, sessionToken, hostToken, waitFor, waitSynced, uid, sleep,
  SETTLE, xmlTree, updateMessage, parseMessage, parseChorusMessage, MSG_SYNC, SYNC_UPDATE, SYNC_STEP2,
  readFilesRecursive
} from './harness.mjs'
import { vectors } from './corpus/hostile-crdt.mjs'
import { builders } from './corpus/rich-content.mjs'

// every y-websocket provider registers a process 'exit' listener; the hostile run uses ~15 at once
process.setMaxListeners(64)

const REJECT_APP = Object.freeze({ id: 'wiki-reject', secrets: ['wiki-reject-secret-0123456789abcdef'], whitelist_mode: 'reject' })

/** Documents of the hostile run: vector groups per document, and how they are sent. */
const HOSTILE_DOCS = [
  { label: 'elements', groups: ['elements'] },
  { label: 'attributes+urls', groups: ['attributes', 'urls'] },
  { label: 'styles+marks+embeds', groups: ['styles', 'marks', 'embeds'] },
  { label: 'title+roots+later', groups: ['title', 'roots', 'later'] },
  { label: 'exotic', groups: ['exotic'] },
  // the same content written before connecting: it reaches the server in sync step 2
  { label: 'offline (step 2)', groups: ['elements', 'attributes', 'urls', 'styles', 'marks', 'embeds', 'title', 'roots', 'later'], offline: true },
  { label: 'offline exotic (step 2)', groups: ['exotic'], offline: true }
]

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const bodyOf = (doc) => doc.getXmlFragment('body')
const titleOf = (doc) => doc.getText('title')
const opt = (url) => `${url}&chorus=1`

/** Appends a `<p>` with plain text in its own transaction. */
function appendParagraph (doc, text) {
  const body = bodyOf(doc)
  doc.transact(() => {
    const p = new Y.XmlElement('p')
    body.insert(body.length, [p])
    p.insert(0, [new Y.XmlText(text)])
  })
}

/** JSON with object keys sorted (yrs re-encodes JSON objects with its own key order). */
const sortedJSON = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array)) ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x)
const id = (i) => i ? `${i.client}:${i.clock}` : null
function content (c) {
  if (c instanceof Y.ContentString) return ['str', c.str]
  if (c instanceof Y.ContentFormat) return ['fmt', c.key, sortedJSON(c.value)]
  if (c instanceof Y.ContentAny) return ['any', sortedJSON(c.arr)]
  if (c instanceof Y.ContentEmbed) return ['embed', sortedJSON(c.embed)]
  if (c instanceof Y.ContentJSON) return ['json', sortedJSON(c.arr)]
  if (c instanceof Y.ContentBinary) return ['bin', Buffer.from(c.content).toString('hex')]
  if (c instanceof Y.ContentDeleted) return ['del', c.len]
  if (c instanceof Y.ContentDoc) return ['doc', c.doc.guid, sortedJSON(c.opts)]
  if (c instanceof Y.ContentType) return ['type', c.type.constructor.name, c.type.nodeName ?? c.type.hookName ?? null]
  return ['?', c.constructor.name]
}
/**
 * A canonical form of a Yjs update: every struct (id, length, origins, parent, key,
 * content) and the delete set, with object keys inside JSON values sorted. Two
 * updates with the same canonical form describe the same document history.
 */
function canonicalUpdate (u) {
  const { structs, ds } = Y.decodeUpdate(u)
  const out = structs.map((s) => s instanceof Y.Item
    ? [id(s.id), s.length, id(s.origin), id(s.rightOrigin), typeof s.parent === 'string' ? s.parent : id(s.parent), s.parentSub, content(s.content)]
    : [s.constructor.name, id(s.id), s.length])
  const dsOut = [...ds.clients.entries()].sort((a, b) => a[0] - b[0]).map(([c, items]) => [c, items.map((d) => [d.clock, d.len])])
  return JSON.stringify([out, dsOut])
}

function dumpValue (v) {
  if (v instanceof Y.AbstractType) return dumpType(v)
  if (v instanceof Uint8Array) return `bin:${Buffer.from(v).toString('latin1')}`
  if (v instanceof Y.Doc) return `subdoc:${v.guid}:${JSON.stringify(v.meta)}`
  return sortedJSON(v)
}

/** toString that survives hostile content (an attribute value `{ toString: 'x' }` makes Yjs' toString throw). */
function str (t) {
  try {
    return t.toString()
  } catch (e) {
    return `<toString threw ${e.message}> ${dumpType(t)}`
  }
}

/** Every live (not deleted) thing in a shared type, whatever type it is: names, map entries, list content, formats. */
function dumpType (t) {
  const out = []
  if (t._item !== null && (t instanceof Y.XmlElement || t instanceof Y.XmlHook)) out.push(`<${t instanceof Y.XmlHook ? t.hookName : t.nodeName}>`)
  for (const [k, item] of t._map) if (!item.deleted) out.push(`${k}=${item.content.getContent().map(dumpValue).join(',')}`)
  const list = []
  for (let n = t._start; n !== null; n = n.right) {
    if (n.deleted) continue
    if (n.content instanceof Y.ContentFormat) list.push(`{${n.content.key}:${sortedJSON(n.content.value)}}`)
    else if (n.content instanceof Y.ContentString) list.push(n.content.str)
    else list.push(n.content.getContent().map(dumpValue).join(','))
  }
  out.push(`[${list.join('')}]`)
  return out.join(' ')
}

/** root name → dump of its live content (roots without live content are left out). */
function dumpRoots (doc) {
  const roots = {}
  for (const name of [...doc.share.keys()].sort()) {
    const d = dumpType(doc.share.get(name))
    if (d !== '[]') roots[name] = d
  }
  return roots
}

/** Same state vector and same delete set (a canonical comparison of two Yjs states). */
const sameState = (a, b) => Y.equalSnapshots(Y.snapshot(a), Y.snapshot(b))

function converged (a, b) {
  return sameState(a, b) &&
    str(bodyOf(a)) === str(bodyOf(b)) &&
    str(titleOf(a)) === str(titleOf(b)) &&
    JSON.stringify(dumpRoots(a)) === JSON.stringify(dumpRoots(b))
}

const describePair = (a, b) => () =>
  `sameState=${sameState(a, b)}\n  A body=${str(bodyOf(a)).slice(0, 600)}\n  B body=${str(bodyOf(b)).slice(0, 600)}\n` +
  `  A roots=${Object.keys(dumpRoots(a))} B roots=${Object.keys(dumpRoots(b))}`

/** All binary frames a raw client received, concatenated. */
const framesOf = (raw) => Buffer.concat(raw.messages.map((m) => typeof m === 'string' ? Buffer.from(m) : Buffer.from(m)))

const chorusErrors = (raw) => raw.messages.map(parseChorusMessage).filter((m) => m && m.kind === 0)

async function getDraft (server, app, doc, format) {
  const res = await fetch(`${server.httpUrl}/v1/apps/${encodeURIComponent(app.id)}/docs/${encodeURIComponent(doc)}/draft?format=${format}`, {
    headers: { Authorization: `Bearer ${hostToken({ app })}` }
  })
  const bytes = Buffer.from(await res.arrayBuffer())
  return { status: res.status, bytes }
}

async function getMetrics (server) {
  const res = await fetch(`${server.httpUrl}/metrics`)
  assert.equal(res.status, 200, 'GET /metrics')
  return res.text()
}

/** Sum of a Prometheus counter, optionally only the series with the given labels. */
function counter (text, name, labels = {}) {
  let sum = 0
  let seen = false
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+([0-9.eE+-]+)/)
    if (!m || m[1] !== name) continue
    const ls = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) { sum += Number(m[4]); seen = true }
  }
  return seen ? sum : null
}

/**
 * The mixed update: an allowed paragraph (with an img carrying an allowed alt and a
 * refused onerror, and a javascript: link mark on part of its text) plus a script
 * element — all in ONE transaction. Returns the markers of the refused parts.
 */
function writeMixed (doc, tag, paragraphText) {
  const markers = { link: `XSSMIX${tag}L`, onerror: `XSSMIX${tag}E`, script: `XSSMIX${tag}S` }
  const body = bodyOf(doc)
  doc.transact(() => {
    const p = new Y.XmlElement('p')
    body.insert(body.length, [p])
    const text = new Y.XmlText()
    p.insert(0, [text])
    text.insert(0, paragraphText)
    const at = paragraphText.indexOf('link')
    text.format(at, 4, { a: { href: `javascript:alert("${markers.link}")` } })
    const img = new Y.XmlElement('img')
    p.insert(1, [img])
    img.setAttribute('src', 'https://ok.example/mixed.png')
    img.setAttribute('alt', 'mixed alt')
    img.setAttribute('onerror', `alert("${markers.onerror}")`)
    const script = new Y.XmlElement('script')
    body.insert(body.length, [script])
    script.insert(0, [new Y.XmlText(`alert("${markers.script}")`)])
  })
  return markers
}

/** Formats a list of leaks/problems for one assertion message. */
function report (title, leaks, problems) {
  // vector → document label → sources
  const byVector = new Map()
  for (const l of leaks) {
    const key = `${l.vector} [${l.marker}]`
    if (!byVector.has(key)) byVector.set(key, new Map())
    const m = l.where.match(/^\[([^\]]*)\] (.*)$/)
    const [doc, src] = m ? [m[1], m[2]] : ['store', l.where]
    const docs = byVector.get(key)
    if (!docs.has(doc)) docs.set(doc, new Set())
    docs.get(doc).add(src)
  }
  const lines = [`${title}: ${byVector.size} vector(s) leaked, ${problems.length} problem(s)`]
  for (const [k, docs] of byVector) lines.push(`  LEAK ${k}: ${[...docs].map(([d, srcs]) => `${d} {${[...srcs].join(', ')}}`).join(' ')}`)
  for (const p of problems) lines.push(`  PROBLEM ${p}`)
  return lines.join('\n')
}

// ---------------------------------------------------------------------------
// Hostile corpus (own server: it is stopped to inspect the stored bytes)
// ---------------------------------------------------------------------------

let hostileMetrics = null

describe('whitelist: hostile CRDT corpus (strip mode)', () => {
  let server
  let pool

  before(async () => {
    server = await startServer({ apps: [DEFAULT_APP] })
    pool = new ClientPool(server)
  })
  after(async () => {
    pool?.destroyAll()
    await server?.stop()
  })

  it(`no marker of ${vectors.length} hostile vectors reaches peers, frames, renders, the sender's converged state or the store`, async (t) => {
    const leaks = []
    const problems = []
    const sentinels = []
    const soloOutcomes = []

    /** Records every vector whose marker occurs in `hay`; `where` is "[doc label] source". */
    const scan = (where, hay, vs) => {
      const buf = Buffer.isBuffer(hay) ? hay : Buffer.from(hay instanceof Uint8Array ? hay : String(hay))
      for (const v of vs) if (buf.includes(v.marker)) leaks.push({ vector: v.name, marker: v.marker, where })
    }

    async function runDoc ({ label, groups, offline }) {
      const vs = vectors.filter((v) => groups.includes(v.group) && !(offline && v.solo))
      const soloVs = vs.filter((v) => v.solo)
      const mainVs = vs.filter((v) => !v.solo)
      const doc = uid('hostile')
      const tag = `[${label}]`
      const sentinel = `SENTINEL-OK-${doc}`
      sentinels.push(sentinel)
      const token = (user, mode = 'edit') => sessionToken({ doc, user, mode })

      // observer (view mode, records every frame) and bystander B join first
      const observer = pool.raw({ doc, token: token('observer', 'view') })
      await observer.handshake()
      const b = pool.provider({ doc, token: token('bystander') })
      await waitSynced(b, `${tag} B synced`)
      const docB = b.doc

      const docA = new Y.Doc()
      /** Runs every setup (allowed content some vectors target later), one transaction each; returns vector → context. */
      const runSetups = () => {
        const ctx = new Map()
        for (const v of mainVs) {
          if (!v.setup) continue
          try { ctx.set(v, docA.transact(() => v.setup(docA))) } catch (e) { problems.push(`${tag} ${v.name}: setup threw ${e.message}`) }
        }
        return ctx
      }
      const runVectors = (ctx) => {
        for (const v of mainVs) {
          try { docA.transact(() => v.apply(docA, ctx.get(v))) } catch (e) { problems.push(`${tag} ${v.name}: apply threw ${e.message}`) }
        }
      }

      let a
      if (offline) {
        // everything is in A's document before it connects: it arrives as sync step 2
        runVectors(runSetups())
        a = pool.provider({ doc, token: token('attacker'), ydoc: docA })
        try {
          await waitSynced(a, `${tag} A synced`)
        } catch (e) {
          problems.push(`${tag} ${e.message}`)
        }
      } else {
        a = pool.provider({ doc, token: token('attacker'), ydoc: docA })
        await waitSynced(a, `${tag} A synced`)
        const ctx = runSetups()
        if (ctx.size) {
          const setupDone = `SETUP-DONE-${doc}`
          appendParagraph(docA, setupDone)
          await waitFor(() => str(bodyOf(docB)).includes(setupDone), `${tag} B has the setup content`)
        }
        runVectors(ctx)
      }
      // solo vectors: each from a raw connection of its own (closing it, e.g. 4400 for
      // content yrs cannot decode, is an acceptable answer: nothing may leak either way)
      for (const v of soloVs) {
        const solo = pool.raw({ doc, token: token(`solo-${v.marker}`) })
        await solo.handshake()
        const local = new Y.Doc()
        local.transact(() => v.apply(local))
        solo.send(updateMessage(Y.encodeStateAsUpdate(local)))
        await Promise.race([solo.closed, sleep(SETTLE)])
        soloOutcomes.push(`${v.name}: ${solo.closeInfo ? `closed ${solo.closeInfo.code} ${solo.closeInfo.reason}` : 'kept open'}`)
      }
      appendParagraph(docA, sentinel)
      try {
        await waitFor(() => str(bodyOf(docB)).includes(sentinel), `${tag} B receives the allowed sentinel paragraph after the vectors`,
          { describe: () => `A close events ${JSON.stringify(a.closeEvents)}; B body ${str(bodyOf(docB)).slice(-300)}` })
      } catch (e) {
        problems.push(`${tag} ${e.message}`)
      }
      try {
        await waitFor(() => converged(docA, docB), `${tag} A (the sender) converges to B's state`, { describe: describePair(docA, docB) })
      } catch (e) {
        problems.push(`${tag} ${e.message}`)
      }
      await sleep(SETTLE)
      if (a.closeEvents.length) problems.push(`${tag} the sender was disconnected in strip mode: ${JSON.stringify(a.closeEvents)}`)
      if (b.closeEvents.length) problems.push(`${tag} bystander B was disconnected: ${JSON.stringify(b.closeEvents)}`)

      // a late joiner receives the server's whole state in its sync step 2
      const late = pool.raw({ doc, token: token('late-observer', 'view') })
      await late.handshake()
      await sleep(50)

      const bBytes = Buffer.from(Y.encodeStateAsUpdate(docB))
      const bText = [str(bodyOf(docB)), str(titleOf(docB)), JSON.stringify(xmlTree(bodyOf(docB))), JSON.stringify(dumpRoots(docB))].join('\n')
      const aBytes = Buffer.from(Y.encodeStateAsUpdate(docA))
      const aText = [str(bodyOf(docA)), str(titleOf(docA)), JSON.stringify(dumpRoots(docA))].join('\n')
      const observed = framesOf(observer)
      const lateFrames = framesOf(late)
      scan(`${tag} B document bytes`, bBytes, vs)
      scan(`${tag} B document content`, bText, vs)
      scan(`${tag} observer frames`, observed, vs)
      scan(`${tag} late joiner frames`, lateFrames, vs)
      scan(`${tag} A (sender) after convergence`, Buffer.concat([aBytes, Buffer.from(aText)]), vs)
      for (const format of ['html', 'json', 'yjs']) {
        const { status, bytes } = await getDraft(server, DEFAULT_APP, doc, format)
        if (status !== 200) { problems.push(`${tag} GET draft?format=${format} answered ${status}: ${bytes.toString('utf8').slice(0, 200)}`); continue }
        scan(`${tag} host draft ${format}`, bytes, vs)
        if (!bytes.includes(sentinel)) problems.push(`${tag} positive control: the sentinel is missing from the ${format} render`)
      }
      // positive controls: the scans can see allowed content
      for (const [where, hay] of [['B bytes', bBytes], ['observer frames', observed], ['late joiner frames', lateFrames]]) {
        if (!hay.includes(sentinel)) problems.push(`${tag} positive control: the sentinel is missing from ${where}`)
      }
    }

    await Promise.all(HOSTILE_DOCS.map(runDoc))
    hostileMetrics = await getMetrics(server)

    // the stored bytes: stop gracefully (flush), then read every file of the data dir
    pool.destroyAll()
    const exit = await server.stop({ keepDir: true })
    if (exit.forcedKill) problems.push('the server did not stop within 15 s of SIGTERM')
    const files = await readFilesRecursive(server.dataDir)
    await server.removeDir()
    if (files.length === 0) problems.push(`no files under the data dir ${server.dataDir}`)
    const stored = Buffer.concat(files.map((f) => f.bytes))
    for (const f of files) scan(`store file ${f.path.slice(server.dataDir.length + 1)}`, f.bytes, vectors)
    const storedSentinels = sentinels.filter((s) => stored.includes(s)).length
    if (storedSentinels === 0) problems.push('positive control: no sentinel paragraph was found in the stored bytes (is the store compressed/encrypted?)')

    t.diagnostic(`solo vectors: ${soloOutcomes.join(' | ')}`)
    const checked = vectors.length
    if (leaks.length || problems.length) assert.fail(report(`hostile corpus (${checked} vectors, ${HOSTILE_DOCS.length} documents)`, leaks, problems))
  })

  it('/metrics counted what the hostile run neutralised (per kind)', () => {
    assert.ok(hostileMetrics !== null, 'metrics of the hostile run were not captured (the run failed early)')
    const missing = []
    for (const kind of ['element', 'attribute', 'style', 'mark', 'embed', 'root']) {
      const n = counter(hostileMetrics, 'chorus_whitelist_neutralised_total', { kind })
      if (!(n > 0)) missing.push(`${kind}=${n}`)
    }
    assert.deepEqual(missing, [], `chorus_whitelist_neutralised_total{kind} should be > 0 after the hostile run; got ${missing.join(', ')}\n` +
      hostileMetrics.split('\n').filter((l) => l.includes('whitelist')).join('\n'))
  })
})

// ---------------------------------------------------------------------------
// Strip mode details, no false positives, reject mode (one server, two apps)
// ---------------------------------------------------------------------------

describe('whitelist: strip and reject behaviour', () => {
  let server
  let pool

  before(async () => {
    server = await startServer({ apps: [DEFAULT_APP, REJECT_APP] })
    pool = new ClientPool(server)
  })
  afterEach(() => pool.destroyAll())
  after(async () => {
    pool?.destroyAll()
    await server?.stop()
  })

  const provider = (doc, user, app = DEFAULT_APP) => pool.provider({ app, doc, token: sessionToken({ app, doc, user }) })

  it(`no false positives: ${builders.length} rich-content builders pass through unchanged`, async (t) => {
    const doc = uid('rich')
    const a = provider(doc, 'author')
    const b = provider(doc, 'reader')
    await Promise.all([waitSynced(a), waitSynced(b)])
    const docA = a.doc
    const docB = b.doc
    const remoteToA = []
    docA.on('update', (u, origin) => { if (origin === a) remoteToA.push(u) })

    for (const builder of builders) builder.build(docA)
    await waitFor(() => bodyOf(docB).length === bodyOf(docA).length && converged(docA, docB),
      'B has exactly what A wrote', { describe: describePair(docA, docB) })
    await sleep(SETTLE)

    assert.equal(str(titleOf(docB)), str(titleOf(docA)), 'title changed on the way')
    assert.equal(str(bodyOf(docB)), str(bodyOf(docA)), 'body changed on the way')
    assert.deepEqual(xmlTree(bodyOf(docB)), xmlTree(bodyOf(docA)), 'body tree (attributes, marks) changed on the way')
    const ua = Buffer.from(Y.encodeStateAsUpdate(docA))
    const ub = Buffer.from(Y.encodeStateAsUpdate(docB))
    // Byte equality is reported, not required: the server re-encodes updates with yrs,
    // which writes the keys of JSON objects (mark values such as { href, title }) in
    // its own order — also without any whitelist. Everything else must be identical.
    if (!ua.equals(ub)) t.diagnostic(`encodeStateAsUpdate bytes differ (A ${ua.length} B, B ${ub.length} B); comparing the canonical form`)
    assert.equal(canonicalUpdate(ub), canonicalUpdate(ua), 'B\'s Yjs state differs from A\'s (structs, contents or delete set)')
    const svB = Y.decodeStateVector(Y.encodeStateVector(docB))
    assert.deepEqual([...svB.keys()], [docA.clientID], `the server added content of its own (state vector clients ${[...svB.keys()]}, A is ${docA.clientID})`)
    assert.equal(Buffer.compare(Buffer.from(Y.encodeStateVector(docA)), Buffer.from(Y.encodeStateVector(docB))), 0, 'state vectors differ')
    assert.equal(remoteToA.length, 0, `the server sent A ${remoteToA.length} change(s) to its own clean content`)
    assert.equal(a.closeEvents.length, 0, `A was disconnected: ${JSON.stringify(a.closeEvents)}`)
  })

  it('mixed update: the allowed part survives, the rest is stripped, sender and peers converge', async () => {
    const doc = uid('mixed')
    const a = provider(doc, 'mixer')
    const b = provider(doc, 'peer')
    await Promise.all([waitSynced(a), waitSynced(b)])
    const docA = a.doc
    const docB = b.doc
    const text = 'Allowed paragraph MIXED-OK with a link inside'
    const markers = writeMixed(docA, 'M', text)

    await waitFor(() => str(bodyOf(docB)).includes('MIXED-OK'), 'B receives the allowed paragraph', { describe: describePair(docA, docB) })
    await waitFor(() => converged(docA, docB), 'A converges to the cleaned state B has', { describe: describePair(docA, docB) })
    await sleep(SETTLE)

    const top = bodyOf(docB).toArray()
    assert.deepEqual(top.map((n) => n.nodeName), ['p'], `B body: ${str(bodyOf(docB))}`)
    const [p] = top
    const children = p.toArray()
    assert.equal(children.length, 2, `p children: ${p.toString()}`)
    assert.ok(children[0] instanceof Y.XmlText)
    assert.equal(children[0].toString(), text)
    const delta = children[0].toDelta()
    assert.ok(delta.every((d) => d.attributes === undefined || Object.keys(d.attributes).length === 0), `the javascript: link mark survived: ${JSON.stringify(delta)}`)
    assert.equal(delta.map((d) => d.insert).join(''), text)
    assert.ok(children[1] instanceof Y.XmlElement && children[1].nodeName === 'img', `second child: ${children[1]}`)
    assert.deepEqual(children[1].getAttributes(), { src: 'https://ok.example/mixed.png', alt: 'mixed alt' })

    assert.equal(str(bodyOf(docA)), str(bodyOf(docB)))
    assert.deepEqual(xmlTree(bodyOf(docA)), xmlTree(bodyOf(docB)))
    assert.ok(sameState(docA, docB), 'A and B have different Yjs states (state vector / delete set)')
    assert.equal(Buffer.compare(Buffer.from(Y.encodeStateVector(docA)), Buffer.from(Y.encodeStateVector(docB))), 0)
    for (const [what, m] of Object.entries(markers)) {
      assert.ok(!Buffer.from(Y.encodeStateAsUpdate(docB)).includes(m), `B's state holds the ${what} marker`)
      assert.ok(!Buffer.from(Y.encodeStateAsUpdate(docA)).includes(m), `A's converged state still holds the ${what} marker`)
    }
    assert.equal(a.closeEvents.length, 0, `strip mode disconnected the sender: ${JSON.stringify(a.closeEvents)}`)
  })

  it('an opted-in sender (chorus=1) gets a content-stripped error and the neutralising update; stock clients get no extension message', async () => {
    const doc = uid('optin')
    const token = (user, mode = 'edit') => sessionToken({ doc, user, mode })
    const sender = pool.raw({ url: opt(server.wsUrl(DEFAULT_APP.id, doc, token('opted-in'))) })
    const stock = pool.raw({ doc, token: token('stock-observer', 'view') })
    await Promise.all([sender.handshake(), stock.handshake()])
    const b = provider(doc, 'peer')
    await waitSynced(b)

    const local = new Y.Doc()
    const markers = writeMixed(local, 'O', 'Opted-in OPTIN-OK paragraph with a link')
    sender.send(updateMessage(Y.encodeStateAsUpdate(local)))

    const err = await waitFor(() => chorusErrors(sender).find((e) => e.code === 'content-stripped'),
      'Chorus error content-stripped (type 100, kind 0) for the opted-in sender', { describe: () => `${sender.describe()} chorus=${JSON.stringify(sender.messages.map(parseChorusMessage).filter(Boolean))}` })
    assert.equal(typeof err.message, 'string')
    await waitFor(() => str(bodyOf(b.doc)).includes('OPTIN-OK'), 'B receives the allowed part')
    // the sender receives the server's neutralising changes and converges with B
    await waitFor(() => {
      for (const m of sender.messages) {
        if (typeof m === 'string') continue
        const p = parseMessage(m)
        if (p.type === MSG_SYNC && (p.subtype === SYNC_UPDATE || p.subtype === SYNC_STEP2)) Y.applyUpdate(local, p.payload)
      }
      return converged(local, b.doc)
    }, 'the opted-in sender converges to B after applying what the server sent it', { describe: describePair(local, b.doc) })
    assert.ok(!str(bodyOf(local)).includes('script'), str(bodyOf(local)))
    await sleep(SETTLE)
    assert.equal(sender.closeInfo, null, `strip mode closed the sender: ${JSON.stringify(sender.closeInfo)}`)
    const stockExt = stock.messages.map(parseChorusMessage).filter(Boolean)
    assert.deepEqual(stockExt, [], 'a client that did not opt in received Chorus extension messages')
    for (const m of Object.values(markers)) assert.ok(!framesOf(stock).includes(m), `marker ${m} reached the stock observer`)
  })

  it('reject mode: the whole update is refused (content-rejected, close 1008); others keep working', async () => {
    const app = REJECT_APP
    const doc = uid('reject')
    const token = (user, mode = 'edit') => sessionToken({ app, doc, user, mode })
    const observer = pool.raw({ app, doc, token: token('observer', 'view') })
    await observer.handshake()
    const b = provider(doc, 'bystander', app)
    await waitSynced(b)
    const sender = pool.raw({ url: opt(server.wsUrl(app.id, doc, token('rejected-sender'))) })
    await sender.handshake()

    const local = new Y.Doc()
    const paragraph = 'REJECTED-PARA must not reach anyone'
    const markers = writeMixed(local, 'R', paragraph)
    sender.send(updateMessage(Y.encodeStateAsUpdate(local)))

    const info = await sender.waitClose('the server closes the rejected sender')
    assert.equal(info.code, 1008, `close code ${info.code} (${info.reason})`)
    const errs = chorusErrors(sender)
    assert.ok(errs.some((e) => e.code === 'content-rejected'), `Chorus errors received before the close: ${JSON.stringify(errs)}; all frames: ${sender.describe()}; extension messages: ${JSON.stringify(sender.messages.map(parseChorusMessage).filter(Boolean))}`)

    await sleep(SETTLE)
    const bBytes = Buffer.from(Y.encodeStateAsUpdate(b.doc))
    assert.equal(bodyOf(b.doc).length, 0, `B received part of the rejected update: ${str(bodyOf(b.doc))}`)
    for (const s of ['REJECTED-PARA', ...Object.values(markers)]) {
      assert.ok(!bBytes.includes(s), `B's state holds ${s}`)
      assert.ok(!framesOf(observer).includes(s), `the observer received ${s}`)
    }
    assert.equal(b.closeEvents.length, 0, `B was disconnected: ${JSON.stringify(b.closeEvents)}`)

    // a new client joins: nothing of the refused update, and clean edits flow both ways
    const c = provider(doc, 'newcomer', app)
    await waitSynced(c)
    assert.equal(bodyOf(c.doc).length, 0, `the new client got part of the rejected update: ${str(bodyOf(c.doc))}`)
    assert.ok(!Buffer.from(Y.encodeStateAsUpdate(c.doc)).includes('REJECTED-PARA'))
    appendParagraph(c.doc, 'AFTER-REJECT-C')
    await waitFor(() => str(bodyOf(b.doc)).includes('AFTER-REJECT-C'), 'B receives a clean edit from the new client after the rejection')
    appendParagraph(b.doc, 'AFTER-REJECT-B')
    await waitFor(() => str(bodyOf(c.doc)).includes('AFTER-REJECT-B'), 'the new client receives a clean edit from B')
    const { status, bytes } = await getDraft(server, app, doc, 'json')
    assert.equal(status, 200, bytes.toString())
    assert.ok(bytes.includes('AFTER-REJECT-C') && !bytes.includes('REJECTED-PARA'), `stored draft: ${bytes.toString().slice(0, 500)}`)
    assert.equal(c.closeEvents.length, 0)
  })

  it('/metrics: neutralised counters after stripping, rejected updates after the reject test', async () => {
    const text = await getMetrics(server)
    const lines = text.split('\n').filter((l) => l.includes('whitelist')).join('\n')
    const neutralised = counter(text, 'chorus_whitelist_neutralised_total')
    assert.ok(neutralised > 0, `chorus_whitelist_neutralised_total should be > 0 (mixed + opted-in tests stripped content); got ${neutralised}\n${lines}`)
    for (const kind of ['element', 'attribute', 'mark']) {
      const n = counter(text, 'chorus_whitelist_neutralised_total', { kind })
      assert.ok(n > 0, `chorus_whitelist_neutralised_total{kind="${kind}"} should be > 0; got ${n}\n${lines}`)
    }
    const rejected = counter(text, 'chorus_whitelist_rejected_updates_total')
    assert.ok(rejected >= 1, `chorus_whitelist_rejected_updates_total should be >= 1; got ${rejected}\n${lines}`)
  })
})

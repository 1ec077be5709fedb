// Host API write side, against the real binary with stock yjs / y-websocket clients:
//
// - external change (PUT …/content) while two editors type in other paragraphs: everyone
//   converges to the host's content plus their own edits, and Yjs relative positions
//   (cursors) in untouched paragraphs stay where they were; opted-in clients get an
//   `external-change` notice naming the changed fields;
// - three-way change with `baseEtag`: edits made after the host's read are kept; an
//   unknown base is 412 `base-expired`;
// - the whitelist guards external changes (handlers, javascript: URLs, <script>);
// - publish with conflict abort: 428 without If-Match, 400 for another policy, 409 when
//   an edit landed after the read (nothing published), 200 on retry with the new ETag;
// - history: points at each publish, readable as html/json; restore brings old content
//   back live and adds a point (history is never rewritten).
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, ClientPool, DEFAULT_APP, sessionToken, hostToken, waitFor, waitSynced, uid,
  SETTLE, sleep, parseMessage, parseChorusMessage
} from './harness.mjs'

process.setMaxListeners(32)

const bodyOf = (doc) => doc.getXmlFragment('body')
const titleOf = (doc) => doc.getText('title')

/** Paragraph texts of a document, in order. */
const paragraphs = (doc) => bodyOf(doc).toArray().map((el) => el.toArray().map((t) => t.toString()).join(''))

/** The first text node of paragraph `i`. */
const textOf = (doc, i) => bodyOf(doc).get(i).get(0)

function seed (doc, texts, title = 'Spec') {
  doc.transact(() => {
    titleOf(doc).insert(0, title)
    const body = bodyOf(doc)
    body.insert(0, texts.map((t) => {
      const p = new Y.XmlElement('p')
      p.insert(0, [new Y.XmlText(t)])
      return p
    }))
  })
}

const htmlOf = (texts) => texts.map((t) => `<p>${t}</p>`).join('')

describe('host API: external changes, publish, history', () => {
  let server
  let pool
  const app = DEFAULT_APP

  const url = (doc, tail) => `${server.httpUrl}/v1/apps/${encodeURIComponent(app.id)}/docs/${encodeURIComponent(doc)}/${tail}`
  const auth = (doc) => ({ authorization: `Bearer ${hostToken({ app, doc })}` })

  async function getDraft (doc, format = 'json') {
    const res = await fetch(url(doc, `draft?format=${format}`), { headers: auth(doc) })
    const body = format === 'json' ? await res.json() : await res.text()
    return { status: res.status, etag: res.headers.get('etag'), body }
  }

  async function putContent (doc, payload) {
    const res = await fetch(url(doc, 'content'), {
      method: 'PUT',
      headers: { ...auth(doc), 'content-type': 'application/json' },
      body: JSON.stringify(payload)
    })
    return { status: res.status, body: await res.json(), etag: res.headers.get('etag') }
  }

  async function publish (doc, ifMatch, query = '?conflictPolicy=abort') {
    const headers = { ...auth(doc) }
    if (ifMatch !== undefined) headers['if-match'] = ifMatch
    const res = await fetch(url(doc, `publish${query}`), { method: 'POST', headers })
    return { status: res.status, body: await res.json() }
  }

  async function history (doc) {
    const res = await fetch(url(doc, 'history'), { headers: auth(doc) })
    assert.equal(res.status, 200)
    return (await res.json()).points
  }

  /** Two synced editors on a fresh document seeded with `texts` by the first. */
  async function twoEditors (texts) {
    const doc = uid('host')
    const a = pool.provider({ doc, token: sessionToken({ app, doc, user: 'ann' }) })
    await waitSynced(a)
    seed(a.doc, texts)
    const b = pool.provider({ doc, token: sessionToken({ app, doc, user: 'bob' }) })
    await waitSynced(b)
    await waitFor(() => paragraphs(b.doc).length === texts.length, 'second editor has the seed')
    return { doc, a, b }
  }

  before(async () => { server = await startServer() })
  after(async () => { await server?.stop() })
  afterEach(() => pool?.destroyAll())

  it('applies an external change live, keeps editors\' concurrent edits (baseEtag) and their cursors', async () => {
    pool = new ClientPool(server)
    const texts = ['alpha one', 'bravo two', 'charlie three', 'delta four', 'echo five']
    const { doc, a, b } = await twoEditors(texts)
    // Cursors: in untouched paragraphs 1 and 3, and in the untouched prefix of paragraph 0.
    const cursors = [[1, 3], [3, 5], [0, 2]].map(([p, off]) => ({ p, off, rel: Y.createRelativePositionFromTypeIndex(textOf(b.doc, p), off) }))

    // The host reads the draft and rewrites paragraph 0's tail from what it read, while
    // the editors type in paragraphs 2 and 4.
    await sleep(SETTLE)
    const read = await getDraft(doc)
    textOf(a.doc, 2).insert(0, 'A>')
    textOf(b.doc, 4).insert(textOf(b.doc, 4).length, '<B')
    const res = await putContent(doc, {
      title: 'Spec v2',
      html: htmlOf(['alpha ONE (host)', 'bravo two', 'charlie three', 'delta four', 'echo five']),
      baseEtag: read.etag
    })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.deepEqual(res.body.changed.sort(), ['body', 'title'])
    assert.match(res.body.etag, /^"[0-9a-f]+"$/)

    const want = ['alpha ONE (host)', 'bravo two', 'A>charlie three', 'delta four', 'echo five<B']
    for (const [name, p] of [['ann', a], ['bob', b]]) {
      await waitFor(() => JSON.stringify(paragraphs(p.doc)) === JSON.stringify(want), `${name} converged`, {
        describe: () => JSON.stringify(paragraphs(p.doc))
      })
      assert.equal(titleOf(p.doc).toString(), 'Spec v2')
    }
    for (const c of cursors) {
      const abs = Y.createAbsolutePositionFromRelativePosition(c.rel, b.doc)
      assert.ok(abs, `cursor in paragraph ${c.p} still resolves`)
      assert.equal(abs.type, textOf(b.doc, c.p), `cursor stays in paragraph ${c.p}`)
      assert.equal(abs.index, c.off, `cursor in paragraph ${c.p} did not move`)
    }
    // The draft the host reads is what the editors see, and its ETag is the one returned.
    const draft = await getDraft(doc, 'html')
    assert.equal(draft.etag, (await getDraft(doc)).etag)
    assert.ok(draft.body.includes('alpha ONE (host)') && draft.body.includes('echo five&lt;B'), draft.body)
  })

  it('tells opted-in clients which fields changed; the same content again changes nothing', async () => {
    pool = new ClientPool(server)
    const doc = uid('notice')
    const seedDoc = new Y.Doc()
    seed(seedDoc, ['one'])
    const a = pool.provider({ doc, token: sessionToken({ app, doc, user: 'ann' }), ydoc: seedDoc })
    await waitSynced(a)
    const raw = pool.raw({ doc, url: server.wsUrl(app.id, doc, sessionToken({ app, doc, user: 'raw' })) + '&chorus=1' })
    assert.ok(await raw.openPromise, 'raw client connected')
    await sleep(SETTLE)
    const res = await putContent(doc, { html: '<p>one</p><p>two</p>' })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.deepEqual(res.body.changed, ['body'])
    const notice = await waitFor(() => raw.messages.map(parseChorusMessage).find((m) => m?.kind === 2), 'external-change notice')
    assert.deepEqual(notice.fields, ['body'])
    // A stock client never sees a Chorus message.
    await waitFor(() => paragraphs(a.doc).length === 2, 'stock client got the change')
    const again = await putContent(doc, { html: '<p>one</p><p>two</p>' })
    assert.equal(again.status, 200)
    assert.deepEqual(again.body.changed, [])
    assert.equal(again.body.etag, res.body.etag, 'no change, same ETag')
    const bad = await putContent(doc, {})
    assert.equal(bad.status, 400)
    assert.equal(bad.body.code, 'bad-request')
  })

  it('merges a change computed against the base the host read (baseEtag)', async () => {
    pool = new ClientPool(server)
    const texts = ['first', 'second', 'third']
    const { doc, a, b } = await twoEditors(texts)
    await sleep(SETTLE)
    const read = await getDraft(doc)
    assert.equal(read.status, 200)
    // After the host's read, an editor changes paragraph 1 and adds a paragraph.
    a.doc.transact(() => {
      textOf(a.doc, 1).insert(6, ' (edited after the read)')
      const p = new Y.XmlElement('p')
      p.insert(0, [new Y.XmlText('fourth, new')])
      bodyOf(a.doc).insert(3, [p])
    })
    await waitFor(() => paragraphs(b.doc).length === 4, 'edit reached bob')
    await sleep(SETTLE)
    // The host's new content, made from its (now stale) read: it rewrites paragraph 0.
    const res = await putContent(doc, { html: htmlOf(['FIRST by host', 'second', 'third']), baseEtag: read.etag })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    const want = ['FIRST by host', 'second (edited after the read)', 'third', 'fourth, new']
    for (const p of [a, b]) {
      await waitFor(() => JSON.stringify(paragraphs(p.doc)) === JSON.stringify(want), 'editors keep their edits', {
        describe: () => JSON.stringify(paragraphs(p.doc))
      })
    }
    const expired = await putContent(doc, { html: '<p>x</p>', baseEtag: '"0123456789abcdef"' })
    assert.equal(expired.status, 412)
    assert.equal(expired.body.code, 'base-expired')
  })

  it('runs external changes through the whitelist', async () => {
    pool = new ClientPool(server)
    const { doc, b } = await twoEditors(['safe'])
    const res = await putContent(doc, {
      html: '<p>kept <img src="x" onerror="alert(\'XSS-ONERROR\')"> <a href="javascript:alert(\'XSS-JSURL\')">link</a></p>' +
        '<script>alert("XSS-SCRIPT")</script><p style="background:url(javascript:XSS-STYLE)">styled</p>'
    })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    await waitFor(() => paragraphs(b.doc).join('|').includes('kept'), 'change arrived')
    await sleep(SETTLE)
    const live = JSON.stringify(bodyOf(b.doc).toJSON()) + JSON.stringify(Y.encodeStateAsUpdate(b.doc))
    const stored = [
      (await getDraft(doc, 'html')).body,
      JSON.stringify((await getDraft(doc, 'json')).body),
      Buffer.from(await (await fetch(url(doc, 'draft?format=yjs'), { headers: auth(doc) })).arrayBuffer()).toString('latin1')
    ].join('\n')
    for (const marker of ['XSS-ONERROR', 'XSS-JSURL', 'XSS-SCRIPT', 'XSS-STYLE', 'onerror', 'javascript:']) {
      assert.ok(!live.includes(marker), `${marker} reached an editor: ${live.slice(0, 400)}`)
      assert.ok(!stored.includes(marker), `${marker} in the draft: ${stored.slice(0, 400)}`)
    }
    assert.ok(paragraphs(b.doc).join('|').includes('styled'))
  })

  it('publishes with conflict abort, and lists and serves the history', async () => {
    pool = new ClientPool(server)
    const { doc, a } = await twoEditors(['draft text'])
    await sleep(SETTLE)
    const read = await getDraft(doc)
    assert.equal((await publish(doc, undefined)).status, 428)
    const wrongPolicy = await publish(doc, read.etag, '?conflictPolicy=merge')
    assert.equal(wrongPolicy.status, 400)
    assert.match(wrongPolicy.body.message, /abort/)

    // An edit lands between the read and the publish.
    textOf(a.doc, 0).insert(0, 'late ')
    await waitFor(async () => (await getDraft(doc)).etag !== read.etag, 'edit reached the server')
    const conflict = await publish(doc, read.etag)
    assert.equal(conflict.status, 409)
    assert.equal(conflict.body.code, 'conflict')
    assert.deepEqual(await history(doc), [], 'nothing published')

    const fresh = await getDraft(doc)
    const ok = await publish(doc, fresh.etag)
    assert.equal(ok.status, 200, JSON.stringify(ok.body))
    assert.equal(ok.body.etag, fresh.etag)
    assert.equal(ok.body.title, 'Spec')
    assert.ok(ok.body.html.includes('late draft text'), ok.body.html)
    assert.ok(ok.body.publishedAt > 0)

    const points = await history(doc)
    assert.equal(points.length, 1)
    assert.equal(points[0].kind, 'publish')
    assert.equal(points[0].etag, fresh.etag)
    const html = await fetch(url(doc, `history/${points[0].point}?format=html`), { headers: auth(doc) })
    assert.equal(html.status, 200)
    assert.ok((await html.text()).includes('late draft text'))
    const json = await (await fetch(url(doc, `history/${points[0].point}?format=json`), { headers: auth(doc) })).json()
    assert.equal(json.title, 'Spec')
    const missing = await fetch(url(doc, 'history/999'), { headers: auth(doc) })
    assert.equal(missing.status, 404)
  })

  it('restores a history point live without rewriting history', async () => {
    pool = new ClientPool(server)
    const { doc, a, b } = await twoEditors(['version one'])
    await sleep(SETTLE)
    const first = await publish(doc, (await getDraft(doc)).etag)
    assert.equal(first.status, 200)
    // The editors move on.
    a.doc.transact(() => {
      textOf(a.doc, 0).delete(0, 'version one'.length)
      textOf(a.doc, 0).insert(0, 'version two')
    })
    await waitFor(() => paragraphs(b.doc)[0] === 'version two', 'edit reached bob')
    await sleep(SETTLE)
    const second = await publish(doc, (await getDraft(doc)).etag)
    assert.equal(second.status, 200)

    const [p1] = await history(doc)
    const res = await fetch(url(doc, 'restore'), {
      method: 'POST',
      headers: { ...auth(doc), 'content-type': 'application/json' },
      body: JSON.stringify({ point: p1.point })
    })
    const restored = await res.json()
    assert.equal(res.status, 200, JSON.stringify(restored))
    for (const p of [a, b]) {
      await waitFor(() => paragraphs(p.doc)[0] === 'version one', 'editors see the old content appear', {
        describe: () => JSON.stringify(paragraphs(p.doc))
      })
    }
    const points = await history(doc)
    assert.deepEqual(points.map((p) => p.kind), ['publish', 'publish', 'restore'])
    assert.equal(points[2].restoredFrom, p1.point)
    assert.equal(points[0].etag, p1.etag, 'earlier points are unchanged')
    const unknown = await fetch(url(doc, 'restore'), {
      method: 'POST',
      headers: { ...auth(doc), 'content-type': 'application/json' },
      body: JSON.stringify({ point: 4242 })
    })
    assert.equal(unknown.status, 404)
  })
})

describe('host API: automatic history points', () => {
  it('takes a point at most every history_interval_secs while the draft is edited', async () => {
    const server = await startServer({ extraConfig: { history_interval_secs: 1 } })
    const pool = new ClientPool(server)
    try {
      const app = DEFAULT_APP
      const doc = uid('auto')
      const p = pool.provider({ doc, token: sessionToken({ app, doc, user: 'ann' }) })
      await waitSynced(p)
      const history = async () => {
        const res = await fetch(`${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/history`, {
          headers: { authorization: `Bearer ${hostToken({ app, doc })}` }
        })
        return (await res.json()).points
      }
      seed(p.doc, ['first edit'])
      await sleep(SETTLE)
      assert.deepEqual(await history(), [], 'the interval counts from the first edit')
      await sleep(1100)
      textOf(p.doc, 0).insert(0, 'later ')
      await waitFor(async () => (await history()).length === 1, 'an auto point after the interval')
      const [point] = await history()
      assert.equal(point.kind, 'auto')
      // Typing right after it does not take another one.
      textOf(p.doc, 0).insert(0, 'x')
      await sleep(SETTLE)
      assert.equal((await history()).length, 1)
    } finally {
      pool.destroyAll()
      await server.stop()
    }
  })
})

// parseMessage is re-exported for debugging frames in failing runs.
void parseMessage

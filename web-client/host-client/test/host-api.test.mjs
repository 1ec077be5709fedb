// The host client against the real chorus binary: every route of proto/openapi.yaml
// through ChorusHost / ChorusAdmin, errors as ChorusApiError.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { ChorusHost, ChorusAdmin, ChorusApiError, isNotModified, mintHostToken, mintSessionToken } from '../dist/index.js'
import { startChorus, openSession, sessionToken, uid, waitFor } from './chorus-server.mjs'

const BLOG = { id: 'blog', secrets: ['blog-secret-current-0123456789abcdef', 'blog-secret-previous-0123456789abcdef'] }
const LIMITED = { id: 'limited', secrets: ['limited-secret-0123456789abcdef0123456789'], limits: { host_requests_per_sec: 1, host_requests_burst: 3 } }
const SWITCHED = { id: 'switched', secrets: ['switched-secret-0123456789abcdef0123456789'] }
const ADMIN_TOKEN = 'admin-token-0123456789abcdef'

/** Runs `fn`, which must reject with a ChorusApiError; returns it. */
async function apiError (fn, status, code) {
  try {
    await fn()
  } catch (err) {
    assert.ok(err instanceof ChorusApiError, `expected a ChorusApiError, got ${err?.stack ?? err}`)
    assert.equal(err.status, status, `status of ${err}`)
    assert.equal(err.code, code, `code of ${err}`)
    assert.equal(typeof err.message, 'string')
    assert.ok(err.message.length > 0)
    return err
  }
  assert.fail(`expected ${status} ${code}, but the call succeeded`)
}

const decode = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))

describe('ChorusHost against the real server', () => {
  let server
  let host

  before(async () => {
    server = await startChorus({ apps: [BLOG, LIMITED, SWITCHED], config: { admin_token: ADMIN_TOKEN } })
    host = new ChorusHost({ baseUrl: server.url, appId: BLOG.id, secret: BLOG.secrets[0] })
  })
  after(async () => { await server?.stop() })

  it('mints host tokens with the claims chorus-auth expects', () => {
    const now = Date.UTC(2030, 0, 1)
    const token = mintHostToken({ appId: 'blog', secret: 's', doc: 'post-1', ttlSecs: 60, now })
    const [h] = token.split('.')
    assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url')), { alg: 'HS256', typ: 'JWT' })
    assert.deepEqual(decode(token), { iss: 'blog', scope: 'host', iat: now / 1000, exp: now / 1000 + 60, doc: 'post-1' })
    assert.equal('doc' in decode(mintHostToken({ appId: 'blog', secret: 's' })), false, 'app-wide without doc')
    assert.throws(() => mintHostToken({ appId: 'blog', secret: '' }), TypeError)
  })

  it('puts content and reads it back as json, html and yjs', async () => {
    const doc = uid('post')
    const title = 'Crème brûlée: 100% "good" / bad?'
    const put = await host.putContent(doc, { title, html: '<h2>Intro</h2><p>Hello <strong>world</strong></p>' })
    assert.deepEqual([...put.changed].sort(), ['body', 'title'])
    assert.match(put.etag, /\S/)

    const json = await host.getDraft(doc)
    assert.equal(json.title, title)
    assert.equal(json.etag, put.etag)
    assert.equal(typeof json.updatedAt, 'number')
    assert.deepEqual(json.body.map((n) => n.type === 'element' && n.name), ['h2', 'p'])
    const p = json.body[1]
    assert.equal(p.type, 'element')
    const strong = p.children.find((c) => c.type === 'text' && c.marks && 'strong' in c.marks)
    assert.equal(strong?.text, 'world')

    const html = await host.getDraft(doc, { format: 'html' })
    assert.equal(html.title, title, 'X-Chorus-Title is percent-decoded')
    assert.equal(html.etag, put.etag)
    assert.match(html.html, /<h2>Intro<\/h2>/)
    assert.match(html.html, /<strong>world<\/strong>/)

    const yjs = await host.getDraft(doc, { format: 'yjs' })
    assert.ok(yjs.update instanceof Uint8Array)
    assert.ok(yjs.update.length > 10, 'a whole-document Yjs update')
    assert.equal(yjs.etag, put.etag)

    for (const format of ['json', 'html', 'yjs']) {
      const same = await host.getDraft(doc, { format, ifNoneMatch: put.etag })
      assert.ok(isNotModified(same), `${format}: 304 with the current ETag`)
      assert.equal(same.etag, put.etag)
    }
    const stale = await host.getDraft(doc, { ifNoneMatch: '"not-the-etag"' })
    assert.equal(isNotModified(stale), false)
    assert.equal(stale.title, title)

    const again = await host.putContent(doc, { title, html: '<h2>Intro</h2><p>Hello <strong>world</strong></p>' })
    assert.deepEqual(again.changed, [], 'the same content changes nothing')
    assert.equal(again.etag, put.etag)

    await apiError(() => host.getDraft(uid('never-written')), 404, 'not-found')
  })

  it('merges a change made from an older read (baseEtag) and refuses an unknown base', async () => {
    const doc = uid('base')
    await host.putContent(doc, { title: 'T', html: '<p>one</p><p>two</p>' })
    const read = await host.getDraft(doc)
    // Someone else changes the second paragraph after our read…
    await host.putContent(doc, { html: '<p>one</p><p>two, edited</p>' })
    // …and we change the first one, from what we read: both changes stay.
    const merged = await host.putContent(doc, { html: '<p>one, ours</p><p>two</p>', baseEtag: read.etag })
    assert.deepEqual(merged.changed, ['body'])
    const html = await host.getDraft(doc, { format: 'html' })
    assert.match(html.html, /one, ours/)
    assert.match(html.html, /two, edited/)

    const err = await apiError(() => host.putContent(doc, { title: 'x', baseEtag: '"no-such-base"' }), 412, 'base-expired')
    assert.equal(err.etag, undefined)
    await assert.rejects(() => host.putContent(doc, { baseEtag: read.etag }), TypeError)
  })

  it('publishes with the right ETag; a stale one is a 409 conflict carrying the current ETag', async () => {
    const doc = uid('pub')
    const first = await host.putContent(doc, { title: 'Draft', html: '<p>v1</p>' })
    const second = await host.putContent(doc, { html: '<p>v2</p>' })
    assert.notEqual(first.etag, second.etag)

    const conflict = await apiError(() => host.publish(doc, { ifMatch: first.etag }), 409, 'conflict')
    assert.equal(conflict.etag, second.etag, 'the body carries the current ETag')
    assert.equal(conflict.body?.etag, second.etag)
    assert.equal(conflict.request, `POST /v1/apps/blog/docs/${doc}/publish`)

    const published = await host.publish(doc, { ifMatch: conflict.etag, conflictPolicy: 'abort' })
    assert.equal(published.etag, second.etag)
    assert.equal(published.title, 'Draft')
    assert.match(published.html, /v2/)
    assert.ok(Math.abs(published.publishedAt - Date.now()) < 60_000)

    await apiError(() => host.publish(uid('never-written'), { ifMatch: '"x"' }), 404, 'not-found')
    // A blank If-Match counts as none (chorus-server api/extract.rs, IfMatch).
    await apiError(() => host.publish(doc, { ifMatch: '  ' }), 428, 'precondition-required')
  })

  it('lists history, reads a point as json and html, and restores it', async () => {
    const doc = uid('hist')
    assert.deepEqual(await host.listHistory(doc), [], 'no points for an unknown document')
    const v1 = await host.putContent(doc, { title: 'Version 1', html: '<p>first</p>' })
    await host.publish(doc, { ifMatch: v1.etag })
    await host.putContent(doc, { title: 'Version 2', html: '<p>second</p>' })

    const points = await host.listHistory(doc)
    assert.equal(points.length, 1)
    const [p1] = points
    assert.equal(p1.point, 1)
    assert.equal(p1.kind, 'publish')
    assert.equal(p1.etag, v1.etag)
    assert.equal(p1.title, 'Version 1')
    assert.equal(typeof p1.sizeBytes, 'number')
    assert.equal(p1.restoredFrom, undefined)

    const json = await host.getHistoryPoint(doc, 1)
    assert.equal(json.point, 1)
    assert.equal(json.kind, 'publish')
    assert.equal(json.title, 'Version 1')
    assert.equal(json.etag, v1.etag)
    assert.equal(json.body[0]?.type, 'element')
    const html = await host.getHistoryPoint(doc, 1, { format: 'html' })
    assert.equal(html.title, 'Version 1')
    assert.match(html.html, /first/)
    await apiError(() => host.getHistoryPoint(doc, 99), 404, 'not-found')
    await assert.rejects(() => host.getHistoryPoint(doc, -1), TypeError)

    const restored = await host.restore(doc, 1)
    assert.deepEqual([...restored.changed].sort(), ['body', 'title'])
    const now = await host.getDraft(doc, { format: 'html' })
    assert.equal(now.title, 'Version 1')
    assert.match(now.html, /first/)
    const after = await host.listHistory(doc)
    assert.equal(after.length, 2)
    assert.equal(after[1].kind, 'restore')
    assert.equal(after[1].restoredFrom, 1)
    await apiError(() => host.restore(doc, 42), 404, 'not-found')
  })

  it('lists sessions, downgrades one and ends it', async () => {
    const doc = uid('live')
    await host.putContent(doc, { title: 'Live', html: '<p>x</p>' })
    assert.deepEqual(await host.listSessions(uid('nobody')), [])

    const ws = await openSession(server.url, { appId: BLOG.id, doc, token: sessionToken({ appId: BLOG.id, secret: BLOG.secrets[0], doc, user: 'alice', name: 'Alice' }) })
    try {
      const [session] = await waitFor(async () => { const s = await host.listSessions(doc); return s.length === 1 && s }, 'the session to be listed')
      assert.match(session.id, /^[0-9]{1,19}$/)
      assert.equal(session.user, 'alice')
      assert.equal(session.name, 'Alice')
      assert.equal(session.mode, 'edit')
      assert.equal(session.waiting, false)
      assert.equal(typeof session.since, 'number')

      await host.downgradeSession(doc, session.id)
      const [down] = await host.listSessions(doc)
      assert.equal(down.mode, 'view')

      await host.endSession(doc, session.id)
      const close = await ws.closed
      assert.equal(close.code, 4403)
      await waitFor(async () => (await host.listSessions(doc)).length === 0, 'the session to be gone')
      await apiError(() => host.endSession(doc, session.id), 404, 'not-found')
      await apiError(() => host.downgradeSession(doc, '123456'), 404, 'not-found')
      await apiError(() => host.downgradeSession(doc, 'not-a-number'), 400, 'bad-request')
    } finally {
      ws.close()
    }
  })

  it('mints session tokens the server accepts, in edit and view mode', async () => {
    const now = Date.UTC(2030, 0, 1)
    const fixed = mintSessionToken({ appId: 'blog', secret: 's', user: 'u-7', doc: 'post-1', name: 'Ann', color: '#f80', ttlSecs: 60, now })
    assert.deepEqual(decode(fixed), { iss: 'blog', sub: 'u-7', doc: 'post-1', mode: 'edit', iat: now / 1000, exp: now / 1000 + 60, name: 'Ann', color: '#f80' })
    assert.throws(() => mintSessionToken({ appId: 'blog', secret: '', user: 'u', doc: 'd' }), TypeError)
    assert.throws(() => mintSessionToken({ appId: 'blog', secret: 's', user: '', doc: 'd' }), TypeError)
    assert.throws(() => mintSessionToken({ appId: 'blog', secret: 's', user: 'u', doc: 'd', mode: 'admin' }), TypeError)

    const doc = uid('minted')
    await host.putContent(doc, { title: 'Minted', html: '<p>x</p>' })
    const secret = BLOG.secrets[0]
    const editor = await openSession(server.url, { appId: BLOG.id, doc, token: mintSessionToken({ appId: BLOG.id, secret, user: 'ann', doc, name: 'Ann' }) })
    const viewer = await openSession(server.url, { appId: BLOG.id, doc, token: mintSessionToken({ appId: BLOG.id, secret, user: 'vic', doc, mode: 'view' }) })
    try {
      const sessions = await waitFor(async () => { const s = await host.listSessions(doc); return s.length === 2 && s }, 'both sessions to be listed')
      const byUser = Object.fromEntries(sessions.map((s) => [s.user, s]))
      assert.equal(byUser.ann.mode, 'edit')
      assert.equal(byUser.ann.name, 'Ann')
      assert.equal(byUser.vic.mode, 'view')
    } finally {
      editor.close()
      viewer.close()
    }
    // A token for another document is refused when the socket opens (4403 wrong doc).
    const other = await openSession(server.url, { appId: BLOG.id, doc, token: mintSessionToken({ appId: BLOG.id, secret, user: 'ann', doc: uid('elsewhere') }) })
    assert.equal((await other.closed).code, 4403)
  })

  it('lists the documents, sorted by id', async () => {
    const a = uid('list-a')
    const b = uid('list-b')
    await host.putContent(b, { title: 'B' })
    await host.putContent(a, { title: 'A' })
    const docs = await host.listDocuments()
    const ids = docs.map((d) => d.id)
    assert.deepEqual(ids, [...ids].sort(), 'sorted by id')
    const entry = docs.find((d) => d.id === a)
    assert.ok(entry, 'the new document is listed')
    assert.equal(typeof entry.createdAt, 'number')
    assert.equal(typeof entry.sizeBytes, 'number')
    assert.equal(typeof entry.updateCount, 'number')
    assert.ok(Array.isArray(entry.contributors))
    assert.ok(ids.includes(b))
  })

  it('deletes a draft: gone from reads, history and the listing; a second deletion is 404', async () => {
    const doc = uid('delete')
    await host.putContent(doc, { title: 'Doomed', html: '<p>bye</p>' })
    const { etag } = await host.getDraft(doc)
    await host.publish(doc, { ifMatch: etag })
    assert.equal((await host.listHistory(doc)).length, 1)
    assert.deepEqual(await host.deleteDraft(doc), { closedSessions: 0 })
    await apiError(() => host.getDraft(doc), 404, 'not-found')
    assert.deepEqual(await host.listHistory(doc), [])
    assert.ok(!(await host.listDocuments()).some((d) => d.id === doc), 'no longer listed')
    await apiError(() => host.deleteDraft(doc), 404, 'not-found')
  })

  it('discards to the last published version or a point; publish, restore and discard take who did it', async () => {
    const doc = uid('discard')
    await host.putContent(doc, { title: 'Kept', html: '<p>published</p>' })
    await apiError(() => host.discard(doc), 404, 'not-found')
    const { etag } = await host.getDraft(doc)
    await host.publish(doc, { ifMatch: etag, by: { id: 'u-1', name: 'Ann' } })
    await host.putContent(doc, { html: '<p>draft only</p>' })
    const discarded = await host.discard(doc, { by: { name: 'Bo' } })
    assert.deepEqual(discarded.changed, ['body'])
    assert.match((await host.getDraft(doc, { format: 'html' })).html, /published/)
    const points = await host.listHistory(doc)
    assert.equal(points.at(-1).kind, 'discard')
    const restored = await host.restore(doc, points[0].point, { by: { id: 'u-2' } })
    assert.equal(typeof restored.etag, 'string')
    await host.discard(doc, { point: points[0].point })
    await apiError(() => host.discard(doc, { point: 9999 }), 404, 'not-found')
    await apiError(() => host.publish(doc, { ifMatch: etag, by: { name: 'x'.repeat(300) } }), 400, 'bad-request')
  })

  it('lists the dead letters (none while the host takes every event) and maps an unknown one to 404', async () => {
    assert.deepEqual(await host.listDeadLetters(), [])
    await apiError(() => host.ackDeadLetter('evt-1'), 404, 'not-found')
    const oneDoc = new ChorusHost({ baseUrl: server.url, appId: BLOG.id, token: mintHostToken({ appId: BLOG.id, secret: BLOG.secrets[0], doc: 'just-one' }) })
    await apiError(() => oneDoc.listDeadLetters(), 403, 'wrong-doc')
  })

  it('uses a token provider, doc-scoped tokens, rotated secrets, and maps auth errors', async () => {
    const doc = uid('auth:with~chars.ok')
    await host.putContent(doc, { title: 'ids with : ~ . pass through the path' })
    assert.equal((await host.getDraft(doc)).title, 'ids with : ~ . pass through the path')

    const asked = []
    const provided = new ChorusHost({
      baseUrl: `${server.url}/`,
      appId: BLOG.id,
      token: (req) => { asked.push(req); return mintHostToken({ appId: BLOG.id, secret: BLOG.secrets[1], doc: req.doc }) }
    })
    assert.equal((await provided.getDraft(doc)).title, 'ids with : ~ . pass through the path', 'the previous secret still verifies')
    assert.ok((await provided.listDocuments()).length > 0)
    assert.deepEqual(asked, [{ appId: BLOG.id, doc }, { appId: BLOG.id }])

    const scoped = new ChorusHost({ baseUrl: server.url, appId: BLOG.id, secret: BLOG.secrets[0], docScopedTokens: true })
    assert.equal((await scoped.getDraft(doc)).title, 'ids with : ~ . pass through the path')
    assert.ok((await scoped.listDocuments()).length > 0, 'the list route gets an app-wide token')

    const pinned = new ChorusHost({ baseUrl: server.url, appId: BLOG.id, token: mintHostToken({ appId: BLOG.id, secret: BLOG.secrets[0], doc: 'only-this' }) })
    await apiError(() => pinned.getDraft(doc), 403, 'wrong-doc')
    await apiError(() => pinned.listDocuments(), 403, 'wrong-doc')

    const wrong = new ChorusHost({ baseUrl: server.url, appId: BLOG.id, secret: 'not-the-secret' })
    await apiError(() => wrong.getDraft(doc), 401, 'bad-signature')
    const expired = new ChorusHost({ baseUrl: server.url, appId: BLOG.id, token: mintHostToken({ appId: BLOG.id, secret: BLOG.secrets[0], now: Date.now() - 3_600_000 }) })
    await apiError(() => expired.listDocuments(), 401, 'token-expired')
    const unknown = new ChorusHost({ baseUrl: server.url, appId: 'nope', secret: 'x' })
    // An unknown app is a bad signature (issue 28: app ids are not enumerable).
    await apiError(() => unknown.listDocuments(), 401, 'bad-signature')

    await apiError(() => host.getDraft('bad id with spaces'), 400, 'bad-request')
    await apiError(() => host.getDraft('x'.repeat(257)), 400, 'bad-request')
  })

  it('reports rate limiting with Retry-After', async () => {
    const limited = new ChorusHost({ baseUrl: server.url, appId: LIMITED.id, secret: LIMITED.secrets[0] })
    let err
    for (let i = 0; i < 50 && !err; i++) {
      try { await limited.listDocuments() } catch (e) { err = e }
    }
    assert.ok(err instanceof ChorusApiError, `rate limited within 50 requests: ${err}`)
    assert.equal(err.status, 429)
    assert.equal(err.code, 'rate-limited')
    assert.equal(typeof err.retryAfter, 'number')
    assert.ok(err.retryAfter >= 1, `Retry-After ${err.retryAfter}`)
  })

  it('switches an app off and on through the admin API', async () => {
    const admin = new ChorusAdmin({ baseUrl: server.url, adminToken: ADMIN_TOKEN })
    const app = new ChorusHost({ baseUrl: server.url, appId: SWITCHED.id, secret: SWITCHED.secrets[0] })
    assert.deepEqual(await app.listDocuments(), [])

    assert.deepEqual(await admin.disableApp(SWITCHED.id), { id: SWITCHED.id, enabled: false })
    await apiError(() => app.listDocuments(), 403, 'app-disabled')
    assert.deepEqual(await admin.enableApp(SWITCHED.id), { id: SWITCHED.id, enabled: true })
    assert.deepEqual(await app.listDocuments(), [])

    await apiError(() => admin.disableApp('no-such-app'), 404, 'not-found')
    // A wrong admin token is 401 `bad-signature` (chorus-server api/extract.rs, `Admin`).
    const wrong = new ChorusAdmin({ baseUrl: server.url, adminToken: () => 'wrong-admin-token' })
    await apiError(() => wrong.disableApp(SWITCHED.id), 401, 'bad-signature')
  })
})

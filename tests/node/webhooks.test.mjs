// Webhooks to the host's callback_url, against the real binary and a real HTTP receiver:
//
// - every event kind (editing, saved, external-change, published, closed) arrives with
//   a JWT (HS256, the app's first secret) whose `jti` is the event id and whose
//   `body_sha256` is the hash of the exact body;
// - a receiver that fails the first 3 attempts gets the event later, exactly once by id;
// - events pending when the service is killed (-9) are delivered after a restart.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import {
  Y, startServer, ClientPool, sessionToken, hostToken, waitFor, waitSynced, uid, decodeJwt
} from './harness.mjs'
import { receiver } from './lib/hook-receiver.mjs'

const SECRET = 'hooks-secret-0123456789abcdef0123456789'

/** Checks the signature and claims of one delivery; returns the claims. */
function verify (entry, appId) {
  const auth = entry.headers.authorization ?? ''
  assert.match(auth, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/, 'bearer JWT')
  const token = auth.slice('Bearer '.length)
  const [h, p, sig] = token.split('.')
  const expected = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')
  assert.equal(sig, expected, 'signed with the app secret')
  const { header, payload } = decodeJwt(token)
  assert.equal(header.alg, 'HS256')
  assert.equal(payload.iss, 'chorus')
  assert.equal(payload.aud, appId)
  assert.equal(payload.jti, entry.body.id, 'jti is the event id')
  assert.equal(entry.headers['x-chorus-event-id'], entry.body.id)
  assert.equal(payload.body_sha256, createHash('sha256').update(entry.raw).digest('base64url'), 'body hash')
  assert.ok(payload.exp > Date.now() / 1000, 'not expired')
  return payload
}

const app = (url) => ({ id: 'hooked', secrets: [SECRET], callback_url: url })
const FAST = { webhook_retry_base_ms: 100, close_delay_secs: 1, saved_webhook_secs: 0 }

describe('webhooks', () => {
  const cleanup = []
  after(async () => { for (const f of cleanup.reverse()) await f() })

  it('sends every event kind, signed and verifiable', async () => {
    const rx = await receiver()
    cleanup.push(rx.close)
    const hooked = app(rx.url)
    const server = await startServer({ apps: [hooked], extraConfig: FAST })
    cleanup.push(() => server.stop())
    const pool = new ClientPool(server)
    cleanup.push(() => pool.destroyAll())
    const doc = uid('hooks')
    const p = pool.provider({ app: hooked, doc, token: sessionToken({ app: hooked, doc, user: 'ann' }) })
    await waitSynced(p)
    p.doc.transact(() => {
      const el = new Y.XmlElement('p')
      el.insert(0, [new Y.XmlText('hello hooks')])
      p.doc.getXmlFragment('body').insert(0, [el])
    })
    const base = `${server.httpUrl}/v1/apps/hooked/docs/${doc}`
    const auth = { authorization: `Bearer ${hostToken({ app: hooked, doc })}` }
    await waitFor(() => rx.accepted().some((r) => r.body?.type === 'saved'), 'saved event')
    const put = await fetch(`${base}/content`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Hooked' }) })
    assert.equal(put.status, 200)
    const { etag } = await (await fetch(`${base}/draft`, { headers: auth })).json()
    const pub = await fetch(`${base}/publish?conflictPolicy=abort`, { method: 'POST', headers: { ...auth, 'if-match': etag } })
    assert.equal(pub.status, 200)
    p.destroy()
    await waitFor(() => rx.accepted().some((r) => r.body?.type === 'closed'), 'closed event after the editor left', {
      describe: () => JSON.stringify(rx.requests.map((r) => r.body?.type))
    })
    const byType = Object.fromEntries(rx.accepted().map((r) => [r.body.type, r]))
    for (const type of ['editing', 'saved', 'external-change', 'published', 'closed']) {
      assert.ok(byType[type], `${type} delivered (got ${Object.keys(byType)})`)
      verify(byType[type], 'hooked')
      assert.equal(byType[type].body.app, 'hooked')
      assert.equal(byType[type].body.doc, doc)
      assert.equal(byType[type].headers['x-chorus-event-type'], type)
    }
    assert.deepEqual(byType.editing.body.users, ['ann'])
    assert.deepEqual(byType['external-change'].body.fields, ['title'])
    assert.equal(byType.published.body.etag, etag)
    assert.ok(byType.published.body.html.includes('hello hooks'))
    assert.equal(byType.closed.body.title, 'Hooked')
    assert.ok(byType.closed.body.html.includes('hello hooks'))
    assert.deepEqual(byType.closed.body.contributors, ['ann'])
    // Per document, events arrive in the order they happened.
    const order = rx.accepted().filter((r) => r.body.doc === doc).map((r) => r.body.type)
    assert.ok(order.indexOf('editing') < order.indexOf('external-change'), order.join(','))
    assert.ok(order.indexOf('published') < order.indexOf('closed'), order.join(','))
    const ids = rx.accepted().map((r) => r.body.id)
    assert.equal(new Set(ids).size, ids.length, 'each event accepted once')
  })

  it('retries after failures and delivers exactly once by event id', async () => {
    // The first three attempts of every event fail: 500, a dropped connection, {"error":1}.
    const rx = await receiver((entry, earlier) => {
      if (earlier === 0) return { status: 500, body: 'down' }
      if (earlier === 1) return { destroy: true }
      if (earlier === 2) return { status: 200, body: '{"error":1}' }
      return { status: 200, body: '{"error":0}' }
    })
    cleanup.push(rx.close)
    const hooked = app(rx.url)
    const server = await startServer({ apps: [hooked], extraConfig: FAST })
    cleanup.push(() => server.stop())
    const doc = uid('retry')
    const put = await fetch(`${server.httpUrl}/v1/apps/hooked/docs/${doc}/content`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hostToken({ app: hooked, doc })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ html: '<p>retry me</p>' })
    })
    assert.equal(put.status, 200)
    await waitFor(() => rx.accepted().some((r) => r.body?.type === 'external-change' && r.body.doc === doc), 'delivered after 3 failures', {
      timeout: 20_000,
      describe: () => JSON.stringify(rx.requests.map((r) => [r.body?.type, r.status]))
    })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const attempts = rx.requests.filter((r) => r.body?.type === 'external-change' && r.body.doc === doc)
    assert.equal(attempts.length, 4, 'three failures, then one success')
    assert.equal(new Set(attempts.map((r) => r.body.id)).size, 1, 'every attempt carries the same id')
    assert.equal(rx.accepted().filter((r) => r.body.id === attempts[0].body.id).length, 1, 'accepted exactly once')
    verify(attempts[3], 'hooked')
  })

  it('delivers events that were pending when the service was killed, after a restart', async () => {
    // The receiver is down (every attempt refused) while the service runs.
    let up = false
    const rx = await receiver(() => (up ? { status: 204 } : { destroy: true }))
    cleanup.push(rx.close)
    const hooked = app(rx.url)
    const extraConfig = { ...FAST, webhook_retry_base_ms: 60_000 }
    const server = await startServer({ apps: [hooked], extraConfig })
    const doc = uid('crash')
    const put = await fetch(`${server.httpUrl}/v1/apps/hooked/docs/${doc}/content`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hostToken({ app: hooked, doc })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ html: '<p>survives a crash</p>' })
    })
    assert.equal(put.status, 200)
    await waitFor(() => rx.requests.some((r) => r.body?.doc === doc), 'a first (failed) attempt')
    const eventId = rx.requests.find((r) => r.body?.doc === doc).body.id
    server.process.kill('SIGKILL')
    await server.exited
    up = true
    const again = await startServer({ apps: [hooked], extraConfig, reuseDir: server.dir })
    cleanup.push(() => again.stop())
    await waitFor(() => rx.accepted().some((r) => r.body?.id === eventId), 'delivered after the restart', { timeout: 20_000 })
    assert.equal(rx.accepted().filter((r) => r.body.id === eventId).length, 1)
    verify(rx.accepted().find((r) => r.body.id === eventId), 'hooked')
  })
})

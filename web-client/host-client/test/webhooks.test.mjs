// verifyWebhook against real deliveries of the chorus binary to a node:http receiver,
// and against hand-made tokens for every refusal.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'

import { ChorusHost, verifyWebhook, webhookBodySha256, WebhookError, WEBHOOK_EVENT_TYPES } from '../dist/index.js'
import { verifyWebhook as verifyFromSubpath, verifyWebhookToken } from '../dist/webhooks.js'
import { startChorus, startReceiver, openSession, sessionToken, uid } from './chorus-server.mjs'

const SIGNING = 'hooks-secret-current-0123456789abcdef'
const PREVIOUS = 'hooks-secret-previous-0123456789abcdef'
const APP = 'hooked'

/** Asserts `fn` throws a WebhookError with `code`; returns it. */
function refused (fn, code) {
  let error
  assert.throws(fn, (err) => { error = err; return err instanceof WebhookError && err.code === code }, `expected WebhookError ${code}`)
  return error
}

describe('webhooks from the real server', () => {
  let server
  let rx
  let host

  before(async () => {
    rx = await startReceiver()
    server = await startChorus({
      apps: [{ id: APP, secrets: [SIGNING, PREVIOUS], callback_url: rx.url }],
      // Deliver at once: `saved` unthrottled, `closed` 1 s after the last editor left.
      config: { saved_webhook_secs: 0, close_delay_secs: 1, webhook_retry_base_ms: 100 }
    })
    host = new ChorusHost({ baseUrl: server.url, appId: APP, secret: SIGNING })
  })
  after(async () => {
    await server?.stop()
    await rx?.close()
  })

  it('delivers external-change (and saved) for a host change, verifiable with verifyWebhook', async () => {
    const doc = uid('ext')
    const change = await host.putContent(doc, { title: 'Hooked', html: '<p>hello</p>' })
    const req = await rx.waitFor((b) => b.doc === doc && b.type === 'external-change', 'external-change')
    assert.equal(req.method, 'POST')
    assert.equal(req.headers['content-type'], 'application/json')

    const event = verifyWebhook({ secret: SIGNING, appId: APP, authorization: req.headers.authorization, rawBody: req.raw })
    assert.equal(event.type, 'external-change')
    assert.equal(event.id, req.headers['x-chorus-event-id'])
    assert.equal(event.type, req.headers['x-chorus-event-type'])
    assert.equal(event.app, APP)
    assert.equal(event.doc, doc)
    assert.deepEqual([...event.fields].sort(), ['body', 'title'])
    assert.equal(event.etag, change.etag)
    assert.ok(Math.abs(event.at - Date.now()) < 60_000)

    // The same from the subpath export, with the body as a string and as an ArrayBuffer.
    const raw = req.raw
    assert.deepEqual(verifyFromSubpath({ secrets: [SIGNING], appId: APP, authorization: req.headers.authorization, rawBody: raw.toString('utf8') }), event)
    assert.deepEqual(verifyWebhook({ secrets: [SIGNING], appId: APP, authorization: req.headers.authorization, rawBody: raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length) }), event)

    const saved = await rx.waitFor((b) => b.doc === doc && b.type === 'saved', 'saved')
    const s = verifyWebhook({ secret: SIGNING, appId: APP, authorization: saved.headers.authorization, rawBody: saved.raw })
    assert.equal(s.type, 'saved')
    assert.equal(typeof s.etag, 'string')
  })

  it('rejects a tampered body, a wrong secret, a wrong audience and an expired token', async () => {
    const doc = uid('tamper')
    await host.putContent(doc, { title: 'Tamper with me' })
    const req = await rx.waitFor((b) => b.doc === doc && b.type === 'external-change', 'external-change')
    const base = { appId: APP, authorization: req.headers.authorization, rawBody: req.raw }
    verifyWebhook({ ...base, secret: SIGNING })

    const tampered = Buffer.from(req.raw.toString('utf8').replace(doc, doc.replace('tamper', 'tamped')))
    assert.equal(tampered.length, req.raw.length)
    assert.notDeepEqual(tampered, req.raw)
    refused(() => verifyWebhook({ ...base, secret: SIGNING, rawBody: tampered }), 'body-mismatch')
    refused(() => verifyWebhook({ ...base, secret: SIGNING, rawBody: Buffer.concat([req.raw, Buffer.from(' ')]) }), 'body-mismatch')

    refused(() => verifyWebhook({ ...base, secret: 'not-the-secret' }), 'bad-signature')
    // Chorus signs with the first secret only: the previous one alone does not verify…
    refused(() => verifyWebhook({ ...base, secret: PREVIOUS }), 'bad-signature')
    // …while a host that rotated keeps accepting the old one among several.
    assert.equal(verifyWebhook({ ...base, secrets: ['the-next-secret-0123456789abcdef0123456789', SIGNING] }).doc, doc)

    refused(() => verifyWebhook({ ...base, secret: SIGNING, appId: 'some-other-app' }), 'wrong-audience')

    const claims = JSON.parse(Buffer.from(req.headers.authorization.split('.')[1], 'base64url'))
    assert.equal(claims.iss, 'chorus')
    assert.equal(claims.aud, APP)
    assert.equal(claims.jti, req.body.id)
    assert.equal(claims.exp - claims.iat, 300)
    assert.equal(claims.body_sha256, webhookBodySha256(req.raw))
    refused(() => verifyWebhook({ ...base, secret: SIGNING, now: (claims.exp + 31) * 1000 }), 'token-expired')
    assert.equal(verifyWebhook({ ...base, secret: SIGNING, now: (claims.exp + 29) * 1000 }).doc, doc, 'within the 30 s leeway')
    refused(() => verifyWebhook({ ...base, secret: SIGNING, now: new Date((claims.exp + 1) * 1000), leewaySecs: 0 }), 'token-expired')

    refused(() => verifyWebhook({ ...base, secret: SIGNING, authorization: undefined }), 'missing-token')
    refused(() => verifyWebhook({ ...base, secret: SIGNING, authorization: 'Basic abc' }), 'missing-token')
  })

  it('delivers every event kind (editing, saved, external-change, published, closed, deleted), each verifiable', async () => {
    const doc = uid('kinds')
    let lastEtag
    await host.putContent(doc, { title: 'Kinds', html: '<p>one</p>' })
    const ws = await openSession(server.url, { appId: APP, doc, token: sessionToken({ appId: APP, secret: SIGNING, doc, user: 'bob' }) })
    try {
      await rx.waitFor((b) => b.doc === doc && b.type === 'editing', 'editing')
      const change = await host.putContent(doc, { html: '<p>two</p>' })
      await host.publish(doc, { ifMatch: change.etag })
      await rx.waitFor((b) => b.doc === doc && b.type === 'published', 'published')
      const [session] = await host.listSessions(doc)
      await host.endSession(doc, session.id)
      await ws.closed
      await rx.waitFor((b) => b.doc === doc && b.type === 'closed', 'closed (1 s after the last editor left)')
      lastEtag = (await host.getDraft(doc)).etag
      await host.deleteDraft(doc)
      await rx.waitFor((b) => b.doc === doc && b.type === 'deleted', 'deleted')
    } finally {
      ws.close()
    }

    const events = rx.requests
      .filter((r) => r.body?.doc === doc)
      .map((r) => verifyWebhook({ secret: SIGNING, appId: APP, authorization: r.headers.authorization, rawBody: r.raw }))
    // Eviction takes an app that evicts (tests/node/lifecycle.test.mjs has it).
    assert.deepEqual([...new Set(events.map((e) => e.type))].sort(), WEBHOOK_EVENT_TYPES.filter((t) => t !== 'evicted').sort())
    const byType = (t) => events.find((e) => e.type === t)
    assert.deepEqual(byType('editing').users, ['bob'])
    const published = byType('published')
    assert.equal(published.title, 'Kinds')
    assert.match(published.html, /two/)
    assert.equal(published.etag, lastEtag)
    assert.equal(typeof published.publishedAt, 'number')
    const closed = byType('closed')
    assert.equal(closed.title, 'Kinds')
    assert.match(closed.html, /two/)
    assert.ok(Array.isArray(closed.contributors))
    assert.equal(closed.changed, false, 'nothing typed since the publish')
    assert.equal(byType('deleted').closedSessions, 0)
    // Events of one document come in order, each once (the receiver always accepted).
    const ids = events.map((e) => Number(e.id.replace('evt-', '')))
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b))
    assert.equal(new Set(ids).size, ids.length)
  })
})

// ---- refusals, with tokens made here -----------------------------------------------

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
const NOW = Date.UTC(2031, 4, 6, 7, 8, 9)
const nowSecs = Math.floor(NOW / 1000)

function sign ({ header = { alg: 'HS256', typ: 'JWT' }, claims, secret = SIGNING, hash = 'sha256' }) {
  const input = `${b64(header)}.${b64(claims)}`
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

function delivery (body, claimsOver = {}, signOver = {}) {
  const raw = Buffer.from(JSON.stringify(body))
  const claims = {
    iss: 'chorus',
    aud: APP,
    iat: nowSecs,
    exp: nowSecs + 300,
    jti: body.id,
    body_sha256: createHash('sha256').update(raw).digest('base64url'),
    ...claimsOver
  }
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k]
  return { appId: APP, secret: SIGNING, now: NOW, authorization: `Bearer ${sign({ claims, ...signOver })}`, rawBody: raw }
}

const SAVED = { id: 'evt-7', type: 'saved', app: APP, doc: 'post-1', at: NOW, etag: '"e1"' }

describe('verifyWebhook refusals', () => {
  it('verifyWebhookToken checks the token alone, before the body is read', () => {
    const { appId, secret, now, authorization } = delivery(SAVED)
    const claims = verifyWebhookToken({ appId, secret, now, authorization })
    assert.equal(claims.jti, 'evt-7')
    refused(() => verifyWebhookToken({ appId, secret: 'not-the-secret', now, authorization }), 'bad-signature')
    refused(() => verifyWebhookToken({ appId: 'other', secret, now, authorization }), 'wrong-audience')
    refused(() => verifyWebhookToken({ appId, secret, now, authorization: undefined }), 'missing-token')
    // The body still has to be the one signed for.
    refused(() => verifyWebhook({ ...delivery(SAVED), rawBody: Buffer.from('{}') }), 'body-mismatch')
  })

  it('accepts a well-formed delivery, keeping unknown fields', () => {
    const event = verifyWebhook(delivery({ ...SAVED, extra: 1 }))
    assert.deepEqual(event, { ...SAVED, extra: 1 })
    assert.equal(verifyWebhook({ ...delivery(SAVED), authorization: [delivery(SAVED).authorization] }).id, 'evt-7', 'a header array')
    const lower = delivery(SAVED)
    assert.equal(verifyWebhook({ ...lower, authorization: lower.authorization.replace('Bearer', 'bearer') }).id, 'evt-7')
    assert.equal(verifyWebhook(delivery(SAVED, { aud: ['x', APP] })).id, 'evt-7', 'aud as an array')
  })

  it('refuses other algorithms, alg none, crit and malformed tokens', () => {
    const d = delivery(SAVED)
    const [, p] = d.authorization.slice(7).split('.')
    refused(() => verifyWebhook({ ...d, authorization: `Bearer ${b64({ alg: 'none' })}.${p}.` }), 'algorithm-not-allowed')
    refused(() => verifyWebhook(delivery(SAVED, {}, { header: { alg: 'HS512' }, hash: 'sha512' })), 'algorithm-not-allowed')
    refused(() => verifyWebhook(delivery(SAVED, {}, { header: { alg: 'HS256', crit: ['exp'] } })), 'malformed-token')
    refused(() => verifyWebhook({ ...d, authorization: 'Bearer not-a-jwt' }), 'malformed-token')
    refused(() => verifyWebhook({ ...d, authorization: 'Bearer a.b.c.d' }), 'malformed-token')
    refused(() => verifyWebhook({ ...d, authorization: `Bearer ${b64('{nope')}.${p}.${'A'.repeat(43)}` }), 'malformed-token')
    // A signature over other claims (the payload swapped).
    const other = delivery({ ...SAVED, id: 'evt-8' }).authorization.slice(7).split('.')
    refused(() => verifyWebhook({ ...d, authorization: `Bearer ${other[0]}.${p}.${other[2]}` }), 'bad-signature')
    refused(() => verifyWebhook({ ...d, authorization: `${d.authorization}x` }), 'bad-signature')
  })

  it('checks iss, exp (required), nbf and the leeway', () => {
    refused(() => verifyWebhook(delivery(SAVED, { iss: 'someone' })), 'wrong-issuer')
    refused(() => verifyWebhook(delivery(SAVED, { aud: 'other' })), 'wrong-audience')
    refused(() => verifyWebhook(delivery(SAVED, { exp: undefined })), 'missing-claim')
    refused(() => verifyWebhook(delivery(SAVED, { exp: 'soon' })), 'missing-claim')
    refused(() => verifyWebhook(delivery(SAVED, { exp: nowSecs - 31 })), 'token-expired')
    assert.equal(verifyWebhook(delivery(SAVED, { exp: nowSecs - 29 })).id, 'evt-7')
    refused(() => verifyWebhook({ ...delivery(SAVED, { exp: nowSecs - 29 }), leewaySecs: 0 }), 'token-expired')
    refused(() => verifyWebhook(delivery(SAVED, { nbf: nowSecs + 31 })), 'token-not-yet-valid')
    assert.equal(verifyWebhook(delivery(SAVED, { nbf: nowSecs + 29 })).id, 'evt-7')
    refused(() => verifyWebhook(delivery(SAVED, { jti: undefined })), 'missing-claim')
    refused(() => verifyWebhook(delivery(SAVED, { body_sha256: undefined })), 'missing-claim')
  })

  it('binds the body: hash, id = jti, app, envelope and fields of its type', () => {
    refused(() => verifyWebhook(delivery(SAVED, { body_sha256: webhookBodySha256('{}') })), 'body-mismatch')
    refused(() => verifyWebhook(delivery(SAVED, { jti: 'evt-9' })), 'event-id-mismatch')
    refused(() => verifyWebhook(delivery({ ...SAVED, app: 'other' })), 'wrong-app')
    refused(() => verifyWebhook(delivery({ ...SAVED, at: 'now' })), 'malformed-body')
    refused(() => verifyWebhook(delivery({ ...SAVED, etag: 3 })), 'malformed-body')
    refused(() => verifyWebhook(delivery({ id: 'evt-1', type: 'closed', app: APP, doc: 'd', at: 1, title: 't', html: 'h', etag: 'e' })), 'malformed-body')
    const notJson = delivery(SAVED)
    notJson.rawBody = Buffer.from('not json')
    const claims = JSON.parse(Buffer.from(notJson.authorization.split('.')[1], 'base64url'))
    notJson.authorization = `Bearer ${sign({ claims: { ...claims, body_sha256: webhookBodySha256(notJson.rawBody) } })}`
    refused(() => verifyWebhook(notJson), 'malformed-body')

    const future = { id: 'evt-2', type: 'archived', app: APP, doc: 'd', at: 1 }
    const err = refused(() => verifyWebhook(delivery(future)), 'unknown-event-type')
    assert.equal(err.authentic, true, 'genuine, only of a newer type: answer 2xx')
    assert.deepEqual(err.body, future)
    assert.equal(refused(() => verifyWebhook(delivery(SAVED, { iss: 'x' })), 'wrong-issuer').authentic, false)
  })

  it('needs a secret and ignores empty ones', () => {
    assert.throws(() => verifyWebhook({ ...delivery(SAVED), secret: undefined, secrets: [] }), TypeError)
    assert.throws(() => verifyWebhook({ ...delivery(SAVED), secret: '' }), TypeError)
    assert.equal(verifyWebhook({ ...delivery(SAVED), secret: undefined, secrets: ['', SIGNING] }).id, 'evt-7')
  })
})

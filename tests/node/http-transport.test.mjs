// The HTTP transport (/v1/http/{app}/{content}, proto/PROTOCOL.md "HTTP
// transport") against the real chorus binary:
// - at the protocol level, with a raw client written here (its own event-stream
//   parsing, its own POST framing: an oracle independent of the web client's
//   ChorusHttpSocket): resume after a cut stream with nothing lost or repeated,
//   long-polling, retried and out-of-order POSTs, and every bad input's answer;
// - with stock clients: y-websocket's WebsocketProvider given ChorusHttpSocket
//   (web-client/src/http-socket.ts, bundled here by esbuild) as its
//   WebSocketPolyfill, editing beside a plain websocket provider.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import * as esbuild from 'esbuild'
import { HocuspocusProvider as ProviderV3 } from '@hocuspocus/provider'
import { HocuspocusProvider as ProviderV4 } from 'hocuspocus-provider-v4'
import {
  REPO_ROOT, Y, ClientPool, startServer, sessionToken, hostToken, badToken, uid, sleep, waitFor, waitSynced,
  encoding, syncProtocol, MSG_SYNC, SYNC_STEP2, SYNC_UPDATE, parseMessage, step1Message, updateMessage,
  WebsocketProvider, DEFAULT_APP
} from './harness.mjs'

const SESSION_TIMEOUT = 2
const HTTP = { session_timeout_secs: SESSION_TIMEOUT, heartbeat_secs: 1, poll_wait_secs: 2 }

/** lib0 varUint8Array framing of a POST body, written here (not the client's). */
function postBody (frames) {
  const enc = encoding.createEncoder()
  for (const f of frames) encoding.writeVarUint8Array(enc, f)
  return encoding.toUint8Array(enc)
}

/** Server-sent events of a complete text: [{event, id, data}]. */
function parseEvents (text) {
  const events = []
  for (const block of text.split('\n\n')) {
    let event = 'message'
    let id = null
    const data = []
    let any = false
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue
      any = true
      const [field, ...rest] = line.split(':')
      const value = rest.join(':').replace(/^ /, '')
      if (field === 'event') event = value
      else if (field === 'id') id = Number(value)
      else if (field === 'data') data.push(value)
    }
    if (any) events.push({ event, id, data: data.join('\n') })
  }
  return events
}

/** A raw HTTP-transport session: open, stream (cuttable), poll, post. */
class RawHttp {
  constructor (server, doc, { token, app = DEFAULT_APP } = {}) {
    this.base = `${server.httpUrl}/v1/http/${app.id}/${doc}`
    this.token = token ?? sessionToken({ doc })
    this.frames = [] // {id, bytes}
    this.closeEvent = null
    this.seq = 0
  }

  async open (query = '') {
    const res = await fetch(`${this.base}${query}`, { method: 'POST', headers: { authorization: `Bearer ${this.token}` } })
    assert.equal(res.status, 201, `open: ${res.status} ${await res.clone().text()}`)
    this.opened = await res.json()
    this.url = `${this.base}/${this.opened.session}`
    return this
  }

  get lastId () { return this.frames.length === 0 ? 0 : this.frames[this.frames.length - 1].id }

  take (events) {
    for (const e of events) {
      if (e.event === 'close') this.closeEvent = JSON.parse(e.data)
      else if (e.event === 'message') this.frames.push({ id: e.id, bytes: new Uint8Array(Buffer.from(e.data, 'base64')) })
    }
  }

  /** Stream from the last event seen until `abort` is called or the stream ends. */
  stream () {
    const abort = new AbortController()
    let buffer = ''
    const done = (async () => {
      const res = await fetch(`${this.url}?after=${this.lastId}`, { signal: abort.signal })
      assert.equal(res.status, 200, `stream: ${res.status}`)
      assert.equal(res.headers.get('content-type'), 'text/event-stream')
      const decoder = new TextDecoder()
      try {
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk, { stream: true })
          const cut = buffer.lastIndexOf('\n\n')
          if (cut >= 0) {
            this.take(parseEvents(buffer.slice(0, cut + 2)))
            buffer = buffer.slice(cut + 2)
          }
        }
      } catch (err) {
        if (err.name !== 'AbortError') throw err
      }
    })()
    return { abort: () => abort.abort(), done }
  }

  /** Poll until the session's close event (a few polls at most). */
  async untilClosed () {
    for (let i = 0; i < 10 && this.closeEvent === null; i++) await this.poll()
    return this.closeEvent
  }

  async poll () {
    const res = await fetch(`${this.url}?after=${this.lastId}&poll=1`)
    assert.equal(res.status, 200, `poll: ${res.status}`)
    this.take(parseEvents(await res.text()))
  }

  post (frames, { seq = this.seq, query = '' } = {}) {
    return fetch(`${this.url}?seq=${seq}${query}`, { method: 'POST', body: postBody(frames) })
  }

  async send (frames) {
    const res = await this.post(frames)
    assert.equal(res.status, 200, `post: ${res.status} ${await res.clone().text()}`)
    const { next } = await res.json()
    this.seq = next
  }

  /** A Y.Doc of every step 2 and update received. */
  doc () {
    const d = new Y.Doc()
    for (const { bytes } of this.frames) {
      const m = parseMessage(bytes)
      if (m.type === MSG_SYNC && (m.subtype === SYNC_STEP2 || m.subtype === SYNC_UPDATE)) Y.applyUpdate(d, m.payload)
    }
    return d
  }
}

const text = (doc) => doc.getText('title').toString()

describe('HTTP transport', () => {
  let server
  let pool
  let ChorusHttpSocket
  let ChorusHocuspocusHttpSocket
  let bundleDir

  before(async () => {
    server = await startServer({ extraConfig: { http_transport: HTTP } })
    pool = new ClientPool(server)
    bundleDir = await mkdtemp(path.join(tmpdir(), 'chorus-http-socket-'))
    await esbuild.build({
      entryPoints: {
        'http-socket': path.join(REPO_ROOT, 'web-client', 'src', 'http-socket.ts'),
        'hocuspocus-http-socket': path.join(REPO_ROOT, 'web-client', 'src', 'hocuspocus-http-socket.ts')
      },
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      outdir: bundleDir,
      outExtension: { '.js': '.mjs' },
      logLevel: 'warning'
    })
    ;({ ChorusHttpSocket } = await import(pathToFileURL(path.join(bundleDir, 'http-socket.mjs'))))
    ;({ ChorusHocuspocusHttpSocket } = await import(pathToFileURL(path.join(bundleDir, 'hocuspocus-http-socket.mjs'))))
  })

  after(async () => {
    pool?.destroyAll()
    await server?.stop()
    if (bundleDir) await rm(bundleDir, { recursive: true, force: true })
  })

  it('a stream cut mid-edit resumes from its last event: every frame once, in order, the writer\'s text whole', async () => {
    const doc = uid()
    const raw = await new RawHttp(server, doc).open()
    let stream = raw.stream()
    await raw.send([step1Message(new Y.Doc())])
    await waitFor(() => raw.frames.some((f) => parseMessage(f.bytes).subtype === SYNC_STEP2), 'step 2 on the stream')

    const writer = pool.provider({ doc, token: sessionToken({ doc, user: 'writer' }) })
    await waitSynced(writer)
    const t = writer.doc.getText('title')
    for (let i = 0; i < 120; i++) {
      t.insert(t.length, `${i},`)
      if (i % 30 === 10) {
        // Cut the stream mid-edit; the next one goes on from the last event seen.
        stream.abort()
        await stream.done
        await sleep(20)
        stream = raw.stream()
      }
      if (i % 7 === 0) await sleep(5)
    }
    const expected = Array.from({ length: 120 }, (_, i) => `${i},`).join('')
    assert.equal(t.toString(), expected)
    await waitFor(() => text(raw.doc()) === expected, 'the HTTP session has every edit', {
      describe: () => `${text(raw.doc()).length} of ${t.length} chars, ${raw.frames.length} frames`
    })
    stream.abort()
    await stream.done
    const ids = raw.frames.map((f) => f.id)
    assert.deepEqual(ids, ids.map((_, i) => i + 1), 'event ids 1..n, none missing, none twice')
  })

  it('long-polling gets the same events, one batch per request', async () => {
    const doc = uid()
    const raw = await new RawHttp(server, doc).open()
    await raw.send([step1Message(new Y.Doc())])
    const writer = pool.provider({ doc, token: sessionToken({ doc, user: 'writer' }) })
    await waitSynced(writer)
    const t = writer.doc.getText('title')
    let polls = 0
    const polling = (async () => {
      while (text(raw.doc()) !== 'a0a1a2a3a4a5a6a7a8a9' && polls < 200) {
        await raw.poll()
        polls++
      }
    })()
    for (let i = 0; i < 10; i++) {
      t.insert(t.length, `a${i}`)
      await sleep(30)
    }
    await polling
    assert.equal(text(raw.doc()), t.toString())
    const ids = raw.frames.map((f) => f.id)
    assert.deepEqual(ids, ids.map((_, i) => i + 1))
    assert.ok(polls >= 2, `more than one poll (${polls})`)
  })

  it('a POST retried after a lost answer is applied once; one that skips ahead is 409 with the number expected', async () => {
    const doc = uid()
    const raw = await new RawHttp(server, doc).open()
    const mine = new Y.Doc()
    await raw.send([step1Message(mine)])
    mine.getText('title').insert(0, 'once')
    const update = updateMessage(Y.encodeStateAsUpdate(mine))
    const first = await raw.post([update], { seq: 1 })
    assert.equal(first.status, 200)
    assert.deepEqual(await first.json(), { next: 2 })
    // The same POST again (its answer was "lost"): taken, not applied again.
    const again = await raw.post([update], { seq: 1 })
    assert.equal(again.status, 200)
    assert.deepEqual(await again.json(), { next: 2 })
    const skipped = await raw.post([update], { seq: 5 })
    assert.equal(skipped.status, 409)
    const body = await skipped.json()
    assert.equal(body.code, 'out-of-order')
    assert.equal(body.expected, 2)
    // A second edit of a different client id, posted with the right number.
    const other = new Y.Doc()
    Y.applyUpdate(other, Y.encodeStateAsUpdate(mine))
    other.getText('title').insert(4, '!')
    const res = await raw.post([updateMessage(Y.encodeStateAsUpdate(other, Y.encodeStateVector(mine)))], { seq: 2 })
    assert.equal(res.status, 200)
    // The oracle: a websocket reader of the stored document.
    const reader = pool.provider({ doc, token: sessionToken({ doc, user: 'reader' }) })
    await waitSynced(reader)
    await waitFor(() => text(reader.doc) === 'once!', 'the reader sees each edit once', { describe: () => text(reader.doc) })
  })

  it('bad input gets a documented answer, and the session beside it goes on', async () => {
    const doc = uid()
    const bystander = await new RawHttp(server, doc).open()
    await bystander.send([step1Message(new Y.Doc())])
    const base = `${server.httpUrl}/v1/http/${DEFAULT_APP.id}/${doc}`
    const json = async (res) => ({ status: res.status, ...(await res.json()) })

    // No token, a bad one, another document's.
    assert.deepEqual(await json(await fetch(base, { method: 'POST' })),
      { status: 401, code: 'missing-token', message: 'the session was refused: missing token', closeCode: 4401 })
    const expired = await json(await fetch(base, { method: 'POST', headers: { authorization: `Bearer ${badToken('expired', { doc })}` } }))
    assert.equal(expired.status, 401)
    assert.equal(expired.closeCode, 4401)
    assert.equal(expired.code, 'token-expired')
    const wrongDoc = await json(await fetch(base, { method: 'POST', headers: { authorization: `Bearer ${sessionToken({ doc: 'another' })}` } }))
    assert.deepEqual([wrongDoc.status, wrongDoc.code, wrongDoc.closeCode], [403, 'wrong-doc', 4403])
    // A host token is not a session token.
    const host = await json(await fetch(base, { method: 'POST', headers: { authorization: `Bearer ${hostToken()}` } }))
    assert.equal(host.status, 403)

    // Sessions that do not exist, or belong to another document.
    const unknown = await json(await fetch(`${base}/${'0'.repeat(32)}`))
    assert.deepEqual([unknown.status, unknown.code], [404, 'unknown-session'])
    const elsewhere = await json(await fetch(`${server.httpUrl}/v1/http/${DEFAULT_APP.id}/other-doc/${bystander.opened.session}`))
    assert.deepEqual([elsewhere.status, elsewhere.code], [404, 'unknown-session'])
    const unknownPost = await json(await fetch(`${base}/${'f'.repeat(32)}?seq=0`, { method: 'POST', body: postBody([new Uint8Array([0, 0, 1, 0])]) }))
    assert.equal(unknownPost.status, 404)

    // A resume point never sent.
    const future = await json(await fetch(`${bystander.url}?after=999999`))
    assert.deepEqual([future.status, future.code], [400, 'bad-event-id'])
    const notNumber = await json(await fetch(`${bystander.url}?after=abc`))
    assert.equal(notNumber.status, 400)
    // Frames without a sequence number.
    const noSeq = await json(await fetch(bystander.url, { method: 'POST', body: postBody([new Uint8Array([0, 0, 1, 0])]) }))
    assert.deepEqual([noSeq.status, noSeq.code], [400, 'bad-request'])

    // A body that is not frames: 400, and that session ends with 4400.
    const broken = await new RawHttp(server, doc).open()
    const cut = await json(await fetch(`${broken.url}?seq=0`, { method: 'POST', body: new Uint8Array([50, 1, 2]) }))
    assert.deepEqual([cut.status, cut.code, cut.closeCode], [400, 'malformed-message', 4400])
    assert.deepEqual(await broken.untilClosed(), { code: 4400, reason: 'malformed-message' })
    // A frame that decodes but is no message: the session's own close, 4400.
    const garbage = await new RawHttp(server, doc).open()
    await garbage.send([new Uint8Array([0, 9, 9])])
    assert.equal((await garbage.untilClosed())?.code, 4400)

    // Over max_message_size: 413, and that session ends with 4413.
    const big = await new RawHttp(server, doc).open()
    const huge = new Uint8Array(big.opened.maxMessageSize + 2048)
    const tooLarge = await json(await fetch(`${big.url}?seq=0`, { method: 'POST', body: huge }))
    assert.deepEqual([tooLarge.status, tooLarge.code, tooLarge.closeCode], [413, 'message-too-large', 4413])
    assert.deepEqual(await big.untilClosed(), { code: 4413, reason: 'message-too-large' })

    // The bystander was disturbed by none of it: it still edits and reads.
    const mine = new Y.Doc()
    mine.getText('title').insert(0, 'still here')
    await bystander.send([updateMessage(Y.encodeStateAsUpdate(mine))])
    const reader = pool.provider({ doc, token: sessionToken({ doc, user: 'reader' }) })
    await waitSynced(reader)
    await waitFor(() => text(reader.doc) === 'still here', 'the bystander\'s edit reached the document')
  })

  it('a server-side close is the stream\'s last event (host ended the session: 4403)', async () => {
    const doc = uid()
    const raw = await new RawHttp(server, doc).open()
    await raw.send([step1Message(new Y.Doc())])
    const stream = raw.stream()
    const auth = { authorization: `Bearer ${hostToken({ doc })}` }
    const api = `${server.httpUrl}/v1/apps/${DEFAULT_APP.id}/docs/${doc}/sessions`
    const sessions = await waitFor(async () => {
      const list = await (await fetch(api, { headers: auth })).json()
      return list.sessions?.length === 1 ? list.sessions : null
    }, 'the host API lists the HTTP session')
    const ended = await fetch(`${api}/${sessions[0].id}`, { method: 'DELETE', headers: auth })
    assert.ok(ended.ok, `end session: ${ended.status}`)
    await stream.done
    assert.deepEqual(raw.closeEvent, { code: 4403, reason: 'session-ended' })
  })

  it('a session nobody streams, polls or posts to expires and leaves its document', async () => {
    const doc = uid()
    const raw = await new RawHttp(server, doc).open()
    await raw.send([step1Message(new Y.Doc())])
    const auth = { authorization: `Bearer ${hostToken({ doc })}` }
    const api = `${server.httpUrl}/v1/apps/${DEFAULT_APP.id}/docs/${doc}/sessions`
    const count = async () => ((await (await fetch(api, { headers: auth })).json()).sessions ?? []).length
    assert.equal(await count(), 1)
    await waitFor(async () => (await count()) === 0, 'the idle session left the document',
      { timeout: (SESSION_TIMEOUT + 3) * 1000 })
    // Kept a while to tell a late stream, then unknown.
    await waitFor(async () => (await fetch(`${raw.url}?after=0`)).status === 404, 'the session is forgotten',
      { timeout: (SESSION_TIMEOUT + 3) * 1000, interval: 200 })
  })

  it('y-websocket\'s WebsocketProvider over ChorusHttpSocket edits with a websocket provider, presence included', async () => {
    const doc = uid()
    const overHttp = (user) => {
      const provider = new WebsocketProvider(`${server.wsBase}/${DEFAULT_APP.id}`, doc, new Y.Doc(), {
        WebSocketPolyfill: ChorusHttpSocket,
        params: { token: sessionToken({ doc, user }) },
        disableBc: true
      })
      pool.providers.push(provider)
      return provider
    }
    const a = overHttp('alice')
    const b = overHttp('bob')
    const ws = pool.provider({ doc, token: sessionToken({ doc, user: 'carol' }) })
    await Promise.all([waitSynced(a), waitSynced(b), waitSynced(ws)])
    a.awareness.setLocalStateField('user', { name: 'Alice' })
    a.doc.getText('title').insert(0, 'alice ')
    b.doc.getText('title').insert(0, 'bob ')
    ws.doc.getText('title').insert(0, 'carol ')
    const all = [a, b, ws]
    await waitFor(() => all.every((p) => text(p.doc).length === 'alice bob carol '.length) &&
      new Set(all.map((p) => text(p.doc))).size === 1, 'three copies converge', {
      describe: () => all.map((p) => JSON.stringify(text(p.doc))).join(' | ')
    })
    // The server stamps each state's user from its token (user.id = sub).
    const seesAlice = (p) => [...p.awareness.getStates().values()].some((s) => s.user?.id === 'alice')
    await waitFor(() => seesAlice(b) && seesAlice(ws), 'Alice\'s presence reached both')
    assert.equal(a.ws.constructor.name, 'ChorusHttpSocket')
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text()
    assert.match(metrics, /chorus_http_sessions_open 2\b/)
    const counter = (name) => Number(metrics.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1] ?? 0)
    assert.ok(counter('chorus_http_sent_frames_total') > 0, 'frames went out over streams')
    assert.ok(counter('chorus_http_posted_frames_total') > 0, 'frames came in over POSTs')
    assert.ok(counter('chorus_http_resumes_total') > 0, 'the cut streams of the first test resumed')
  })

  for (const [version, HocuspocusProvider] of [['3', ProviderV3], ['4', ProviderV4]]) {
    it(`@hocuspocus/provider ${version} over ChorusHocuspocusHttpSocket edits with a websocket provider; its unsynced changes reach 0; a bad token is PermissionDenied`, async () => {
      const doc = uid()
      const events = { authenticated: [], failed: [] }
      const hocuspocus = (token) => new HocuspocusProvider({
        url: `${server.wsBase.replace('/v1/ws', '/v1/hocuspocus')}/${DEFAULT_APP.id}`,
        name: doc,
        token,
        document: new Y.Doc(),
        WebSocketPolyfill: ChorusHocuspocusHttpSocket,
        onAuthenticated: (e) => events.authenticated.push(e?.scope ?? 'authenticated'),
        onAuthenticationFailed: (e) => events.failed.push(e?.reason ?? 'failed')
      })
      const provider = hocuspocus(sessionToken({ doc, user: 'hp' }))
      try {
        const ws = pool.provider({ doc, token: sessionToken({ doc, user: 'carol' }) })
        await waitSynced(ws)
        await waitFor(() => provider.synced ?? provider.isSynced, 'the Hocuspocus provider synced over HTTP')
        assert.deepEqual(events.authenticated, ['read-write'])
        provider.document.getText('title').insert(0, 'from hocuspocus ')
        ws.doc.getText('title').insert(0, 'from ws ')
        await waitFor(() => text(provider.document).length === 'from hocuspocus from ws '.length &&
          text(provider.document) === text(ws.doc), 'both copies converge', {
          describe: () => `${JSON.stringify(text(provider.document))} | ${JSON.stringify(text(ws.doc))}`
        })
        // SyncStatus: the server's "saved" reached the provider through its framing.
        await waitFor(() => provider.unsyncedChanges === 0 && !provider.hasUnsyncedChanges, 'every change acknowledged')
        const socket = provider.configuration.websocketProvider.webSocket
        assert.equal(socket.constructor.name, 'ChorusHocuspocusHttpSocket')
        assert.equal(socket.inner.constructor.name, 'ChorusHttpSocket')
      } finally {
        provider.destroy()
      }
      const refused = hocuspocus(sessionToken({ doc: 'another-doc', user: 'hp' }))
      try {
        await waitFor(() => events.failed.length > 0, 'the refusal reached the provider')
        assert.equal(events.failed[0], 'wrong-doc')
      } finally {
        refused.destroy()
      }
    })
  }
})

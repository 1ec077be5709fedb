// A draft's whole life through the host API, against the real binary, real websocket
// clients (raw `ws` and stock y-websocket) and a real webhook receiver:
//
// - DELETE closes every session with 4404 `document-deleted`, removes the draft, its
//   history and its listing, sends a `deleted` webhook instead of the events still
//   undelivered, and the same id opens empty afterwards;
// - `closed` says whether anything changed since the last publish or external change;
// - a deletion of a draft never stored is 404 and closes nobody;
// - discard returns the draft to its last published version (or a point) as an
//   external change, and editors that opted in are told who published, discarded
//   or restored (`host-action`), stock clients never;
// - PUT …/content creates a missing document even when its content is what an empty
//   draft already has;
// - the retention sweep trims each document's history to its app's policy (the
//   newest auto and named points, always the last publish) and leaves the draft;
// - a draft unused past its app's evict_after_secs is evicted: the `evicted` webhook
//   carries its final content, joins are refused with 4410 (nothing is written into
//   it), reads are 410 until the host writes it again; a draft in use stays;
// - an event the host refused past webhook_max_age_secs is kept as a dead letter the
//   host lists and acknowledges (and operators count), across a restart.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, ClientPool, sessionToken, hostToken, waitFor, waitSynced, uid, sleep, expectClose,
  parseChorusMessage, MSG_CHORUS
} from './harness.mjs'
import { receiver } from './lib/hook-receiver.mjs'

const SECRET = 'lifecycle-secret-0123456789abcdef01234567'
const app = (url) => ({ id: 'life', secrets: [SECRET], callback_url: url })
const FAST = { webhook_retry_base_ms: 100, close_delay_secs: 1, saved_webhook_secs: 0 }

/** The host API of one document. */
function hostApi (server, appDef, doc) {
  const base = `${server.httpUrl}/v1/apps/${appDef.id}/docs/${encodeURIComponent(doc)}`
  const auth = { authorization: `Bearer ${hostToken({ app: appDef })}` }
  const json = { ...auth, 'content-type': 'application/json' }
  return {
    draft: () => fetch(`${base}/draft`, { headers: auth }),
    history: async () => (await (await fetch(`${base}/history`, { headers: auth })).json()).points,
    put: (body) => fetch(`${base}/content`, { method: 'PUT', headers: json, body: JSON.stringify(body) }),
    publish: (etag, body) => fetch(`${base}/publish`, {
      method: 'POST',
      headers: { ...json, 'if-match': etag },
      body: body === undefined ? undefined : JSON.stringify(body)
    }),
    discard: (body) => fetch(`${base}/discard`, { method: 'POST', headers: json, body: body === undefined ? undefined : JSON.stringify(body) }),
    restore: (body) => fetch(`${base}/restore`, { method: 'POST', headers: json, body: JSON.stringify(body) }),
    delete: () => fetch(base, { method: 'DELETE', headers: auth }),
    list: async () => (await (await fetch(`${server.httpUrl}/v1/apps/${appDef.id}/docs`, { headers: auth })).json()).docs.map((d) => d.id)
  }
}

/** The body text of a Y.Doc the way a reader sees it. */
const bodyText = (ydoc) => ydoc.getXmlFragment('body').toString()

describe('a draft\'s life', () => {
  const cleanup = []
  after(async () => { for (const f of cleanup.reverse()) await f() })

  /** A server with the one app `appDef`, and a pool of clients on it (both cleaned up). */
  async function serve (appDef, extraConfig) {
    const server = await startServer({ apps: [appDef], extraConfig })
    cleanup.push(() => server.stop())
    const pool = new ClientPool(server)
    cleanup.push(() => pool.destroyAll())
    return { server, pool }
  }

  it('DELETE closes every session with 4404, removes draft and history, replaces pending events by `deleted`, and the id starts empty', async () => {
    // The receiver refuses everything about the document until the deletion arrives:
    // the events raised before it are still pending when the draft goes.
    let deletedSeen = false
    const rx = await receiver((entry) => {
      if (entry.body?.type === 'deleted') deletedSeen = true
      return deletedSeen ? { status: 200, body: '{"error":0}' } : { status: 500 }
    })
    cleanup.push(rx.close)
    const life = app(rx.url)
    const { server, pool } = await serve(life, FAST)
    const doc = uid('delete')
    const api = hostApi(server, life, doc)

    // A stock client writes the content; it leaves before the deletion (it would
    // reconnect and write its copy back, as any CRDT client does).
    const writer = pool.provider({ app: life, doc, token: sessionToken({ app: life, doc, user: 'ann' }) })
    await waitSynced(writer)
    writer.doc.transact(() => {
      const p = new Y.XmlElement('p')
      p.insert(0, [new Y.XmlText('to be deleted')])
      writer.doc.getXmlFragment('body').insert(0, [p])
    })
    await waitFor(async () => (await (await api.draft()).text()).includes('to be deleted'), 'the edit is stored')
    const { etag } = await (await api.draft()).json()
    assert.equal((await api.publish(etag)).status, 200)
    assert.equal((await api.history()).length, 1, 'a publish point exists')
    assert.ok((await api.list()).includes(doc))
    writer.destroy()

    // Two sessions that stay connected: they must be told, and must not reconnect.
    const a = pool.raw({ app: life, doc, token: sessionToken({ app: life, doc, user: 'bob' }) })
    const b = pool.raw({ app: life, doc, token: sessionToken({ app: life, doc, user: 'cid', mode: 'view' }) })
    await a.handshake()
    await b.handshake()
    assert.match(bodyText(a.receivedDoc()), /to be deleted/, 'the session saw the content')
    // Only a document's oldest event is sent: `editing` is refused and retried, the
    // others wait behind it.
    await waitFor(() => rx.requests.some((r) => r.body?.doc === doc && r.body?.type === 'editing'), 'the first event was attempted (and refused)')

    const res = await api.delete()
    assert.equal(res.status, 200, await res.clone().text())
    assert.deepEqual(await res.json(), { closedSessions: 2 })
    for (const [client, who] of [[a, 'editor'], [b, 'viewer']]) {
      const info = await expectClose(client, 4404, who)
      assert.equal(info.reason, 'document-deleted')
    }

    assert.equal((await api.draft()).status, 404, 'the draft is gone')
    assert.deepEqual(await api.history(), [], 'its history is gone')
    assert.ok(!(await api.list()).includes(doc), 'it is no longer listed')
    assert.equal((await api.delete()).status, 404, 'a second deletion finds nothing')

    // The host hears of the deletion, and of nothing it was still owed before it.
    await waitFor(() => rx.accepted().some((r) => r.body?.doc === doc && r.body.type === 'deleted'), 'deleted delivered', {
      describe: () => JSON.stringify(rx.requests.filter((r) => r.body?.doc === doc).map((r) => [r.body.type, r.status]))
    })
    await sleep(1500) // longer than several retry periods of the refused events
    const accepted = rx.accepted().filter((r) => r.body?.doc === doc)
    assert.deepEqual(accepted.map((r) => r.body.type), ['deleted'], 'only the deletion is delivered')
    assert.equal(accepted[0].body.closedSessions, 2)
    assert.equal(accepted[0].headers['x-chorus-event-type'], 'deleted')
    const refusedBefore = rx.requests.filter((r) => r.body?.doc === doc && r.body.type !== 'deleted')
    assert.ok(refusedBefore.length > 0, 'events were pending at the deletion')

    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text()
    const superseded = Number(/^chorus_webhooks_superseded_total (\d+)$/m.exec(metrics)?.[1])
    assert.ok(superseded >= 1, `the dropped events are counted: ${superseded}`)

    // The same id opens empty, and is a new document once written.
    const again = pool.raw({ app: life, doc, token: sessionToken({ app: life, doc, user: 'dan' }) })
    await again.handshake()
    assert.equal(bodyText(again.receivedDoc()), '', 'a new session finds an empty draft')
    assert.equal((await api.draft()).status, 404, 'opening it stored nothing')
    assert.equal((await api.put({ title: 'Reborn' })).status, 200)
    const reborn = await (await api.draft()).json()
    assert.equal(reborn.title, 'Reborn')
    assert.deepEqual(await api.history(), [], 'no history carried over')
  })

  it('closed says whether the draft changed since the last publish or external change', async () => {
    const rx = await receiver()
    cleanup.push(rx.close)
    const life = app(rx.url)
    const { server, pool } = await serve(life, FAST)
    const doc = uid('changed')
    const api = hostApi(server, life, doc)
    const closedEvents = () => rx.accepted().filter((r) => r.body?.doc === doc && r.body.type === 'closed').map((r) => r.body)
    /** One editing session: join, maybe type, leave; resolves with its `closed` event. */
    const session = async (user, text) => {
      const before = closedEvents().length
      const p = pool.provider({ app: life, doc, token: sessionToken({ app: life, doc, user }) })
      await waitSynced(p)
      if (text !== undefined) {
        p.doc.transact(() => {
          const el = new Y.XmlElement('p')
          el.insert(0, [new Y.XmlText(text)])
          p.doc.getXmlFragment('body').push([el])
        })
        await waitFor(async () => (await (await api.draft()).text()).includes(text), `${text} stored`)
      }
      p.destroy()
      await waitFor(() => closedEvents().length > before, `closed after ${user}'s session`)
      return closedEvents()[before]
    }
    assert.equal((await session('ann', 'first')).changed, true, 'never published: changed')
    const { etag } = await (await api.draft()).json()
    assert.equal((await api.publish(etag)).status, 200)
    assert.equal((await session('bob')).changed, false, 'nothing typed since the publish')
    assert.equal((await session('cid', 'second')).changed, true, 'typed after the publish')
    assert.equal((await api.put({ title: 'Host title' })).status, 200)
    assert.equal((await session('dan')).changed, false, 'nothing typed since the external change')
  })

  it('discard returns to the last published version; editors are told who published and who discarded', async () => {
    const life = app('http://127.0.0.1:9/unused')
    const { server, pool } = await serve(life, FAST)
    const doc = uid('discard')
    const api = hostApi(server, life, doc)
    const token = (user) => sessionToken({ app: life, doc, user })
    // One opted-in session (chorus=1), one stock session that must never see type 100.
    const ext = pool.raw({ url: `${server.wsUrl(life.id, doc, token('ext'))}&chorus=1` })
    const stock = pool.raw({ app: life, doc, token: token('stock') })
    await ext.handshake()
    await stock.handshake()
    const hostActions = () => ext.messages.map(parseChorusMessage).filter((m) => m?.kind === 7)
      .map(({ action, userId, name }) => ({ action, userId, name }))

    assert.equal((await api.discard()).status, 404, 'nothing to discard: never written')
    assert.equal((await api.put({ html: '<p>published words</p>' })).status, 200)
    assert.equal((await api.discard()).status, 404, 'nothing to discard to: never published')
    const { etag } = await (await api.draft()).json()
    const tooLong = await api.publish(etag, { by: { name: 'x'.repeat(257) } })
    assert.equal(tooLong.status, 400, 'a name over 256 characters')
    assert.equal((await api.publish(etag, { by: { nick: 'x' } })).status, 400, 'an unknown field')
    assert.equal((await api.publish(etag, { by: { id: 'u-ann', name: 'Ann <b>Host</b>' } })).status, 200)
    await waitFor(() => hostActions().length === 1, 'published announced')
    assert.deepEqual(hostActions()[0], { action: 'published', userId: 'u-ann', name: 'Ann <b>Host</b>' }, 'as the host named them, as text')

    // An editor types after the publish; the host discards it.
    const writer = pool.provider({ app: life, doc, token: token('writer') })
    await waitSynced(writer)
    writer.doc.transact(() => {
      const p = new Y.XmlElement('p')
      p.insert(0, [new Y.XmlText('unpublished words')])
      writer.doc.getXmlFragment('body').push([p])
    })
    await waitFor(async () => (await (await api.draft()).text()).includes('unpublished words'), 'the edit is stored')
    const discarded = await api.discard({ by: { name: 'Bo' } })
    assert.equal(discarded.status, 200, await discarded.clone().text())
    assert.deepEqual((await discarded.json()).changed, ['body'])
    const html = await (await fetch(`${server.httpUrl}/v1/apps/${life.id}/docs/${doc}/draft?format=html`, { headers: { authorization: `Bearer ${hostToken({ app: life })}` } })).text()
    assert.match(html, /published words/)
    assert.doesNotMatch(html, /unpublished words/, 'the unpublished change is gone')
    await waitFor(() => !writer.doc.getXmlFragment('body').toString().includes('unpublished words'), 'the editor sees it go live')
    await waitFor(() => hostActions().length === 2, 'discarded announced')
    assert.deepEqual(hostActions()[1], { action: 'discarded', userId: '', name: 'Bo' })
    const external = ext.messages.map(parseChorusMessage).filter((m) => m?.kind === 2)
    assert.ok(external.some((m) => m.fields.includes('body')), 'and as an external change')
    const points = await api.history()
    const last = points[points.length - 1]
    assert.equal(last.kind, 'discard')
    assert.equal(last.restoredFrom, points.find((p) => p.kind === 'publish').point)

    // To a chosen point instead; a point that does not exist is 404.
    assert.equal((await api.discard({ point: 999 })).status, 404)
    assert.equal((await api.restore({ point: 1, by: { id: 'u-cid' } })).status, 200)
    await waitFor(() => hostActions().length === 3, 'restored announced')
    assert.deepEqual(hostActions()[2], { action: 'restored', userId: 'u-cid', name: '' })

    await sleep(200)
    assert.ok(!stock.messages.some((m) => typeof m !== 'string' && m[0] === MSG_CHORUS), 'a stock client never gets an extension message')
  })

  it('a draft never stored is 404 to DELETE, and its open session stays', async () => {
    const life = app('http://127.0.0.1:9/unused')
    const { server, pool } = await serve(life, FAST)
    const doc = uid('never')
    const viewer = pool.raw({ app: life, doc, token: sessionToken({ app: life, doc, user: 'eve', mode: 'view' }) })
    await viewer.handshake()
    const res = await hostApi(server, life, doc).delete()
    assert.equal(res.status, 404)
    assert.equal((await res.json()).code, 'not-found')
    await sleep(300)
    assert.equal(viewer.closeInfo, null, 'nobody was closed')
  })

  it('the retention sweep keeps the newest points of each kind and always the last publish', async () => {
    const life = {
      ...app('http://127.0.0.1:9/unused'),
      retention: { auto_points: 2, auto_point_max_age_secs: 0, named_points: 1, named_point_max_age_secs: 0 }
    }
    // A point per second of editing; no sweep until the history is built.
    const { server, pool } = await serve(life, { ...FAST, history_interval_secs: 1, retention_sweep_secs: 3 })
    const doc = uid('retention')
    const api = hostApi(server, life, doc)
    const writer = pool.provider({ app: life, doc, token: sessionToken({ app: life, doc, user: 'ret' }) })
    await waitSynced(writer)
    // Sweeps may come at any moment: every point is noted as it appears.
    const seen = new Map()
    const note = async () => { for (const p of await api.history()) seen.set(p.point, p.kind) }
    const type = async (ms) => {
      const until = Date.now() + ms
      while (Date.now() < until) {
        writer.doc.getText('title').insert(0, 'x')
        await sleep(100)
        await note()
      }
    }
    const publishes = []
    const publish = async () => {
      await waitFor(async () => (await api.draft()).status === 200, 'stored')
      const { etag } = await (await api.draft()).json()
      assert.equal((await api.publish(etag)).status, 200)
      await note()
      publishes.push(Math.max(...[...seen].filter(([, k]) => k === 'publish').map(([p]) => p)))
    }
    await type(1500)
    await publish()
    await type(1500)
    await publish()
    await type(2500)
    const autos = [...seen].filter(([, k]) => k === 'auto').map(([p]) => p).sort((a, b) => a - b)
    assert.ok(autos.length >= 3, `auto points were taken: ${autos}`)
    assert.ok(publishes[1] > publishes[0], `two publishes: ${publishes}`)
    writer.destroy()
    await sleep(3500) // a whole sweep period after the last change

    const trimmed = await waitFor(async () => {
      const h = await api.history()
      return h.filter((p) => p.kind === 'auto').length <= 2 && h.filter((p) => p.kind === 'publish').length === 1 && h
    }, 'the sweep trimmed the history', { timeout: 15_000 })
    const left = trimmed.map((p) => p.point)
    assert.ok(left.includes(publishes[1]), 'the last publish is kept')
    assert.ok(!left.includes(publishes[0]), 'the older publish went (one named point kept)')
    for (const p of trimmed) seen.set(p.point, p.kind) // a last point may come as the writer leaves
    const everyAuto = [...seen].filter(([, k]) => k === 'auto').map(([p]) => p).sort((a, b) => a - b)
    const keptAutos = trimmed.filter((p) => p.kind === 'auto').map((p) => p.point)
    assert.deepEqual(keptAutos, everyAuto.slice(-2), 'the two newest autos are the ones kept')
    const base = `${server.httpUrl}/v1/apps/${life.id}/docs/${doc}`
    const auth = { authorization: `Bearer ${hostToken({ app: life })}` }
    assert.equal((await fetch(`${base}/history/${publishes[0]}`, { headers: auth })).status, 404, 'its content is gone too')
    assert.equal((await fetch(`${base}/history/${publishes[1]}`, { headers: auth })).status, 200)
    assert.match((await (await api.draft()).json()).title, /^x+$/, 'the draft is untouched')
    // A discard still finds the last publish.
    assert.equal((await api.discard()).status, 200)
  })

  it('evicts a draft unused past evict_after_secs: final content to the host, 4410 to clients, 410 to reads, back with the host\'s next write', async () => {
    const rx = await receiver()
    cleanup.push(rx.close)
    const life = { ...app(rx.url), retention: { evict_after_secs: 3 } }
    const { server, pool } = await serve(life, { ...FAST, retention_sweep_secs: 1 })
    const token = (doc, user) => sessionToken({ app: life, doc, user })
    const unused = uid('unused')
    const inUse = uid('in-use')
    const api = hostApi(server, life, unused)
    const kept = hostApi(server, life, inUse)
    assert.equal((await api.put({ title: 'Old page', html: '<p>the final words</p>' })).status, 200)
    assert.equal((await kept.put({ title: 'Busy page' })).status, 200)
    const { etag } = await (await api.draft()).json()
    // Someone keeps the other page open (a viewer: opened, never changed).
    const reader = pool.raw({ app: life, doc: inUse, token: sessionToken({ app: life, doc: inUse, user: 'rea', mode: 'view' }) })
    await reader.handshake()

    const event = await waitFor(() => rx.accepted().find((r) => r.body?.doc === unused && r.body.type === 'evicted'), 'the evicted webhook', { timeout: 15_000 })
    assert.equal(event.body.title, 'Old page')
    assert.match(event.body.html, /the final words/)
    assert.equal(event.body.etag, etag, 'the version it had')
    assert.equal(typeof event.body.lastUsedAt, 'number')
    const gone = await api.draft()
    assert.equal(gone.status, 410)
    assert.equal((await gone.json()).code, 'evicted')
    assert.deepEqual(await api.history(), [], 'its history went with it')
    const listed = (await (await fetch(`${server.httpUrl}/v1/apps/${life.id}/docs`, { headers: { authorization: `Bearer ${hostToken({ app: life })}` } })).json()).docs
    assert.equal(typeof listed.find((d) => d.id === unused)?.evictedAt, 'number', 'listed as evicted')

    // A client that still has the page open somewhere is refused before any sync:
    // it cannot fill the evicted draft with its own copy.
    const late = pool.raw({ app: life, doc: unused, token: token(unused, 'lat') })
    const info = await expectClose(late, 4410, 'a join of the evicted draft')
    assert.equal(info.reason, 'document-evicted')
    assert.ok(!late.messages.some((m) => typeof m !== 'string' && m[0] === 0), 'no sync message at all')
    assert.equal((await api.draft()).status, 410, 'nothing was written')

    // The page in use stays.
    assert.equal((await kept.draft()).status, 200)
    assert.equal(reader.closeInfo, null)
    assert.ok(!rx.requests.some((r) => r.body?.doc === inUse && r.body.type === 'evicted'))

    // The host writes it again: it is back, for reads and for editors.
    assert.equal((await api.put({ title: 'Old page', html: '<p>restored by the host</p>' })).status, 200)
    const back = await api.draft()
    assert.equal(back.status, 200)
    assert.equal((await back.json()).title, 'Old page')
    const editor = pool.raw({ app: life, doc: unused, token: token(unused, 'edi') })
    await editor.handshake()
    assert.match(editor.receivedDoc().getXmlFragment('body').toString(), /restored by the host/)
  })

  it('an event given up on is a dead letter the host reads and acknowledges, counted for operators, kept across a restart', async () => {
    const rx = await receiver(() => ({ status: 500, body: 'down for the day' }))
    cleanup.push(rx.close)
    const life = app(rx.url)
    const other = { id: 'other', secrets: ['other-secret-0123456789abcdef0123456789ab'] }
    const config = { apps: [life, other], extraConfig: { ...FAST, webhook_max_age_secs: 1 } }
    let server = await startServer(config)
    cleanup.push(() => server.stop())
    const doc = uid('dead')
    const api = hostApi(server, life, doc)
    assert.equal((await api.put({ title: 'Nobody hears this' })).status, 200)
    const letters = (srv, appDef = life) => fetch(`${srv.httpUrl}/v1/apps/${appDef.id}/webhooks/dead-letters`, { headers: { authorization: `Bearer ${hostToken({ app: appDef })}` } })
    // The change raised `external-change` and then `saved`: both were refused.
    const listed = await waitFor(async () => {
      const { events } = await (await letters(server)).json()
      return events.length === 2 && events
    }, 'the refused events in the dead letters', { timeout: 15_000 })
    assert.deepEqual(listed.map((e) => e.type), ['external-change', 'saved'], 'oldest first')
    const [dead, saved] = listed
    assert.equal(dead.type, 'external-change')
    assert.equal(dead.doc, doc)
    assert.match(dead.reason, /^max-age: .*500/)
    assert.equal(dead.body.id, dead.id)
    assert.deepEqual(dead.body.fields, ['title'])
    assert.ok(rx.requests.some((r) => r.body?.id === dead.id), 'it was attempted first')
    const metric = async (srv) => Number(/^chorus_webhooks_dead_letters (\d+)$/m.exec(await (await fetch(`${srv.httpUrl}/metrics`)).text())?.[1])
    assert.equal(await metric(server), 2)
    assert.deepEqual((await (await letters(server, other)).json()).events, [], 'another app sees none of them')

    // Kept across a restart, and taken once.
    await server.stop({ keepDir: true })
    server = await startServer({ ...config, reuseDir: server.dir })
    assert.deepEqual((await (await letters(server)).json()).events.map((e) => e.id), [dead.id, saved.id])
    assert.equal(await metric(server), 2)
    const ack = (appDef) => fetch(`${server.httpUrl}/v1/apps/${appDef.id}/webhooks/dead-letters/${dead.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${hostToken({ app: appDef })}` } })
    assert.equal((await ack(other)).status, 404, 'not another app\'s to take')
    assert.equal((await ack(life)).status, 204)
    assert.equal((await ack(life)).status, 404, 'taken once')
    assert.deepEqual((await (await letters(server)).json()).events.map((e) => e.id), [saved.id])
    assert.equal(await metric(server), 1)
  })

  it('PUT …/content creates a missing document even with an empty title or body, and keeps it across a restart', async () => {
    const life = app('http://127.0.0.1:9/unused')
    const config = { apps: [life], extraConfig: FAST }
    let server = await startServer(config)
    cleanup.push(() => server.stop())
    const created = []
    for (const body of [{ title: '' }, { html: '' }, { title: '', html: '' }]) {
      const doc = uid('create')
      const api = hostApi(server, life, doc)
      assert.equal((await api.draft()).status, 404, 'missing before')
      const put = await api.put(body)
      assert.equal(put.status, 200, JSON.stringify(body))
      assert.deepEqual((await put.json()).changed, [], 'nothing to change in an empty draft')
      const read = await api.draft()
      assert.equal(read.status, 200, `created by ${JSON.stringify(body)}`)
      assert.equal((await read.json()).title, '')
      assert.ok((await api.list()).includes(doc), 'listed')
      created.push(doc)
    }
    // Stored, not only loaded: a restarted server finds them.
    await server.stop({ keepDir: true })
    server = await startServer({ ...config, reuseDir: server.dir })
    for (const doc of created) {
      assert.equal((await hostApi(server, life, doc).draft()).status, 200, `${doc} after a restart`)
    }
  })
})

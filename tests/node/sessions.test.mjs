// Session control by the host, exclusive mode and app enable/disable, against the real
// binary with stock y-websocket providers and opted-in raw clients:
//
// - GET …/sessions lists who is connected (user, mode, since);
// - downgrade makes one live session view-only (opted-in: `read-only downgraded`; its
//   writes are refused) without touching the others; DELETE ends one (4403
//   `session-ended`), the others keep editing;
// - exclusive mode (`collaboration = false`): the second editor joins view-only and is
//   told who holds the draft; its edits do not apply; when the first leaves the hold
//   passes to it (`editable`) and its edits apply;
// - the admin API disables an app: open sessions close with 4403 `app-disabled`, new
//   ones and host calls are refused; enabling lets them in again.
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, ClientPool, DEFAULT_APP, sessionToken, hostToken, waitFor, waitSynced, uid,
  sleep, SETTLE, parseChorusMessage, expectClose, updateMessage
} from './harness.mjs'

const EXCLUSIVE = Object.freeze({ id: 'solo', secrets: ['solo-secret-0123456789abcdef0123456789'], collaboration: false })
const ADMIN = 'admin-token-0123456789abcdef'

const paragraphs = (doc) => doc.getXmlFragment('body').toArray().map((el) => el.toArray().map((t) => t.toString()).join(''))
function addParagraph (doc, text) {
  const body = doc.getXmlFragment('body')
  doc.transact(() => {
    const p = new Y.XmlElement('p')
    body.insert(body.length, [p])
    p.insert(0, [new Y.XmlText(text)])
  })
}
const chorusMessages = (raw) => raw.messages.map(parseChorusMessage).filter(Boolean)

describe('sessions, exclusive mode, admin', () => {
  let server
  let pool
  before(async () => {
    server = await startServer({ apps: [DEFAULT_APP, EXCLUSIVE], extraConfig: { admin_token: ADMIN } })
  })
  after(async () => { await server?.stop() })
  afterEach(() => pool?.destroyAll())

  const api = (app, doc, tail) => `${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/${tail}`
  const auth = (app, doc) => ({ authorization: `Bearer ${hostToken({ app, doc })}` })
  async function listSessions (app, doc) {
    const res = await fetch(api(app, doc, 'sessions'), { headers: auth(app, doc) })
    assert.equal(res.status, 200)
    return (await res.json()).sessions
  }
  /** An opted-in raw client that syncs an empty doc (it only listens). */
  async function rawClient (app, doc, user) {
    const raw = pool.raw({ url: server.wsUrl(app.id, doc, sessionToken({ app, doc, user })) + '&chorus=1' })
    assert.ok(await raw.openPromise, `${user} connected`)
    return raw
  }

  it('lists, downgrades and ends single sessions without touching the others', async () => {
    pool = new ClientPool(server)
    const app = DEFAULT_APP
    const doc = uid('sessions')
    const ann = pool.provider({ app, doc, token: sessionToken({ app, doc, user: 'ann', name: 'Ann' }) })
    await waitSynced(ann)
    const bob = pool.provider({ app, doc, token: sessionToken({ app, doc, user: 'bob' }) })
    await waitSynced(bob)
    const cid = await rawClient(app, doc, 'cid')
    await sleep(SETTLE)
    const list = await listSessions(app, doc)
    assert.deepEqual(list.map((s) => [s.user, s.mode]), [['ann', 'edit'], ['bob', 'edit'], ['cid', 'edit']])
    assert.equal(list[0].name, 'Ann')
    assert.ok(list.every((s) => s.since > 0 && typeof s.id === 'string'))

    // Downgrade cid: it is told, and its edits no longer apply; ann and bob keep editing.
    const down = await fetch(api(app, doc, `sessions/${list[2].id}/downgrade`), { method: 'POST', headers: auth(app, doc) })
    assert.equal(down.status, 204)
    await waitFor(() => chorusMessages(cid).some((m) => m.kind === 3 && m.reason === 'downgraded'), 'cid told it is read-only')
    const stray = new Y.Doc()
    addParagraph(stray, 'FROM-DOWNGRADED')
    cid.send(updateMessage(Y.encodeStateAsUpdate(stray)))
    addParagraph(ann.doc, 'from ann')
    await waitFor(() => paragraphs(bob.doc).includes('from ann'), 'ann still edits')
    await sleep(SETTLE)
    assert.ok(!paragraphs(bob.doc).includes('FROM-DOWNGRADED'), 'the downgraded session cannot write')
    assert.deepEqual((await listSessions(app, doc)).map((s) => s.mode), ['edit', 'edit', 'view'])

    // End bob's session: 4403 session-ended; ann goes on.
    const end = await fetch(api(app, doc, `sessions/${list[1].id}`), { method: 'DELETE', headers: auth(app, doc) })
    assert.equal(end.status, 204)
    await waitFor(() => bob.closeEvents.some((e) => e.code === 4403 && e.reason === 'session-ended'), 'bob closed with 4403', {
      describe: () => JSON.stringify(bob.closeEvents)
    })
    bob.disconnect()
    addParagraph(ann.doc, 'ann after bob')
    await waitFor(async () => (await listSessions(app, doc)).length === 2, 'bob gone from the list')
    const again = await fetch(api(app, doc, `sessions/${list[1].id}`), { method: 'DELETE', headers: auth(app, doc) })
    assert.equal(again.status, 404)
    const bad = await fetch(api(app, doc, 'sessions/not-a-number'), { method: 'DELETE', headers: auth(app, doc) })
    assert.equal(bad.status, 400)
  })

  it('exclusive mode: the second editor is view-only until the first leaves', async () => {
    pool = new ClientPool(server)
    const app = EXCLUSIVE
    const doc = uid('solo')
    const ann = pool.provider({ app, doc, token: sessionToken({ app, doc, user: 'ann', name: 'Ann' }) })
    await waitSynced(ann)
    addParagraph(ann.doc, 'by ann')
    const bob = await rawClient(app, doc, 'bob')
    await waitFor(() => chorusMessages(bob).some((m) => m.kind === 3 && m.reason === 'held'), 'bob told the draft is held')
    assert.ok(chorusMessages(bob).some((m) => m.kind === 5), 'bob told who holds it')
    const list = await listSessions(app, doc)
    assert.deepEqual(list.map((s) => [s.user, s.mode, s.waiting]), [['ann', 'edit', false], ['bob', 'view', true]])

    // bob's edit does not apply while ann holds the draft.
    const bobDoc = new Y.Doc()
    addParagraph(bobDoc, 'BOB-WHILE-HELD')
    bob.send(updateMessage(Y.encodeStateAsUpdate(bobDoc)))
    await sleep(SETTLE)
    const watcher = pool.provider({ app, doc, token: sessionToken({ app, doc, user: 'watcher', mode: 'view' }) })
    await waitSynced(watcher)
    assert.deepEqual(paragraphs(watcher.doc), ['by ann'])

    // ann leaves: the hold passes to bob, who may edit now.
    ann.destroy()
    await waitFor(() => chorusMessages(bob).some((m) => m.kind === 6), 'bob told it may edit')
    const later = new Y.Doc()
    addParagraph(later, 'bob holds it')
    bob.send(updateMessage(Y.encodeStateAsUpdate(later)))
    await waitFor(() => paragraphs(watcher.doc).includes('bob holds it'), 'bob\'s edit applies', {
      describe: () => JSON.stringify(paragraphs(watcher.doc))
    })
    assert.deepEqual((await listSessions(app, doc)).find((s) => s.user === 'bob').mode, 'edit')
  })

  it('admin API: disabling an app closes its sessions with 4403 and refuses new ones', async () => {
    pool = new ClientPool(server)
    const app = DEFAULT_APP
    const doc = uid('admin')
    const ann = pool.provider({ app, doc, token: sessionToken({ app, doc, user: 'ann' }) })
    await waitSynced(ann)
    const admin = (action, token = ADMIN) => fetch(`${server.httpUrl}/v1/admin/apps/${app.id}/${action}`, {
      method: 'POST', headers: { authorization: `Bearer ${token}` }
    })
    assert.equal((await admin('disable', 'wrong-token')).status, 401)
    const off = await admin('disable')
    assert.equal(off.status, 200)
    assert.deepEqual(await off.json(), { id: app.id, enabled: false })
    await waitFor(() => ann.closeEvents.some((e) => e.code === 4403 && e.reason === 'app-disabled'), 'open session closed', {
      describe: () => JSON.stringify(ann.closeEvents)
    })
    ann.disconnect()
    const late = pool.raw({ doc, token: sessionToken({ app, doc, user: 'late' }) })
    const closed = await expectClose(late, 4403, 'new session refused')
    assert.equal(closed.reason, 'app-disabled')
    const host = await fetch(api(app, doc, 'draft'), { headers: auth(app, doc) })
    assert.equal(host.status, 403)
    assert.equal((await host.json()).code, 'app-disabled')

    assert.equal((await admin('enable')).status, 200)
    const back = pool.provider({ app, doc, token: sessionToken({ app, doc, user: 'back' }) })
    await waitSynced(back)
  })
})

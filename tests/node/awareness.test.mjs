// Awareness (presence) relay and server-side stamping of the `user` field.
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, ClientPool, DEFAULT_APP, sessionToken, waitFor, waitSynced, uid, sleep, SETTLE
} from './harness.mjs'

describe('awareness', () => {
  let server
  let pool

  before(async () => {
    server = await startServer({ apps: [DEFAULT_APP] })
    pool = new ClientPool(server)
  })
  afterEach(() => pool.destroyAll())
  after(async () => {
    pool?.destroyAll()
    await server?.stop()
  })

  const stateOf = (observer, subject) => observer.awareness.getStates().get(subject.doc.clientID)
  const show = (observer) => JSON.stringify(Object.fromEntries(observer.awareness.getStates()))

  it('peers see the server-stamped user from the token, not the client-claimed one', async () => {
    const doc = uid()
    const a = pool.provider({
      doc,
      token: sessionToken({ doc, user: 'user-alice', name: 'Alice Example', color: '#ff8800', avatar: 'https://example.com/alice.png' })
    })
    // A claims to be someone else.
    a.awareness.setLocalState({ user: { name: 'Mallory', id: 'evil', color: '#000000', avatar: 'https://evil.example/x.png' }, selection: { anchor: 1 } })
    const b = pool.provider({ doc, token: sessionToken({ doc, user: 'user-bob', name: 'Bob' }) })
    await Promise.all([waitSynced(a), waitSynced(b)])

    await waitFor(() => stateOf(b, a)?.selection?.anchor === 1, 'B sees A\'s awareness state (selection anchor 1)', { describe: () => show(b) })
    let seen = stateOf(b, a)
    assert.equal(seen.user?.id, 'user-alice', `user.id must be the token sub; B saw ${JSON.stringify(seen)}`)
    assert.equal(seen.user?.name, 'Alice Example', `user.name must come from the token; B saw ${JSON.stringify(seen)}`)
    assert.equal(seen.user?.color, '#ff8800', `user.color must come from the token; B saw ${JSON.stringify(seen)}`)
    assert.equal(seen.user?.avatar, 'https://example.com/alice.png', `user.avatar must come from the token; B saw ${JSON.stringify(seen)}`)

    // A later local update that re-claims another identity is stamped again;
    // non-user fields are relayed unchanged.
    a.awareness.setLocalState({ user: { name: 'Mallory 2', id: 'user-bob' }, selection: { anchor: 2 } })
    await waitFor(() => stateOf(b, a)?.selection?.anchor === 2, 'B sees A\'s second awareness update (selection anchor 2)', { describe: () => show(b) })
    seen = stateOf(b, a)
    assert.equal(seen.user?.id, 'user-alice', `second update: user.id must be the token sub; B saw ${JSON.stringify(seen)}`)
    assert.equal(seen.user?.name, 'Alice Example', `second update: user.name must come from the token; B saw ${JSON.stringify(seen)}`)

    // Field-level update through setLocalStateField too.
    a.awareness.setLocalStateField('user', { name: 'Mallory 3', id: 'evil3' })
    a.awareness.setLocalStateField('selection', { anchor: 3 })
    await waitFor(() => stateOf(b, a)?.selection?.anchor === 3, 'B sees A\'s third awareness update (selection anchor 3)', { describe: () => show(b) })
    seen = stateOf(b, a)
    assert.equal(seen.user?.id, 'user-alice', `third update: B saw ${JSON.stringify(seen)}`)
    assert.equal(seen.user?.name, 'Alice Example', `third update: B saw ${JSON.stringify(seen)}`)
  })

  it('a user without a color in the token still gets a server-derived color', async () => {
    const doc = uid()
    const a = pool.provider({ doc, token: sessionToken({ doc, user: 'user-nocolor', name: 'No Color' }) })
    a.awareness.setLocalState({ user: { name: 'No Color' }, selection: { anchor: 7 } }) // no color anywhere
    const b = pool.provider({ doc, token: sessionToken({ doc, user: 'user-bob', name: 'Bob' }) })
    await Promise.all([waitSynced(a), waitSynced(b)])
    await waitFor(() => stateOf(b, a)?.selection?.anchor === 7, 'B sees A\'s awareness', { describe: () => show(b) })
    const seen = stateOf(b, a)
    assert.equal(seen.user?.id, 'user-nocolor', JSON.stringify(seen))
    assert.equal(seen.user?.name, 'No Color', JSON.stringify(seen))
    assert.equal(typeof seen.user?.color, 'string', `derived color expected; B saw ${JSON.stringify(seen)}`)
    assert.ok(seen.user.color.length > 0, `derived color must be non-empty; B saw ${JSON.stringify(seen)}`)
  })

  it('a late joiner receives the existing awareness states (stamped)', async () => {
    const doc = uid()
    const a = pool.provider({ doc, token: sessionToken({ doc, user: 'user-alice', name: 'Alice' }) })
    a.awareness.setLocalState({ user: { name: 'Mallory', id: 'evil' }, selection: { anchor: 5 } })
    const b = pool.provider({ doc, token: sessionToken({ doc, user: 'user-bob', name: 'Bob' }) })
    await Promise.all([waitSynced(a), waitSynced(b)])
    await waitFor(() => stateOf(b, a)?.selection?.anchor === 5, 'B sees A')
    const c = pool.provider({ doc, token: sessionToken({ doc, user: 'user-carol', name: 'Carol' }) })
    // (a fresh Awareness' initial {} state has clock 0, which y-protocols peers ignore; set a field)
    c.awareness.setLocalStateField('selection', { anchor: 9 })
    await waitSynced(c)
    await waitFor(() => stateOf(c, a)?.selection?.anchor === 5, 'late joiner C sees A\'s awareness', { describe: () => show(c) })
    assert.equal(stateOf(c, a).user?.id, 'user-alice')
    assert.equal(stateOf(c, a).user?.name, 'Alice')
    // and A sees C
    await waitFor(() => stateOf(a, c)?.user?.id === 'user-carol', 'A sees C\'s stamped awareness', { describe: () => show(a) })
  })

  it('when a client disconnects cleanly, peers see its state removed', async () => {
    const doc = uid()
    const a = pool.provider({ doc, token: sessionToken({ doc, user: 'user-alice', name: 'Alice' }) })
    a.awareness.setLocalStateField('selection', { anchor: 1 })
    const b = pool.provider({ doc, token: sessionToken({ doc, user: 'user-bob', name: 'Bob' }) })
    await Promise.all([waitSynced(a), waitSynced(b)])
    const aId = a.doc.clientID
    await waitFor(() => b.awareness.getStates().has(aId), 'B sees A', { describe: () => show(b) })
    const removed = []
    b.awareness.on('change', ({ removed: r }) => removed.push(...r))
    a.destroy()
    await waitFor(() => !b.awareness.getStates().has(aId), 'B sees A\'s awareness state removed after A.destroy()', { describe: () => show(b) })
    assert.ok(removed.includes(aId), `B got a removal change event for A (${aId}); removed=${JSON.stringify(removed)}`)
  })

  it('when a client vanishes without saying goodbye, the server broadcasts its removal', async () => {
    const doc = uid()
    const a = pool.provider({ doc, token: sessionToken({ doc, user: 'user-alice', name: 'Alice' }) })
    a.awareness.setLocalStateField('selection', { anchor: 1 })
    const b = pool.provider({ doc, token: sessionToken({ doc, user: 'user-bob', name: 'Bob' }) })
    await Promise.all([waitSynced(a), waitSynced(b)])
    const aId = a.doc.clientID
    await waitFor(() => b.awareness.getStates().has(aId), 'B sees A', { describe: () => show(b) })
    await sleep(100)

    // Kill A's TCP connection: no awareness "null" update, no close frame. Only the
    // server can tell B that A left (well before the 30 s awareness timeout).
    a.shouldConnect = false
    a.ws.terminate()
    const t0 = Date.now()
    await waitFor(() => !b.awareness.getStates().has(aId),
      'B sees A\'s awareness removed after A\'s socket was terminated (server-side removal broadcast)', { describe: () => show(b) })
    assert.ok(Date.now() - t0 < 15_000, 'removal must come from the server, not from the 30 s awareness timeout')
    // B itself stays connected
    await sleep(SETTLE)
    assert.equal(b.closeEvents.length, 0, `B was disconnected: ${JSON.stringify(b.closeEvents)}`)
    assert.ok(b.wsconnected)
  })
})

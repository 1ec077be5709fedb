// An app's session policy (`[apps.sessions]`), against the real binary with raw `ws`
// clients that do exactly what a test says (and no more):
//
// - past `max_editors`, an edit session joins view-only and is told
//   `too-many-editors` (its edits are refused), or is refused with 4429 when the app
//   says `refuse`; a view session is never counted nor refused; a place that frees up
//   is taken by the next editor;
// - a session with no input is warned (`idle-warning`) and then closed with 4408
//   `idle-timeout`; a moving cursor is input, an awareness renewal repeating the same
//   state is not; the last editor's idle close ends the editing session (`closed`);
// - any session is closed with 4408 `session-expired` after `max_session_secs`, typing
//   or not.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, ClientPool, sessionToken, hostToken, waitFor, uid, sleep, expectClose,
  parseChorusMessage, updateMessage, encoding, MSG_AWARENESS
} from './harness.mjs'
import { receiver } from './lib/hook-receiver.mjs'

const secret = 'policy-secret-0123456789abcdef0123456789ab'
const NO_TIMERS = { idle_warning_secs: 0, idle_close_secs: 0, max_session_secs: 0 }

/** An awareness message for `clientId` at `clock` with `state` (a JSON value). */
function presence (clientId, clock, state) {
  const body = encoding.createEncoder()
  encoding.writeVarUint(body, 1)
  encoding.writeVarUint(body, clientId)
  encoding.writeVarUint(body, clock)
  encoding.writeVarString(body, JSON.stringify(state))
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_AWARENESS)
  encoding.writeVarUint8Array(enc, encoding.toUint8Array(body))
  return encoding.toUint8Array(enc)
}

/** An update that adds `text` to the title, made by a fresh Y.Doc. */
function titleUpdate (text) {
  const d = new Y.Doc()
  d.getText('title').insert(0, text)
  const u = Y.encodeStateAsUpdate(d)
  d.destroy()
  return updateMessage(u)
}

const chorusMessages = (client) => client.messages.map(parseChorusMessage).filter(Boolean)

describe('session policy', () => {
  const cleanup = []
  after(async () => { for (const f of cleanup.reverse()) await f() })

  async function serve (policy, extra = {}) {
    const app = { id: 'pol', secrets: [secret], sessions: { ...NO_TIMERS, ...policy }, ...extra }
    const server = await startServer({ apps: [app], extraConfig: { close_delay_secs: 1 } })
    cleanup.push(() => server.stop())
    const pool = new ClientPool(server)
    cleanup.push(() => pool.destroyAll())
    const open = async (doc, user, mode = 'edit') => {
      const c = pool.raw({ url: `${server.wsUrl(app.id, doc, sessionToken({ app, doc, user, mode }))}&chorus=1` })
      await c.handshake()
      return c
    }
    const draftTitle = async (doc) => {
      const res = await fetch(`${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/draft`, { headers: { authorization: `Bearer ${hostToken({ app })}` } })
      return res.status === 200 ? (await res.json()).title : null
    }
    const sessions = async (doc) => (await (await fetch(`${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/sessions`, { headers: { authorization: `Bearer ${hostToken({ app })}` } })).json()).sessions
    return { app, server, pool, open, draftTitle, sessions }
  }

  it('past max_editors an editor joins view-only and is told why; a freed place goes to the next one', async () => {
    const { open, draftTitle, sessions } = await serve({ max_editors: 2 })
    const doc = uid('cap')
    const a = await open(doc, 'ann')
    const b = await open(doc, 'bob')
    const viewer = await open(doc, 'vic', 'view')
    const c = await open(doc, 'cid')
    await waitFor(() => chorusMessages(c).some((m) => m.kind === 3 && m.reason === 'too-many-editors'), 'cid told too-many-editors')
    assert.ok(!chorusMessages(viewer).some((m) => m.kind === 3 && m.reason === 'too-many-editors'), 'a viewer is not counted nor capped')
    const modes = Object.fromEntries((await sessions(doc)).map((s) => [s.user, s.mode]))
    assert.deepEqual(modes, { ann: 'edit', bob: 'edit', vic: 'view', cid: 'view' })
    c.send(titleUpdate('FROM-CID'))
    a.send(titleUpdate('from-ann'))
    await waitFor(async () => (await draftTitle(doc))?.includes('from-ann'), "ann's edit stored")
    await sleep(300)
    assert.ok(!(await draftTitle(doc)).includes('FROM-CID'), 'the capped session cannot write')
    assert.ok(chorusMessages(c).some((m) => m.kind === 0 && m.code === 'read-only'))

    b.terminate()
    await waitFor(async () => (await sessions(doc)).length === 3, 'bob gone')
    const d = await open(doc, 'dan')
    await sleep(200)
    assert.ok(!chorusMessages(d).some((m) => m.kind === 3), 'the freed place is an edit place')
    assert.equal((await sessions(doc)).find((s) => s.user === 'dan').mode, 'edit')
  })

  it('an app that refuses closes the editor past max_editors with 4429 too-many-editors; viewers still join', async () => {
    const { pool, open, server, app } = await serve({ max_editors: 1, over_max_editors: 'refuse' })
    const doc = uid('refuse')
    await open(doc, 'ann')
    const late = pool.raw({ url: `${server.wsUrl(app.id, doc, sessionToken({ app, doc, user: 'bob' }))}&chorus=1` })
    const info = await expectClose(late, 4429, 'the second editor')
    assert.equal(info.reason, 'too-many-editors')
    const viewer = await open(doc, 'vic', 'view')
    await sleep(200)
    assert.equal(viewer.closeInfo, null)
  })

  it('warns an idle session, then closes it with 4408 idle-timeout; a moving cursor is input, a renewal is not; the editing session closes', async () => {
    const rx = await receiver()
    cleanup.push(rx.close)
    const { open } = await serve({ idle_warning_secs: 1, idle_close_secs: 2 }, { callback_url: rx.url })
    const doc = uid('idle')
    const idle = await open(doc, 'ida')
    const renewing = await open(doc, 'ren')
    const moving = await open(doc, 'mov')
    idle.send(titleUpdate('typed once'))
    let clock = 0
    const timer = setInterval(() => {
      clock++
      // The same state again with a new clock: what y-protocols sends every 15 s.
      renewing.send(presence(1001, clock, { user: { name: 'Ren' }, cursor: null }))
      // A cursor that moves: input.
      moving.send(presence(1002, clock, { user: { name: 'Mov' }, cursor: { anchor: clock, head: clock } }))
    }, 250)
    try {
      await waitFor(() => chorusMessages(idle).some((m) => m.kind === 8), 'the idle warning', { timeout: 4000 })
      const warning = chorusMessages(idle).find((m) => m.kind === 8)
      assert.ok(warning.closesInSecs <= 1, `closes in ${warning.closesInSecs} s`)
      for (const [client, who] of [[idle, 'the idle session'], [renewing, 'the session that only renews']]) {
        const info = await expectClose(client, 4408, who)
        assert.equal(info.reason, 'idle-timeout')
      }
      await sleep(1500)
      assert.equal(moving.closeInfo, null, 'a moving cursor keeps its session')
      assert.ok(!chorusMessages(moving).some((m) => m.kind === 8), 'and it is never warned')
    } finally {
      clearInterval(timer)
    }
    // Once the last one idles out too, the editing session closes: `closed` fires.
    await expectClose(moving, 4408, 'the session that stopped moving')
    await waitFor(() => rx.accepted().some((r) => r.body?.doc === doc && r.body.type === 'closed'), 'closed webhook')
  })

  it('closes any session after max_session_secs with 4408 session-expired, typing or not', async () => {
    const { open } = await serve({ max_session_secs: 1 })
    const doc = uid('life')
    const typist = await open(doc, 'tim')
    const started = Date.now()
    let n = 0
    const timer = setInterval(() => typist.send(titleUpdate(`k${n++}`)), 100)
    try {
      const info = await expectClose(typist, 4408, 'the busy session')
      assert.equal(info.reason, 'session-expired')
      assert.ok(Date.now() - started >= 900, 'not before its lifetime')
    } finally {
      clearInterval(timer)
    }
  })
})

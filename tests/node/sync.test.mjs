// Document sync through the Chorus server with stock y-websocket providers.
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, runChorus, ClientPool, DEFAULT_APP, sessionToken, decodeJwt, nowSec,
  waitFor, waitSynced, uid, sleep, SETTLE, xmlTree, withTimeout, TIMEOUT
} from './harness.mjs'

/** Builds a <p> with formatted inline text and an <h2>, inside one transaction. */
function writeBody (ydoc, label) {
  const body = ydoc.getXmlFragment('body')
  ydoc.transact(() => {
    const h2 = new Y.XmlElement('h2')
    h2.insert(0, [new Y.XmlText(`Heading ${label}`)])
    const p = new Y.XmlElement('p')
    const text = new Y.XmlText()
    p.insert(0, [text])
    body.insert(body.length, [h2, p])
    text.insert(0, `Hello from ${label}, `, {})
    text.insert(text.length, 'bold', { strong: {} })
    text.insert(text.length, ' and ', {})
    text.insert(text.length, 'a link', { a: { href: 'https://example.com/' + label } })
    text.format(0, 5, { em: {} })
  })
}

describe('sync', () => {
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

  const editProvider = (doc, user, extra = {}) =>
    pool.provider({ doc, token: sessionToken({ doc, user, name: user, ...extra }) })

  it('two providers converge on concurrent Y.Text (title) edits', async () => {
    const doc = uid()
    const a = editProvider(doc, 'alice')
    const b = editProvider(doc, 'bob')
    await Promise.all([waitSynced(a, 'A synced'), waitSynced(b, 'B synced')])
    const ta = a.doc.getText('title')
    const tb = b.doc.getText('title')

    // Round 1: truly concurrent inserts at the same position, in the same tick.
    ta.insert(0, 'Alpha')
    tb.insert(0, 'Bravo')
    await waitFor(() => ta.toString() === tb.toString() && ta.length === 10,
      'title converges after concurrent inserts', { describe: () => `A=${JSON.stringify(ta.toString())} B=${JSON.stringify(tb.toString())}` })
    assert.ok(ta.toString().includes('Alpha') && ta.toString().includes('Bravo'), `both inserts kept: ${ta.toString()}`)

    // Round 2: several concurrent mixed edits (each side batched in transactions).
    for (let round = 0; round < 3; round++) {
      a.doc.transact(() => {
        ta.insert(ta.length, ` a${round}`)
        ta.delete(0, 1)
      })
      b.doc.transact(() => {
        tb.insert(Math.floor(tb.length / 2), `[b${round}]`)
        tb.delete(tb.length - 1, 1)
      })
    }
    await waitFor(() => ta.toString() === tb.toString() && ta.toString().includes('[b2]') && ta.toString().includes(' a2'),
      'title converges after mixed concurrent edits', { describe: () => `A=${JSON.stringify(ta.toString())} B=${JSON.stringify(tb.toString())}` })
    assert.deepEqual(ta.toDelta(), tb.toDelta())
    assert.equal(a.closeEvents.length, 0, `A was disconnected: ${JSON.stringify(a.closeEvents)}`)
    assert.equal(b.closeEvents.length, 0, `B was disconnected: ${JSON.stringify(b.closeEvents)}`)
  })

  it('two providers converge on Y.XmlFragment (body) with elements and formatted text', async () => {
    const doc = uid()
    const a = editProvider(doc, 'alice')
    const b = editProvider(doc, 'bob')
    await Promise.all([waitSynced(a, 'A synced'), waitSynced(b, 'B synced')])
    const ba = a.doc.getXmlFragment('body')
    const bb = b.doc.getXmlFragment('body')

    writeBody(a.doc, 'A')
    writeBody(b.doc, 'B')
    await waitFor(() => ba.length === 4 && bb.length === 4 && ba.toString() === bb.toString(),
      'body converges (4 top-level elements on both sides)', { describe: () => `A=${ba.toString()}\n  B=${bb.toString()}` })
    assert.deepEqual(xmlTree(ba), xmlTree(bb))

    // The formatting survived the round trip through the server.
    const pFromA = bb.toArray().find((n) => n.nodeName === 'p' && n.toString().includes(' from A, '))
    assert.ok(pFromA, `B has A's paragraph: ${bb.toString()}`)
    const delta = pFromA.get(0).toDelta()
    assert.deepEqual(delta.find((d) => d.insert === 'bold')?.attributes, { strong: {} }, JSON.stringify(delta))
    assert.deepEqual(delta.find((d) => d.insert === 'a link')?.attributes, { a: { href: 'https://example.com/A' } }, JSON.stringify(delta))
    assert.deepEqual(delta[0], { insert: 'Hello', attributes: { em: {} } }, JSON.stringify(delta))

    // A later edit inside an existing element also converges.
    const pa = ba.toArray().find((n) => n.nodeName === 'p')
    pa.get(0).insert(0, 'EDIT ')
    await waitFor(() => bb.toString() === ba.toString() && bb.toString().includes('EDIT'),
      'nested edit converges', { describe: () => `A=${ba.toString()}\n  B=${bb.toString()}` })
  })

  it('a late provider receives the full state (title and body)', async () => {
    const doc = uid()
    const a = editProvider(doc, 'alice')
    const b = editProvider(doc, 'bob')
    await Promise.all([waitSynced(a), waitSynced(b)])
    a.doc.getText('title').insert(0, 'Late joiner title')
    writeBody(b.doc, 'B')
    const ta = a.doc.getText('title')
    await waitFor(() => b.doc.getText('title').toString() === ta.toString() &&
      a.doc.getXmlFragment('body').toString() === b.doc.getXmlFragment('body').toString() &&
      a.doc.getXmlFragment('body').length === 2, 'A and B converge before C joins')

    const c = editProvider(doc, 'carol')
    await waitSynced(c, 'C synced')
    // synced means the server's sync step 2 was applied: the state must be complete now
    await waitFor(() => c.doc.getText('title').toString() === 'Late joiner title' &&
      c.doc.getXmlFragment('body').toString() === a.doc.getXmlFragment('body').toString(),
    'late provider C has the full state', {
      describe: () => `C title=${JSON.stringify(c.doc.getText('title').toString())} body=${c.doc.getXmlFragment('body').toString()}`
    })
    assert.deepEqual(xmlTree(c.doc.getXmlFragment('body')), xmlTree(a.doc.getXmlFragment('body')))
  })

  it('the draft outlives its editors: a provider joining after all others left gets the state', async () => {
    const doc = uid()
    const a = editProvider(doc, 'alice')
    const b = editProvider(doc, 'bob')
    await Promise.all([waitSynced(a), waitSynced(b)])
    a.doc.getText('title').insert(0, 'Kept title')
    writeBody(a.doc, 'A')
    await waitFor(() => b.doc.getText('title').toString() === 'Kept title' && b.doc.getXmlFragment('body').length === 2,
      'B received A\'s edits (server processed them)')
    const expectedBody = xmlTree(a.doc.getXmlFragment('body'))
    a.destroy()
    b.destroy()
    await sleep(SETTLE)

    const d = editProvider(doc, 'dave')
    await waitSynced(d, 'D synced')
    await waitFor(() => d.doc.getText('title').toString() === 'Kept title' && d.doc.getXmlFragment('body').length === 2,
      'provider D (joined after everyone left) has the state', {
        describe: () => `D title=${JSON.stringify(d.doc.getText('title').toString())} body=${d.doc.getXmlFragment('body').toString()}`
      })
    assert.deepEqual(xmlTree(d.doc.getXmlFragment('body')), expectedBody)
  })

  it('documents are isolated: a provider on another content id receives nothing', async () => {
    const doc = uid('doc-a')
    const other = uid('doc-b')
    const a = editProvider(doc, 'alice')
    const b = editProvider(doc, 'bob')
    const x = editProvider(other, 'xavier')
    const xEvents = []
    x.doc.on('update', (u, origin) => { if (origin === x) xEvents.push(u) })
    await Promise.all([waitSynced(a), waitSynced(b), waitSynced(x)])

    a.doc.getText('title').insert(0, 'secret title of doc-a')
    writeBody(a.doc, 'A')
    await waitFor(() => b.doc.getText('title').toString() === 'secret title of doc-a' && b.doc.getXmlFragment('body').length === 2,
      'same-content provider B received the edits')
    await sleep(SETTLE)
    assert.equal(x.doc.getText('title').toString(), '', 'provider on another content id received the title')
    assert.equal(x.doc.getXmlFragment('body').length, 0, 'provider on another content id received the body')
    assert.equal(xEvents.length, 0, `provider on another content id received ${xEvents.length} remote update(s)`)

    // A fresh provider on the other content is empty too, and edits there do not leak back.
    const y = editProvider(other, 'yvonne')
    await waitSynced(y)
    assert.equal(y.doc.getText('title').toString(), '')
    assert.equal(y.doc.getXmlFragment('body').length, 0)
    y.doc.getText('title').insert(0, 'doc-b title')
    await waitFor(() => x.doc.getText('title').toString() === 'doc-b title', 'X receives Y\'s edit on doc-b')
    await sleep(SETTLE)
    assert.equal(a.doc.getText('title').toString(), 'secret title of doc-a', 'doc-b edit leaked into doc-a')
  })

  it('`chorus token` mints a token the server accepts', async () => {
    const doc = uid()
    const { code, stdout, stderr } = await runChorus(['token', '--app', DEFAULT_APP.id, '--secret', DEFAULT_APP.secrets[0],
      '--doc', doc, '--user', 'cli-user', '--name', 'Cli User', '--mode', 'edit', '--ttl', '60'])
    assert.equal(code, 0, `chorus token exited ${code}; stderr: ${stderr}`)
    const token = stdout.trim()
    assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `stdout is not a JWT: ${JSON.stringify(stdout)}`)
    const { header, payload } = decodeJwt(token)
    assert.equal(header.alg, 'HS256')
    assert.equal(payload.iss, DEFAULT_APP.id)
    assert.equal(payload.sub, 'cli-user')
    assert.equal(payload.doc, doc)
    assert.equal(payload.mode, 'edit')
    assert.equal(payload.name, 'Cli User')
    assert.ok(Math.abs(payload.exp - (nowSec() + 60)) <= 5, `exp ${payload.exp} should be now+60 (${nowSec() + 60})`)

    const cli = pool.provider({ doc, token })
    const other = editProvider(doc, 'bob')
    await Promise.all([waitSynced(cli, 'provider with CLI token synced'), waitSynced(other)])
    cli.doc.getText('title').insert(0, 'from cli token')
    await waitFor(() => other.doc.getText('title').toString() === 'from cli token', 'edit from CLI-token provider relayed')
    other.doc.getText('title').insert(0, '> ')
    await waitFor(() => cli.doc.getText('title').toString() === '> from cli token', 'edit relayed to CLI-token provider')
    assert.equal(cli.closeEvents.length, 0, `CLI-token provider was closed: ${JSON.stringify(cli.closeEvents)}`)
  })
})

describe('shutdown', () => {
  it('SIGTERM closes open websockets with 1012 and the server exits 0', async (t) => {
    const server = await startServer({ apps: [DEFAULT_APP] })
    const pool = new ClientPool(server)
    t.after(async () => { pool.destroyAll(); await server.stop() })
    const doc = uid()
    const raw = pool.raw({ doc, token: sessionToken({ doc, user: 'u1' }) })
    await raw.handshake()
    const p = pool.provider({ doc, token: sessionToken({ doc, user: 'u2' }) })
    await waitSynced(p)

    const stopped = server.stop()
    const info = await raw.waitClose('server closes sockets on SIGTERM')
    assert.equal(info.code, 1012, `expected close code 1012 on SIGTERM, got ${info.code} (${info.reason})`)
    await waitFor(() => p.closeEvents.length > 0, 'provider sees the close')
    assert.equal(p.closeEvents[0].code, 1012)
    const exit = await withTimeout(stopped, TIMEOUT + 15_000, 'server exit after SIGTERM')
    assert.equal(exit.forcedKill, undefined, 'server did not exit within 15 s of SIGTERM (SIGKILLed)')
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, `server output:\n${server.output()}`)
  })
})

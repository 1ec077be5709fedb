// Session-token verification, app/doc authorisation and view-mode enforcement.
import { describe, it, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Y, startServer, ClientPool, DEFAULT_APP, sessionToken, signJwt, sessionClaims, badToken, randomSecret,
  expectClose, waitFor, waitSynced, uid, sleep, SETTLE
} from './harness.mjs'

const WIKI = DEFAULT_APP
const CRM = { id: 'crm', secrets: ['crm-secret-' + randomSecret()], enabled: true }
const LEGACY = { id: 'legacy', secrets: ['legacy-secret-' + randomSecret()], enabled: false }
const SEED_TITLE = 'confidential seeded title'

describe('auth', () => {
  let server
  let pool
  let seedDoc

  before(async () => {
    server = await startServer({ apps: [WIKI, CRM, LEGACY] })
    pool = new ClientPool(server)
    // Seed a document so refused clients can be checked for leaks.
    seedDoc = uid('seed')
    const seeder = pool.provider({ doc: seedDoc, token: sessionToken({ doc: seedDoc, user: 'seeder' }) })
    await waitSynced(seeder, 'seeder synced')
    seeder.doc.getText('title').insert(0, SEED_TITLE)
    const check = pool.provider({ doc: seedDoc, token: sessionToken({ doc: seedDoc, user: 'checker' }) })
    await waitFor(() => check.doc.getText('title').toString() === SEED_TITLE, 'seed content relayed to a second provider')
    pool.destroyAll()
  })
  afterEach(() => pool.destroyAll())
  after(async () => {
    pool?.destroyAll()
    await server?.stop()
  })

  /** Connects a raw client, expects `code`, and checks nothing of the document leaked. */
  async function expectRefused ({ app = WIKI, doc = seedDoc, token, url }, code, label) {
    const c = pool.raw({ app, doc, token, url })
    await expectClose(c, code, label)
    assert.equal(c.opened, true, `${label}: the refusal must come as a close code after the websocket upgrade (error: ${c.error?.message})`)
    const leaked = c.receivedDoc()
    assert.equal(leaked.getText('title').toString(), '', `${label}: refused client received document content`)
    leaked.destroy()
  }

  describe('4401 bad or expired token', () => {
    it('unknown app → 4401 bad-signature, as a forged token (issue 28: app ids are not enumerable)', async () => {
      const ghost = { id: 'no-such-app', secrets: ['whatever-secret-0123456789abcdef0123'] }
      await expectRefused({ app: ghost, token: sessionToken({ app: ghost, doc: seedDoc }) }, 4401, 'unknown app')
    })

    const kinds = [
      ['expired token', 'expired'],
      ['token signed with the wrong secret', 'wrong-secret'],
      ['alg none with empty signature', 'alg-none'],
      ['HS512-signed token (correct secret, wrong alg)', 'hs512'],
      ['not-yet-valid token (nbf in the future)', 'not-yet-valid'],
      ['garbage token', 'garbage'],
      ['token whose payload is not JSON', 'bad-json'],
      ['tampered payload (signature of another payload)', 'tampered'],
      ['token without exp', 'missing-exp']
    ]
    for (const [label, kind] of kinds) {
      it(`${label} → 4401`, async () => {
        await expectRefused({ token: badToken(kind, { app: WIKI, doc: seedDoc }) }, 4401, label)
      })
    }

    it('missing token → 4401', async () => {
      await expectRefused({ token: undefined }, 4401, 'missing token')
    })

    it('empty token → 4401', async () => {
      await expectRefused({ token: '' }, 4401, 'empty token')
    })

    it('a stock provider with an expired token does not sync and stops reconnecting', async () => {
      const doc = uid()
      const p = pool.provider({ doc, token: badToken('expired', { app: WIKI, doc }) })
      const closed = new Promise((resolve) => p.on('closed', resolve))
      await waitFor(() => p.closeEvents.length > 0, 'provider with expired token gets closed', { describe: () => JSON.stringify(p.closeEvents) })
      assert.equal(p.closeEvents[0].code, 4401)
      await closed
      assert.equal(p.synced, false)
    })
  })

  describe('4403 forbidden', () => {
    it('disabled app (enabled = false) → 4403', async () => {
      const doc = uid()
      await expectRefused({ app: LEGACY, doc, token: sessionToken({ app: LEGACY, doc }) }, 4403, 'disabled app')
    })

    it('token for app X (signed with X\'s secret) used on app Y\'s URL → 4403', async () => {
      await expectRefused({ app: WIKI, token: sessionToken({ app: CRM, doc: seedDoc }) }, 4403, 'crm token on wiki URL')
    })

    it('token with iss of app X but signed with app Y\'s secret, on Y\'s URL → refused (4401 or 4403)', async () => {
      // Not a valid token of X (bad signature) nor of Y (wrong iss): either code is a correct refusal.
      const token = signJwt(sessionClaims({ app: CRM.id, doc: seedDoc }), WIKI.secrets[0])
      const c = pool.raw({ app: WIKI, doc: seedDoc, token })
      const info = await c.waitClose('iss=crm signed with wiki secret: refused')
      assert.ok([4401, 4403].includes(info.code), `expected 4401 or 4403, got ${info.code} (${info.reason})`)
      assert.equal(c.receivedDoc().getText('title').toString(), '', 'refused client received document content')
    })

    it('token whose doc does not match the URL content id → 4403', async () => {
      await expectRefused({ token: sessionToken({ doc: 'some-other-doc' }) }, 4403, 'wrong doc')
    })
  })

  describe('secret rotation', () => {
    it('a token signed with the second listed secret is accepted', async () => {
      const tokenOld = sessionToken({ doc: seedDoc, user: 'rotated', secret: WIKI.secrets[1] })
      const p = pool.provider({ doc: seedDoc, token: tokenOld })
      await waitSynced(p, 'provider with second-secret token synced')
      await waitFor(() => p.doc.getText('title').toString() === SEED_TITLE, 'second-secret provider receives the document')
      const q = pool.provider({ doc: seedDoc, token: sessionToken({ doc: seedDoc, user: 'current' }) })
      await waitSynced(q)
      p.doc.getText('title').insert(0, '[rotated] ')
      await waitFor(() => q.doc.getText('title').toString().startsWith('[rotated] '), 'edit from second-secret provider relayed')
      assert.equal(p.closeEvents.length, 0, JSON.stringify(p.closeEvents))
      // undo, so other tests see the seed title unchanged
      p.doc.getText('title').delete(0, '[rotated] '.length)
      await waitFor(() => q.doc.getText('title').toString() === SEED_TITLE, 'undo relayed')
    })
  })

  describe('view mode', () => {
    /** Barrier: V's awareness marker reaches E, so V's earlier frames were processed. */
    async function barrier (v, e, n) {
      v.awareness.setLocalStateField('marker', n)
      await waitFor(() => e.awareness.getStates().get(v.doc.clientID)?.marker === n,
        `editor sees the view session's awareness marker ${n} (ordering barrier)`,
        { describe: () => JSON.stringify(Object.fromEntries(e.awareness.getStates())) })
      await sleep(SETTLE)
    }

    it('a view-mode provider receives edits but its own edits never reach others', async () => {
      const doc = uid()
      const e = pool.provider({ doc, token: sessionToken({ doc, user: 'editor', mode: 'edit' }) })
      const v = pool.provider({ doc, token: sessionToken({ doc, user: 'viewer', mode: 'view' }) })
      await Promise.all([waitSynced(e, 'edit provider synced'), waitSynced(v, 'view provider synced')])

      // The view session receives the editor's edits.
      e.doc.getText('title').insert(0, 'editor title')
      const p = new Y.XmlElement('p')
      p.insert(0, [new Y.XmlText('editor paragraph')])
      e.doc.getXmlFragment('body').insert(0, [p])
      await waitFor(() => v.doc.getText('title').toString() === 'editor title' && v.doc.getXmlFragment('body').length === 1,
        'view provider receives the editor\'s title and body')

      // One local edit on the view side.
      v.doc.transact(() => {
        v.doc.getText('title').insert(0, 'VIEW-EDIT ')
        const vp = new Y.XmlElement('p')
        vp.insert(0, [new Y.XmlText('VIEW-PARAGRAPH')])
        v.doc.getXmlFragment('body').insert(0, [vp])
      })
      await barrier(v, e, 1)
      assert.equal(e.doc.getText('title').toString(), 'editor title', 'view-mode title edit reached the edit provider')
      assert.ok(!e.doc.getXmlFragment('body').toString().includes('VIEW-PARAGRAPH'), 'view-mode body edit reached the edit provider')

      // A fresh provider (state from the server) does not have it either.
      const f = pool.provider({ doc, token: sessionToken({ doc, user: 'fresh', mode: 'edit' }) })
      await waitSynced(f, 'fresh provider synced')
      await waitFor(() => f.doc.getText('title').toString().length > 0, 'fresh provider has the title')
      assert.equal(f.doc.getText('title').toString(), 'editor title', 'view-mode edit reached the server document')
      assert.ok(!f.doc.getXmlFragment('body').toString().includes('VIEW-PARAGRAPH'), 'view-mode body edit reached the server document')

      // The editor keeps editing; a view session that wrote once is still served (warned, not closed).
      e.doc.getText('title').insert(e.doc.getText('title').length, ' v2')
      await waitFor(() => f.doc.getText('title').toString() === 'editor title v2', 'fresh provider sees the editor\'s second edit')
      await waitFor(() => v.doc.getText('title').toString().includes('editor title v2'),
        'view provider still receives the editor\'s edits after its refused write',
        { describe: () => `view title=${JSON.stringify(v.doc.getText('title').toString())} closes=${JSON.stringify(v.closeEvents)}` })
    })

    it('a view-mode provider with offline local changes does not push them during sync', async () => {
      const doc = uid()
      const e = pool.provider({ doc, token: sessionToken({ doc, user: 'editor', mode: 'edit' }) })
      await waitSynced(e)
      e.doc.getText('title').insert(0, 'server title')

      const vdoc = new Y.Doc()
      vdoc.getText('title').insert(0, 'OFFLINE-VIEW-EDIT ')
      const v = pool.provider({ doc, ydoc: vdoc, token: sessionToken({ doc, user: 'viewer', mode: 'view' }) })
      await waitSynced(v, 'view provider synced')
      await waitFor(() => v.doc.getText('title').toString().includes('server title'), 'view provider receives server state')
      await barrier(v, e, 1)
      assert.equal(e.doc.getText('title').toString(), 'server title', 'view session\'s offline edits reached the editor via sync step 2')
      const f = pool.provider({ doc, token: sessionToken({ doc, user: 'fresh', mode: 'edit' }) })
      await waitSynced(f)
      await waitFor(() => f.doc.getText('title').toString().length > 0, 'fresh provider has the title')
      assert.equal(f.doc.getText('title').toString(), 'server title', 'view session\'s offline edits reached the server document')
    })

    it('repeated writes from a view session are never applied; if it is closed, the code is 4403', async () => {
      const doc = uid()
      const e = pool.provider({ doc, token: sessionToken({ doc, user: 'editor', mode: 'edit' }) })
      const v = pool.provider({ doc, token: sessionToken({ doc, user: 'viewer', mode: 'view' }) })
      await Promise.all([waitSynced(e), waitSynced(v)])
      e.doc.getText('title').insert(0, 'base')
      await waitFor(() => v.doc.getText('title').toString() === 'base', 'view receives base')
      for (let i = 0; i < 5; i++) {
        v.doc.getText('title').insert(0, `W${i} `)
        await sleep(50)
      }
      await sleep(SETTLE)
      assert.equal(e.doc.getText('title').toString(), 'base', 'a write from the view session reached the editor')
      for (const ev of v.closeEvents) {
        assert.equal(ev.code, 4403, `view session closed with ${ev.code} (${ev.reason}); expected 4403 (or no close)`)
      }
      const f = pool.provider({ doc, token: sessionToken({ doc, user: 'fresh', mode: 'edit' }) })
      await waitSynced(f)
      await waitFor(() => f.doc.getText('title').toString().length > 0, 'fresh provider has the title')
      assert.equal(f.doc.getText('title').toString(), 'base', 'a write from the view session reached the server document')
    })
  })
})

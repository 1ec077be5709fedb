// The npm `@hocuspocus/provider` (3.4.4, and 4.8.0 under the alias
// hocuspocus-provider-v4) against /v1/hocuspocus/{app} of the real chorus binary, on
// an app whose editor is TipTap:
//
// - it authenticates with the session JWT as its `token`, syncs, and what it writes
//   reaches a stock y-websocket client (and back);
// - `hasUnsyncedChanges` falls back to false once the server has saved its edits
//   (each "saved" is a SyncStatus);
// - a view token is authenticated with scope `readonly`; an expired token fails
//   authentication with the reason `token-expired`, and nothing it writes is kept;
// - presence: the provider's awareness carries the name from the token;
// - who published or discarded reaches the provider's `onStateless` as JSON.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HocuspocusProvider as ProviderV3 } from '@hocuspocus/provider'
import { HocuspocusProvider as ProviderV4 } from 'hocuspocus-provider-v4'
import {
  Y, WebSocket, startServer, ClientPool, sessionToken, hostToken, waitFor, waitSynced, uid, signJwt, sessionClaims, nowSec, sleep, SETTLE
} from './harness.mjs'

const APP = Object.freeze({ id: 'hp-wiki', secrets: ['hp-wiki-secret-0123456789abcdef0123456789'], editor: 'tiptap' })

for (const [label, HocuspocusProvider] of [['@hocuspocus/provider 3.4.4', ProviderV3], ['@hocuspocus/provider 4.8.0', ProviderV4]]) {
  describe(`${label} on /v1/hocuspocus`, () => {
    let server
    let pool
    const providers = []

    const connect = ({ doc, token, ydoc = new Y.Doc() }) => {
      const events = { authenticated: [], failed: [], closes: [] }
      const provider = new HocuspocusProvider({
        url: `${server.wsBase.replace('/v1/ws', '/v1/hocuspocus')}/${APP.id}`,
        name: doc,
        token,
        document: ydoc,
        WebSocketPolyfill: WebSocket,
        onAuthenticated: (e) => events.authenticated.push(e?.scope ?? 'authenticated'),
        onAuthenticationFailed: (e) => events.failed.push(e?.reason ?? 'failed'),
        onClose: (e) => events.closes.push(e?.event?.code ?? e?.code),
        onStateless: (e) => { events.stateless ??= []; events.stateless.push(e.payload) }
      })
      provider.events = events
      providers.push(provider)
      return provider
    }

    before(async () => {
      server = await startServer({ apps: [APP] })
      pool = new ClientPool(server)
    })

    after(async () => {
      for (const p of providers) p.destroy()
      pool?.destroyAll()
      await server?.stop()
    })

    it('authenticates with the JWT, syncs both ways with y-websocket, and counts its changes saved', async () => {
      const doc = uid('hp')
      const hp = connect({ doc, token: sessionToken({ app: APP, doc, user: 'ana', name: 'Ana from the token' }) })
      await waitFor(() => hp.isSynced, 'the provider synced')
      assert.deepEqual(hp.events.authenticated, ['read-write'])
      const fragment = hp.document.getXmlFragment('default')
      hp.document.transact(() => {
        const p = new Y.XmlElement('paragraph')
        p.insert(0, [new Y.XmlText('from hocuspocus')])
        fragment.insert(0, [p])
      })
      assert.equal(hp.hasUnsyncedChanges, true, 'an edit in flight')
      await waitFor(() => !hp.hasUnsyncedChanges, 'every change acknowledged as saved (SyncStatus)')

      const yws = pool.provider({ app: APP, doc, token: sessionToken({ app: APP, doc, user: 'ben' }) })
      await waitSynced(yws)
      assert.equal(yws.doc.getXmlFragment('default').toString(), '<paragraph>from hocuspocus</paragraph>')
      yws.doc.transact(() => {
        const p = new Y.XmlElement('paragraph')
        p.insert(0, [new Y.XmlText('from y-websocket')])
        yws.doc.getXmlFragment('default').insert(1, [p])
      })
      await waitFor(() => fragment.length === 2, 'the y-websocket edit reaches the provider')
      assert.equal(fragment.get(1).toString(), '<paragraph>from y-websocket</paragraph>')

      // The host reads what both wrote, as HTML.
      const res = await fetch(`${server.httpUrl}/v1/apps/${APP.id}/docs/${doc}/draft?format=html`,
        { headers: { authorization: `Bearer ${hostToken({ app: APP, doc })}` } })
      assert.equal(await res.text(), '<p>from hocuspocus</p><p>from y-websocket</p>')

      // Presence: the name the y-websocket client sees is the token's.
      hp.setAwarenessField('user', { name: 'someone else', color: '#00ff00' })
      await waitFor(() => [...yws.awareness.getStates().values()].some((s) => s.user?.name === 'Ana from the token'),
        'the provider\'s presence, with the server-stamped name')
    })

    it('opens a view token read-only and refuses an expired one with its reason', async () => {
      const doc = uid('hp-auth')
      const viewer = connect({ doc, token: sessionToken({ app: APP, doc, user: 'val', mode: 'view' }) })
      await waitFor(() => viewer.events.authenticated.length > 0, 'the viewer authenticated')
      assert.deepEqual(viewer.events.authenticated, ['readonly'])

      const claims = sessionClaims({ app: APP.id, doc, user: 'late' })
      claims.exp = nowSec() - 60
      claims.iat = nowSec() - 120
      const late = connect({ doc, token: signJwt(claims, APP.secrets[0]) })
      await waitFor(() => late.events.failed.length > 0, 'authentication failed')
      assert.deepEqual(late.events.failed, ['token-expired'])
      late.document.getXmlFragment('default').insert(0, [new Y.XmlElement('paragraph')])
      await sleep(SETTLE)
      const reader = pool.provider({ app: APP, doc, token: sessionToken({ app: APP, doc, user: 'rita' }) })
      await waitSynced(reader)
      assert.equal(reader.doc.getXmlFragment('default').length, 0, 'nothing from the refused provider')
    })

    it('hears who published and who discarded as stateless messages', async () => {
      const doc = uid('hp-actions')
      const hp = connect({ doc, token: sessionToken({ app: APP, doc, user: 'pia' }) })
      await waitFor(() => hp.isSynced, 'the provider synced')
      const base = `${server.httpUrl}/v1/apps/${APP.id}/docs/${doc}`
      const headers = { authorization: `Bearer ${hostToken({ app: APP })}`, 'content-type': 'application/json' }
      assert.equal((await fetch(`${base}/content`, { method: 'PUT', headers, body: JSON.stringify({ html: '<p>kept</p>' }) })).status, 200)
      const { etag } = await (await fetch(`${base}/draft`, { headers })).json()
      const published = await fetch(`${base}/publish`, { method: 'POST', headers: { ...headers, 'if-match': etag }, body: JSON.stringify({ by: { id: 'u-1', name: 'Ann' } }) })
      assert.equal(published.status, 200)
      assert.equal((await fetch(`${base}/discard`, { method: 'POST', headers, body: JSON.stringify({ by: { name: 'Bo "the" <editor>' } }) })).status, 200)
      await waitFor(() => (hp.events.stateless ?? []).length >= 2, 'two stateless messages')
      assert.deepEqual(hp.events.stateless.map((p) => JSON.parse(p)), [
        { chorus: 'host-action', action: 'published', userId: 'u-1', name: 'Ann' },
        { chorus: 'host-action', action: 'discarded', userId: '', name: 'Bo "the" <editor>' }
      ])
    })
  })
}

// A lone stock provider must not be dropped by its own 30-second silence timeout
// (y-websocket's messageReconnectTimeout): the server sends a keepalive frame.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, ClientPool, DEFAULT_APP, sessionToken, waitSynced, uid, sleep
} from './harness.mjs'

describe('keepalive', () => {
  let server
  let pool

  before(async () => {
    server = await startServer({ apps: [DEFAULT_APP] })
    pool = new ClientPool(server)
  })
  after(async () => {
    pool?.destroyAll()
    await server?.stop()
  })

  it('a lone provider stays connected for 35 s without reconnecting', async () => {
    const doc = uid()
    const p = pool.provider({ doc, token: sessionToken({ doc, user: 'solo' }) })
    await waitSynced(p, 'solo synced')
    let disconnects = 0
    p.on('status', ({ status }) => { if (status === 'disconnected') disconnects++ })
    const firstSocket = p.ws
    await sleep(35_000)
    assert.equal(disconnects, 0, 'the provider never dropped its connection')
    assert.equal(p.ws, firstSocket, 'still the same websocket')
    assert.equal(p.wsconnected, true)
  })
})

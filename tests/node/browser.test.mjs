// A stock y-websocket WebsocketProvider running in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core) syncs with a Node provider through
// the real chorus binary: text, XML body and server-stamped presence.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { chromium } from 'playwright-core'
import {
  Y, startServer, ClientPool, DEFAULT_APP, sessionToken, waitFor, waitSynced, uid
} from './harness.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Serve one page that loads the bundled Yjs stack, on 127.0.0.1:<free port>. */
async function servePage () {
  const bundle = await esbuild.build({
    entryPoints: [path.join(here, 'browser-entry.mjs')],
    bundle: true,
    format: 'iife',
    write: false,
    logLevel: 'silent'
  })
  const js = bundle.outputFiles[0].text
  const html = '<!doctype html><meta charset="utf-8"><title>chorus browser test</title><script src="/yjs.js"></script>'
  const server = http.createServer((req, res) => {
    if (req.url === '/yjs.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(html)
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() }
}

describe('browser', () => {
  let chorus, pool, page, browser, site

  before(async () => {
    chorus = await startServer({ apps: [DEFAULT_APP] })
    pool = new ClientPool(chorus)
    site = await servePage()
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
    page = await browser.newPage()
    await page.goto(site.url)
    await page.waitForFunction(() => typeof window.WebsocketProvider === 'function')
  })
  after(async () => {
    await browser?.close()
    site?.close()
    pool?.destroyAll()
    await chorus?.stop()
  })

  it('a stock WebsocketProvider in Chromium syncs text, body and presence with a Node provider', async () => {
    const doc = uid('browser')
    const browserToken = sessionToken({ doc, user: 'bea', name: 'Bea in Chromium' })
    await page.evaluate(({ base, doc, token }) => {
      const ydoc = new window.Y.Doc()
      const provider = new window.WebsocketProvider(base, doc, ydoc, { params: { token } })
      provider.awareness.setLocalStateField('user', { name: 'Impostor' })
      window.t = { ydoc, provider, synced: false }
      provider.on('sync', (s) => { window.t.synced = s })
    }, { base: `${chorus.wsBase}/${DEFAULT_APP.id}`, doc, token: browserToken })
    await page.waitForFunction(() => window.t.synced === true, null, { timeout: 10_000 })

    const node = pool.provider({ doc, token: sessionToken({ doc, user: 'nils', name: 'Nils in Node' }) })
    await waitSynced(node, 'node provider synced')
    node.awareness.setLocalStateField('cursor', { anchor: 0 })

    // Browser → Node.
    await page.evaluate(() => window.t.ydoc.getText('title').insert(0, 'Typed in Chromium'))
    await waitFor(() => node.doc.getText('title').toString() === 'Typed in Chromium', 'node sees the browser edit')

    // Node → browser, into the XML body.
    const p = new Y.XmlElement('p')
    p.insert(0, [new Y.XmlText('Written in Node')])
    node.doc.getXmlFragment('body').insert(0, [p])
    await page.waitForFunction(() => window.t.ydoc.getXmlFragment('body').toString() === '<p>Written in Node</p>', null, { timeout: 10_000 })

    // Presence: the browser sees Node's user as stamped by the server, and vice versa.
    await page.waitForFunction(() => [...window.t.provider.awareness.getStates().values()]
      .some((s) => s.user?.name === 'Nils in Node'), null, { timeout: 10_000 })
    await waitFor(() => [...node.awareness.getStates().values()].some((s) => s.user?.name === 'Bea in Chromium'),
      'node sees the browser user under its token name, not the name it claimed')
    const claimed = [...node.awareness.getStates().values()].filter((s) => s.user?.name === 'Impostor')
    assert.equal(claimed.length, 0)
  })
})

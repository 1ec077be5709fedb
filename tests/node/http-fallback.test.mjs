// The web client where websockets are blocked: the demo page (ChorusProvider) in
// headless Chromium behind Debian's nginx configured as a proxy that strips the
// websocket upgrade, and behind a proxy that holds every response back until it
// is complete (lib/buffering-proxy.mjs: nginx cannot be made to). The provider must fall back to the HTTP
// transport by itself, with two people editing, seeing each other's carets and
// getting "Saved"; going offline and back, and nginx killed mid-edit, lose nothing
// (the oracle: the server's draft through the host API, and the other page).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { startServer, hostToken, sessionToken, randomSecret, uid, waitFor } from './harness.mjs'
import { startBlockingProxy } from './lib/nginx.mjs'
import { startBufferingProxy } from './lib/buffering-proxy.mjs'
import { buildWebClient, definePlainText, launchChromium } from './lib/browser.mjs'

const DEMO_SECRET = randomSecret()
const DEMO_APP = { id: 'demo', secrets: [DEMO_SECRET] }
const TIPTAP_APP = Object.freeze({ id: 'tiptap-wiki', secrets: ['tiptap-wiki-secret-0123456789abcdef'], editor: 'tiptap' })
const here = path.dirname(fileURLToPath(import.meta.url))

/** tiptap-entry.mjs bundled, served from a page of its own origin (the providers then call Chorus cross-origin). */
async function serveTipTapPage () {
  const result = await esbuild.build({
    entryPoints: [path.join(here, 'tiptap-entry.mjs')], bundle: true, format: 'iife', write: false, logLevel: 'silent'
  })
  const js = result.outputFiles[0].text
  const html = '<!doctype html><meta charset="utf-8"><title>tiptap over http</title><body><script src="/tiptap.js"></script>'
  const server = http.createServer((req, res) => {
    if (req.url === '/tiptap.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((resolve) => server.close(resolve)) }
}

describe('web client where websockets are blocked (Chromium behind nginx)', () => {
  let chorus, browser

  before(async () => {
    await buildWebClient()
    chorus = await startServer({
      apps: [TIPTAP_APP],
      extraConfig: { demo: true, demo_secret: DEMO_SECRET, http_transport: { session_timeout_secs: 10, heartbeat_secs: 2, poll_wait_secs: 5 } }
    })
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    await chorus?.stop()
  })

  async function hostPut (doc, body) {
    const res = await fetch(`${chorus.httpUrl}/v1/apps/demo/docs/${doc}/content`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}`, 'content-type': 'application/json' },
      body: JSON.stringify(body)
    })
    assert.equal(res.status, 200, await res.text())
  }

  async function draftText (doc) {
    const res = await fetch(`${chorus.httpUrl}/v1/apps/demo/docs/${doc}/draft?format=html`, {
      headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}` }
    })
    assert.equal(res.status, 200)
    return (await res.text()).replace(/<[^>]*>/g, '')
  }

  /** The demo page for `user` through `proxy`, once synced; `page.loadedIn` is how long that took. */
  async function openThrough (proxy, doc, user) {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.addInitScript(definePlainText)
    page.errors = []
    page.on('pageerror', (err) => page.errors.push(err))
    const started = Date.now()
    await page.goto(`${proxy.url}/demo?${new URLSearchParams({ doc, users: user })}`)
    await page.waitForFunction(() => window.chorusDemo?.panes.every((p) => p.provider.synced), null, { timeout: 20_000 })
    page.loadedIn = Date.now() - started
    return page
  }

  const provider = (page, what) => page.evaluate((w) => {
    const p = window.chorusDemo.panes[0].provider
    return { transport: p.transport, fallbacks: p.fallbacks, mode: p.ws?.mode ?? null, connected: p.status }[w]
  }, what)

  async function typeAtEnd (page, text) {
    await page.click('.ProseMirror p')
    await page.keyboard.press('End')
    await page.keyboard.type(text, { delay: 10 })
  }

  const paragraph = (page) => page.evaluate(() => window.plainText('.ProseMirror p'))

  it('falls back to HTTP by itself: two people edit, see each other\'s caret, get Saved; offline and a cut proxy lose nothing', async () => {
    const proxy = await startBlockingProxy([`127.0.0.1:${chorus.port}`])
    const doc = uid('blocked')
    await hostPut(doc, { title: 'Blocked', html: '<p>Start.</p>' })
    const alice = await openThrough(proxy, doc, 'alice')
    const bob = await openThrough(proxy, doc, 'bob')
    try {
      for (const page of [alice, bob]) {
        assert.equal(await provider(page, 'transport'), 'http')
        assert.ok(await provider(page, 'fallbacks') >= 1)
        assert.equal(await page.getAttribute('.status', 'data-transport'), 'http')
      }
      console.log(`# loaded and synced through the blocking proxy in ${alice.loadedIn} ms and ${bob.loadedIn} ms`)

      await typeAtEnd(alice, ' Alice over HTTP.')
      await bob.waitForFunction(() => window.plainText('.ProseMirror p') === 'Start. Alice over HTTP.', null, { timeout: 5000 })
      await typeAtEnd(bob, ' Bob too.')
      const both = 'Start. Alice over HTTP. Bob too.'
      await alice.waitForFunction((t) => window.plainText('.ProseMirror p') === t, both, { timeout: 5000 })
      await alice.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      await bob.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      assert.equal(await draftText(doc), both, 'the server holds what both see')
      await bob.waitForFunction(() => [...document.querySelectorAll('.chorus-cursor-label')].some((e) => e.textContent === 'Alice'), null, { timeout: 5000 })
      await alice.waitForFunction(() => [...document.querySelectorAll('.chorus-cursor-label')].some((e) => e.textContent === 'Bob'), null, { timeout: 5000 })

      // Offline for a while, typing; back online: the edit arrives.
      await alice.context().setOffline(true)
      await typeAtEnd(alice, ' Offline.')
      await new Promise((resolve) => setTimeout(resolve, 1500))
      await alice.context().setOffline(false)
      const afterOffline = `${both} Offline.`
      await bob.waitForFunction((t) => window.plainText('.ProseMirror p') === t, afterOffline, { timeout: 15_000 })

      // The proxy is killed and started again while Alice types: nothing lost.
      const typing = typeAtEnd(alice, ' Typed through a cut proxy, every letter.')
      await new Promise((resolve) => setTimeout(resolve, 150))
      await proxy.restart()
      await typing
      const final = `${afterOffline} Typed through a cut proxy, every letter.`
      await bob.waitForFunction((t) => window.plainText('.ProseMirror p') === t, final, { timeout: 20_000 })
      await alice.waitForSelector('.saved[data-saved="true"]', { timeout: 10_000 })
      assert.equal(await paragraph(alice), final)
      assert.equal(await draftText(doc), final)
      assert.deepEqual(alice.errors, [])
      assert.deepEqual(bob.errors, [])
    } finally {
      await alice.context().close()
      await bob.context().close()
      await proxy.close()
    }
  })

  it('long-polls where a proxy holds streams back, and still edits together', async () => {
    const proxy = await startBufferingProxy(chorus.httpUrl)
    const doc = uid('buffered')
    await hostPut(doc, { title: 'Buffered', html: '<p>Start.</p>' })
    const alice = await openThrough(proxy, doc, 'alice')
    const bob = await openThrough(proxy, doc, 'bob')
    try {
      console.log(`# synced through the buffering proxy in ${alice.loadedIn} ms and ${bob.loadedIn} ms`)
      for (const page of [alice, bob]) {
        assert.equal(await provider(page, 'transport'), 'http')
        assert.equal(await provider(page, 'mode'), 'poll', 'the held-back stream was given up for long-polling')
      }
      await typeAtEnd(alice, ' Polled.')
      await bob.waitForFunction(() => window.plainText('.ProseMirror p') === 'Start. Polled.', null, { timeout: 5000 })
      await typeAtEnd(bob, ' Both ways.')
      await alice.waitForFunction(() => window.plainText('.ProseMirror p') === 'Start. Polled. Both ways.', null, { timeout: 5000 })
      await alice.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      await bob.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      assert.equal(await draftText(doc), 'Start. Polled. Both ways.')
      await bob.waitForFunction(() => [...document.querySelectorAll('.chorus-cursor-label')].some((e) => e.textContent === 'Alice'), null, { timeout: 5000 })
      assert.deepEqual(alice.errors, [])
    } finally {
      await alice.context().close()
      await bob.context().close()
      await proxy.close()
    }
  })

  it('moves back to a websocket once the proxy lets upgrades through, losing nothing', async () => {
    const proxy = await startBlockingProxy([`127.0.0.1:${chorus.port}`])
    const doc = uid('upgrade')
    await hostPut(doc, { title: 'Upgrade', html: '<p>Start.</p>' })
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.addInitScript(definePlainText)
    try {
      await page.goto(`${proxy.url}/demo?${new URLSearchParams({ doc, users: 'alice', upgrade_every_ms: '1000' })}`)
      await page.waitForFunction(() => window.chorusDemo?.panes[0].provider.synced, null, { timeout: 20_000 })
      assert.equal(await provider(page, 'transport'), 'http')
      await typeAtEnd(page, ' On HTTP.')
      await page.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      // The network changes: upgrades get through now. Within a probe or two the
      // provider is on a websocket again.
      await proxy.allowUpgrades(true)
      const opened = Date.now()
      await page.waitForFunction(() => window.chorusDemo.panes[0].provider.transport === 'websocket' &&
        window.chorusDemo.panes[0].provider.synced, null, { timeout: 15_000 })
      console.log(`# back on a websocket ${Date.now() - opened} ms after upgrades were let through (probe every 1 s)`)
      assert.equal(await page.evaluate(() => window.chorusDemo.panes[0].provider.upgrades), 1)
      assert.equal(await page.getAttribute('.status', 'data-transport'), 'websocket')
      await typeAtEnd(page, ' On a websocket.')
      await page.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      assert.equal(await draftText(doc), 'Start. On HTTP. On a websocket.')
    } finally {
      await context.close()
      await proxy.close()
    }
  })

  const proxies = {
    'an nginx that strips upgrades': () => startBlockingProxy([`127.0.0.1:${chorus.port}`]),
    'a proxy that holds streams back (long-polling)': () => startBufferingProxy(chorus.httpUrl)
  }
  for (const [behind, startProxy] of Object.entries(proxies)) for (const kind of ['y-websocket', 'hocuspocus']) {
    it(`TipTap on a stock ${kind} provider with the HTTP transport as its WebSocketPolyfill, behind ${behind}: edits, carets, offline, a cut proxy`, async () => {
      const proxy = await startProxy()
      const site = await serveTipTapPage()
      const doc = uid(`tiptap-${kind}`)
      const pages = []
      const open = async (name) => {
        const context = await browser.newContext()
        const page = await context.newPage()
        page.errors = []
        page.on('pageerror', (e) => page.errors.push(e.message))
        await page.goto(site.url)
        await page.waitForFunction(() => typeof window.makeEditor === 'function')
        const ws = proxy.url.replace('http:', 'ws:')
        await page.evaluate((opts) => window.makeEditor(opts), {
          kind,
          http: true,
          url: kind === 'hocuspocus' ? `${ws}/v1/hocuspocus/${TIPTAP_APP.id}` : `${ws}/v1/ws/${TIPTAP_APP.id}`,
          room: doc,
          token: sessionToken({ app: TIPTAP_APP, doc, user: `user-${name}`, name }),
          user: { name, color: '#3366ff' },
          timeout: 15_000
        })
        await page.waitForSelector('#editor .ProseMirror[contenteditable="true"]')
        pages.push(page)
        return page
      }
      const seen = new Map()
      const editorText = async (page) => {
        const text = await page.evaluate(() => window.chorus.editor.getText())
        seen.set(page, text)
        return text
      }
      const describe = () => JSON.stringify(pages.map((p) => seen.get(p)))
      // As a person does: click into the editor, go to the end, type. (TipTap's
      // focus('end') command moves the selection on a later frame, and a key
      // typed before then went to the old place or nowhere.)
      const typeAtEnd = async (page, text) => {
        await page.click('#editor .ProseMirror')
        await page.keyboard.press('Control+End')
        await page.keyboard.type(text, { delay: 10 })
      }
      try {
        const alice = await open('Alice')
        const bob = await open('Bob')
        await typeAtEnd(alice, 'Alice over HTTP.')
        await waitFor(async () => (await editorText(bob)) === 'Alice over HTTP.', 'Bob sees Alice\'s text', { describe })
        await typeAtEnd(bob, '/Bob too.')
        await waitFor(async () => (await editorText(alice)) === 'Alice over HTTP./Bob too.', 'Alice sees Bob\'s text', { describe })
        // Carets, labelled with the token's names.
        await bob.waitForFunction(() => [...document.querySelectorAll('.collaboration-carets__label')].some((l) => l.textContent === 'Alice'), null, { timeout: 10_000 })

        await alice.context().setOffline(true)
        await typeAtEnd(alice, '/Offline.')
        await new Promise((resolve) => setTimeout(resolve, 1500))
        await alice.context().setOffline(false)
        await waitFor(async () => (await editorText(bob)) === 'Alice over HTTP./Bob too./Offline.', 'the offline edit arrives', { timeout: 30_000, describe })

        const typing = typeAtEnd(alice, '/Through a cut proxy.')
        await new Promise((resolve) => setTimeout(resolve, 120))
        await proxy.restart()
        await typing
        const final = 'Alice over HTTP./Bob too./Offline./Through a cut proxy.'
        await waitFor(async () => (await editorText(bob)) === final, 'every letter typed through the cut arrives', { timeout: 30_000, describe })
        if (kind === 'hocuspocus') {
          // Its SyncStatus count: everything it sent is saved.
          await waitFor(() => alice.evaluate(() => window.chorus.provider.unsyncedChanges === 0), 'Alice\'s changes are all acknowledged')
        }
        const res = await fetch(`${chorus.httpUrl}/v1/apps/${TIPTAP_APP.id}/docs/${doc}/draft?format=html`, {
          headers: { authorization: `Bearer ${hostToken({ app: TIPTAP_APP, doc })}` }
        })
        assert.equal((await res.text()).replace(/<[^>]*>/g, ''), final, 'the server holds every edit')
        const socket = await alice.evaluate((k) => {
          const p = window.chorus.provider
          const socket = k === 'hocuspocus' ? p.configuration.websocketProvider.webSocket : p.ws
          const http = k === 'hocuspocus' ? socket?.inner : socket
          return { name: socket?.constructor?.name, mode: http?.mode }
        }, kind)
        assert.match(String(socket.name), /^Chorus(Hocuspocus)?HttpSocket$/)
        assert.equal(socket.mode, behind.includes('long-polling') ? 'poll' : 'stream')
        for (const page of pages) assert.deepEqual(page.errors, [])
      } finally {
        for (const page of pages) await page.context().close().catch(() => {})
        await site.close()
        await proxy.close()
      }
    })
  }
})

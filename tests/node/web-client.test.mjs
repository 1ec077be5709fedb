// The web client (web-client/: ChorusProvider + the ProseMirror demo editor) in
// headless Chromium against the real chorus binary in --demo mode, which serves
// the built bundle at /demo. Builds the web client first (npm ci when its
// node_modules is missing, then npm run build), so `tests/run` stays the only
// command needed.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import * as esbuild from 'esbuild'
import { WebSocketServer } from 'ws'
import { chromium } from 'playwright-core'
import {
  REPO_ROOT, Y, WebSocket, ClientPool, RawClient, startServer, hostToken, sessionToken, badToken, randomSecret, uid, sleep,
  waitFor, waitSynced, signJwt, nowSec
} from './harness.mjs'
import { hostilePresenceFrames } from './lib/hostile-presence.mjs'
import { CHROMIUM, CHROMIUM_ARGS, WEB_CLIENT, buildWebClient, definePlainText } from './lib/browser.mjs'

const ARTIFACTS = path.join(REPO_ROOT, 'tests', 'node', 'artifacts')
const DEMO_SECRET = randomSecret()
const DEMO_APP = { id: 'demo', secrets: [DEMO_SECRET] }

/** A demo-app session token issued 20 minutes ago with a 10-minute life (as a host cache may keep one). */
function signStale (doc) {
  const iat = nowSec() - 1200
  return signJwt({ iss: DEMO_APP.id, sub: 'cat', doc, mode: 'edit', iat, exp: iat + 600 }, DEMO_SECRET)
}

/**
 * A websocket server on 127.0.0.1 that does what a Chorus node under pressure does
 * to every connection: it accepts (answering the `chorus.v1` subprotocol), syncs
 * (an empty sync step 2, so the client counts as synced), and closes with `code`
 * (4429 rate-limited, 1013 slow-consumer) 50 ms later. Only close codes a real
 * server sends; what is tested is the client's answer to them.
 */
async function closingServer (code, reason) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => protocols.has('chorus.v1') ? 'chorus.v1' : false })
  const requests = []
  wss.on('connection', (ws, req) => {
    requests.push({ url: req.url, protocols: req.headers['sec-websocket-protocol'] ?? '' })
    ws.send(Uint8Array.from([0, 1, 2, 0, 0])) // sync step 2: an empty update
    setTimeout(() => ws.close(code, reason), 50)
  })
  await new Promise((resolve) => wss.once('listening', resolve))
  return { url: `http://127.0.0.1:${wss.address().port}`, requests, close: () => new Promise((resolve) => wss.close(resolve)) }
}

/**
 * Every HTTP response `context` gets is kept, and replayed from memory while the
 * server is down: a page can be reloaded offline, as from a browser's cache.
 */
async function replayWhenDown (context) {
  const cache = new Map()
  await context.route('**/*', async (route) => {
    const url = route.request().url()
    try {
      const res = await route.fetch()
      cache.set(url, { status: res.status(), headers: res.headers(), body: await res.body() })
      await route.fulfill({ response: res })
    } catch {
      const hit = cache.get(url)
      if (hit) await route.fulfill(hit)
      else await route.abort()
    }
  })
}

/** A free TCP port on 127.0.0.1 (for a server that must come back on the same address). */
function freePort () {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** GET …/draft?format=html of `app`'s `doc` on `server`. */
async function draftHtmlOf (server, app, doc) {
  const res = await fetch(`${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/draft?format=html`, {
    headers: { authorization: `Bearer ${hostToken({ app, doc })}` }
  })
  assert.equal(res.status, 200)
  return res.text()
}

/** PUT …/content of `app`'s `doc` on `server`. */
async function putContent (server, app, doc, body) {
  const res = await fetch(`${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/content`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${hostToken({ app, doc })}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  const text = await res.text()
  assert.equal(res.status, 200, `host PUT answered ${res.status}: ${text}`)
  return JSON.parse(text)
}

/** Clicks into `selector` (the first match) in `page`, moves to its end and types `text`. */
async function typeAtEnd (page, selector, text) {
  await page.click(selector)
  await page.keyboard.press('End')
  await page.keyboard.type(text, { delay: 5 })
}


describe('web client (ProseMirror demo editor in Chromium)', () => {
  let chorus, browser

  before(async () => {
    await buildWebClient()
    chorus = await startServer({ extraConfig: { demo: true, demo_secret: DEMO_SECRET } })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  })
  after(async () => {
    await browser?.close()
    await chorus?.stop()
  })

  /** A fresh browser context (own IndexedDB) showing the demo page with `query`. */
  async function openDemo (query, { width = 1280, height = 720 } = {}) {
    const context = await browser.newContext({ viewport: { width, height } })
    const page = await context.newPage()
    await page.addInitScript(definePlainText)
    const errors = []
    page.on('pageerror', (err) => errors.push(err))
    await page.goto(`${chorus.httpUrl}/demo?${new URLSearchParams(query)}`)
    await page.waitForFunction(() => window.chorusDemo?.panes.every((p) => p.provider.synced), null, { timeout: 10_000 })
    page.errors = errors
    return page
  }

  /** PUT …/content through the host API of the demo app. */
  async function hostPut (doc, body) {
    const res = await fetch(`${chorus.httpUrl}/v1/apps/demo/docs/${doc}/content`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}`, 'content-type': 'application/json' },
      body: JSON.stringify(body)
    })
    const text = await res.text()
    assert.equal(res.status, 200, `host PUT answered ${res.status}: ${text}`)
    return JSON.parse(text)
  }

  async function draftHtml (doc) {
    const res = await fetch(`${chorus.httpUrl}/v1/apps/demo/docs/${doc}/draft?format=json`, {
      headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}` }
    })
    assert.equal(res.status, 200)
    return res.json()
  }

  const bodyOf = (page, pane = 0) => page.evaluate((i) => window.chorusDemo.panes[i].doc.getXmlFragment('body').toString(), pane)
  const editorText = (page) => page.evaluate(() => window.plainText('.ProseMirror'))

  it('serves the built page and assets, and nothing outside web-client/dist', async () => {
    const page = await fetch(`${chorus.httpUrl}/demo`)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /chorus-demo\.js/)
    const js = await fetch(`${chorus.httpUrl}/demo/assets/chorus-demo.js`)
    assert.equal(js.status, 200)
    assert.match(js.headers.get('content-type'), /javascript/)
    assert.ok(!(await js.text()).includes(DEMO_SECRET), 'no secret in the bundle')
    for (const bad of ['..%2F..%2FCargo.toml', '..%2Fpackage.json', '.gitignore', 'missing.js', '..']) {
      const res = await fetch(`${chorus.httpUrl}/demo/assets/${bad}`)
      assert.equal(res.status, 404, `${bad} must not be served`)
    }
    const badDoc = await fetch(`${chorus.httpUrl}/demo/external`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ doc: '../x', html: '<p>x</p>' })
    })
    assert.equal(badDoc.status, 400)
  })

  it('two pages typing into the same paragraph at once converge within a second, and show each other\'s telepointer', async () => {
    const doc = uid('wc-type')
    await hostPut(doc, { title: 'Concurrent', html: '<p>Shared paragraph.</p>' })
    const alice = await openDemo({ doc, users: 'alice' })
    const bob = await openDemo({ doc, users: 'bob' })
    try {
      await alice.waitForFunction(() => window.plainText('.ProseMirror p') === 'Shared paragraph.')
      await bob.waitForFunction(() => window.plainText('.ProseMirror p') === 'Shared paragraph.')
      await alice.click('.ProseMirror p')
      await alice.keyboard.press('Home')
      await bob.click('.ProseMirror p')
      await bob.keyboard.press('End')
      const fromAlice = 'Alice was here first. '
      const fromBob = ' Bob wrote this at the end.'
      await Promise.all([
        alice.keyboard.type(fromAlice, { delay: 15 }),
        bob.keyboard.type(fromBob, { delay: 15 })
      ])
      const typedAt = Date.now()
      const expected = `${fromAlice}Shared paragraph.${fromBob}`
      await alice.waitForFunction((t) => window.plainText('.ProseMirror p') === t, expected, { timeout: 1000 })
      await bob.waitForFunction((t) => window.plainText('.ProseMirror p') === t, expected, { timeout: 1000 })
      assert.ok(Date.now() - typedAt <= 1500, 'converged within about a second')
      assert.equal(await bodyOf(alice), await bodyOf(bob), 'identical Y.XmlFragment on both pages')
      assert.equal(await bodyOf(alice), `<p>${expected}</p>`)

      // The server holds the same and acknowledged it: both show "Saved".
      await alice.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      await bob.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      const draft = await draftHtml(doc)
      assert.match(JSON.stringify(draft), /Alice was here first\. Shared paragraph\. Bob wrote this at the end\./)

      // Telepointers: each page shows the other user's caret, labelled with the name
      // the server stamped from the token, as text.
      await alice.waitForFunction(() => [...document.querySelectorAll('.chorus-cursor-label')].some((e) => e.textContent === 'Bob'), null, { timeout: 5000 })
      await bob.waitForFunction(() => [...document.querySelectorAll('.chorus-cursor-label')].some((e) => e.textContent === 'Alice'), null, { timeout: 5000 })
      const ownOnAlice = await alice.$$eval('.chorus-cursor-label', (els) => els.map((e) => e.textContent))
      assert.deepEqual(ownOnAlice, ['Bob'], 'only the other user\'s caret is drawn')
      assert.deepEqual(alice.errors, [])
      assert.deepEqual(bob.errors, [])
    } finally {
      await alice.context().close()
      await bob.context().close()
    }
  })

  it('a view-only peer\'s hostile presence freezes no editor: typing still reaches the other page', async () => {
    const doc = uid('wc-presence')
    await hostPut(doc, { title: 'Presence', html: '<p>Shared paragraph.</p>' })
    const alice = await openDemo({ doc, users: 'alice' })
    const bob = await openDemo({ doc, users: 'bob' })
    const peer = new RawClient(`${chorus.wsBase}/demo/${encodeURIComponent(doc)}?token=${sessionToken({ app: DEMO_APP, doc, user: 'mallory', mode: 'view' })}`)
    try {
      await peer.handshake()
      for (const frame of hostilePresenceFrames()) {
        peer.send(frame)
        await sleep(30)
      }
      for (const [i, page] of [alice, bob].entries()) {
        const typed = ` typed-${i}`
        await typeAtEnd(page, '.ProseMirror p', typed)
        const other = i === 0 ? bob : alice
        await other.waitForFunction((t) => window.plainText('.ProseMirror p').endsWith(t), typed, { timeout: 5000 })
      }
      assert.equal(await bodyOf(alice), await bodyOf(bob))
      for (const page of [alice, bob]) {
        const state = await page.evaluate(() => window.chorusDemo.panes.map((p) => ({ status: p.provider.status, errors: p.provider.presenceErrors })))
        assert.ok(state.every((s) => s.status === 'connected'), `still connected: ${JSON.stringify(state)}`)
      }
      assert.deepEqual(alice.errors, [])
      assert.deepEqual(bob.errors, [])
      assert.equal(peer.closeInfo, null, `the peer was not closed for a malformed cursor: ${peer.describe()}`)
    } finally {
      peer.ws.close()
      await alice.context().close()
      await bob.context().close()
    }
  })

  it('an external change through the host API appears live and fires external-change once', async () => {
    const doc = uid('wc-ext')
    await hostPut(doc, { title: 'Before', html: '<p>Original text.</p>' })
    const page = await openDemo({ doc, users: 'alice' })
    try {
      await page.waitForFunction(() => document.querySelector('input.title').value === 'Before')
      assert.equal(await page.evaluate(() => window.chorusDemo.panes[0].events.externalChange), 0,
        'the initial load is not counted as a host change by the demo')
      const answer = await hostPut(doc, { title: 'After', html: '<p>Original text.</p><p>Added by the <strong>host</strong>.</p>' })
      assert.deepEqual([...answer.changed].sort(), ['body', 'title'])
      await page.waitForFunction(() => document.querySelector('input.title').value === 'After', null, { timeout: 3000 })
      await page.waitForFunction(() => document.querySelector('.ProseMirror').innerHTML.includes('<p>Added by the <strong>host</strong>.</p>'), null, { timeout: 3000 })
      await sleep(500) // a second notice, if any, would have arrived by now
      const events = await page.evaluate(() => window.chorusDemo.panes[0].events)
      assert.equal(events.externalChange, 1, `external-change fired ${events.externalChange} times`)
      assert.deepEqual([...events.externalFields[0]].sort(), ['body', 'title'])
      // The event fires after the change is in the doc.
      assert.match(events.bodyAtEvent[0], /Added by the <strong>host<\/strong>\./)
      assert.match(await page.textContent('.notice'), /host changed/)

      // The demo's own button goes through POST /demo/external (the same actor command).
      await page.click('#external')
      await page.waitForFunction(() => window.chorusDemo.panes[0].events.externalChange === 2, null, { timeout: 3000 })
      assert.match(await editorText(page), /The host added this paragraph at/)
      assert.deepEqual(page.errors, [])
    } finally {
      await page.context().close()
    }
  })

  it('a view-mode page cannot change the document', async () => {
    const doc = uid('wc-view')
    await hostPut(doc, { title: 'Read me', html: '<p>Only editors may change this.</p>' })
    const editor = await openDemo({ doc, users: 'alice' })
    const viewer = await openDemo({ doc, users: 'carol', view: 'carol' })
    try {
      await viewer.waitForFunction(() => window.plainText('.ProseMirror p') === 'Only editors may change this.')
      assert.equal(await viewer.getAttribute('.ProseMirror', 'contenteditable'), 'false')
      assert.equal(await viewer.evaluate(() => document.querySelector('input.title').readOnly), true)
      const before = await draftHtml(doc)
      const bodyBefore = await bodyOf(viewer)

      // Try hard: click, type, delete, toolbar buttons, the title.
      await viewer.click('.ProseMirror p')
      await viewer.keyboard.type('VIEWER TYPED', { delay: 5 })
      await viewer.keyboard.press('Backspace')
      await viewer.keyboard.press('Control+a')
      await viewer.keyboard.press('Delete')
      await viewer.click('.toolbar button[title^="Bold"]')
      await viewer.click('input.title')
      await viewer.keyboard.type('X')
      await sleep(600)

      assert.equal(await bodyOf(viewer), bodyBefore, 'the viewer\'s own document did not change')
      assert.equal(await viewer.inputValue('input.title'), 'Read me')
      assert.deepEqual(await draftHtml(doc), before, 'the server draft did not change')
      assert.equal(await editorText(editor), 'Only editors may change this.')
      // The server told the view session it is read-only; it stays connected.
      await viewer.waitForFunction(() => window.chorusDemo.panes[0].events.readOnly.includes('view-mode'), null, { timeout: 3000 })
      assert.equal(await viewer.getAttribute('.status', 'data-status'), 'connected')

      // The viewer still sees live edits.
      await editor.click('.ProseMirror p')
      await editor.keyboard.press('End')
      await editor.keyboard.type(' Edited.')
      await viewer.waitForFunction(() => window.plainText('.ProseMirror p') === 'Only editors may change this. Edited.', null, { timeout: 3000 })
    } finally {
      await editor.context().close()
      await viewer.context().close()
    }
  })

  it('edits made while disconnected survive a reload (IndexedDB) and merge on reconnect', async () => {
    const doc = uid('wc-offline')
    await hostPut(doc, { title: 'Offline', html: '<p>Start.</p>' })
    const alice = await openDemo({ doc, users: 'alice' })
    const bob = await openDemo({ doc, users: 'bob' })
    try {
      await alice.waitForFunction(() => window.plainText('.ProseMirror p') === 'Start.')
      await alice.evaluate(() => window.chorusDemo.panes[0].provider.disconnect())
      await alice.waitForFunction(() => window.chorusDemo.panes[0].provider.status === 'disconnected')
      await alice.click('.ProseMirror p')
      await alice.keyboard.press('End')
      await alice.keyboard.type(' Written offline.')
      // Meanwhile Bob edits the same paragraph online.
      await bob.click('.ProseMirror p')
      await bob.keyboard.press('Home')
      await bob.keyboard.type('Online: ')
      await sleep(300) // y-indexeddb stores each update asynchronously
      assert.equal(await bob.evaluate(() => window.plainText('.ProseMirror p')), 'Online: Start.', 'Bob does not see offline edits yet')
      await alice.reload()
      await alice.waitForFunction(() => window.chorusDemo?.panes[0].provider.synced, null, { timeout: 10_000 })
      const merged = 'Online: Start. Written offline.'
      await alice.waitForFunction((t) => window.plainText('.ProseMirror p') === t, merged, { timeout: 3000 })
      await bob.waitForFunction((t) => window.plainText('.ProseMirror p') === t, merged, { timeout: 3000 })
      await alice.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      assert.match(JSON.stringify(await draftHtml(doc)), /Online: Start\. Written offline\./)
    } finally {
      await alice.context().close()
      await bob.context().close()
    }
  })

  it('pasting hostile HTML runs nothing and keeps no script vector, locally or for the other user', async () => {
    const doc = uid('wc-paste')
    await hostPut(doc, { title: 'Paste', html: '<p>Paste here: </p>' })
    const alice = await openDemo({ doc, users: 'alice' })
    const bob = await openDemo({ doc, users: 'bob' })
    try {
      await alice.waitForFunction(() => window.plainText('.ProseMirror p') === 'Paste here: ')
      await alice.click('.ProseMirror p')
      await alice.keyboard.press('End')
      const html = '<p>Pasted <a href="javascript:window.__xss=1">evil link</a> ' +
        '<a href=" jav&#x09;ascript:window.__xss=5">tabbed</a> ' +
        '<img src="x" onerror="window.__xss=2"><img src="javascript:window.__xss=6"> ' +
        '<b onmouseover="window.__xss=3" style="position:fixed">bold</b><script>window.__xss=4<' + '/script> ' +
        '<a href="https://example.org/ok">good link</a></p>'
      const local = await alice.evaluate((payload) => {
        const dt = new DataTransfer()
        dt.setData('text/html', payload)
        dt.setData('text/plain', 'fallback')
        const view = window.chorusDemo.panes[0].editor.view
        view.dom.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }))
        return view.dom.innerHTML // right after the paste, before any server answer
      }, html)
      assert.match(local, /evil link/, 'the paste happened')
      assert.doesNotMatch(local, /javascript|onerror|onmouseover|<script|position:fixed/i)
      assert.match(local, /<a href="https:\/\/example\.org\/ok" rel="noopener noreferrer">good link<\/a>/)
      await bob.waitForFunction(() => window.plainText('.ProseMirror p')?.includes('good link'), null, { timeout: 3000 })
      await sleep(300)
      for (const page of [alice, bob]) {
        assert.equal(await page.evaluate(() => window.__xss), undefined, 'no pasted script ran')
        assert.doesNotMatch(await page.evaluate(() => document.querySelector('.ProseMirror').innerHTML), /javascript|onerror|onmouseover|<script/i)
      }
      assert.doesNotMatch(JSON.stringify(await draftHtml(doc)), /javascript|onerror|onmouseover|script/i)
      assert.deepEqual(alice.errors, [])
    } finally {
      await alice.context().close()
      await bob.context().close()
    }
  })

  it('host HTML with text directly in li, div and td is editable, and typing keeps every original text', async () => {
    const doc = uid('wc-inline')
    await hostPut(doc, { title: 'Inline', html: '<ul><li>a</li></ul><div>b</div><table><tr><td>c</td></tr></table>' })
    const page = await openDemo({ doc, users: 'alice' })
    try {
      await page.waitForFunction(() => window.plainText('.ProseMirror td') === 'c')
      assert.equal(await page.evaluate(() => window.chorusDemo.panes[0].editor.unsupported()), null)
      assert.equal(await page.$('.chorus-unsupported'), null, 'no refusal notice')
      assert.equal(await page.getAttribute('.ProseMirror', 'contenteditable'), 'true')
      await typeAtEnd(page, '.ProseMirror li p', ' typed in li')
      await typeAtEnd(page, '.ProseMirror > div > p', ' typed in div')
      await typeAtEnd(page, '.ProseMirror td p', ' typed in td')
      await page.waitForFunction(() => window.plainText('.ProseMirror td') === 'c typed in td')
      await page.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      const html = await draftHtmlOf(chorus, DEMO_APP, doc)
      assert.equal(html, '<ul><li><p>a typed in li</p></li></ul><div><p>b typed in div</p></div>' +
        '<table><tbody><tr><td><p>c typed in td</p></td></tr></tbody></table>')
      assert.deepEqual(page.errors, [])
    } finally {
      await page.context().close()
    }
  })

  it('a link in the editor opens with rel="noopener noreferrer", whatever rel the document holds', async () => {
    const doc = uid('wc-rel')
    await hostPut(doc, { title: 'Links', html: '<p>Start.</p>' })
    const page = await openDemo({ doc, users: 'alice' })
    const pool = new ClientPool(chorus)
    try {
      // A raw Yjs client writes a link whose rel leaves the opener reachable.
      const raw = pool.provider({ app: DEMO_APP, doc, token: sessionToken({ app: DEMO_APP, doc, user: 'raw' }) })
      await waitSynced(raw)
      raw.doc.transact(() => {
        const p = new Y.XmlElement('p')
        const text = new Y.XmlText()
        raw.doc.getXmlFragment('body').insert(1, [p])
        p.insert(0, [text])
        text.insert(0, 'tab', { a: { href: 'https://example.com/', target: '_blank', rel: 'opener' } })
      })
      await page.waitForSelector('.ProseMirror a', { timeout: 5000 })
      const link = await page.$eval('.ProseMirror a', (a) => ({ href: a.getAttribute('href'), rel: a.getAttribute('rel') }))
      assert.deepEqual(link, { href: 'https://example.com/', rel: 'noopener noreferrer' })
    } finally {
      pool.destroyAll()
      await page.context().close()
    }
  })

  it('never deletes body content its schema cannot hold (written by a raw Yjs client): the editor unbinds instead', async () => {
    const doc = uid('wc-protect')
    await hostPut(doc, { title: 'Supported', html: '<p>Fine so far.</p>' })
    const page = await openDemo({ doc, users: 'alice' })
    const pool = new ClientPool(chorus)
    try {
      await page.waitForFunction(() => window.plainText('.ProseMirror p') === 'Fine so far.')
      assert.equal(await page.evaluate(() => window.chorusDemo.panes[0].editor.unsupported()), null)
      // A stock Yjs client writes what no ProseMirror schema holds (text directly in
      // <li>): the server's HTML import would have wrapped it, a raw client does not.
      const raw = pool.provider({ app: DEMO_APP, doc, token: sessionToken({ app: DEMO_APP, doc, user: 'raw' }) })
      await waitSynced(raw)
      const body = raw.doc.getXmlFragment('body')
      raw.doc.transact(() => {
        const ul = new Y.XmlElement('ul')
        const li = new Y.XmlElement('li')
        body.insert(body.length, [ul])
        ul.insert(0, [li])
        li.insert(0, [new Y.XmlText('plain item')])
      })
      await page.waitForSelector('.chorus-unsupported', { timeout: 3000 })
      assert.match(await page.textContent('.notice'), /Body not editable here: <li>/)
      await sleep(500)
      const draft = await draftHtmlOf(chorus, DEMO_APP, doc)
      assert.equal(draft, '<p>Fine so far.</p><ul><li>plain item</li></ul>', 'the shared draft still holds the list item')
      assert.match(await bodyOf(page), /<li>plain item<\/li>/, 'and so does the page\'s own document')
    } finally {
      await page.context().close()
    }
    // Opening a page on such a draft does not touch it either.
    const again = await openDemo({ doc, users: 'bob' })
    try {
      await again.waitForSelector('.chorus-unsupported', { timeout: 3000 })
      await sleep(500)
      assert.equal(await draftHtmlOf(chorus, DEMO_APP, doc), '<p>Fine so far.</p><ul><li>plain item</li></ul>')
      assert.deepEqual(again.errors, [])
    } finally {
      await again.context().close()
    }
    // Nor does an attribute the whitelist allows (by prefix) that the schema does not declare.
    const doc2 = uid('wc-protect-attr')
    await hostPut(doc2, { title: 'Attr', html: '<p data-macro-colour="red">Macro text.</p>' })
    const third = await openDemo({ doc: doc2, users: 'carol' })
    try {
      await third.waitForSelector('.chorus-unsupported', { timeout: 3000 })
      assert.match(await third.textContent('.notice'), /data-macro-colour/)
      await sleep(500)
      assert.equal(await draftHtmlOf(chorus, DEMO_APP, doc2), '<p data-macro-colour="red">Macro text.</p>')
    } finally {
      await third.context().close()
      pool.destroyAll()
    }
  })

  it('attributes the whitelist allows on nodes and marks survive typing in the editor', async () => {
    const doc = uid('wc-attrs')
    const html = '<p class="note" id="n1" title="Tip" dir="ltr" lang="en" data-ref="r1" data-macro-name="info">Note</p>' +
      '<p><a href="https://example.org/x" title="Example" target="_blank">link</a> and ' +
      '<span class="hl" data-highlight-colour="yellow">marked</span> text</p>' +
      '<p><img src="https://example.org/i.png" alt="Alt text" width="20" height="10" title="Picture" class="pic"> image</p>' +
      '<table border="1" width="50%"><tbody><tr><th scope="col" abbr="H" colspan="2">head</th></tr>' +
      '<tr><td colspan="2" rowspan="1" align="left" valign="top" headers="h">cell</td></tr></tbody></table>' +
      '<ol start="3" type="a" class="steps"><li value="3" class="step">item</li></ol>' +
      '<blockquote cite="https://example.org/q" class="quote">quoted</blockquote>' +
      '<h2 id="sec" style="color: red;">Section</h2>'
    await hostPut(doc, { title: 'Attributes', html })
    const before = await draftHtmlOf(chorus, DEMO_APP, doc)
    // Everything the host sent is in the draft (the import wraps loose text in <p>).
    for (const attr of ['class="note"', 'title="Tip"', 'data-ref="r1"', 'data-macro-name="info"', 'target="_blank"',
      'data-highlight-colour="yellow"', 'alt="Alt text"', 'height="10"', 'title="Picture"', 'abbr="H"', 'colspan="2"',
      'align="left"', 'valign="top"', 'headers="h"', 'start="3"', 'type="a"', 'value="3"', 'cite="https://example.org/q"',
      'border="1"', 'style="color: red"']) {
      assert.ok(before.includes(attr), `${attr} in the draft before editing: ${before}`)
    }
    const page = await openDemo({ doc, users: 'alice' })
    try {
      await page.waitForFunction(() => window.plainText('.ProseMirror h2') === 'Section')
      assert.equal(await page.evaluate(() => window.chorusDemo.panes[0].editor.unsupported()), null)
      // Type into every node that carries attributes (y-prosemirror rewrites each
      // edited node and its ancestors from the ProseMirror attributes).
      await typeAtEnd(page, '.ProseMirror p.note', '!')
      await typeAtEnd(page, '.ProseMirror p:has(a)', '!')
      await typeAtEnd(page, '.ProseMirror p:has(img)', '!')
      await typeAtEnd(page, '.ProseMirror th p', '!')
      await typeAtEnd(page, '.ProseMirror td p', '!')
      await typeAtEnd(page, '.ProseMirror li p', '!')
      await typeAtEnd(page, '.ProseMirror blockquote p', '!')
      await typeAtEnd(page, '.ProseMirror h2', '!')
      // Inside the link and the span too (the marks are rewritten with their attributes).
      await page.evaluate(() => {
        const view = window.chorusDemo.panes[0].editor.view
        for (const tag of ['a', 'span']) {
          const dom = view.dom.querySelector(tag)
          const pos = view.posAtDOM(dom.firstChild, 2)
          view.dispatch(view.state.tr.insertText('~', pos))
        }
      })
      await page.waitForFunction(() => window.plainText('.ProseMirror h2') === 'Section!')
      await page.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      const after = await draftHtmlOf(chorus, DEMO_APP, doc)
      assert.equal(after.replace(/[!~]/g, ''), before, `only the typed characters differ:\n${before}\n${after}`)
      assert.equal((after.match(/!/g) ?? []).length, 8)
      assert.match(after, /<a [^>]*>li~nk<\/a>/)
      assert.match(after, /<span [^>]*>ma~rked<\/span>/)
      assert.deepEqual(page.errors, [])
    } finally {
      await page.context().close()
    }
  })

  it('the demo with two users side by side (screenshot)', async () => {
    const doc = uid('wc-shot')
    await hostPut(doc, {
      title: 'Release notes',
      html: '<h2>Chorus 0.1</h2><p>Two people edit this draft at the same time. Every keystroke is synced and saved.</p>' +
        '<ul><li><p>Real-time sync over the Yjs protocol</p></li><li><p>Presence with named cursors</p></li></ul>'
    })
    const page = await openDemo({ doc }, { width: 1280, height: 640 })
    try {
      await page.click('.pane[data-user="alice"] .ProseMirror p')
      await page.keyboard.press('End')
      await page.keyboard.type(' Alice adds a sentence.')
      await page.click('.pane[data-user="bob"] .ProseMirror h2')
      await page.keyboard.press('End')
      await page.keyboard.type(' (draft)')
      // y-prosemirror shares a caret only while its editor has focus: Bob's shows in Alice's pane.
      await page.waitForFunction(() => document.querySelector('.pane[data-user="alice"] .chorus-cursor-label')?.textContent === 'Bob', null, { timeout: 5000 })
      await page.waitForFunction(() => document.querySelectorAll('.saved[data-saved="true"]').length === 2, null, { timeout: 5000 })
      await mkdir(ARTIFACTS, { recursive: true })
      const shot = path.join(ARTIFACTS, 'web-client-demo.png')
      await page.screenshot({ path: shot })
      // The README's picture is refreshed on request only, so a test run leaves the tree clean.
      if (process.env.UPDATE_DOCS_SCREENSHOT) await copyFile(shot, path.join(REPO_ROOT, 'docs', 'demo.png'))
      const texts = await page.evaluate(() => ['alice', 'bob'].map((u) => window.plainText(`.pane[data-user="${u}"] .ProseMirror`)))
      assert.equal(texts[0], texts[1])
      assert.match(texts[0], /Chorus 0\.1 \(draft\)/)
      assert.match(texts[0], /Alice adds a sentence\./)
    } finally {
      await page.context().close()
    }
  })
})

// can-publish as the demo shows it, across a real server stop and restart on the same
// address: true only when connected, synced and every local edit is acknowledged.
describe('web client: can-publish in the browser', () => {
  it('true when connected, synced and saved; false while edits are unsaved or the server is down; true after reconnect and save', async () => {
    await buildWebClient()
    const config = { extraConfig: { demo: true, demo_secret: DEMO_SECRET }, bind: `127.0.0.1:${await freePort()}` }
    let server = await startServer(config)
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
    const doc = uid('wc-publish')
    try {
      await putContent(server, DEMO_APP, doc, { title: 'Publish', html: '<p>Start.</p>' })
      const page = await (await browser.newContext()).newPage()
      // Record, at each can-publish event, what the server holds at that moment.
      await page.goto(`${server.httpUrl}/demo?${new URLSearchParams({ doc, users: 'alice' })}`)
      await page.waitForFunction(() => window.chorusDemo?.panes[0].provider.synced, null, { timeout: 10_000 })
      const canPublish = () => page.evaluate(() => window.chorusDemo.panes[0].provider.canPublish)
      const shown = () => page.getAttribute('.saved', 'data-saved')
      await page.waitForFunction(() => window.chorusDemo.panes[0].provider.canPublish, null, { timeout: 5000 })
      assert.equal(await shown(), 'true')
      assert.equal(await page.textContent('.saved'), 'Saved')

      // A local edit: can-publish drops at once (the update is not acknowledged yet),
      // and comes back once the server has it.
      const seen = await page.evaluate(() => window.chorusDemo.panes[0].events.canPublish.length)
      await typeAtEnd(page, '.ProseMirror p', ' Online edit.')
      await page.waitForFunction(() => window.chorusDemo.panes[0].provider.canPublish, null, { timeout: 5000 })
      const events = (await page.evaluate(() => window.chorusDemo.panes[0].events.canPublish)).slice(seen)
      assert.ok(events.length >= 2 && events[0] === false && events.at(-1) === true, `can-publish after typing: ${events}`)
      assert.match(await draftHtmlOf(server, DEMO_APP, doc), /Start\. Online edit\./, 'publishable means the server has it')

      // The server goes away: not publishable, and typing offline keeps it so.
      await server.stop({ keepDir: true })
      await page.waitForFunction(() => !window.chorusDemo.panes[0].provider.canPublish, null, { timeout: 10_000 })
      assert.equal(await shown(), 'false')
      await typeAtEnd(page, '.ProseMirror p', ' Offline edit.')
      await sleep(300)
      assert.equal(await canPublish(), false)
      assert.equal(await shown(), 'false')

      // Back on the same address: reconnect, sync, the offline edit is acknowledged,
      // and only then is it publishable again. The page checks the draft the moment
      // can-publish turns true.
      await page.evaluate(({ url, token, doc }) => {
        const provider = window.chorusDemo.panes[0].provider
        window.draftWhenPublishable = null
        provider.on('can-publish', (ok) => {
          if (!ok || window.draftWhenPublishable !== null) return
          window.draftWhenPublishable = fetch(`${url}/v1/apps/demo/docs/${doc}/draft?format=html`, { headers: { authorization: `Bearer ${token}` } })
            .then((r) => r.text())
        })
      }, { url: server.httpUrl, token: hostToken({ app: DEMO_APP, doc, ttl: 3600 }), doc })
      server = await startServer({ ...config, reuseDir: server.dir })
      await page.waitForFunction(() => window.chorusDemo.panes[0].provider.canPublish, null, { timeout: 45_000 })
      assert.equal(await shown(), 'true')
      const draftThen = await page.evaluate(() => window.draftWhenPublishable)
      assert.match(draftThen, /Start\. Online edit\. Offline edit\./, 'when can-publish came back, the server had the offline edit')
    } finally {
      await browser.close()
      await server.stop()
    }
  })
})

// Exclusive mode (`collaboration = false`) in the browser: the demo page for an app of
// that kind (its token path answered by the test, which holds the app's secret).
describe('web client: exclusive mode in the browser', () => {
  const SOLO = Object.freeze({ id: 'solo', secrets: [randomSecret()], collaboration: false })
  let server, browser
  before(async () => {
    await buildWebClient()
    server = await startServer({ apps: [SOLO], extraConfig: { demo: true, demo_secret: DEMO_SECRET } })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  async function openSolo (doc, user) {
    const context = await browser.newContext()
    await context.route('**/demo/token?*', (route) => {
      const q = new URL(route.request().url()).searchParams
      const token = sessionToken({ app: SOLO, doc: q.get('doc'), user: q.get('user'), name: q.get('name'), mode: q.get('mode') })
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ token }) })
    })
    const page = await context.newPage()
    await page.addInitScript(definePlainText)
    await page.goto(`${server.httpUrl}/demo?${new URLSearchParams({ app: 'solo', doc, users: user })}`)
    await page.waitForFunction(() => window.chorusDemo?.panes[0].provider.synced, null, { timeout: 10_000 })
    return page
  }

  it('the second page is read-only and shows who holds the draft; it becomes editable when the first closes', async () => {
    const doc = uid('wc-solo')
    await putContent(server, SOLO, doc, { title: 'Solo', html: '<p>Held.</p>' })
    const alice = await openSolo(doc, 'alice')
    await alice.waitForFunction(() => window.plainText('.ProseMirror p') === 'Held.')
    const bob = await openSolo(doc, 'bob')
    try {
      await bob.waitForSelector('.holder[data-holder="Alice"]', { timeout: 5000 })
      assert.match(await bob.textContent('.holder'), /Alice is editing/)
      assert.equal(await bob.getAttribute('.ProseMirror', 'contenteditable'), 'false')
      assert.deepEqual(await bob.evaluate(() => window.chorusDemo.panes[0].events.holders), ['Alice'])
      assert.equal(await alice.getAttribute('.ProseMirror', 'contenteditable'), 'true')
      assert.equal(await alice.$('.holder[data-holder]'), null, 'the holder is told nobody else holds it')

      // Bob's typing lands nowhere; Alice's lands and Bob sees it.
      await typeAtEnd(bob, '.ProseMirror p', ' BOB-WHILE-HELD')
      await typeAtEnd(alice, '.ProseMirror p', ' Alice.')
      await bob.waitForFunction(() => window.plainText('.ProseMirror p') === 'Held. Alice.', null, { timeout: 5000 })
      await alice.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      assert.equal(await draftHtmlOf(server, SOLO, doc), '<p>Held. Alice.</p>')

      // Alice leaves: the hold passes to Bob, whose editor becomes editable.
      await alice.context().close()
      await bob.waitForFunction(() => document.querySelector('.ProseMirror').getAttribute('contenteditable') === 'true', null, { timeout: 5000 })
      assert.equal(await bob.$('.holder[data-holder]'), null)
      assert.deepEqual(await bob.evaluate(() => window.chorusDemo.panes[0].events.holders), ['Alice', null])
      await typeAtEnd(bob, '.ProseMirror p', ' Bob.')
      await bob.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      await waitFor(async () => (await draftHtmlOf(server, SOLO, doc)) === '<p>Held. Alice. Bob.</p>', 'Bob\'s edit in the draft')
      assert.doesNotMatch(await draftHtmlOf(server, SOLO, doc), /BOB-WHILE-HELD/)
    } finally {
      await bob.context().close()
      if (!alice.isClosed()) await alice.context().close()
    }
  })
})

/** web-client/src/provider.ts bundled for Node (with its own yjs, exported as Y). */
function importProvider () {
  return importWebClient("export * from './src/provider.ts'\nexport * as Y from 'yjs'\n")
}

/** A module of web-client/src bundled for Node: `contents` is the entry's source. */
async function importWebClient (contents) {
  const dir = await mkdtemp(path.join(tmpdir(), 'chorus-web-client-'))
  const out = path.join(dir, 'module.mjs')
  await esbuild.build({
    stdin: {
      contents,
      resolveDir: WEB_CLIENT,
      loader: 'ts'
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: out,
    logLevel: 'silent'
  })
  const mod = await import(pathToFileURL(out).href)
  await rm(dir, { recursive: true, force: true })
  return mod
}

// The editor schema and the server's import agree on what each whitelisted tag holds
// (proto/editor-content.json: the import wraps inline runs in `blocks` containers in a
// `p`), and the schema declares every attribute the whitelist allows, because
// y-prosemirror removes undeclared attributes from the shared document.
describe('editor schema (web-client/src/schema.ts) against proto/', () => {
  it('agrees with proto/editor-content.json for every whitelisted tag and declares every whitelisted attribute', async () => {
    const { schema, PREFIXED_ATTRS, Fragment } = await importWebClient("export * from './src/schema.ts'\nexport { Fragment } from 'prosemirror-model'\n")
    const table = JSON.parse(await readFile(path.join(REPO_ROOT, 'proto', 'editor-content.json'), 'utf8'))
    const whitelist = JSON.parse(await readFile(path.join(REPO_ROOT, 'proto', 'whitelist-default.json'), 'utf8'))
    assert.deepEqual(Object.keys(table.elements).sort(), Object.keys(whitelist.elements).sort(), 'the table covers the whitelist')
    const wrapper = schema.nodes[table.wrapper]
    const para = wrapper.create(null, schema.text('x'))
    const fitsBlocks = (type) => !type.inlineContent && !type.isLeaf &&
      type.contentMatch.matchType(schema.nodes.text) === null &&
      type.contentMatch.matchFragment(Fragment.from(para))?.validEnd === true
    assert.equal(table.root, 'blocks')
    assert.ok(fitsBlocks(schema.topNodeType), 'the body holds blocks, a wrapped run fits it')
    assert.equal(wrapper.inlineContent, true)
    const declared = (spec) => Object.keys(spec.attrs ?? {}).sort()
    for (const [tag, { is, holds }] of Object.entries(table.elements)) {
      if (is === 'mark') {
        assert.ok(schema.marks[tag], `<${tag}> is a mark`)
        assert.equal(schema.nodes[tag], undefined, `<${tag}> is not also a node`)
        assert.deepEqual(declared(schema.marks[tag].spec), [...whitelist.marks[tag]].sort(), `<${tag}> mark attributes`)
        continue
      }
      const type = schema.nodes[tag]
      assert.ok(type, `<${tag}> is a node`)
      assert.equal(type.isInline, is === 'inline', `<${tag}> inline`)
      assert.equal(type.isInGroup('block'), is === 'block', `<${tag}> in the block group`)
      switch (holds) {
        case 'blocks': assert.ok(fitsBlocks(type), `<${tag}> holds blocks; a wrapped run fits`); break
        case 'inline':
          assert.ok(type.inlineContent && type.contentMatch.matchType(schema.nodes.text) && type.allowsMarkType(schema.marks.strong), `<${tag}> holds inline content`)
          break
        case 'text':
          assert.ok(type.inlineContent && !type.allowsMarkType(schema.marks.strong) && type.contentMatch.matchType(schema.nodes.img) === null, `<${tag}> holds plain text`)
          break
        case 'children':
          assert.ok(!type.isLeaf && !type.inlineContent && type.contentMatch.matchType(wrapper) === null, `<${tag}> holds only its own children`)
          break
        case 'empty': assert.ok(type.isLeaf, `<${tag}> is a leaf`); break
        default: assert.fail(`<${tag}>: unknown holds ${holds}`)
      }
      const want = [...new Set([...whitelist.global_attributes, ...PREFIXED_ATTRS, ...whitelist.elements[tag]])].sort()
      assert.deepEqual(declared(type.spec), want, `<${tag}> declares every whitelisted attribute`)
      for (const name of PREFIXED_ATTRS) {
        assert.ok(whitelist.global_attribute_prefixes.some((prefix) => name.startsWith(prefix)), `${name} is allowed by a prefix`)
      }
    }
  })
})

describe('ChorusProvider (web-client/src/provider.ts) in Node against the real server', () => {
  let chorus, mod
  const providers = []

  before(async () => {
    await buildWebClient()
    mod = await importProvider()
    chorus = await startServer({ extraConfig: { demo: true, demo_secret: DEMO_SECRET } })
  })
  after(async () => {
    for (const p of providers) p.destroy()
    await chorus?.stop()
  })

  function provider (doc, getToken, extra = {}) {
    const ydoc = new mod.Y.Doc()
    const p = new mod.ChorusProvider(ydoc, {
      server: chorus.httpUrl, app: 'demo', doc, getToken, offline: false,
      backoff: { baseMs: 50, capMs: 200 }, WebSocketImpl: WebSocket, ...extra
    })
    const seen = { status: [], saved: [], canPublish: [], external: [] }
    p.on('status', (e) => seen.status.push(e))
    p.on('saved', (e) => seen.saved.push(e.n))
    p.on('can-publish', (v) => seen.canPublish.push(v))
    p.on('external-change', (e) => seen.external.push(e))
    providers.push(p)
    return { p, ydoc, seen }
  }

  it('backoff is exponential with full jitter: uniform in [0, min(cap, base*2^n))', () => {
    const opts = { baseMs: 100, capMs: 5000 }
    for (let n = 0; n < 12; n++) {
      const ceiling = Math.min(5000, 100 * 2 ** n)
      assert.equal(mod.backoffDelay(n, opts, () => 0), 0, 'full jitter may retry at once')
      const high = mod.backoffDelay(n, opts, () => 0.999999)
      assert.ok(high < ceiling && high >= ceiling - 1, `attempt ${n}: ${high} vs ceiling ${ceiling}`)
    }
    const draws = Array.from({ length: 2000 }, () => mod.backoffDelay(3, opts))
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length
    assert.ok(Math.max(...draws) < 800 && Math.min(...draws) < 80, 'spread over the whole range')
    assert.ok(mean > 340 && mean < 460, `mean ${mean} near 400`)
  })

  it('parses every Chorus extension kind (and ignores unknown ones)', async () => {
    const { encoding, decoding } = await import('./harness.mjs')
    const parse = (write) => {
      const e = encoding.createEncoder()
      write(e)
      return mod.readChorusMessage(decoding.createDecoder(encoding.toUint8Array(e)))
    }
    assert.deepEqual(mod.readChorusMessage(decoding.createDecoder(Uint8Array.from([0x01, 0x2a]))), { kind: 'saved', n: 42 })
    assert.deepEqual(parse((e) => { encoding.writeVarUint(e, 0); encoding.writeVarString(e, 'read-only'); encoding.writeVarString(e, 'view') }),
      { kind: 'error', code: 'read-only', message: 'view' })
    assert.deepEqual(parse((e) => { encoding.writeVarUint(e, 2); encoding.writeVarUint(e, 2); encoding.writeVarString(e, 'title'); encoding.writeVarString(e, 'body') }),
      { kind: 'external-change', fields: ['title', 'body'] })
    assert.deepEqual(parse((e) => { encoding.writeVarUint(e, 3); encoding.writeVarString(e, 'held') }), { kind: 'read-only', reason: 'held' })
    assert.deepEqual(parse((e) => { encoding.writeVarUint(e, 5); encoding.writeVarString(e, 'u1'); encoding.writeVarString(e, 'Ann') }),
      { kind: 'holder', userId: 'u1', name: 'Ann' })
    assert.deepEqual(parse((e) => { encoding.writeVarUint(e, 6) }), { kind: 'editable' })
    assert.deepEqual(parse((e) => { encoding.writeVarUint(e, 77) }), { kind: 'unknown', value: 77 })
  })

  it('asks getToken on every connect; after a 4401 it retries once at once with a fresh token, then backs off', async () => {
    const doc = uid('wc-refresh')
    // An hour-old token first: with nothing fresher seen, the provider cannot tell it
    // from a fresh token on a clock an hour fast, so it lets the server judge it.
    const tokens = [
      badToken('expired', { app: DEMO_APP, doc }),
      badToken('wrong-secret', { app: DEMO_APP, doc }),
      badToken('wrong-secret', { app: DEMO_APP, doc }),
      sessionToken({ app: DEMO_APP, doc, user: 'rita' })
    ]
    let calls = 0
    const opened = []
    const { p, seen } = provider(doc, async () => { opened.push(Date.now()); return tokens[Math.min(calls++, tokens.length - 1)] },
      { backoff: { baseMs: 400, capMs: 400 }, random: () => 0.999 })
    await waitFor(() => p.synced, 'synced with the fourth token')
    assert.equal(calls, 4)
    const refusals = seen.status.filter((e) => e.code === 4401).map((e) => e.reason)
    assert.deepEqual(refusals, ['token-expired', 'bad-signature', 'bad-signature'])
    const gaps = opened.slice(1).map((t, i) => t - opened[i])
    assert.ok(gaps[0] < 300, `the first 4401 is retried at once: ${gaps}`)
    assert.ok(gaps[1] >= 350 && gaps[2] >= 350, `later ones back off: ${gaps}`)
    // A later reconnect asks again.
    p.disconnect()
    await waitFor(() => p.status === 'disconnected', 'disconnected')
    p.connect()
    await waitFor(() => p.synced, 'synced again')
    assert.equal(calls, 5)
  })

  it('a client clock two hours fast still connects: expiry is judged on the host\'s clock, as the tokens tell it', async () => {
    const doc = uid('wc-skew')
    const realNow = Date.now
    const mint = () => { const fast = Date.now; Date.now = realNow; try { return sessionToken({ app: DEMO_APP, doc, user: 'sam', ttl: 600 }) } finally { Date.now = fast } }
    Date.now = () => realNow() + 2 * 3600_000
    try {
      const { p } = provider(doc, async () => mint())
      await waitFor(() => p.synced, 'synced with a clock two hours fast')
      assert.equal(p.expiredTokensRefused, 0)
      assert.ok(Math.abs(p.clockOffset + 2 * 3600_000) < 5000, `the offset it learned: ${p.clockOffset}`)
    } finally {
      Date.now = realNow
    }
  })

  it('never sends a token a host cache kept past its expiry once a fresher one showed the host\'s clock', async () => {
    const doc = uid('wc-stale')
    const fresh = sessionToken({ app: DEMO_APP, doc, user: 'cat', ttl: 600 })
    const stale = signStale(doc)
    const answers = [fresh, stale, fresh]
    let calls = 0
    const { p, seen } = provider(doc, async () => answers[Math.min(calls++, answers.length - 1)])
    await waitFor(() => p.synced, 'synced')
    p.disconnect()
    await waitFor(() => p.status === 'disconnected', 'disconnected')
    p.connect()
    await waitFor(() => p.synced, 'synced again')
    assert.equal(p.expiredTokensRefused, 1, 'the stale token was refused before connecting')
    assert.deepEqual(seen.status.filter((e) => e.code === 4401), [])
  })

  // The retry bound, measured. Timings are a tenth of the defaults (back-off 50 ms …
  // 3 s instead of 500 ms … 30 s, healthy after 3 s instead of 30 s), so 6 s here is
  // one minute in a browser tab. Before this policy the counter reset on every 4401
  // and on every first sync: a persistent 4401, or a server that syncs and then
  // closes (4413, 4429, 1013), was retried every 0–500 ms (0–50 ms here) forever.
  for (const [code, reason] of [[4401, 'bad-signature'], [4429, 'rate-limited'], [1013, 'slow-consumer']]) {
    it(`under a persistent ${code} (${reason}) one tab connects at most 16 times a minute`, async (t) => {
      const doc = uid('wc-storm')
      let server = null
      let getToken = async () => sessionToken({ app: DEMO_APP, doc, user: 'stormy' })
      let target = chorus.httpUrl
      if (code === 4401) getToken = async () => badToken('wrong-secret', { app: DEMO_APP, doc })
      else {
        server = await closingServer(code, reason)
        target = server.url
      }
      const ydoc = new mod.Y.Doc()
      const p = new mod.ChorusProvider(ydoc, {
        server: target, app: 'demo', doc, getToken, offline: false,
        backoff: { baseMs: 50, capMs: 3000 }, healthyMs: 3000, WebSocketImpl: WebSocket
      })
      const codes = []
      let connecting = 0
      p.on('status', (e) => {
        if (e.code !== undefined) codes.push(e.code)
        if (e.status === 'connecting') connecting++
      })
      providers.push(p)
      try {
        await sleep(6000)
        const attempts = p.connectionAttempts ?? connecting
        assert.ok(Math.abs(attempts - connecting) <= 1, `counted ${attempts} and saw ${connecting} connecting`)
        t.diagnostic(`${code} ${reason}: ${attempts} connection attempts in one scaled minute (6 s at a tenth of the default timings)`)
        assert.ok(codes.length > 0 && codes.every((c) => c === code), `every close was ${code}: ${codes}`)
        assert.ok(attempts >= 3 && attempts <= 16, `${attempts} attempts`)
      } finally {
        p.destroy()
        await server?.close()
      }
    })
  }

  it('after 1008 content-rejected: stops, turns read-only and asks for a reload (its copy holds the refused edit)', async () => {
    const app = { id: 'reject-app', secrets: [randomSecret()], whitelist_mode: 'reject' }
    const server = await startServer({ apps: [app] })
    const doc = uid('wc-1008')
    let calls = 0
    const ydoc = new mod.Y.Doc()
    const p = new mod.ChorusProvider(ydoc, {
      server: server.httpUrl, app: app.id, doc, getToken: async () => { calls++; return sessionToken({ app, doc, user: 'rex' }) },
      offline: false, backoff: { baseMs: 50, capMs: 200 }, WebSocketImpl: WebSocket
    })
    const seen = { reload: [], readOnly: [] }
    p.on('reload-required', (e) => seen.reload.push(e))
    p.on('read-only', (e) => seen.readOnly.push(e.reason))
    try {
      await waitFor(() => p.synced, 'synced')
      const script = new mod.Y.XmlElement('script')
      script.insert(0, [new mod.Y.XmlText('alert(1)')])
      ydoc.getXmlFragment('body').insert(0, [script])
      await waitFor(() => seen.reload.length === 1, 'reload-required after the refused edit')
      assert.deepEqual(seen.reload, [{ code: 1008, reason: 'content-rejected' }])
      assert.deepEqual(seen.readOnly, ['content-rejected'])
      assert.equal(p.status, 'forbidden')
      await sleep(600) // with a 50–200 ms back-off a reconnect would have happened by now
      assert.equal(calls, 1, 'no reconnect that would send the refused edit again')
    } finally {
      p.destroy()
      await server.stop()
    }
  })

  it('after 4404 document-deleted: stops, turns read-only, emits deleted and writes nothing back into the emptied id', async () => {
    const app = { id: 'delete-app', secrets: [randomSecret()] }
    const server = await startServer({ apps: [app] })
    const doc = uid('wc-4404')
    let calls = 0
    const ydoc = new mod.Y.Doc()
    const p = new mod.ChorusProvider(ydoc, {
      server: server.httpUrl, app: app.id, doc, getToken: async () => { calls++; return sessionToken({ app, doc, user: 'del' }) },
      offline: false, backoff: { baseMs: 50, capMs: 200 }, WebSocketImpl: WebSocket
    })
    const seen = { deleted: [], readOnly: [] }
    p.on('deleted', (e) => seen.deleted.push(e))
    p.on('read-only', (e) => seen.readOnly.push(e.reason))
    const api = `${server.httpUrl}/v1/apps/${app.id}/docs/${doc}`
    const auth = { authorization: `Bearer ${hostToken({ app })}` }
    try {
      await waitFor(() => p.synced, 'synced')
      ydoc.getText('title').insert(0, 'Soon gone')
      await waitFor(async () => (await fetch(`${api}/draft`, { headers: auth })).status === 200, 'the edit is stored')
      assert.equal((await fetch(api, { method: 'DELETE', headers: auth })).status, 200)
      await waitFor(() => seen.deleted.length === 1, 'deleted after the host deleted the draft')
      assert.deepEqual(seen.deleted, [{ code: 4404, reason: 'document-deleted' }])
      assert.deepEqual(seen.readOnly, ['deleted'])
      assert.equal(p.status, 'forbidden')
      await sleep(600) // with a 50–200 ms back-off a reconnect would have happened by now
      assert.equal(calls, 1, 'no reconnect')
      assert.equal((await fetch(`${api}/draft`, { headers: auth })).status, 404, 'the deleted content was not written back')
    } finally {
      p.destroy()
      await server.stop()
    }
  })

  it('idle: warned, closed with 4408 idle-timeout, stays away until the user is back, then sends what was typed; session-expired reconnects at once', async () => {
    const app = { id: 'idle-app', secrets: [randomSecret()], sessions: { idle_warning_secs: 1, idle_close_secs: 2, max_session_secs: 0 } }
    const server = await startServer({ apps: [app] })
    const doc = uid('wc-4408')
    let calls = 0
    const ydoc = new mod.Y.Doc()
    const p = new mod.ChorusProvider(ydoc, {
      server: server.httpUrl, app: app.id, doc, getToken: async () => { calls++; return sessionToken({ app, doc, user: 'ida' }) },
      offline: false, backoff: { baseMs: 50, capMs: 200 }, WebSocketImpl: WebSocket
    })
    const seen = { warnings: [], idle: [] }
    p.on('idle-warning', (e) => seen.warnings.push(e))
    p.on('idle', (e) => seen.idle.push(e))
    const api = `${server.httpUrl}/v1/apps/${app.id}/docs/${doc}/draft`
    const auth = { authorization: `Bearer ${hostToken({ app })}` }
    try {
      await waitFor(() => p.synced, 'synced')
      await waitFor(() => seen.idle.length === 1, 'closed for idleness', { timeout: 6000 })
      assert.ok(seen.warnings.length >= 1 && seen.warnings[0].closesInSecs <= 1, JSON.stringify(seen.warnings))
      assert.deepEqual(seen.idle, [{ code: 4408, reason: 'idle-timeout' }])
      await sleep(700) // a 50–200 ms back-off would have reconnected by now
      assert.equal(calls, 1, 'no reconnect while nobody is there')
      assert.equal(p.status, 'disconnected')
      ydoc.getText('title').insert(0, 'Back again')
      await waitFor(async () => { const r = await fetch(api, { headers: auth }); return r.status === 200 && (await r.json()).title === 'Back again' }, 'the edit made while away is stored after the reconnect')
      assert.equal(calls, 2)
    } finally {
      p.destroy()
      await server.stop()
    }

    const expiring = { id: 'expiring-app', secrets: [randomSecret()], sessions: { idle_warning_secs: 0, idle_close_secs: 0, max_session_secs: 1 } }
    const server2 = await startServer({ apps: [expiring] })
    let tokens = 0
    const q = new mod.ChorusProvider(new mod.Y.Doc(), {
      server: server2.httpUrl, app: expiring.id, doc, getToken: async () => { tokens++; return sessionToken({ app: expiring, doc, user: 'exp' }) },
      offline: false, backoff: { baseMs: 5000, capMs: 5000 }, WebSocketImpl: WebSocket
    })
    const codes = []
    q.on('status', (e) => { if (e.code !== undefined) codes.push(`${e.code} ${e.reason}`) })
    try {
      await waitFor(() => tokens >= 3 && q.synced, 'reconnected twice at once (a 5 s back-off would not have)', { timeout: 5000 })
      assert.deepEqual(codes.slice(0, 2), ['4408 session-expired', '4408 session-expired'])
    } finally {
      q.destroy()
      await server2.stop()
    }
  })

  it('sends the token as a subprotocol, never in the URL, and keeps the server URL\'s path prefix', async () => {
    assert.equal(mod.wsBase('https://wiki.example/collab/'), 'wss://wiki.example/collab')
    assert.equal(mod.wsBase('http://127.0.0.1:10123'), 'ws://127.0.0.1:10123')
    assert.equal(mod.wsBase('wss://h.example/a/b'), 'wss://h.example/a/b')
    const server = await closingServer(1013, 'slow-consumer')
    const doc = uid('wc-subprotocol')
    const token = sessionToken({ app: DEMO_APP, doc, user: 'pat' })
    const { p, seen } = provider(doc, async () => token, { server: `${server.url}/collab/`, backoff: { baseMs: 5000, capMs: 5000 } })
    try {
      await waitFor(() => seen.status.some((e) => e.code === 1013), 'a connection, closed by the server')
      const [req] = server.requests
      assert.equal(req.url, `/collab/v1/ws/demo/${doc}`)
      assert.deepEqual(req.protocols.split(',').map((x) => x.trim()), ['chorus.v1', token])
    } finally {
      p.destroy()
      await server.close()
    }
  })

  it('back online (the browser\'s online event), it retries at once instead of waiting out the back-off', async () => {
    const server = await closingServer(1013, 'slow-consumer')
    const hadWindow = 'window' in globalThis
    const fakeWindow = new EventTarget()
    if (!hadWindow) globalThis.window = fakeWindow
    const doc = uid('wc-online')
    try {
      // A 20 s back-off at every attempt: only the online event can bring the next one sooner.
      const { p } = provider(doc, async () => sessionToken({ app: DEMO_APP, doc, user: 'olly' }),
        { server: server.url, backoff: { baseMs: 20_000, capMs: 20_000 }, random: () => 0.999 })
      await waitFor(() => p.connectionAttempts === 1 && p.status === 'disconnected', 'the first connection, closed by the server')
      await sleep(300)
      assert.equal(p.connectionAttempts, 1, 'waiting out the back-off')
      globalThis.window.dispatchEvent(new Event('online'))
      await waitFor(() => p.connectionAttempts === 2, 'a second attempt right after the online event', { timeout: 2000 })
      p.destroy()
    } finally {
      if (!hadWindow) delete globalThis.window
      await server.close()
    }
  })

  it('a document-too-large error makes the provider read-only: the next keystroke is not sent to be refused (4413)', async () => {
    const app = { id: 'small-docs', secrets: [randomSecret()] }
    const server = await startServer({ apps: [app], extraConfig: { max_document_bytes: 4000 } })
    const doc = uid('wc-too-large')
    const ydoc = new mod.Y.Doc()
    const p = new mod.ChorusProvider(ydoc, {
      server: server.httpUrl, app: app.id, doc, getToken: async () => sessionToken({ app, doc, user: 'tina' }),
      offline: false, WebSocketImpl: WebSocket
    })
    const readOnly = []
    p.on('read-only', (e) => readOnly.push(e.reason))
    try {
      await waitFor(() => p.synced, 'synced')
      ydoc.getText('title').insert(0, 'a'.repeat(5000))
      await waitFor(() => readOnly.includes('document-too-large'), 'read-only: document-too-large')
      const sent = p.sentCount
      ydoc.getText('title').insert(0, 'more')
      await sleep(500)
      assert.equal(p.sentCount, sent, 'the keystroke was kept local')
      assert.equal(p.status, 'connected', 'and the connection stays up (no 4413)')
    } finally {
      p.destroy()
      await server.stop()
    }
  })

  it('never reconnects after 4403 and reports the reason', async () => {
    const doc = uid('wc-forbidden')
    let calls = 0
    const { p, seen } = provider(doc, async () => { calls++; return sessionToken({ app: DEMO_APP, doc: 'some-other-doc', user: 'fred' }) })
    await waitFor(() => p.status === 'forbidden', 'forbidden')
    await sleep(800) // with a 50–200 ms backoff a reconnect would have happened by now
    assert.equal(calls, 1)
    const last = seen.status.at(-1)
    assert.deepEqual({ status: last.status, code: last.code, reason: last.reason }, { status: 'forbidden', code: 4403, reason: 'wrong-doc' })
    assert.equal(p.readOnly, true, 'the editor stops taking edits that would go nowhere')
    assert.equal(p.readOnlyReason, 'forbidden: wrong-doc')
  })

  it('counts its step 2 and updates: saved and can-publish follow the server acks', async () => {
    const doc = uid('wc-saved')
    const { p, ydoc, seen } = provider(doc, async () => sessionToken({ app: DEMO_APP, doc, user: 'sam' }))
    await waitFor(() => p.canPublish, 'can publish after the initial sync and the ack of the step 2')
    assert.equal(p.sentCount, 1, 'the step 2 answering the server is the first counted message')
    assert.equal(seen.external.length, 1, 'external-change once after the initial load')
    assert.equal(seen.external[0].initial, true)
    for (let i = 0; i < 5; i++) ydoc.getText('title').insert(ydoc.getText('title').length, `w${i} `)
    assert.equal(p.sentCount, 6)
    assert.equal(p.canPublish, false, 'unacknowledged updates: not publishable yet')
    await waitFor(() => p.savedCount >= 6 && p.canPublish, 'all six messages acknowledged')
    assert.ok(seen.saved.includes(p.savedCount))
    assert.deepEqual(seen.canPublish.slice(-2), [false, true])
    const res = await fetch(`${chorus.httpUrl}/v1/apps/demo/docs/${doc}/draft?format=json`, {
      headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}` }
    })
    assert.match(await res.text(), /w0 w1 w2 w3 w4/)
  })
})

// Short-lived tokens: a host whose getToken hands out tokens that expire 2 s after
// they are minted, from a stale-while-revalidate cache (it answers with the token it
// minted on the previous call and mints the next one), so after a pause it hands out
// an expired token first. The provider refreshes shortly before expiry while
// connected, refuses the stale token after a server restart and syncs with a fresh one.
describe('ChorusProvider with tokens that expire in 2 s, across a server restart', () => {
  it('refreshes before expiry, never sends an expired token, and syncs again after the restart', async () => {
    await buildWebClient()
    const mod = await importProvider()
    const config = { extraConfig: { demo: true, demo_secret: DEMO_SECRET }, bind: `127.0.0.1:${await freePort()}` }
    let server = await startServer(config)
    const doc = uid('wc-expiry')
    const mint = () => sessionToken({ app: DEMO_APP, doc, user: 'tess', ttl: 2 })
    let cached = mint()
    let calls = 0
    const getToken = async () => {
      calls++
      const token = cached
      cached = mint()
      return token
    }
    const ydoc = new mod.Y.Doc()
    const statuses = []
    // Reconnect attempts about 4 s apart: every token the host cache holds by then has expired.
    const p = new mod.ChorusProvider(ydoc, {
      server: server.httpUrl, app: 'demo', doc, getToken, offline: false,
      backoff: { baseMs: 4000, capMs: 4000 }, random: () => 0.999, WebSocketImpl: WebSocket
    })
    p.on('status', (e) => statuses.push(e))
    try {
      await waitFor(() => p.canPublish, 'synced and saved with the first token')
      const title = ydoc.getText('title')
      title.insert(0, 'Online.')
      await waitFor(() => p.canPublish, 'the first edit saved')
      // Connected past the first token's expiry: the provider asked for a new one meanwhile.
      await sleep(2500)
      assert.equal(p.status, 'connected')
      assert.ok(calls >= 2, `getToken asked again before the token expired (${calls} calls)`)
      assert.ok(!statuses.some((e) => e.status === 'disconnected'), 'the connection stayed up')

      await server.stop({ keepDir: true })
      await waitFor(() => p.status !== 'connected', 'the provider saw the server go')
      title.insert(title.length, ' Offline.')
      server = await startServer({ ...config, reuseDir: server.dir })
      await waitFor(() => p.synced && p.canPublish, 'synced again after the restart', { timeout: 30_000 })
      assert.ok(p.expiredTokensRefused >= 1, 'the host cache handed out an expired token, which was refused')
      assert.deepEqual(statuses.filter((e) => e.code === 4401), [], 'no expired token ever reached the server')
      const res = await fetch(`${server.httpUrl}/v1/apps/demo/docs/${doc}/draft?format=json`, {
        headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}` }
      })
      assert.match(await res.text(), /"title":"Online\. Offline\."/, 'the edit made while the server was down is in the draft')
    } finally {
      p.destroy()
      await server.stop()
    }
  })
})

// The offline case as a user meets it: the server goes away, both people keep typing,
// one reloads the page while the server is still down (the page comes from the
// browser's cache of it, here a Playwright route that replays what it fetched), the
// server comes back on the same address → both converge and nothing typed is lost.
describe('web client across a server restart', () => {
  it('a shared computer: one browser profile, two users; an offline copy is one user\'s, none for a view session, cleared at logout', async () => {
    await buildWebClient()
    const config = { extraConfig: { demo: true, demo_secret: DEMO_SECRET }, bind: `127.0.0.1:${await freePort()}` }
    let server = await startServer(config)
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks']
    })
    const doc = uid('wc-shared')
    // One context: one profile (cookies, IndexedDB) for every user, as on a shared computer.
    const context = await browser.newContext()
    await replayWhenDown(context)
    const open = async (query) => {
      const page = await context.newPage()
      await page.goto(`${server.httpUrl}/demo?${new URLSearchParams({ doc, ...query })}`)
      await page.waitForFunction(() => window.chorusDemo?.panes.every((p) => p.provider.synced), null, { timeout: 10_000 })
      return page
    }
    const body = (page) => page.evaluate(() => window.chorusDemo.panes[0].doc.getXmlFragment('body').toString())
    const databases = async (page) => (await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name)))
      .filter((n) => n.startsWith('chorus:')).sort()
    const draft = async () => {
      const res = await fetch(`${server.httpUrl}/v1/apps/demo/docs/${doc}/draft?format=html`, {
        headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}` }
      })
      return res.text()
    }
    try {
      const put = await fetch(`${server.httpUrl}/v1/apps/demo/docs/${doc}/content`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'Shared', html: '<p>Start.</p>' })
      })
      assert.equal(put.status, 200)
      // Alice edits while the server is down, and leaves: her edit is only in her offline copy.
      const alice = await open({ users: 'alice' })
      await server.stop({ keepDir: true })
      await alice.waitForFunction(() => window.chorusDemo.panes[0].provider.status !== 'connected', null, { timeout: 10_000 })
      await typeAtEnd(alice, '.ProseMirror p', ' Alice unsent.')
      await sleep(500) // y-indexeddb stores each update asynchronously
      await alice.close()
      server = await startServer({ ...config, reuseDir: server.dir })

      // Bob signs in on the same profile: he neither sees nor sends Alice's edit.
      const bob = await open({ users: 'bob' })
      await typeAtEnd(bob, '.ProseMirror p', ' Bob.')
      await bob.waitForSelector('.saved[data-saved="true"]', { timeout: 5000 })
      assert.ok(!(await body(bob)).includes('Alice unsent.'), `Bob's copy: ${await body(bob)}`)
      assert.ok(!(await draft()).includes('Alice unsent.'), 'Alice\'s offline edit did not reach the server under Bob\'s name')
      // A view session keeps no copy.
      const carol = await open({ users: 'carol', view: 'carol' })
      assert.deepEqual(await databases(carol), [`chorus:demo:alice:${doc}`, `chorus:demo:bob:${doc}`])
      await carol.close()

      // Alice comes back: her copy was kept for her, and her edit arrives.
      const alice2 = await open({ users: 'alice' })
      await waitFor(async () => (await draft()).includes('Alice unsent.'), 'Alice\'s offline edit reaches the server once she is back', { timeout: 10_000 })
      await alice2.close()

      // Logout: the host clears Alice's offline copies; Bob's stays.
      const cleared = await bob.evaluate(() => window.chorusDemo.clearOfflineData({ app: 'demo', user: 'alice' }))
      assert.deepEqual(cleared, [`chorus:demo:alice:${doc}`])
      assert.deepEqual(await databases(bob), [`chorus:demo:bob:${doc}`])
      await bob.close()
    } finally {
      await context.close()
      await browser.close()
      await server.stop()
    }
  })

  it('stop the server, type in both pages, reload one offline, restart: both converge, nothing lost', async () => {
    await buildWebClient()
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address()
        probe.close(() => resolve(port))
      })
    })
    const config = { extraConfig: { demo: true, demo_secret: DEMO_SECRET }, bind: `127.0.0.1:${port}` }
    let server = await startServer(config)
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        // Pages fulfilled by a route have no network address of their own; Chromium's
        // local-network checks would then refuse their websocket to 127.0.0.1.
        '--disable-features=LocalNetworkAccessChecks']
    })
    const doc = uid('wc-restart')
    /** A page for one user whose HTTP responses are replayed from memory when the server is down. */
    async function open (user) {
      const context = await browser.newContext()
      await replayWhenDown(context)
      const page = await context.newPage()
      await page.goto(`${server.httpUrl}/demo?${new URLSearchParams({ doc, users: user })}`)
      await page.waitForFunction(() => window.chorusDemo?.panes.every((p) => p.provider.synced), null, { timeout: 10_000 })
      return page
    }
    const paragraph = (page) => page.evaluate(() => window.chorusDemo.panes[0].doc.getXmlFragment('body').toString())
    const text = (page) => page.evaluate(() => window.chorusDemo.panes[0].doc.getXmlFragment('body').toJSON())
    try {
      const put = await fetch(`${server.httpUrl}/v1/apps/demo/docs/${doc}/content`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'Restart', html: '<p>Middle.</p>' })
      })
      assert.equal(put.status, 200)
      const alice = await open('alice')
      const bob = await open('bob')
      await alice.waitForFunction(() => window.chorusDemo.panes[0].doc.getXmlFragment('body').toString().includes('Middle.'))

      await server.stop({ keepDir: true })
      for (const page of [alice, bob]) {
        await page.waitForFunction(() => window.chorusDemo.panes[0].provider.status !== 'connected', null, { timeout: 10_000 })
      }
      await alice.click('.ProseMirror p')
      await alice.keyboard.press('End')
      await alice.keyboard.type(' Alice offline.')
      await bob.click('.ProseMirror p')
      await bob.keyboard.press('Home')
      await bob.keyboard.type('Bob offline. ')
      await sleep(500) // y-indexeddb stores each update asynchronously
      await alice.reload()
      await alice.waitForFunction(() => window.chorusDemo?.panes[0].doc.getXmlFragment('body').toString().includes('Alice offline.'), null, { timeout: 10_000 })
      assert.ok(!(await paragraph(alice)).includes('Bob offline.'), 'the server is down: nothing of Bob\'s yet')

      server = await startServer({ ...config, reuseDir: server.dir })
      const want = 'Bob offline. Middle. Alice offline.'
      for (const [name, page] of [['alice', alice], ['bob', bob]]) {
        await page.waitForFunction((t) => window.chorusDemo.panes[0].doc.getXmlFragment('body').toJSON().includes(t), want, { timeout: 45_000 })
          .catch(async (e) => { throw new Error(`${name} did not converge: ${await text(page)} (${e.message})`) })
      }
      await waitFor(async () => {
        const res = await fetch(`${server.httpUrl}/v1/apps/demo/docs/${doc}/draft?format=html`, {
          headers: { authorization: `Bearer ${hostToken({ app: DEMO_APP, doc })}` }
        })
        return (await res.text()).includes(want)
      }, 'the server has both offline edits', { timeout: 10_000 })
    } finally {
      await browser.close()
      await server.stop()
    }
  })
})

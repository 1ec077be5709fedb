// The example wiki end to end, as its users meet it: the real `chorus` binary (the
// wiki registered as an app with editor = "tiptap" and its webhook URL), the wiki
// (`node server.mjs`, its own process), and two people in headless Chromium (each in
// a browser context of their own), once on y-websocket and once on the Hocuspocus
// provider, who sign in, create and edit a page together in
// TipTap, publish it with conflictPolicy=abort, and restore an earlier version.
// Forged webhooks are refused and change nothing.
//
// Then the wiki as an attacker meets it (no browser): malformed cookies, paths and
// bodies on every route (a seeded generator) never stop it or get a 5xx; sessions
// are server-side (a new id at sign-in, none after sign-out); a POST from another
// origin is refused; a reader gets view-mode tokens and cannot publish; a webhook
// with a bad token is refused before its body is read; an older event never
// overwrites a newer one.
//
// Environment: CHORUS_BIN (default ../../target/debug/chorus), CHROMIUM_PATH (default
// /usr/bin/chromium), WIKI_TEST_VERBOSE (echo both servers' output).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, createHmac } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { ChorusHost } from '@chorus/host-client'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const CHORUS_BIN = path.resolve(process.env.CHORUS_BIN ?? path.join(root, '..', '..', 'target', 'debug', 'chorus'))
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const TIMEOUT = 20_000
const APP_ID = 'wiki'
const SECRET = 'example-wiki-test-secret-0123456789abcdef'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `fn` until it returns a truthy value (returned); fails after `timeout` with `what`. */
async function waitFor (fn, what, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
      last = v
    } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last?.stack ?? JSON.stringify(last)})`)
    await sleep(50)
  }
}

/** A port nobody listens on now (for the wiki, whose URL Chorus must know first). */
async function freePort () {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Spawns a server and resolves once its output matches `ready` (the match is returned). */
async function start (name, command, args, { env, cwd, ready }) {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const match = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s:\n${output}`)), 30_000)
    const onData = (chunk) => {
      output = (output + chunk).slice(-256 * 1024)
      if (process.env.WIKI_TEST_VERBOSE) process.stderr.write(`[${name}] ${chunk}`)
      // eslint-disable-next-line no-control-regex
      const m = output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').match(ready)
      if (m) { clearTimeout(timer); resolve(m) }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    exited.then((info) => { clearTimeout(timer); reject(new Error(`${name} exited (${JSON.stringify(info)}):\n${output}`)) })
  })
  return {
    match,
    output: () => output,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  }
}

/** A webhook request as Chorus signs one (crates/chorus-hooks), with `secret`. */
function signedWebhook (secret, body) {
  const iat = Math.floor(Date.now() / 1000)
  const claims = { iss: 'chorus', aud: APP_ID, iat, exp: iat + 300, jti: body.id, body_sha256: createHash('sha256').update(JSON.stringify(body)).digest('base64url') }
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return { authorization: `Bearer ${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`, body: JSON.stringify(body) }
}

// The same story with each provider the wiki's editor page can use.
for (const provider of ['y-websocket', 'hocuspocus']) describe(`the example wiki on ${provider}, with Chorus and two people in Chromium`, () => {
  let dir, chorus, wiki, wikiUrl, browser, host
  let alice, bob // pages, one browser context each
  let pageId
  const sockets = new Map() // page -> websocket URLs it opened
  const socketUrls = [] // every websocket URL any page opened
  const socketPath = provider === 'hocuspocus' ? `/v1/hocuspocus/${APP_ID}` : `/v1/ws/${APP_ID}/`

  const editorText = (page) => page.evaluate(() => window.wiki.editor.getText())
  const editorHtml = (page) => page.evaluate(() => window.wiki.editor.getHTML())
  const draftHtml = async () => (await host.getDraft(pageId, { format: 'html' })).html
  const wikiData = async () => JSON.parse(await readFile(path.join(dir, 'wiki-data.json'), 'utf8'))

  async function signIn (user) {
    const context = await browser.newContext()
    const page = await context.newPage()
    page.setDefaultTimeout(TIMEOUT)
    sockets.set(page, [])
    page.on('websocket', (ws) => {
      sockets.get(page).push(new URL(ws.url()).pathname)
      socketUrls.push(ws.url())
    })
    page.on('pageerror', (err) => { throw new Error(`page error (${user}): ${err.stack ?? err}`) })
    await page.goto(wikiUrl)
    await page.fill('input[name=user]', user)
    await page.click('button:text-is("Sign in")')
    await page.waitForSelector(`[data-testid=whoami]:text-is("${user}")`)
    return page
  }

  async function openEditor (page) {
    await page.goto(`${wikiUrl}/pages/${pageId}/edit`)
    await page.waitForSelector('body[data-editor-ready=true]')
    await page.waitForSelector('[data-testid=status][data-state=synced]')
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'chorus-example-wiki-'))
    const wikiPort = await freePort()
    wikiUrl = `http://127.0.0.1:${wikiPort}`
    const configPath = path.join(dir, 'chorus.toml')
    // The example's own chorus.toml, pointed at this run's ports and data directory,
    // with a short close delay so the `closed` webhook comes within the test.
    const example = await readFile(path.join(root, 'chorus.toml'), 'utf8')
    const config = example
      .replace(/^bind = .*$/m, 'bind = "127.0.0.1:0"')
      .replace(/^data_dir = .*$/m, `data_dir = ${JSON.stringify(path.join(dir, 'chorus-data'))}\nclose_delay_secs = 1\nsaved_webhook_secs = 1`)
      .replace(/^secrets = .*$/m, `secrets = [${JSON.stringify(SECRET)}]`)
      .replace(/^callback_url = .*$/m, `callback_url = "${wikiUrl}/chorus/webhook"`)
    assert.match(config, /editor = "tiptap"/)
    await writeFile(configPath, config)

    const chorusEnv = { NO_COLOR: '1' }
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHORUS_')) chorusEnv[k] = v
    chorus = await start('chorus', CHORUS_BIN, ['serve', '--config', configPath], { env: chorusEnv, cwd: dir, ready: /listening on http:\/\/127\.0\.0\.1:(\d+)/ })
    const chorusUrl = `http://127.0.0.1:${chorus.match[1]}`
    host = new ChorusHost({ baseUrl: chorusUrl, appId: APP_ID, secret: SECRET })

    wiki = await start('wiki', process.execPath, ['server.mjs'], {
      cwd: root,
      env: { ...process.env, WIKI_EDITOR_PROVIDER: provider, WIKI_APP_SECRET: SECRET, WIKI_CHORUS_URL: chorusUrl, WIKI_PORT: String(wikiPort), WIKI_DATA_FILE: path.join(dir, 'wiki-data.json') },
      ready: /wiki: listening on/
    })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  })

  after(async () => {
    await browser?.close()
    await wiki?.stop()
    await chorus?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('signs people in, creates a page, and two TipTap editors edit it together', async () => {
    alice = await signIn('alice')
    await alice.fill('input[name=title]', 'Team handbook')
    await alice.click('button:text-is("Create")')
    await alice.waitForURL(/\/pages\/team-handbook-[0-9a-f]+\/edit$/)
    pageId = decodeURIComponent(new URL(alice.url()).pathname.split('/')[2])
    await alice.waitForSelector('body[data-editor-ready=true]')
    assert.equal(await alice.inputValue('[data-testid=title]'), 'Team handbook', 'the title Chorus holds')

    await alice.click('#editor .tiptap')
    await alice.click('[data-command=heading]')
    await alice.keyboard.type('Getting started')
    await alice.keyboard.press('Enter')
    await alice.keyboard.type('Alice wrote this. ')
    await alice.click('[data-command=bold]')
    await alice.keyboard.type('Important')

    bob = await signIn('bob')
    await bob.click(`[data-page="${pageId}"] a`)
    await bob.waitForSelector('text=Not published yet')
    await bob.click('nav a:text-is("Edit")')
    await bob.waitForSelector('body[data-editor-ready=true]')
    await waitFor(async () => (await editorText(bob)).includes('Alice wrote this. Important'), "Alice's text in Bob's editor")
    await bob.click('#editor .tiptap')
    // TipTap's StarterKit keeps an empty paragraph at the end (TrailingNode): Bob writes there.
    await bob.keyboard.press('Control+End')
    await bob.keyboard.type('Bob agrees.')

    // Both editors hold the same document, and Chorus holds it too, as HTML.
    const both = await waitFor(async () => {
      const [a, b] = [await editorHtml(alice), await editorHtml(bob)]
      return a === b && a.includes('Bob agrees.') && a
    }, 'both editors to converge')
    assert.match(both, /<h2>Getting started<\/h2>/)
    assert.match(both, /<p>Alice wrote this\. <strong>Important<\/strong><\/p><p>Bob agrees\.<\/p>/)
    const stored = await waitFor(async () => { const h = await draftHtml(); return h.includes('Bob agrees.') && h }, 'the draft in Chorus')
    assert.match(stored, /<h2>Getting started<\/h2>/)
    assert.match(stored, /<strong>Important/)

    // Carets carry the name the wiki put in each token (a caret shows while its
    // editor has the focus: both have it here, each in its own browser).
    await waitFor(() => bob.locator('.collaboration-carets__label', { hasText: 'Alice' }).count(), "Alice's caret in Bob's editor")
    await waitFor(() => alice.locator('.collaboration-carets__label', { hasText: 'Bob' }).count(), "Bob's caret in Alice's editor")

    // Each editor synced over the provider this run is about, straight to Chorus.
    for (const page of [alice, bob]) assert.ok(sockets.get(page).length > 0 && sockets.get(page).every((p) => p.startsWith(socketPath)), `${provider} sockets: ${sockets.get(page)}`)
    // No session token in a URL, where proxies and APM tools would log it.
    assert.deepEqual(socketUrls.filter((u) => /token=/.test(u)), [])

    // The title is shared too.
    await alice.click('[data-testid=title]')
    await alice.keyboard.press('End')
    await alice.keyboard.type(' 2027')
    await waitFor(async () => (await bob.inputValue('[data-testid=title]')) === 'Team handbook 2027', "the title in Bob's page")

  })

  it('takes verified webhooks and refuses forged ones', async () => {
    // `editing` and `saved` arrived, signed and checked, and show in the page list.
    const index = await bob.context().newPage()
    await index.goto(wikiUrl)
    await waitFor(async () => {
      await index.reload()
      const row = index.locator(`[data-page="${pageId}"]`)
      return (await row.locator('[data-testid=editing]').count()) && (await row.locator('[data-testid=saved]').count())
    }, 'the editing and saved webhooks in the page list')
    assert.match(await index.locator(`[data-page="${pageId}"] [data-testid=editing]`).innerText(), /alice/)
    await index.close()

    const before = await wikiData()
    const forged = { id: 'evt-999999', type: 'published', app: APP_ID, doc: pageId, at: Date.now(), title: 'Forged', html: '<p>forged</p>', etag: '"0"', publishedAt: Date.now() }
    const post = (headers, body) => fetch(`${wikiUrl}/chorus/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

    const wrongSecret = signedWebhook('not-the-secret-0123456789', forged)
    let res = await post({ authorization: wrongSecret.authorization }, wrongSecret.body)
    assert.equal(res.status, 401)
    assert.deepEqual(await res.json(), { error: 'bad-signature' })

    // Signed with the right secret, then the body changed: the hash gives it away.
    const signed = signedWebhook(SECRET, { ...forged, html: '<p>harmless</p>' })
    res = await post({ authorization: signed.authorization }, JSON.stringify(forged))
    assert.equal(res.status, 400)
    assert.deepEqual(await res.json(), { error: 'body-mismatch' })

    res = await post({}, JSON.stringify(forged))
    assert.equal(res.status, 401)

    const afterForgery = await wikiData()
    assert.equal(afterForgery.pages[pageId].published, null, 'nothing was published by the forgeries')
    assert.equal(afterForgery.seenEvents.includes(forged.id), false)
    assert.deepEqual(afterForgery.pages[pageId], before.pages[pageId])
  })

  it('publishes what was reviewed, and aborts when the draft moved on meanwhile', async () => {
    const review = await alice.context().newPage()
    await review.goto(`${wikiUrl}/pages/${pageId}/publish`)
    assert.match(await review.locator('[data-testid=preview]').innerText(), /Bob agrees\./)

    // Bob keeps typing after Alice's review was read.
    await bob.keyboard.type(' More from Bob.')
    await waitFor(async () => (await draftHtml()).includes('More from Bob.'), "Bob's new text in the draft")

    const [conflict] = await Promise.all([review.waitForResponse((r) => r.url().endsWith('/publish') && r.request().method() === 'POST'), review.click('[data-testid=publish]')])
    assert.equal(conflict.status(), 409)
    assert.match(await review.locator('[data-testid=notice]').innerText(), /changed while you were reviewing/)
    assert.match(await review.locator('[data-testid=preview]').innerText(), /More from Bob\./, 'the preview now shows the draft as it is')
    assert.equal((await wikiData()).pages[pageId].published, null, 'nothing was published')
    assert.equal((await host.listHistory(pageId)).filter((p) => p.kind === 'publish').length, 0)

    await review.click('[data-testid=publish]')
    await review.waitForURL(/\?published$/)
    const published = await review.locator('[data-testid=published]').innerText()
    assert.match(published, /Team handbook 2027/)
    assert.match(published, /More from Bob\./)
    assert.match(await review.locator('[data-testid=published]').innerHTML(), /<h2>Getting started<\/h2>/)
    const record = (await wikiData()).pages[pageId].published
    assert.equal(record.by, 'alice')
    assert.equal(record.etag, (await host.getDraft(pageId)).etag, 'published the draft as it is')
    assert.equal((await host.listHistory(pageId)).filter((p) => p.kind === 'publish').length, 1)
    // The people editing are told who published (as text, from Chorus, live).
    await waitFor(async () => (await bob.locator('[data-testid=host-action]').innerText()) === 'Alice published this page.', "'Alice published' in Bob's editor")
    await review.close()
  })

  it('lists the history and restores a version into the open editors', async () => {
    // Bob throws the text away.
    await bob.click('#editor .tiptap')
    await bob.keyboard.press('Control+A')
    await bob.keyboard.type('Scrapped.')
    await waitFor(async () => { const h = await draftHtml(); return h.includes('Scrapped.') && !h.includes('Alice wrote this.') }, 'the scrapped draft in Chorus')

    const history = await alice.context().newPage()
    await history.goto(`${wikiUrl}/pages/${pageId}/history`)
    const publishRow = history.locator('[data-testid=history] tr', { hasText: 'publish' })
    assert.equal(await publishRow.count(), 1)
    await publishRow.locator('a:text-is("View")').click()
    assert.match(await history.locator('[data-testid=point]').innerText(), /Alice wrote this\. Important\s+Bob agrees\. More from Bob\./)
    await history.click('[data-testid=restore]')
    await history.waitForURL(/\/edit$/)
    await history.waitForSelector('body[data-editor-ready=true]')

    // Bob's open editor shows the restored text as it arrives, no reload.
    await waitFor(async () => { const t = await editorText(bob); return t.includes('More from Bob.') && !t.includes('Scrapped.') }, "the restored version in Bob's editor")
    await waitFor(async () => (await editorHtml(alice)) === (await editorHtml(bob)), "Alice's editor and Bob's to agree")
    assert.match(await editorHtml(bob), /<h2>Getting started<\/h2>/)

    await history.goto(`${wikiUrl}/pages/${pageId}/history`)
    assert.equal(await history.locator('[data-testid=history] tr', { hasText: 'restore of' }).count(), 1)
    await history.close()
  })

  it('discards the unpublished changes in every open editor, saying who did', async () => {
    await bob.click('#editor .tiptap')
    await bob.keyboard.press('Control+End')
    await bob.keyboard.type('An unpublished idea.')
    await waitFor(async () => (await draftHtml()).includes('An unpublished idea.'), "Bob's unpublished text in the draft")
    await waitFor(async () => (await editorText(alice)).includes('An unpublished idea.'), "Bob's text in Alice's editor")

    await alice.click('details.danger summary')
    await alice.click('[data-testid=discard]')
    await alice.waitForURL(/\/edit$/)
    await alice.waitForSelector('body[data-editor-ready=true]')
    const published = (await wikiData()).pages[pageId].published.html
    await waitFor(async () => !(await editorText(bob)).includes('An unpublished idea.'), "the idea gone from Bob's editor, no reload")
    await waitFor(async () => (await bob.locator('[data-testid=host-action]').innerText()) === 'Alice discarded the unpublished changes.', "Bob is told who discarded")
    const draft = await draftHtml()
    assert.doesNotMatch(draft, /An unpublished idea\./)
    assert.match(draft, /More from Bob\./, 'the published text is back')
    assert.ok(published.includes('More from Bob.'))
    assert.equal((await host.listHistory(pageId)).at(-1).kind, 'discard')
  })

  it('hears that everyone left: the closed webhook with its contributors', async () => {
    await alice.goto(wikiUrl)
    await bob.goto(wikiUrl)
    const row = await waitFor(async () => {
      await alice.reload()
      const r = alice.locator(`[data-page="${pageId}"]`)
      return (await r.locator('[data-testid=closed]').count()) && r
    }, 'the closed webhook in the page list')
    assert.match(await row.locator('[data-testid=closed]').innerText(), /contributors: (alice, bob|bob, alice)/)
    assert.equal(await row.locator('[data-testid=editing]').count(), 0, 'nobody is editing any more')
    assert.match(wiki.output(), /webhook closed evt-\d+/)
    assert.doesNotMatch(wiki.output(), /wiki: webhook refused: (?!bad-signature|body-mismatch|missing-token)/, 'only the forgeries were refused')
  })

  it('deletes the page: the other editor stops, nothing is written back, and the webhook says so', async () => {
    await openEditor(alice)
    await openEditor(bob)
    await bob.click('details.danger summary')
    await bob.click('[data-testid=delete]')
    await bob.waitForURL(/\/\?deleted=/)
    assert.match(await bob.locator('[data-testid=notice]').innerText(), /Deleted “Team handbook 2027”/)
    assert.equal(await bob.locator(`[data-page="${pageId}"]`).count(), 0, 'gone from the list')

    // Alice's open editor was closed by Chorus (4404) and stops: it never reconnects
    // to write the deleted draft into the emptied id.
    await alice.waitForSelector('body[data-deleted=true]')
    assert.equal(await alice.locator('[data-testid=status]').innerText(), 'This page was deleted.')
    await sleep(1500)
    await assert.rejects(host.getDraft(pageId), (err) => err.status === 404, 'the draft stays deleted')
    assert.deepEqual(await host.listHistory(pageId), [])
    assert.equal((await wikiData()).pages[pageId], undefined)
    await waitFor(() => /webhook deleted evt-\d+/.test(wiki.output()), 'the deleted webhook')
    const res = await alice.goto(`${wikiUrl}/pages/${pageId}/edit`)
    assert.equal(res.status(), 404)
  })
})

describe('the example wiki under attack: routes, sessions, origins, permissions, webhooks', () => {
  let dir, chorus, wiki, wikiUrl, host
  const origin = () => ({ origin: wikiUrl })

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'chorus-example-wiki-hard-'))
    const wikiPort = await freePort()
    wikiUrl = `http://127.0.0.1:${wikiPort}`
    const configPath = path.join(dir, 'chorus.toml')
    const example = await readFile(path.join(root, 'chorus.toml'), 'utf8')
    await writeFile(configPath, example
      .replace(/^bind = .*$/m, 'bind = "127.0.0.1:0"')
      .replace(/^data_dir = .*$/m, `data_dir = ${JSON.stringify(path.join(dir, 'chorus-data'))}`)
      .replace(/^secrets = .*$/m, `secrets = [${JSON.stringify(SECRET)}]`)
      .replace(/^callback_url = .*$/m, `callback_url = "${wikiUrl}/chorus/webhook"`))
    const chorusEnv = { NO_COLOR: '1' }
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHORUS_')) chorusEnv[k] = v
    chorus = await start('chorus', CHORUS_BIN, ['serve', '--config', configPath], { env: chorusEnv, cwd: dir, ready: /listening on http:\/\/127\.0\.0\.1:(\d+)/ })
    const chorusUrl = `http://127.0.0.1:${chorus.match[1]}`
    host = new ChorusHost({ baseUrl: chorusUrl, appId: APP_ID, secret: SECRET })
    wiki = await start('wiki', process.execPath, ['server.mjs'], {
      cwd: root,
      env: { ...process.env, WIKI_APP_SECRET: SECRET, WIKI_CHORUS_URL: chorusUrl, WIKI_PORT: String(wikiPort), WIKI_DATA_FILE: path.join(dir, 'wiki-data.json'), WIKI_VIEWERS: 'carol' },
      ready: /wiki: listening on/
    })
  })
  after(async () => {
    await wiki?.stop()
    await chorus?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  /** Signs `user` in; the session cookie (`name=value`). */
  async function signIn (user) {
    const res = await fetch(`${wikiUrl}/login`, { method: 'POST', redirect: 'manual', headers: { ...origin(), 'content-type': 'application/x-www-form-urlencoded' }, body: `user=${user}` })
    assert.equal(res.status, 303, `sign-in answered ${res.status}`)
    const cookie = res.headers.get('set-cookie') ?? ''
    assert.match(cookie, /^__Host-wiki_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/)
    return cookie.split(';')[0]
  }
  const whoami = async (cookie) => {
    const text = await (await fetch(wikiUrl, { headers: { cookie } })).text()
    return /data-testid="whoami">([^<]*)</.exec(text)?.[1] ?? null
  }
  async function newPage (cookie, title) {
    const res = await fetch(`${wikiUrl}/pages`, { method: 'POST', redirect: 'manual', headers: { ...origin(), cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `title=${encodeURIComponent(title)}` })
    assert.equal(res.status, 303)
    return decodeURIComponent(res.headers.get('location').split('/')[2])
  }

  it('a cookie the error page used to decode again (wiki_user=%.x) and other malformed requests get an answer; the wiki keeps serving', async () => {
    for (const cookie of ['wiki_user=%.x', '__Host-wiki_session=%', '__Host-wiki_session', '=;;=', 'a=%E0%A4%A']) {
      const res = await fetch(`${wikiUrl}/pages/x/edit`, { headers: { cookie } })
      assert.ok(res.status < 500, `${cookie}: ${res.status}`)
    }
    const res = await fetch(`${wikiUrl}/pages/%E0%A4%A/edit`, { headers: { cookie: await signIn('dora') } })
    assert.equal(res.status, 404)
    assert.ok(wiki.alive(), 'the wiki is still running')
  })

  it('a seeded generator of requests over every route: never a 5xx, never a crash', async () => {
    let seed = 20261207
    const rand = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n }
    const pick = (xs) => xs[rand(xs.length)]
    const cookie = await signIn('erin')
    const page = await newPage(cookie, 'Fuzzed')
    const segments = [page, 'x', '%', '%zz', '%E0%A4%A', '..', '%2e%2e', 'ünï', '\u0000', 'a'.repeat(3000), '12345678901234567890', '-1']
    const tails = ['', '/edit', '/token', '/publish', '/history', '/history/1', '/history/99999999999999999999', '/history/1/restore', '/nope', '//', '/edit/']
    const roots = ['/', '/pages', '/login', '/logout', '/assets/editor.js', '/assets/wiki.css', '/assets/../server.mjs', '/chorus/webhook', '/%', '/?%', '']
    const bodies = ['', 'user=', 'user=%', 'title=' + 'x'.repeat(300), 'etag=', 'etag=%22x%22', '\u0000\u0001', 'a=b&a=c', 'x'.repeat(70_000), '{"id":1}']
    const cookies = [cookie, '', 'wiki_user=%.x', '__Host-wiki_session=' + 'A'.repeat(43), '__Host-wiki_session=%%%', cookie + '; ' + cookie]
    const origins = [wikiUrl, undefined, 'https://evil.example', 'null', wikiUrl + '/']
    const counts = {}
    for (let i = 0; i < 400; i++) {
      const method = pick(['GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'])
      const p = rand(2) === 0 ? `/pages/${pick(segments)}${pick(tails)}` : pick(roots)
      const headers = { 'content-type': pick(['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data']) }
      const c = pick(cookies)
      if (c) headers.cookie = c
      const o = pick(origins)
      if (o) headers.origin = o
      if (rand(5) === 0) headers.authorization = pick(['Bearer x.y.z', 'Bearer ' + 'a'.repeat(20_000), 'Basic Zm9v'])
      const body = method === 'GET' || method === 'HEAD' ? undefined : pick(bodies)
      let status
      try {
        const res = await fetch(`${wikiUrl}${p}`, { method, headers, body, redirect: 'manual' })
        status = res.status
        await res.arrayBuffer()
      } catch (err) {
        assert.fail(`${method} ${p.slice(0, 80)}: no answer (${err.message})`)
      }
      assert.ok(status < 500, `${method} ${p.slice(0, 80)} (cookie ${String(c).slice(0, 30)}, origin ${o}): ${status}`)
      counts[status] = (counts[status] ?? 0) + 1
    }
    assert.ok(wiki.alive(), 'the wiki is still running')
    assert.equal(await whoami(cookie), 'erin', 'and still serves its users')
    assert.ok(Object.keys(counts).length >= 4, `varied answers: ${JSON.stringify(counts)}`)
  })

  it('sessions are server-side: a new id at each sign-in, and a signed-out cookie opens nothing', async () => {
    const first = await signIn('frank')
    const second = await signIn('frank')
    assert.notEqual(first, second)
    assert.equal(await whoami(first), 'frank')
    const out = await fetch(`${wikiUrl}/logout`, { method: 'POST', redirect: 'manual', headers: { ...origin(), cookie: first } })
    assert.equal(out.status, 303)
    assert.match(out.headers.get('set-cookie') ?? '', /^__Host-wiki_session=; Path=\/; Max-Age=0/)
    assert.equal(await whoami(first), null, 'the cookie kept by an attacker is worth nothing after sign-out')
    assert.equal(await whoami(second), 'frank', 'another session of the same user is untouched')
  })

  it('a POST from another origin is refused, sign-in included', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    for (const headers of [{ origin: 'https://evil.example' }, {}, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }]) {
      const res = await fetch(`${wikiUrl}/login`, { method: 'POST', redirect: 'manual', headers: { ...form, ...headers }, body: 'user=mallory' })
      assert.equal(res.status, 403, JSON.stringify(headers))
      assert.equal(res.headers.get('set-cookie'), null)
    }
    const cookie = await signIn('gina')
    const res = await fetch(`${wikiUrl}/pages`, { method: 'POST', redirect: 'manual', headers: { ...form, cookie, origin: 'https://evil.example' }, body: 'title=Planted' })
    assert.equal(res.status, 403)
    const same = await fetch(`${wikiUrl}/login`, { method: 'POST', redirect: 'manual', headers: { ...form, 'sec-fetch-site': 'same-origin' }, body: 'user=gina' })
    assert.equal(same.status, 303, 'a same-origin request without Origin (Sec-Fetch-Site) is fine')
  })

  it('the authorization hook: a reader gets view-mode tokens and cannot publish or restore', async () => {
    const page = await newPage(await signIn('hank'), 'Readable')
    const carol = await signIn('carol')
    const { token } = await (await fetch(`${wikiUrl}/pages/${page}/token`, { headers: { cookie: carol } })).json()
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))
    assert.equal(claims.mode, 'view')
    const edit = await (await fetch(`${wikiUrl}/pages/${page}/edit`, { headers: { cookie: carol } })).text()
    assert.match(edit, /"readOnly":true/)
    const { etag } = await host.getDraft(page, { format: 'html' })
    const publish = await fetch(`${wikiUrl}/pages/${page}/publish`, { method: 'POST', redirect: 'manual', headers: { ...origin(), cookie: carol, 'content-type': 'application/x-www-form-urlencoded' }, body: `etag=${encodeURIComponent(etag)}` })
    assert.equal(publish.status, 403)
    const hank = await signIn('hank')
    const own = JSON.parse(Buffer.from((await (await fetch(`${wikiUrl}/pages/${page}/token`, { headers: { cookie: hank } })).json()).token.split('.')[1], 'base64url').toString('utf8'))
    assert.equal(own.mode, 'edit')
  })

  it('a webhook whose token is not Chorus\'s is refused before its body is read', async () => {
    const http = await import('node:http')
    const started = Date.now()
    const answer = await new Promise((resolve, reject) => {
      const req = http.request(`${wikiUrl}/chorus/webhook`, { method: 'POST', headers: { authorization: 'Bearer a.b.c', 'content-type': 'application/json', 'content-length': String(40 * 1024 * 1024) } })
      req.on('response', (res) => { resolve(res.statusCode); req.destroy() })
      req.on('error', (err) => { if (err.code !== 'ECONNRESET') reject(err) })
      req.write(Buffer.alloc(64 * 1024, 0x20)) // 64 KiB of the announced 40 MiB, then nothing
    })
    assert.equal(answer, 401)
    assert.ok(Date.now() - started < 5000, 'answered without waiting for the body')
  })

  it('an event older than one already applied (a late retry) does not overwrite it', async () => {
    const page = await newPage(await signIn('ivy'), 'Ordered')
    const send = async (id, at, users) => {
      const body = { id, type: 'editing', app: APP_ID, doc: page, at, users }
      const { authorization, body: raw } = signedWebhook(SECRET, body)
      const res = await fetch(`${wikiUrl}/chorus/webhook`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: raw })
      assert.equal(res.status, 200)
    }
    const now = Date.now()
    await send(`evt-new-${page}`, now, ['ivy', 'jon'])
    await send(`evt-old-${page}`, now - 60_000, ['ivy'])
    const data = JSON.parse(await readFile(path.join(dir, 'wiki-data.json'), 'utf8'))
    assert.deepEqual(data.pages[page].editing, ['ivy', 'jon'])
  })
})

// Real TipTap v3 editors (StarterKit, Collaboration, CollaborationCaret; bundled by
// esbuild from tiptap-entry.mjs) in headless Chromium, each in its own browser
// context, on stock y-websocket WebsocketProviders, against the real chorus binary
// with an app whose `editor = "tiptap"`:
//
// - keyboard typing and TipTap commands (heading, bold, link) converge in both editors,
//   and nothing TipTap wrote is neutralised by the whitelist (/metrics stays at 0);
// - the host renders the draft as HTML (`<h2>`, `<strong>`, `<a href>`);
// - a host PUT of HTML (the draft's own HTML, edited in one paragraph) shows in both
//   editors, and a collaborator's cursor in another paragraph stays where it was;
// - hostile content written straight into the Y.Doc (an `onclick`, a `javascript:`
//   link) reaches neither the other editor's Y.Doc nor any render; its text survives;
// - editor A's caret shows in editor B, labelled with the token's `name`, not the
//   name page A claimed;
// - a link with TipTap's `title` set stays a link (the profile maps it to `a title`);
// - on y-websocket and on @hocuspocus/provider, a view-only peer's hostile presence
//   (a malformed cursor) leaves every editor syncing.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { isDeepStrictEqual } from 'node:util'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { chromium } from 'playwright-core'
import { startServer, sessionToken, hostToken, waitFor, uid, sleep, SETTLE, TIMEOUT, RawClient } from './harness.mjs'
import { hostilePresenceFrames } from './lib/hostile-presence.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

const APP = Object.freeze({ id: 'tiptap-wiki', secrets: ['tiptap-wiki-secret-0123456789abcdef'], editor: 'tiptap' })
const LINK = 'https://example.com/docs'

/** Bundles tiptap-entry.mjs; fails if any package of the Yjs / ProseMirror stack is in it twice. */
async function bundle () {
  const result = await esbuild.build({
    entryPoints: [path.join(here, 'tiptap-entry.mjs')],
    bundle: true,
    format: 'iife',
    write: false,
    metafile: true,
    logLevel: 'silent'
  })
  for (const pkg of ['yjs', 'lib0', 'y-protocols', 'prosemirror-model', 'prosemirror-state', 'prosemirror-view', '@tiptap/core', '@tiptap/y-tiptap']) {
    const copies = new Set()
    for (const input of Object.keys(result.metafile.inputs)) {
      const i = input.lastIndexOf(`node_modules/${pkg}/`)
      if (i >= 0) copies.add(input.slice(0, i))
    }
    assert.ok(copies.size <= 1, `${pkg} is bundled ${copies.size} times (${[...copies].join(', ')})`)
    if (pkg === 'yjs') assert.equal(copies.size, 1, 'yjs is in the bundle')
  }
  return result.outputFiles[0].text
}

/** Serves one page that loads the bundle, on 127.0.0.1:<free port>. */
async function servePage (js) {
  const html = '<!doctype html><meta charset="utf-8"><title>chorus tiptap test</title><body><script src="/tiptap.js"></script>'
  const server = http.createServer((req, res) => {
    if (req.url === '/tiptap.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((resolve) => server.close(resolve)) }
}

/** Sum of a Prometheus counter over all its series (0 when absent). */
function counterSum (text, name) {
  let sum = 0
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)/)
    if (m && m[1] === name) sum += Number(m[3])
  }
  return sum
}

/** Every `javascript:` / `onclick` anywhere in a value (attribute names and values, marks). */
const hostile = (value) => {
  const s = typeof value === 'string' ? value : JSON.stringify(value)
  return ['javascript:', 'onclick'].filter((needle) => s.toLowerCase().includes(needle))
}

/** The document's text nodes in order, with their marks, for readable comparisons. */
function runs (json) {
  const out = []
  const walk = (node) => {
    if (node.type === 'text') out.push({ text: node.text, marks: (node.marks ?? []).map((m) => m.attrs ? { type: m.type, attrs: m.attrs } : { type: m.type }) })
    for (const child of node.content ?? []) walk(child)
  }
  walk(json)
  return out
}

describe('TipTap v3 editors in Chromium on y-websocket, app with editor = "tiptap"', () => {
  let chorus, site, browser
  const contexts = []
  const consoleMessages = [] // { page, type, text }: errors, warnings, page errors
  let A, B // pages
  const doc = uid('tiptap-page')
  const draftUrl = (tail) => `${chorus.httpUrl}/v1/apps/${APP.id}/docs/${encodeURIComponent(doc)}/${tail}`
  const hostAuth = () => ({ authorization: `Bearer ${hostToken({ app: APP, doc })}` })
  let draftHtml = null
  let renderedRel = null

  const ev = (page, fn, arg) => page.evaluate(fn, arg)
  const json = (page) => ev(page, () => window.chorus.editor.getJSON())
  const html = (page) => ev(page, () => window.chorus.editor.getHTML())
  const tree = (page) => ev(page, () => window.fragmentTree())
  async function hostHtml () {
    const res = await fetch(draftUrl('draft?format=html'), { headers: hostAuth() })
    assert.equal(res.status, 200, `GET draft?format=html: ${res.status}`)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    return res.text()
  }
  async function neutralised () {
    const res = await fetch(`${chorus.httpUrl}/metrics`)
    assert.equal(res.status, 200)
    return counterSum(await res.text(), 'chorus_whitelist_neutralised_total')
  }
  /** Both editors hold the same document (getJSON) and `pred(json)` holds for it. */
  async function converged (what, pred = () => true) {
    let last = null
    return waitFor(async () => {
      const [a, b] = await Promise.all([json(A), json(B)])
      last = { a, b }
      return JSON.stringify(a) === JSON.stringify(b) && pred(a) ? a : false
    }, what, { describe: () => JSON.stringify(last) })
  }

  async function openEditor (name, tokenName, localUser) {
    const context = await browser.newContext()
    contexts.push(context)
    const page = await context.newPage()
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') consoleMessages.push({ page: name, type: m.type(), text: m.text() }) })
    page.on('pageerror', (e) => consoleMessages.push({ page: name, type: 'pageerror', text: e.message }))
    await page.goto(site.url)
    await page.waitForFunction(() => typeof window.makeEditor === 'function', null, { timeout: TIMEOUT })
    const token = sessionToken({ app: APP, doc, user: `user-${name}`, name: tokenName })
    await ev(page, (opts) => window.makeEditor(opts), {
      url: `${chorus.wsBase}/${APP.id}`, room: doc, token, user: localUser, timeout: TIMEOUT
    })
    await page.waitForSelector('#editor .ProseMirror[contenteditable="true"]', { timeout: TIMEOUT })
    return page
  }

  before(async () => {
    const js = await bundle()
    chorus = await startServer({ apps: [APP] })
    site = await servePage(js)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
  })

  after(async () => {
    for (const page of [A, B]) {
      if (!page) continue
      await page.evaluate(() => {
        try { window.chorus?.editor?.destroy() } catch {}
        try { window.chorus?.provider?.destroy() } catch {}
      }).catch(() => {})
    }
    for (const c of contexts) await c.close().catch(() => {})
    await browser?.close().catch(() => {})
    await site?.close()
    await chorus?.stop()
  })

  it('typing and commands in editor A converge in editor B; nothing TipTap wrote is neutralised', async () => {
    // A starts alone on the empty document; it claims a name of its own for its caret.
    A = await openEditor('a', 'Alice', { name: 'Impostor Alice', color: '#ff0000' })
    await A.click('#editor .ProseMirror')
    await A.keyboard.type('Plan')
    assert.equal(await ev(A, () => window.chorus.editor.commands.toggleHeading({ level: 2 })), true)
    await A.keyboard.press('End')
    await A.keyboard.press('Enter')
    await A.keyboard.type('Keep this paragraph as it is.')
    await A.keyboard.press('Enter')
    await A.keyboard.type('Change me later.')
    await A.keyboard.press('Enter')
    await A.keyboard.type('Some bold text and a link here.')
    assert.equal(await ev(A, () => window.chorus.editor.chain().setTextSelection(window.findText('bold')).toggleBold().run()), true)
    assert.equal(await ev(A, (href) => window.chorus.editor.chain().setTextSelection(window.findText('a link')).setLink({ href }).run(), LINK), true)
    // the caret back into running text (A stays focused: its caret is in its awareness)
    await ev(A, () => window.chorus.editor.chain().focus().setTextSelection(window.findText('Plan').to).run())

    B = await openEditor('b', 'Bob', { name: 'Bob (local)', color: '#0000ff' })
    const doc0 = await converged('editor B shows what editor A wrote', (j) => JSON.stringify(j).includes(LINK))
    // the last, empty paragraph is TipTap's: StarterKit's TrailingNode added it after the
    // heading, when the heading was the document's last node, and Enter went above it
    assert.deepEqual(doc0.content.map((n) => [n.type, n.attrs ?? null, n.content?.length ?? 0]), [
      ['heading', { level: 2 }, 1], ['paragraph', null, 1], ['paragraph', null, 1], ['paragraph', null, 5], ['paragraph', null, 0]
    ])
    assert.deepEqual(runs(doc0).map((r) => [r.text, r.marks.map((m) => m.type).join('+')]), [
      ['Plan', ''], ['Keep this paragraph as it is.', ''], ['Change me later.', ''],
      ['Some ', ''], ['bold', 'bold'], [' text and ', ''], ['a link', 'link'], [' here.', '']
    ])
    const link = runs(doc0).find((r) => r.text === 'a link').marks[0]
    // TipTap's own link attributes, as A wrote them, reached B unchanged
    assert.deepEqual(link.attrs, { href: LINK, target: '_blank', rel: 'noopener noreferrer nofollow', class: null, title: null })

    // what synced in the Y.Doc, not only what TipTap renders from it
    await sleep(SETTLE)
    assert.deepEqual(await tree(B), await tree(A), 'A\'s and B\'s Y.XmlFragment("default") are identical')
    assert.equal(await neutralised(), 0, 'the whitelist neutralised nothing TipTap wrote')
  })

  it('the host reads the draft as HTML: <h2>, <strong>, <a href>', async (t) => {
    draftHtml = await hostHtml()
    assert.match(draftHtml, /<h2>Plan<\/h2>/)
    assert.match(draftHtml, /<p>Keep this paragraph as it is\.<\/p>/)
    assert.match(draftHtml, /<p>Change me later\.<\/p>/)
    assert.match(draftHtml, /<strong>bold<\/strong>/)
    assert.match(draftHtml, new RegExp(`<a href="${LINK.replace(/[.]/g, '\\.')}"[^>]*>a link</a>`))
    assert.match(draftHtml, /<p><\/p>$/, 'TipTap\'s trailing empty paragraph')
    assert.equal(draftHtml.split('<p>').length - 1, 4, `four paragraphs: ${draftHtml}`)
    // TipTap wrote rel "noopener noreferrer nofollow"; the HTML cleaner forces its own rel
    // on every <a> (chorus-whitelist html.rs, LINK_REL), so the render says something else
    renderedRel = draftHtml.match(/<a [^>]*rel="([^"]*)"/)?.[1]
    assert.equal(renderedRel, 'noopener noreferrer', `the rel the render gives the link: ${draftHtml}`)
    t.diagnostic(`host HTML: ${draftHtml}`)
  })

  it('a host PUT of HTML changes one paragraph in both editors; B\'s cursor in another paragraph stays put', async () => {
    assert.ok(draftHtml, 'the draft HTML of the previous step')
    // B's caret: "Keep |this paragraph as it is." (offset 5), a paragraph the host leaves alone
    const at = await ev(B, () => {
      const { from } = window.findText('Keep this paragraph')
      window.chorus.editor.commands.setTextSelection(from + 5)
      window.kept = window.chorus.fragment.get(1) // its Y.XmlElement, to see that the host's import keeps it
      return window.selectionInfo()
    })
    assert.deepEqual([at.parentType, at.parentText, at.fromOffset, at.empty], ['paragraph', 'Keep this paragraph as it is.', 5, true])

    const before = await neutralised()
    const edited = draftHtml.replace('<p>Change me later.</p>', '<p>Changed by the <em>host</em>.</p>')
    assert.notEqual(edited, draftHtml)
    const res = await fetch(draftUrl('content'), {
      method: 'PUT',
      headers: { ...hostAuth(), 'content-type': 'application/json' },
      body: JSON.stringify({ html: edited })
    })
    assert.equal(res.status, 200, `PUT content: ${res.status} ${await res.clone().text()}`)

    for (const [name, page] of [['A', A], ['B', B]]) {
      await waitFor(async () => {
        const h = await html(page)
        return h.includes('<p>Changed by the <em>host</em>.</p>') && !h.includes('Change me later.')
      }, `editor ${name} shows the host's change`, { describe: () => name })
    }
    const doc1 = await converged('both editors hold the host\'s version', (j) => JSON.stringify(j).includes('Changed by the '))
    assert.deepEqual(runs(doc1).map((r) => [r.text, r.marks.map((m) => m.type).join('+')]), [
      ['Plan', ''], ['Keep this paragraph as it is.', ''],
      ['Changed by the ', ''], ['host', 'italic'], ['.', ''],
      ['Some ', ''], ['bold', 'bold'], [' text and ', ''], ['a link', 'link'], [' here.', '']
    ])
    assert.equal(doc1.content.length, 5, 'the trailing empty paragraph is still there')
    assert.deepEqual(doc1.content[0], { type: 'heading', attrs: { level: 2 }, content: [{ type: 'text', text: 'Plan' }] })
    // The render forced rel="noopener noreferrer" (see above), so the host's HTML carried
    // that rel, and its import rewrote the link in a paragraph the host did not edit:
    // TipTap's "nofollow" is gone (the import also writes the mark without its null keys).
    assert.deepEqual(runs(doc1).find((r) => r.text === 'a link').marks[0].attrs,
      { href: LINK, target: '_blank', rel: renderedRel, class: null, title: null },
      'the link comes back with the attributes of the host\'s HTML (rel as the render wrote it)')

    const sel = await ev(B, () => window.selectionInfo())
    assert.deepEqual([sel.parentType, sel.parentText, sel.fromOffset, sel.empty], ['paragraph', 'Keep this paragraph as it is.', 5, true],
      `B's cursor stayed in its paragraph at offset 5: ${JSON.stringify(sel)}`)
    assert.equal(await ev(B, () => {
      const { $from } = window.chorus.editor.state.selection
      return $from.parent.textBetween(0, $from.parentOffset) + '|' + $from.parent.textBetween($from.parentOffset, $from.parent.content.size)
    }), 'Keep |this paragraph as it is.')
    assert.equal(await ev(B, () => window.chorus.fragment.get(1) === window.kept && !window.kept._item.deleted), true,
      'the host\'s import kept the untouched paragraph\'s Y.XmlElement (a diff, not a rewrite)')
    assert.equal(await neutralised(), before, 'the host\'s import of the draft\'s own HTML neutralised nothing')
  })

  it('hostile content written into A\'s Y.Doc reaches neither B nor the host render; its text survives', async () => {
    const before = await neutralised()
    // 1. TipTap's own parser, through a command
    const inserted = await ev(A, () => {
      const ed = window.chorus.editor
      const ok = ed.chain().focus('end').insertContent('<p>Inserted by command: <a href="javascript:alert(1)" onclick="x()">x</a></p>').run()
      return { ok, json: ed.getJSON(), html: ed.getHTML() }
    })
    assert.equal(inserted.ok, true)
    const insertedRuns = runs(inserted.json).filter((r) => r.text.startsWith('Inserted by command') || r.text === 'x')
    // TipTap refuses a javascript: link itself (its Link parseHTML checks the URI) and drops onclick
    assert.deepEqual(insertedRuns.map((r) => [r.text, r.marks.length]), [['Inserted by command: x', 0]],
      `what insertContent wrote in A: ${JSON.stringify(insertedRuns)}`)
    assert.deepEqual(hostile(inserted.json), [], 'insertContent wrote nothing hostile')

    // 2. Straight into the Y.Doc, past TipTap's schema
    const written = await ev(A, () => {
      const { Y, chorus } = window
      chorus.ydoc.transact(() => {
        const p = new Y.XmlElement('paragraph')
        p.setAttribute('onclick', "alert('XSS')")
        const t = new Y.XmlText()
        // as y-prosemirror writes a link (a mark is a formatting attribute of the text)
        t.applyDelta([{ insert: 'Hostile paragraph text ' }, { insert: 'with a link', attributes: { link: { href: "javascript:alert('XSS')" } } }])
        p.insert(0, [t])
        chorus.fragment.push([p])
      })
      return window.fragmentTree().children.at(-1)
    })
    assert.deepEqual(hostile(written), ['javascript:', 'onclick'], `A's Y.Doc held the hostile paragraph: ${JSON.stringify(written)}`)

    let lastB = null
    await waitFor(async () => {
      lastB = { html: await html(B), tree: await tree(B), a: await tree(A) }
      return lastB.html.includes('Hostile paragraph text with a link')
    }, 'editor B shows the hostile paragraph\'s text', { describe: () => JSON.stringify(lastB) })
    await waitFor(async () => (await neutralised()) > before, 'the whitelist counted what it neutralised')
    await sleep(SETTLE)

    const bHtml = await html(B)
    const bJson = await json(B)
    const bTree = await tree(B)
    const host = await hostHtml()
    const hostJson = await (await fetch(draftUrl('draft?format=json'), { headers: hostAuth() })).text()
    for (const [what, value] of [['B getHTML', bHtml], ['B getJSON', bJson], ['B Y.XmlFragment', bTree], ['host HTML', host], ['host JSON', hostJson]]) {
      assert.deepEqual(hostile(value), [], `${what} holds nothing hostile: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
    }
    assert.match(bHtml, /<p>Hostile paragraph text with a link<\/p>/, 'B: the text survived as a plain paragraph')
    assert.match(host, /<p>Hostile paragraph text with a link<\/p>/, 'host: the text survived as a plain paragraph')
    assert.match(host, /<p>Inserted by command: x<\/p>/)
    // the sender is corrected too: A's own Y.Doc converges with B's
    // (deep equality, not JSON text: the server re-encodes a mark's attribute object in another key order)
    await waitFor(async () => isDeepStrictEqual(await tree(A), await tree(B)), 'A\'s Y.Doc converges with B\'s (neutralised)')
    assert.deepEqual(hostile(await tree(A)), [])
    // the rest of the document is untouched
    assert.match(host, /<h2>Plan<\/h2>/)
    assert.match(host, /<strong>bold<\/strong>/)
    assert.match(host, new RegExp(`<a href="${LINK.replace(/[.]/g, '\\.')}"`))
  })

  it('presence: A\'s caret shows in B, labelled with the token\'s name, not the name A claimed', async () => {
    // A's caret back into the heading, with A focused (y-prosemirror publishes the cursor of a focused view)
    await ev(A, () => window.chorus.editor.chain().focus().setTextSelection(window.findText('Plan').from + 2).run())
    let seen = null
    const labels = await waitFor(async () => {
      seen = await ev(B, () => [...document.querySelectorAll('#editor .collaboration-carets__caret')]
        .map((c) => ({ label: c.querySelector('.collaboration-carets__label')?.textContent, inHeading: !!c.closest('h2'), html: c.parentElement?.outerHTML })))
      return seen.some((c) => c.label === 'Alice' && c.inHeading) ? seen : false
    }, 'a caret labelled "Alice" (the token\'s name) in editor B\'s heading', {
      describe: () => JSON.stringify(seen)
    })
    assert.deepEqual(labels.map((c) => c.label), ['Alice'], `carets in B: ${JSON.stringify(labels)}`)
    assert.equal(labels[0].inHeading, true, 'the caret sits in the heading, where A\'s selection is')
    const users = await ev(B, () => window.chorus.editor.storage.collaborationCaret.users.map((u) => u.name).sort())
    assert.ok(users.includes('Alice') && !users.some((n) => String(n).includes('Impostor')), `users B knows: ${JSON.stringify(users)}`)
    assert.equal(await ev(A, () => window.chorus.provider.awareness.getLocalState().user.name), 'Impostor Alice', 'A claimed another name locally')
  })

  // TipTap's Link writes `title` (and `class`) beside href, target and rel. The profile
  // maps `title` to `a title`; a `class` (not allowed on `a` by the default policy)
  // does not map, and a link carrying one is removed whole (docs/EDITORS.md).
  it('a link with a title (TipTap Link attribute) stays a link', async () => {
    const TEXT = 'A titled link here.'
    const paragraphOf = (j) => j.content.find((n) => (n.content ?? []).map((c) => c.text ?? '').join('') === TEXT)
    const written = await ev(A, ({ href, TEXT }) => {
      const ed = window.chorus.editor
      ed.chain().focus('end').insertContent(`<p>${TEXT}</p>`).run()
      ed.chain().setTextSelection(window.findText('titled link')).setLink({ href, title: 'Read the docs' }).run()
      return ed.getJSON() // before any answer from the server
    }, { href: LINK, TEXT })
    assert.deepEqual(runs(paragraphOf(written)).map((r) => r.marks[0]?.attrs ?? null),
      [null, { href: LINK, target: '_blank', rel: 'noopener noreferrer nofollow', class: null, title: 'Read the docs' }, null],
      'TipTap itself wrote the link')
    await waitFor(async () => paragraphOf(await json(B)), 'editor B shows the paragraph with the link')
    await sleep(SETTLE)
    const seen = runs(paragraphOf(await json(B)))
    assert.deepEqual(seen, [
      { text: 'A ', marks: [] },
      { text: 'titled link', marks: [{ type: 'link', attrs: { href: LINK, target: '_blank', rel: 'noopener noreferrer nofollow', class: null, title: 'Read the docs' } }] },
      { text: ' here.', marks: [] }
    ], `what editor B holds: ${JSON.stringify(seen)}`)
  })

  it('no page errors, no second copy of Yjs, no disconnects', async (t) => {
    const problems = consoleMessages.filter((m) => m.type !== 'warning' || /Yjs was already imported/.test(m.text))
    assert.deepEqual(problems, [], `page errors: ${JSON.stringify(problems)}`)
    for (const m of consoleMessages) t.diagnostic(`page ${m.page} ${m.type}: ${m.text}`)
    for (const [name, page] of [['A', A], ['B', B]]) {
      const state = await ev(page, () => window.chorus.state)
      assert.deepEqual([state.status, state.closes], ['connected', []], `${name}: ${JSON.stringify(state)}`)
    }
  })
})

// Presence that cannot hurt (PROTOCOL.md, "Awareness"): a view-only raw socket sends
// presence states no editor library writes (`{"cursor":{}}` first: y-prosemirror's
// cursor plugin throws on it, and neither stock provider catches that). The server
// relays a malformed cursor as null, so TipTap editors on both stock providers keep
// drawing carets and, above all, keep syncing.
describe('TipTap v3 editors in Chromium on both stock providers: a view-only peer\'s hostile presence', () => {
  let chorus, site, browser
  const contexts = []

  before(async () => {
    const js = await bundle()
    chorus = await startServer({ apps: [APP] })
    site = await servePage(js)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
  })
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {})
    await browser?.close().catch(() => {})
    await site?.close()
    await chorus?.stop()
  })

  async function openEditor (kind, doc, name) {
    const context = await browser.newContext()
    contexts.push(context)
    const page = await context.newPage()
    page.errors = []
    page.on('pageerror', (e) => page.errors.push(e.message))
    await page.goto(site.url)
    await page.waitForFunction(() => typeof window.makeEditor === 'function', null, { timeout: TIMEOUT })
    const url = kind === 'hocuspocus' ? `${chorus.wsBase.replace('/v1/ws', '/v1/hocuspocus')}/${APP.id}` : `${chorus.wsBase}/${APP.id}`
    await page.evaluate((opts) => window.makeEditor(opts), {
      kind, url, room: doc, token: sessionToken({ app: APP, doc, user: `user-${name}`, name }), user: { name, color: '#3366ff' }, timeout: TIMEOUT
    })
    await page.waitForSelector('#editor .ProseMirror[contenteditable="true"]', { timeout: TIMEOUT })
    return page
  }

  const text = (page) => page.evaluate(() => window.chorus.editor.getText())

  for (const kind of ['y-websocket', 'hocuspocus']) {
    it(`${kind}: every editor keeps syncing`, async () => {
      const doc = uid(`tiptap-presence-${kind}`)
      const A = await openEditor(kind, doc, 'Alice')
      const B = await openEditor(kind, doc, 'Bob')
      await A.evaluate(() => window.chorus.editor.chain().focus().insertContent('<p>Shared.</p>').run())
      await waitFor(async () => (await text(B)).includes('Shared.'), 'B shows A\'s first paragraph')
      // Both focused, so each publishes a cursor; then the hostile states arrive.
      await B.evaluate(() => window.chorus.editor.commands.focus('end'))
      const peer = new RawClient(`${chorus.wsBase}/${APP.id}/${encodeURIComponent(doc)}?token=${sessionToken({ app: APP, doc, user: 'mallory', mode: 'view' })}`)
      try {
        await peer.handshake()
        for (const frame of hostilePresenceFrames()) {
          peer.send(frame)
          await sleep(30)
        }
        await sleep(SETTLE)
        for (const [from, to, word] of [[A, B, ' fromA'], [B, A, ' fromB']]) {
          await from.evaluate(() => window.chorus.editor.commands.focus('end'))
          await from.keyboard.type(word, { delay: 10 })
          let seen = null
          await waitFor(async () => {
            seen = { from: await text(from), to: await text(to) }
            return seen.to.includes(word.trim())
          }, `"${word.trim()}" typed in one editor shows in the other (${kind})`, { describe: () => JSON.stringify(seen) })
        }
        for (const [name, page] of [['A', A], ['B', B]]) {
          const state = await page.evaluate(() => window.chorus.state)
          assert.deepEqual([state.status, state.closes], ['connected', []], `${name} (${kind}): ${JSON.stringify(state)}`)
          assert.deepEqual(page.errors, [], `${name} (${kind}) page errors`)
        }
        assert.equal(peer.closeInfo, null, `the view-only peer is not closed for a malformed cursor: ${peer.describe()}`)
      } finally {
        peer.ws.close()
      }
    })
  }
})

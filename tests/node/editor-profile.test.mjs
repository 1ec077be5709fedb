// An app with `editor = "tiptap"`: stock yjs + y-websocket clients write what TipTap's
// Collaboration extension (y-prosemirror) writes: `paragraph`, `heading` with a numeric
// `level`, marks `bold: {}` and `link: {href, …}`, in the fragment `default`.
//
// - what TipTap writes stays, for the other editor and in the host's HTML (`<h2>`,
//   `<strong>`, `<a href>`);
// - what the policy forbids goes, whatever the editor's names (a `link` to
//   `javascript:`, an `onclick`, a `script` element, HTML's own `p`);
// - a host change (HTML) arrives in both editors in TipTap's names, with `level` a
//   number.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Y, startServer, ClientPool, sessionToken, hostToken, waitFor, waitSynced, uid, SETTLE, sleep } from './harness.mjs'

const TIPTAP_APP = Object.freeze({ id: 'tiptap-wiki', secrets: ['tiptap-secret-0123456789abcdef0123456789'], editor: 'tiptap' })

const fragmentOf = (doc) => doc.getXmlFragment('default')

/** What y-prosemirror writes for a TipTap heading. */
function heading (level, text) {
  const h = new Y.XmlElement('heading')
  h.setAttribute('level', level)
  h.insert(0, [new Y.XmlText(text)])
  return h
}

/** A paragraph of runs: [text, marks] with marks as y-prosemirror writes them. */
function paragraph (runs) {
  const p = new Y.XmlElement('paragraph')
  const t = new Y.XmlText()
  p.insert(0, [t])
  let at = 0
  for (const [text, marks] of runs) {
    t.insert(at, text, marks)
    at += text.length
  }
  return p
}

/** The fragment as [{name, attrs, text}] per top-level node. */
function blocks (doc) {
  return fragmentOf(doc).toArray().map((node) => ({
    name: node.nodeName,
    attrs: node.getAttributes(),
    text: node.toArray().map((child) => child instanceof Y.XmlText ? child.toDelta() : child.nodeName)
  }))
}

describe('editor = "tiptap": TipTap\'s names through the real yjs stack', () => {
  let server
  let pool
  const doc = uid('tiptap')
  const url = (tail) => `${server.httpUrl}/v1/apps/${TIPTAP_APP.id}/docs/${doc}/${tail}`
  const auth = () => ({ authorization: `Bearer ${hostToken({ app: TIPTAP_APP, doc })}` })

  before(async () => {
    server = await startServer({ apps: [TIPTAP_APP] })
    pool = new ClientPool(server)
  })

  after(async () => {
    pool?.destroyAll()
    await server?.stop()
  })

  it('keeps what TipTap writes, drops what the policy forbids, and renders HTML for the host', async () => {
    const alice = pool.provider({ app: TIPTAP_APP, doc, token: sessionToken({ app: TIPTAP_APP, doc, user: 'alice' }) })
    const bob = pool.provider({ app: TIPTAP_APP, doc, token: sessionToken({ app: TIPTAP_APP, doc, user: 'bob' }) })
    await waitSynced(alice)
    await waitSynced(bob)
    const a = alice.doc
    a.transact(() => {
      fragmentOf(a).insert(0, [
        heading(2, 'Plan'),
        paragraph([['bold', { bold: {} }], [' and ', {}], ['a link', { link: { href: 'https://example.com/', target: '_blank', rel: null, class: null } }]])
      ])
    })
    a.transact(() => {
      const evil = paragraph([['click', { link: { href: "javascript:alert('XSS-HREF')" } }]])
      evil.setAttribute('onclick', "alert('XSS-ATTR')")
      const script = new Y.XmlElement('script')
      script.insert(0, [new Y.XmlText("alert('XSS-EL')")])
      const htmlP = new Y.XmlElement('p')
      htmlP.insert(0, [new Y.XmlText('html-named')])
      fragmentOf(a).insert(2, [evil, script, htmlP])
    })
    await waitFor(() => blocks(bob.doc).length === 3 && blocks(a).length === 3, 'both editors hold the three allowed blocks')
    await sleep(SETTLE)
    const seen = blocks(bob.doc)
    assert.deepEqual(seen[0], { name: 'heading', attrs: { level: 2 }, text: [[{ insert: 'Plan' }]] })
    assert.equal(seen[1].name, 'paragraph')
    assert.deepEqual(seen[2], { name: 'paragraph', attrs: {}, text: [[{ insert: 'click' }]] })
    const all = JSON.stringify(a.toJSON()) + JSON.stringify(bob.doc.toJSON())
    for (const marker of ['XSS-HREF', 'XSS-ATTR', 'XSS-EL', 'html-named']) {
      assert.ok(!all.includes(marker), `${marker} is gone from both editors`)
    }

    const res = await fetch(url('draft?format=html'), { headers: auth() })
    assert.equal(res.status, 200)
    const html = await res.text()
    assert.equal(html,
      '<h2>Plan</h2><p><strong>bold</strong> and <a href="https://example.com/" target="_blank" rel="noopener noreferrer">a link</a></p><p>click</p>')
    const json = await (await fetch(url('draft?format=json'), { headers: auth() })).json()
    assert.equal(json.body[0].name, 'heading', 'JSON keeps TipTap\'s names')
  })

  it('takes a host change in HTML and shows it in both editors in TipTap\'s names', async () => {
    const alice = pool.provider({ app: TIPTAP_APP, doc, token: sessionToken({ app: TIPTAP_APP, doc, user: 'alice2' }) })
    await waitSynced(alice)
    const res = await fetch(url('content'), {
      method: 'PUT',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({
        html: '<h3 style="text-align: center">Plan B</h3><p><strong>bold</strong> and <a href="https://example.com/" target="_blank" rel="noopener noreferrer">a link</a></p><p>click</p><ul><li>new item</li></ul>'
      })
    })
    assert.equal(res.status, 200, await res.clone().text())
    await waitFor(() => blocks(alice.doc).length === 4, 'the list arrives')
    const seen = blocks(alice.doc)
    assert.deepEqual(seen[0], { name: 'heading', attrs: { level: 3, textAlign: 'center' }, text: [[{ insert: 'Plan B' }]] })
    assert.equal(typeof seen[0].attrs.level, 'number', 'level is a number, as TipTap writes it')
    const list = fragmentOf(alice.doc).get(3)
    assert.equal(list.nodeName, 'bulletList')
    assert.equal(list.get(0).nodeName, 'listItem')
    assert.equal(list.get(0).get(0).nodeName, 'paragraph', 'a list item starts with a paragraph')
    assert.equal(fragmentOf(alice.doc).get(1).toArray()[0].toDelta()[0].attributes.bold !== undefined, true)
    assert.equal(alice.doc.getXmlFragment('body').length, 0, 'nothing in `body`')
  })
})

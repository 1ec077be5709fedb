// lib/oracle.mjs (the independent judge of a Yjs document against the default
// content policy) on hand-made documents: clean content passes; each rule flags
// what it must, including the lone Format item with no text after it that deltas
// never show; harmless things (null end markers, collected deletions) pass.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { judgeDoc, judgeRenderJson, urlAllowed, styleAllowed, markProblem, attributeProblem, liveString, DEFAULT_POLICY as P } from './lib/oracle.mjs'
import { singleClientUpdate, item, content as C } from './lib/raw-update.mjs'

const H = 7 // the honest client
const A = 99 // the attacker

/** title 'hi' and <p>hi</p> by client 7: text items 7:0 (title 'hi'), p 7:2, XmlText 7:3, 'hi' 7:4..5. */
function baseDoc (opts) {
  const d = new Y.Doc(opts)
  d.clientID = H
  d.transact(() => {
    d.getText('title').insert(0, 'hi')
    const p = new Y.XmlElement('p')
    d.getXmlFragment('body').insert(0, [p])
    const t = new Y.XmlText()
    p.insert(0, [t])
    t.insert(0, 'hi')
  })
  return d
}
const ID = { titleI: [H, 1], p: [H, 2], text: [H, 3], h: [H, 4], i: [H, 5] }
const textOf = (d) => d.getXmlFragment('body').get(0).get(0)

/** Applies hand-encoded structs of the attacker to `d` (clock = the attacker's next clock). */
function attack (d, structs, deleteSet = []) {
  const clock = Y.getState(d.store, A)
  Y.applyUpdate(d, singleClientUpdate(A, clock, structs, deleteSet))
  return d
}

const JS = 'javascript:alert(1)'
const flagged = (d, re, opts) => {
  const v = judgeDoc(d, opts)
  assert.ok(v.some((x) => re.test(x)), `expected a violation matching ${re}; got ${JSON.stringify(v, null, 1)}`)
  return v
}
const clean = (d, opts) => assert.deepEqual(judgeDoc(d, opts), [])

describe('oracle: judging documents against the default policy', () => {
  it('passes realistic allowed content', () => {
    const d = baseDoc()
    d.transact(() => {
      const body = d.getXmlFragment('body')
      const p = new Y.XmlElement('P')
      body.insert(1, [p])
      p.setAttribute('class', 'lead')
      p.setAttribute('style', 'color: red; text-align: center')
      p.setAttribute('data-macro-name', 'info')
      const t = new Y.XmlText()
      p.insert(0, [t])
      t.insert(0, 'bold', { strong: true })
      t.insert(4, ' link', { a: { href: 'https://ok.example/x', title: 't', target: null }, 'strong--a1b2c3d4': {} })
      t.insert(9, ' rel', { a: { href: '/relative:path' } })
      t.insert(13, ' span', { span: { style: 'color: blue', class: 'c' } })
      const img = new Y.XmlElement('img')
      img.setAttribute('src', 'https://ok.example/a.png')
      img.setAttribute('width', 10)
      body.insert(2, [img])
      const a = new Y.XmlElement('a')
      a.setAttribute('href', 'mailto:x@example.org')
      a.insert(0, [new Y.XmlText('mail')])
      body.insert(3, [a])
    })
    clean(d)
  })

  it('flags the lone format item (no text after it) and the text a later update puts after it', () => {
    const d = baseDoc()
    attack(d, [item(C.format('a', { href: JS }), { origin: ID.i })])
    assert.deepEqual(textOf(d).toDelta(), [{ insert: 'hi' }], 'the delta does not show the lone format')
    const v = flagged(d, /format a=\{"href":"javascript:alert\(1\)"\}.*URL scheme not allowed \(no text after it\)/)
    assert.equal(v.length, 1, JSON.stringify(v))
    attack(d, [item(C.string('click me'), { origin: [A, 0] })])
    assert.deepEqual(textOf(d).toDelta(), [{ insert: 'hi' }, { insert: 'click me', attributes: { a: { href: JS } } }])
    flagged(d, /format a=.*URL scheme not allowed$/)
  })

  it('flags a format item overridden by a later one (it resurfaces when the later one goes)', () => {
    const d = baseDoc()
    attack(d, [
      item(C.format('a', { href: JS }), { origin: ID.i }),
      item(C.format('a', { href: 'https://ok.example/' }), { origin: [A, 0] }),
      item(C.string('x'), { origin: [A, 1] }),
      item(C.format('a', null), { origin: [A, 2] })
    ])
    assert.deepEqual(textOf(d).toDelta()[1].attributes, { a: { href: 'https://ok.example/' } })
    flagged(d, /@99:0: format a=.*URL scheme not allowed/)
  })

  it('flags bad marks: unknown names, suffixed names, values that are not objects, bad attributes', () => {
    const cases = [
      ['script', { src: 'x' }, /mark <script> not allowed/],
      ['script--abcd1234', true, /mark <script> not allowed/],
      ['a', JS, /mark value is a string/],
      ['strong', 5, /mark value is a number/],
      ['strong', false, /mark value is a boolean/],
      ['a', [JS], /mark value is an array/],
      ['a', { href: { url: 'x' } }, /mark attribute href is an object/],
      ['a', { onclick: 'x' }, /mark attribute onclick not allowed/],
      ['a', { HREF: 'JaVaScRiPt:x' }, /URL scheme not allowed/],
      ['a--deadbeef', { href: 'java\tscript:x' }, /URL scheme not allowed/],
      ['span', { style: 'background: url(x)' }, /style not allowed/]
    ]
    for (const [key, value, re] of cases) {
      const d = baseDoc()
      attack(d, [item(C.format(key, value), { origin: ID.i }), item(C.string('x'), { origin: [A, 0] }), item(C.format(key, null), { origin: [A, 1] })])
      flagged(d, re)
    }
  })

  it('passes unmatched null end markers, anywhere in a text', () => {
    const d = baseDoc()
    attack(d, [
      item(C.format('strong', null), { origin: ID.i }),
      item(C.format('em', null), { origin: ID.h, rightOrigin: ID.i }),
      item(C.format('a', null), { parent: ID.text })
    ])
    clean(d)
    assert.equal(liveString(textOf(d)), 'hi')
  })

  it('flags embeds and non-string content inside a text, and any formatting or embed in the title', () => {
    for (const c of [C.embed({ x: 1 }), C.any(['x']), C.json(['x']), C.binary('x'), C.xmlElement('p'), C.map(), C.doc('g')]) {
      flagged(attack(baseDoc(), [item(c, { origin: ID.i })]), /inside a text/)
    }
    flagged(attack(baseDoc(), [item(C.format('strong', true), { origin: ID.titleI }), item(C.string('x'), { origin: [A, 0] })]), /^title @99:0: format strong=true in the title/)
    flagged(attack(baseDoc(), [item(C.embed({ x: 1 }), { origin: ID.titleI })]), /embed .* in the title/)
    clean(attack(baseDoc(), [item(C.format('strong', null), { origin: ID.titleI }), item(C.string('ok'), { origin: [A, 0] })]))
  })

  it('flags format items outside texts, as map entries, and attributes where none may be', () => {
    flagged(attack(baseDoc(), [item(C.format('a', { href: JS }), { parent: ID.p })]), /format a=.* as a child/)
    flagged(attack(baseDoc(), [item(C.format('strong', true), { parent: 'body' })]), /^body @99:0: format strong=true as a child/)
    flagged(attack(baseDoc(), [item(C.format('a', { href: JS }), { parent: ID.text, parentSub: 'a' })]), /map entry on a text node/)
    flagged(attack(baseDoc(), [item(C.format('title', 'x'), { parent: ID.p, parentSub: 'title' })]), /attribute holds format title="x"/)
    flagged(attack(baseDoc(), [item(C.any(['x']), { parent: ID.text, parentSub: 'class' })]), /map entry on a text node/)
    flagged(attack(baseDoc(), [item(C.any(['x']), { parent: 'body', parentSub: 'onload' })]), /map entry on the body root/)
    flagged(attack(baseDoc(), [item(C.any(['x']), { parent: 'title', parentSub: 'k' })]), /map entry on the title root/)
  })

  it('flags element attributes the policy refuses', () => {
    const cases = [
      ['onclick', 'x', /event-handler/], ['href', 'https://x/', /not allowed on this element/], ['title', { a: 1 }, /not a scalar/],
      ['data-base-url', ' javascript:x', /URL scheme/], ['style', 'color: red; position: fixed', /style declaration/],
      ['style', 'color: expression(x)', /style declaration/], ['title', ['a'], /not a scalar/]
    ]
    for (const [k, v, re] of cases) {
      const d = baseDoc()
      d.getXmlFragment('body').get(0).setAttribute(k, v)
      flagged(d, re)
    }
  })

  it('flags disallowed elements and non-XML children of the body and of elements', () => {
    const d1 = baseDoc()
    d1.getXmlFragment('body').insert(1, [new Y.XmlElement('script')])
    flagged(d1, /element <script> not allowed/)
    for (const child of [() => new Y.Map(), () => new Y.Array(), () => new Y.Text('x'), () => new Y.XmlFragment(), () => new Y.XmlHook('h'), () => new Y.Doc({ guid: 'sub' }), () => 'str']) {
      const d = baseDoc()
      d.getXmlFragment('body').insert(1, [child()])
      flagged(d, /as a child/)
      const e = baseDoc()
      e.getXmlFragment('body').get(0).insert(1, [child()])
      flagged(e, /as a child/)
    }
  })

  it('flags content under a foreign root, live or left after a deletion the document did not collect', () => {
    const d = baseDoc()
    d.getMap('evil').set('x', 'y')
    flagged(d, /foreign root "evil".*map entry on a foreign type/)
    const e = baseDoc()
    e.getText('other').insert(0, 'x')
    flagged(e, /foreign root "other" @7:\d+: content under a foreign root/)
    const f = baseDoc()
    f.getText('other').insert(0, 'x')
    f.getText('other').delete(0, 1)
    clean(f) // collected
  })

  it('deleted items: collected content passes; kept content is flagged, or judged by the policy in judge mode', () => {
    const gcDoc = baseDoc()
    attack(gcDoc, [item(C.format('a', { href: JS }), { origin: ID.i }), item(C.string('x'), { origin: [A, 0] })], [{ client: A, ranges: [[0, 2]] }])
    clean(gcDoc)
    const kept = baseDoc({ gc: false })
    attack(kept, [item(C.format('a', { href: JS }), { origin: ID.i }), item(C.string('x'), { origin: [A, 0] })], [{ client: A, ranges: [[0, 2]] }])
    flagged(kept, /deleted item still holds its content \(format a=/)
    flagged(kept, /deleted format a=.*URL scheme not allowed/, { deleted: 'judge' })
    const honest = baseDoc({ gc: false })
    textOf(honest).delete(0, 1)
    flagged(honest, /deleted item still holds its content \(string "h"\)/)
    clean(honest, { deleted: 'judge' })
  })

  it('flags pending structs (an update the document could not integrate)', () => {
    const d = baseDoc()
    Y.applyUpdate(d, singleClientUpdate(A, 5, [item(C.string('x'), { origin: [A, 4] })]))
    flagged(d, /pending structs/)
  })

  it('judges the host API JSON render', () => {
    assert.deepEqual(judgeRenderJson({ title: 'hi', body: [{ type: 'element', name: 'p', attrs: { class: 'x' }, children: [{ type: 'text', text: 'hi', marks: { strong: {}, a: { href: 'https://x/' } } }] }] }), [])
    const v = judgeRenderJson({
      title: 'hi',
      body: [{ type: 'element', name: 'p', attrs: { onclick: 'x' }, children: [{ type: 'text', text: 'click me', marks: { a: { href: JS } } }, { type: 'element', name: 'script', attrs: {}, children: [] }] }]
    })
    assert.equal(v.length, 3, JSON.stringify(v))
  })

  it('URL, style, mark and attribute rules match the policy library', () => {
    for (const u of ['https://x', 'HTTP://x', 'mailto:a@b', 'tel:1', '/a:b', 'a/b:c', '#x:y', '?q=a:b', '//host/x', 'relative']) assert.ok(urlAllowed(P, u), u)
    for (const u of ['javascript:x', 'java\tscript:x', ' javascript:x', '\u00a0javascript:x', 'data:x', 'ftp://x', '&#106;avascript:x', 'javascript&colon;x', '&amp;', 'x-javascript:x']) assert.ok(!urlAllowed(P, u), u)
    assert.ok(styleAllowed(P, 'color: red; font-weight: bold;'))
    for (const s of ['', ';', 'color', 'position: fixed', 'color: red; background: url(x)', 'width: expression(1)', 'color: r\\65 d', 'color: <x>']) assert.ok(!styleAllowed(P, s), s)
    assert.equal(markProblem(P, 'a--x', null), null)
    assert.equal(markProblem(P, 'STRONG', true), null)
    assert.match(markProblem(P, 'a', { href: 'https://x', onclick: 'y' }), /onclick/)
    assert.equal(attributeProblem(P, 'TD', 'COLSPAN', 2), null)
    assert.equal(attributeProblem(P, 'div', 'data-macro-x', 'y'), null)
    assert.match(attributeProblem(P, 'div', 'href', 'https://x'), /not allowed/)
  })
})

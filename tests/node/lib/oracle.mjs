// An independent oracle: does a Yjs 13 Y.Doc hold anything the content policy
// (proto/whitelist-default.json) refuses?
//
// It never reads deltas or toString(): a Format item with no text after it is
// invisible in a delta yet turns the next inserted text into a link. It walks the
// structs themselves: every item of every root (`type._start` lists and every
// `type._map` entry with its overwritten predecessors), recursively into content
// types, deleted or not, and then every item of the struct store (to find items no
// root reaches).
//
// Rules (a deliberately simple second implementation of
// crates/chorus-whitelist/src/lib.rs and the guard's mark rule):
// - `title`: live items are strings or Format items whose value is null (an end
//   marker); no map entries.
// - `body` and every element: children are Y.XmlElement with an allowed tag (ASCII
//   case-insensitive) or Y.XmlText; the fragment root has no map entries.
// - element attributes (map entries): one scalar (string / number / boolean)
//   value in a ContentAny; name allowed on that element, globally or by a global
//   prefix, never `on*`; URL attributes relative or of an allowed scheme (control
//   characters and whitespace removed first; `&…` lookalikes refused); `style` made
//   only of allowed declarations.
// - Y.XmlText: strings and Format items only (no embeds, JSON, binary, types,
//   sub-documents), no map entries. A Format value is null (end marker), `true`
//   (the mark with no attributes) or a plain object of scalar (or null) values whose
//   keys the mark allows; the mark name is the key up to a y-prosemirror `--` suffix.
// - every other root: nothing live.
// - deleted items: with `deleted: 'empty'` (default) they must hold no content
//   (ContentDeleted; collected parents leave GC structs); with `deleted: 'judge'`
//   their content is judged as if it were live (for documents built with
//   `gc: false`, where honest deletions keep their content but a removed value must
//   not be there).
// - no pending structs or pending delete set (something the document could not integrate).
//
// judgeDoc(doc) returns a list of violations (strings); [] means clean.

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'

const here = path.dirname(fileURLToPath(import.meta.url))
export const DEFAULT_POLICY_PATH = path.resolve(here, '..', '..', '..', 'proto', 'whitelist-default.json')

const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase())

/** A policy object from the JSON policy format (names lowercased, as the server does). */
export function loadPolicy (json) {
  const p = typeof json === 'string' ? JSON.parse(json) : json
  const lowerList = (xs) => new Set((xs ?? []).map(asciiLower))
  return {
    elements: new Map(Object.entries(p.elements).map(([k, v]) => [asciiLower(k), lowerList(v)])),
    globalAttributes: lowerList(p.global_attributes),
    globalPrefixes: (p.global_attribute_prefixes ?? []).map(asciiLower),
    urlAttributes: lowerList(p.url_attributes),
    urlSchemes: lowerList(p.url_schemes),
    styles: new Map(Object.entries(p.styles).map(([k, v]) => [asciiLower(k), v === null ? null : new RegExp(`^(?:${v})$`)])),
    marks: new Map(Object.entries(p.marks).map(([k, v]) => [asciiLower(k), lowerList(v)]))
  }
}

export const DEFAULT_POLICY = loadPolicy(readFileSync(DEFAULT_POLICY_PATH, 'utf8'))

// ---------------------------------------------------------------------------
// Policy rules on plain values
// ---------------------------------------------------------------------------

const NEVER_SCHEMES = new Set(['javascript', 'vbscript', 'data'])

/** Relative, or absolute with an allowed scheme (see chorus-whitelist `allows_url`). */
export function urlAllowed (policy, url) {
  const squeezed = [...url].filter((ch) => !/[\p{Cc}\p{White_Space}]/u.test(ch)).join('')
  const low = asciiLower(squeezed)
  if (squeezed.startsWith('&') || squeezed.includes('&#') || low.includes('&colon')) return false
  const colon = squeezed.indexOf(':')
  if (colon < 0) return true
  const scheme = squeezed.slice(0, colon)
  if (/[/?#]/.test(scheme)) return true // a colon after the path started: relative
  const s = asciiLower(scheme)
  return !NEVER_SCHEMES.has(s) && policy.urlSchemes.has(s)
}

const DANGEROUS_CSS = ['url(', 'expression(', '\\', '<', '@import', 'javascript:']

/** Every declaration allowed, and at least one (see `allows_style`). */
export function styleAllowed (policy, style) {
  const decls = style.split(';').filter((d) => d.trim() !== '')
  if (decls.length === 0) return false
  return decls.every((d) => {
    const colon = d.indexOf(':')
    if (colon < 0) return false
    const prop = asciiLower(d.slice(0, colon).trim())
    const value = d.slice(colon + 1).trim()
    if (!policy.styles.has(prop) || value === '') return false
    const low = asciiLower(value)
    if (DANGEROUS_CSS.some((bad) => low.includes(bad))) return false
    const re = policy.styles.get(prop)
    return re === null || re.test(value)
  })
}

/** Why `attr="value"` on `<tag>` is refused, or null. */
export function attributeProblem (policy, tag, attr, value) {
  const a = asciiLower(attr)
  if (a.startsWith('on')) return 'event-handler attribute'
  const own = policy.elements.get(asciiLower(tag))
  const named = (own && own.has(a)) || policy.globalAttributes.has(a) || policy.globalPrefixes.some((p) => a.startsWith(p))
  if (!named) return 'attribute not allowed on this element'
  if (!['string', 'number', 'boolean'].includes(typeof value)) return `value is not a scalar (${kindOf(value)})`
  const text = String(value)
  if (a === 'style') return styleAllowed(policy, text) ? null : 'style declaration not allowed'
  if (policy.urlAttributes.has(a) && !urlAllowed(policy, text)) return 'URL scheme not allowed'
  return null
}

/** Why the formatting attribute `key` = `value` on a Y.XmlText is refused, or null. */
export function markProblem (policy, key, value) {
  if (value === null) return null // an end marker
  const cut = key.indexOf('--')
  const name = asciiLower(cut >= 0 ? key.slice(0, cut) : key)
  const allowed = policy.marks.get(name)
  if (!allowed) return `mark <${name}> not allowed`
  if (value === true) return null
  if (typeof value !== 'object' || Array.isArray(value)) return `mark value is ${kindOf(value)}, not true or an attribute object`
  for (const [k, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue
    if (!['string', 'number', 'boolean'].includes(typeof v)) return `mark attribute ${k} is ${kindOf(v)}`
    const a = asciiLower(k)
    if (!allowed.has(a) || a.startsWith('on')) return `mark attribute ${k} not allowed on <${name}>`
    if (policy.urlAttributes.has(a) && !urlAllowed(policy, String(v))) return `mark attribute ${k}: URL scheme not allowed`
    if (a === 'style' && !styleAllowed(policy, String(v))) return `mark attribute ${k}: style not allowed`
  }
  return null
}

function kindOf (v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Uint8Array) return 'binary'
  if (v instanceof Y.AbstractType) return `a shared type (${v.constructor.name})`
  if (v instanceof Y.Doc) return 'a sub-document'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
}

// ---------------------------------------------------------------------------
// Walking a document
// ---------------------------------------------------------------------------

const idStr = (i) => `${i.client}:${i.clock}`
const short = (v) => {
  let s
  try { s = JSON.stringify(v) } catch { s = String(v) }
  if (s === undefined) s = String(v)
  return s.length > 120 ? `${s.slice(0, 117)}...` : s
}

/** What a content holds, for messages. */
export function describeContent (c) {
  if (c instanceof Y.ContentString) return `string ${short(c.str)}`
  if (c instanceof Y.ContentFormat) return `format ${c.key}=${short(c.value)}`
  if (c instanceof Y.ContentEmbed) return `embed ${short(c.embed)}`
  if (c instanceof Y.ContentAny) return `any ${short(c.arr)}`
  if (c instanceof Y.ContentJSON) return `JSON ${short(c.arr)}`
  if (c instanceof Y.ContentBinary) return `binary (${c.content.length} bytes)`
  if (c instanceof Y.ContentDoc) return `sub-document ${c.doc?.guid}`
  if (c instanceof Y.ContentDeleted) return `deleted(${c.len})`
  if (c instanceof Y.ContentType) return `type ${typeName(c.type)}`
  return `content ${c?.constructor?.name}`
}

function typeName (t) {
  if (t instanceof Y.XmlText) return 'Y.XmlText'
  if (t instanceof Y.XmlElement) return `Y.XmlElement <${t.nodeName}>`
  if (t instanceof Y.XmlHook) return `Y.XmlHook ${t.hookName}`
  if (t instanceof Y.XmlFragment) return 'Y.XmlFragment'
  if (t instanceof Y.Text) return 'Y.Text'
  if (t instanceof Y.Map) return 'Y.Map'
  if (t instanceof Y.Array) return 'Y.Array'
  return t?.constructor?.name ?? String(t)
}

/**
 * Judges `doc` against `policy`.
 * @param {Y.Doc} doc
 * @param {{policy?: object, deleted?: 'empty'|'judge', roots?: {title?: string, body?: string}}} [opts]
 * @returns {string[]} violations
 */
export function judgeDoc (doc, { policy = DEFAULT_POLICY, deleted = 'empty', roots = {} } = {}) {
  const titleRoot = roots.title ?? 'title'
  const bodyRoot = roots.body ?? 'body'
  const judgeDeleted = deleted === 'judge'
  const violations = []
  const visited = new Set()
  const flag = (where, what) => violations.push(`${where}: ${what}`)

  /** A list item: judged by where it sits (`ctx`: 'title' | 'children' | 'text' | 'foreign'). */
  const listItem = (n, ctx, where) => {
    const c = n.content
    const at = `${where} @${idStr(n.id)}`
    if (c instanceof Y.ContentDeleted) return
    if (n.deleted && !judgeDeleted) {
      flag(at, `deleted item still holds its content (${describeContent(c)})`)
      return
    }
    const state = n.deleted ? 'deleted ' : ''
    switch (ctx) {
      case 'foreign':
        flag(at, `${state}content under a foreign root (${describeContent(c)})`)
        if (c instanceof Y.ContentType) walkType(c.type, 'foreign', `${where}/${typeName(c.type)}@${idStr(n.id)}`)
        return
      case 'title':
        if (c instanceof Y.ContentString) return
        if (c instanceof Y.ContentFormat && c.value === null) return
        flag(at, `${state}${describeContent(c)} in the title (plain text only)`)
        if (c instanceof Y.ContentType) walkType(c.type, 'foreign', `${where}/${typeName(c.type)}@${idStr(n.id)}`)
        return
      case 'text':
        if (c instanceof Y.ContentString) return
        if (c instanceof Y.ContentFormat) {
          const why = markProblem(policy, c.key, c.value)
          if (why) flag(at, `${state}${describeContent(c)}: ${why}${hasTextAfter(n) ? '' : ' (no text after it)'}`)
          return
        }
        flag(at, `${state}${describeContent(c)} inside a text (no embeds)`)
        if (c instanceof Y.ContentType) walkType(c.type, 'foreign', `${where}/${typeName(c.type)}@${idStr(n.id)}`)
        return
      case 'children': {
        if (c instanceof Y.ContentType) {
          const t = c.type
          const sub = `${where}/${typeName(t)}@${idStr(n.id)}`
          if (t instanceof Y.XmlText) {
            walkType(t, 'xmltext', sub)
            return
          }
          if (t instanceof Y.XmlElement) {
            if (!policy.elements.has(asciiLower(t.nodeName))) flag(at, `${state}element <${t.nodeName}> not allowed`)
            walkType(t, 'element', sub)
            return
          }
          flag(at, `${state}${typeName(t)} as a child (only Y.XmlElement and Y.XmlText)`)
          walkType(t, 'foreign', sub)
          return
        }
        flag(at, `${state}${describeContent(c)} as a child (only Y.XmlElement and Y.XmlText)`)
      }
    }
  }

  /** A map entry (latest item first, then the values it overwrote). */
  const mapEntry = (key, latest, ctx, where, type) => {
    for (let n = latest; n !== null; n = n.left) {
      visited.add(n)
      const c = n.content
      const at = `${where}[${JSON.stringify(key)}] @${idStr(n.id)}`
      if (c instanceof Y.ContentDeleted) continue
      if (n.deleted && !judgeDeleted) {
        flag(at, `deleted map entry still holds its content (${describeContent(c)})`)
        continue
      }
      const state = n.deleted ? 'deleted ' : ''
      if (ctx === 'element') {
        if (!(c instanceof Y.ContentAny) || c.arr.length !== 1) {
          flag(at, `${state}attribute holds ${describeContent(c)} (only one scalar value)`)
        } else {
          const why = attributeProblem(policy, type.nodeName, key, c.arr[0])
          if (why) flag(at, `${state}attribute ${key}=${short(c.arr[0])} on <${type.nodeName}>: ${why}`)
        }
      } else {
        const whose = { title: 'the title root', fragment: 'the body root', xmltext: 'a text node', foreign: 'a foreign type' }[ctx] ?? ctx
        flag(at, `${state}map entry on ${whose} (${describeContent(c)})`)
      }
      if (c instanceof Y.ContentType) walkType(c.type, 'foreign', `${at}/${typeName(c.type)}`)
    }
  }

  /** Walks a type's list and map; `kind`: 'title' | 'fragment' | 'element' | 'xmltext' | 'foreign'. */
  const walkType = (type, kind, where) => {
    const listCtx = { title: 'title', fragment: 'children', element: 'children', xmltext: 'text', foreign: 'foreign' }[kind]
    for (let n = type._start; n !== null; n = n.right) {
      visited.add(n)
      listItem(n, listCtx, where)
    }
    for (const [key, n] of type._map) mapEntry(key, n, kind, where, type)
  }

  for (const [name, type] of doc.share) {
    const kind = name === titleRoot ? 'title' : name === bodyRoot ? 'fragment' : 'foreign'
    walkType(type, kind, name === titleRoot || name === bodyRoot ? name : `foreign root ${JSON.stringify(name)}`)
  }

  // Items no root reaches (a struct store sweep).
  for (const [, structs] of doc.store.clients) {
    for (const s of structs) {
      if (!(s instanceof Y.Item) || visited.has(s)) continue
      const c = s.content
      if (!s.deleted) flag(`@${idStr(s.id)}`, `live item no root reaches (${describeContent(c)}, parent ${describeParent(s.parent)})`)
      else if (!(c instanceof Y.ContentDeleted) && !judgeDeleted) flag(`@${idStr(s.id)}`, `deleted item still holds its content (${describeContent(c)})`)
    }
  }
  if (doc.store.pendingStructs) flag('store', `pending structs (missing dependencies ${short([...doc.store.pendingStructs.missing])})`)
  if (doc.store.pendingDs) flag('store', 'pending delete set')
  return violations
}

/** Is there a live countable item (text, embed) after `n` in its list? */
function hasTextAfter (n) {
  for (let r = n.right; r !== null; r = r.right) if (!r.deleted && r.countable) return true
  return false
}

function describeParent (p) {
  if (p === null || p === undefined) return 'none'
  if (p instanceof Y.AbstractType) return p._item ? `${typeName(p)}@${idStr(p._item.id)}` : typeName(p)
  return String(p)
}

/**
 * Judges the host API's JSON render (`GET …/draft?format=json`): `title` a string, `body`
 * an array of `{type:'element', name, attrs, marks?, children}` / `{type:'text', text, marks?}`
 * with allowed names, attributes and marks (keyed by tag, valued by their attribute object).
 */
export function judgeRenderJson (json, { policy = DEFAULT_POLICY } = {}) {
  const violations = []
  if (typeof json.title !== 'string') violations.push(`render title is ${kindOf(json.title)}`)
  const marksOf = (node, where) => {
    for (const [k, v] of Object.entries(node.marks ?? {})) {
      const why = markProblem(policy, k, v)
      if (why) violations.push(`${where}: render mark ${k}=${short(v)}: ${why}`)
    }
  }
  const walk = (nodes, where) => {
    if (!Array.isArray(nodes)) {
      violations.push(`${where}: render children are ${kindOf(nodes)}`)
      return
    }
    nodes.forEach((node, i) => {
      const at = `${where}[${i}]`
      if (node?.type === 'text') {
        if (typeof node.text !== 'string') violations.push(`${at}: render text is ${kindOf(node.text)}`)
        marksOf(node, at)
      } else if (node?.type === 'element') {
        if (!policy.elements.has(asciiLower(String(node.name)))) violations.push(`${at}: render element <${node.name}> not allowed`)
        for (const [k, v] of Object.entries(node.attrs ?? {})) {
          const why = attributeProblem(policy, String(node.name), k, v)
          if (why) violations.push(`${at}: render attribute ${k}=${short(v)} on <${node.name}>: ${why}`)
        }
        marksOf(node, at)
        walk(node.children, `${at}<${node.name}>`)
      } else {
        violations.push(`${at}: render node ${short(node)}`)
      }
    })
  }
  walk(json.body, 'body')
  return violations
}

/** The live text of a Y.Text / Y.XmlText read from its items (strings only, formats skipped). */
export function liveString (type) {
  let s = ''
  for (let n = type._start; n !== null; n = n.right) if (!n.deleted && n.content instanceof Y.ContentString) s += n.content.str
  return s
}

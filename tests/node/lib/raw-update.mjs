// A hand encoder of Yjs v1 updates from raw structs.
//
// A second implementation of the update format, written with lib0/encoding only
// (never Yjs' own encoder), so tests can send what no Yjs API produces: a lone
// Format item, a Format item as a map entry or as an element's child, content kinds
// in places Yjs never puts them, yrs-only content (weak links, moves), GC and skip
// structs, and any delete set.
//
// Layout (lib0 varuints unless said otherwise):
//
//   update      = varuint #clients, clients…, delete set
//   client      = varuint #structs, varuint client id, varuint clock of the first struct, structs…
//   struct      = GC:   u8 0,  varuint length
//               | skip: u8 10, varuint length
//               | item: u8 info, [origin id], [right-origin id], [parent], content
//   info        = content ref (low 5 bits) | 0x80 HAS_ORIGIN | 0x40 HAS_RIGHT_ORIGIN | 0x20 HAS_PARENT_SUB
//   id          = varuint client, varuint clock
//   parent      = only when the item has neither origin: varuint 1 + varstring root name,
//                 or varuint 0 + id of the type item; then varstring parent_sub if flagged
//                 (with an origin, the parent and the key are those of the origin: nothing is written)
//   delete set  = varuint #clients, per client: varuint client, varuint #ranges, (varuint clock, varuint len)…
//
// Contents (the ref is in the info byte):
//   1 deleted  varuint len          2 JSON     varuint n, n × varstring JSON.stringify(v) ('undefined' for undefined)
//   3 binary   varbytes             4 string   varstring
//   5 embed    varstring JSON       6 format   varstring key, varstring JSON value
//   7 type     varuint type ref (+ varstring name for 3 XmlElement and 5 XmlHook; + yrs' weak-link
//              source for 7), 0 Array 1 Map 2 Text 3 XmlElement 4 XmlFragment 5 XmlHook 6 XmlText
//              7 WeakLink (yrs) 15 Undefined (yrs)
//   8 any      varuint n, n × lib0 any
//   9 doc      varstring guid, lib0 any options
//  11 move     (yrs, removed after 0.17) varuint flags (bit0 collapsed, bit1 start assoc After,
//              bit2 end assoc After, priority << 6), id start, [id end unless collapsed]
//
// Yjs 13 reads content refs 0–10 and type refs 0–6 only.

import * as encoding from 'lib0/encoding'

export const ContentRef = Object.freeze({
  GC: 0, DELETED: 1, JSON: 2, BINARY: 3, STRING: 4, EMBED: 5, FORMAT: 6, TYPE: 7, ANY: 8, DOC: 9, SKIP: 10, MOVE: 11
})

export const TypeRef = Object.freeze({
  ARRAY: 0, MAP: 1, TEXT: 2, XML_ELEMENT: 3, XML_FRAGMENT: 4, XML_HOOK: 5, XML_TEXT: 6, WEAK_LINK: 7, UNDEFINED: 15
})

export const HAS_ORIGIN = 0x80
export const HAS_RIGHT_ORIGIN = 0x40
export const HAS_PARENT_SUB = 0x20

/** yrs' weak-link source flags (yrs/src/types/mod.rs, WEAK_REF_FLAGS_*). */
export const WeakFlags = Object.freeze({ QUOTE: 0x01, START_ASSOC: 0x02, END_ASSOC: 0x04, START_UNBOUNDED: 0x08, END_UNBOUNDED: 0x10, PARENT_ROOT: 0x20 })

/** An ID: `id(client, clock)`; `[client, clock]` and `{client, clock}` are accepted everywhere too. */
export const id = (client, clock) => ({ client, clock })

const asId = (x) => Array.isArray(x) ? { client: x[0], clock: x[1] } : x

const utf16Length = (s) => s.length

// ---------------------------------------------------------------------------
// Contents
// ---------------------------------------------------------------------------

export const content = Object.freeze({
  /** ref 1: `len` deleted positions. */
  deleted: (len) => ({ ref: ContentRef.DELETED, len }),
  /** ref 2: JSON values, one position each. */
  json: (values) => ({ ref: ContentRef.JSON, values }),
  /** ref 3: one binary value. */
  binary: (bytes) => ({ ref: ContentRef.BINARY, bytes: bytes instanceof Uint8Array ? bytes : new TextEncoder().encode(String(bytes)) }),
  /** ref 4: a string, one position per UTF-16 code unit. */
  string: (str) => ({ ref: ContentRef.STRING, str }),
  /** ref 5: an embed (a JSON value). */
  embed: (value) => ({ ref: ContentRef.EMBED, value }),
  /**
   * ref 6: a formatting attribute `key` = `value` (`null` ends it). `{ rawJson }` writes
   * that text instead of JSON.stringify(value) (e.g. invalid JSON).
   */
  format: (key, value, { rawJson } = {}) => ({ ref: ContentRef.FORMAT, key, value, rawJson }),
  /** ref 7: a shared type by type ref; `name` for XmlElement / XmlHook, `weak` for a weak link. */
  type: (typeRef, { name, weak } = {}) => ({ ref: ContentRef.TYPE, typeRef, name, weak }),
  array: () => content.type(TypeRef.ARRAY),
  map: () => content.type(TypeRef.MAP),
  text: () => content.type(TypeRef.TEXT),
  xmlElement: (name) => content.type(TypeRef.XML_ELEMENT, { name }),
  xmlFragment: () => content.type(TypeRef.XML_FRAGMENT),
  xmlHook: (name) => content.type(TypeRef.XML_HOOK, { name }),
  xmlText: () => content.type(TypeRef.XML_TEXT),
  /**
   * Type ref 7 (yrs `WeakLink`, behind yrs' `weak` feature): `start` (an id, or a root name
   * with PARENT_ROOT|START_UNBOUNDED), optional `end` (quote: several items), `flags` overrides.
   */
  weakLink: ({ start, end, flags } = {}) => content.type(TypeRef.WEAK_LINK, { weak: { start, end, flags } }),
  /** Type ref 15 (yrs `TypeRef::Undefined`: a type whose kind is not known yet). */
  undefinedType: () => content.type(TypeRef.UNDEFINED),
  /** ref 8: lib0 `any` values, one position each. */
  any: (values) => ({ ref: ContentRef.ANY, values }),
  /** ref 9: a sub-document (guid + options, a lib0 any). */
  doc: (guid, opts = {}) => ({ ref: ContentRef.DOC, guid, opts }),
  /** ref 11: yrs' move (start..end, assoc, priority), as yrs 0.16/0.17 encoded it. */
  move: ({ start, end, startAssoc = 'before', endAssoc = 'before', priority = 0 }) => ({ ref: ContentRef.MOVE, start, end, startAssoc, endAssoc, priority }),
  /** Any content ref followed by raw bytes (what a decoder then reads is up to it). `length` for clocks. */
  raw: (ref, bytes, length = 1) => ({ ref, raw: bytes, length })
})

/** Positions (clock ticks) a content occupies. */
export function contentLength (c) {
  if (c.raw !== undefined) return c.length
  switch (c.ref) {
    case ContentRef.DELETED: return c.len
    case ContentRef.JSON: return c.values.length
    case ContentRef.STRING: return utf16Length(c.str)
    case ContentRef.ANY: return c.values.length
    default: return 1
  }
}

// ---------------------------------------------------------------------------
// Structs
// ---------------------------------------------------------------------------

/**
 * An item struct. `origin` / `rightOrigin`: ids; `parent`: a root name (string) or the id
 * of a type item, used (and required) only when there is no origin; `parentSub`: the map
 * key (flag always set; the key is written only with the parent, as Yjs does). `info`
 * replaces the computed info byte (its low 5 bits still select how the content is written).
 */
export const item = (c, { origin = null, rightOrigin = null, parent = null, parentSub = null, info } = {}) =>
  ({ kind: 'item', content: c, origin: origin && asId(origin), rightOrigin: rightOrigin && asId(rightOrigin), parent: typeof parent === 'string' || parent === null ? parent : asId(parent), parentSub, info })

/** A GC struct of `length` positions. */
export const gc = (length) => ({ kind: 'gc', length })
/** A skip struct (a gap of `length` positions in this update). */
export const skip = (length) => ({ kind: 'skip', length })

export const structLength = (s) => s.kind === 'item' ? contentLength(s.content) : s.length

/** The id of each struct of a client block starting at `clock`: [{client, clock, length}]. */
export function structIds (client, clock, structs) {
  const out = []
  for (const s of structs) {
    const length = structLength(s)
    out.push({ client, clock, length })
    clock += length
  }
  return out
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

const writeId = (enc, x) => {
  const i = asId(x)
  encoding.writeVarUint(enc, i.client)
  encoding.writeVarUint(enc, i.clock)
}

function writeWeakLink (enc, { start, end, flags }) {
  let info = 0
  const startIsRoot = typeof start === 'string'
  const endIsRoot = typeof end === 'string'
  if (end !== undefined && end !== null) info |= WeakFlags.QUOTE
  if (startIsRoot || endIsRoot) info |= WeakFlags.PARENT_ROOT | (startIsRoot ? WeakFlags.START_UNBOUNDED : 0) | (endIsRoot ? WeakFlags.END_UNBOUNDED : 0)
  if (flags !== undefined) info = flags
  encoding.writeUint8(enc, info)
  if (startIsRoot) encoding.writeVarString(enc, start)
  else writeId(enc, start)
  if (info & WeakFlags.QUOTE) {
    if (endIsRoot) encoding.writeVarString(enc, end)
    else writeId(enc, end)
  }
}

function writeContent (enc, c) {
  if (c.raw !== undefined) {
    encoding.writeUint8Array(enc, c.raw)
    return
  }
  switch (c.ref) {
    case ContentRef.DELETED:
      encoding.writeVarUint(enc, c.len)
      break
    case ContentRef.JSON:
      encoding.writeVarUint(enc, c.values.length)
      for (const v of c.values) encoding.writeVarString(enc, v === undefined ? 'undefined' : JSON.stringify(v))
      break
    case ContentRef.BINARY:
      encoding.writeVarUint8Array(enc, c.bytes)
      break
    case ContentRef.STRING:
      encoding.writeVarString(enc, c.str)
      break
    case ContentRef.EMBED:
      encoding.writeVarString(enc, JSON.stringify(c.value))
      break
    case ContentRef.FORMAT:
      encoding.writeVarString(enc, c.key)
      encoding.writeVarString(enc, c.rawJson ?? JSON.stringify(c.value))
      break
    case ContentRef.TYPE:
      encoding.writeVarUint(enc, c.typeRef)
      if (c.typeRef === TypeRef.XML_ELEMENT || c.typeRef === TypeRef.XML_HOOK) encoding.writeVarString(enc, c.name)
      if (c.typeRef === TypeRef.WEAK_LINK) writeWeakLink(enc, c.weak ?? {})
      break
    case ContentRef.ANY:
      encoding.writeVarUint(enc, c.values.length)
      for (const v of c.values) encoding.writeAny(enc, v)
      break
    case ContentRef.DOC:
      encoding.writeVarString(enc, c.guid)
      encoding.writeAny(enc, c.opts)
      break
    case ContentRef.MOVE: {
      const start = asId(c.start)
      const end = asId(c.end ?? c.start)
      const collapsed = start.client === end.client && start.clock === end.clock
      let flags = (collapsed ? 1 : 0) | (c.startAssoc === 'after' ? 2 : 0) | (c.endAssoc === 'after' ? 4 : 0)
      flags += c.priority * 64 // priority << 6, without 32-bit overflow
      encoding.writeVarUint(enc, flags)
      writeId(enc, start)
      if (!collapsed) writeId(enc, end)
      break
    }
    default:
      throw new Error(`raw-update: no encoding for content ref ${c.ref} (use content.raw)`)
  }
}

function writeStruct (enc, s) {
  if (s.kind === 'gc' || s.kind === 'skip') {
    encoding.writeUint8(enc, s.kind === 'gc' ? ContentRef.GC : ContentRef.SKIP)
    encoding.writeVarUint(enc, s.length)
    return
  }
  const { content: c, origin, rightOrigin, parent, parentSub } = s
  const info = s.info ?? ((c.ref & 0x1f) | (origin ? HAS_ORIGIN : 0) | (rightOrigin ? HAS_RIGHT_ORIGIN : 0) | (parentSub !== null ? HAS_PARENT_SUB : 0))
  encoding.writeUint8(enc, info)
  if (info & HAS_ORIGIN) writeId(enc, origin)
  if (info & HAS_RIGHT_ORIGIN) writeId(enc, rightOrigin)
  if ((info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN)) === 0) {
    if (parent === null) throw new Error('raw-update: an item without origins needs a parent (root name or type item id)')
    if (typeof parent === 'string') {
      encoding.writeVarUint(enc, 1)
      encoding.writeVarString(enc, parent)
    } else {
      encoding.writeVarUint(enc, 0)
      writeId(enc, parent)
    }
    if (info & HAS_PARENT_SUB) encoding.writeVarString(enc, parentSub ?? '')
  }
  writeContent(enc, c)
}

/**
 * Encodes a Yjs v1 update.
 * @param {{clients?: Array<{client:number, clock?:number, structs:Array<object>}>,
 *          deleteSet?: Array<{client:number, ranges:Array<[number, number]>}>}} update
 * Clients and delete-set entries are written in the order given (Yjs writes both in
 * descending client id order).
 */
export function encodeUpdate ({ clients = [], deleteSet = [] } = {}) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, clients.length)
  for (const { client, clock = 0, structs } of clients) {
    encoding.writeVarUint(enc, structs.length)
    encoding.writeVarUint(enc, client)
    encoding.writeVarUint(enc, clock)
    for (const s of structs) writeStruct(enc, s)
  }
  encoding.writeVarUint(enc, deleteSet.length)
  for (const { client, ranges } of deleteSet) {
    encoding.writeVarUint(enc, client)
    encoding.writeVarUint(enc, ranges.length)
    for (const [clock, len] of ranges) {
      encoding.writeVarUint(enc, clock)
      encoding.writeVarUint(enc, len)
    }
  }
  return encoding.toUint8Array(enc)
}

/** One client's structs as an update (the common case). */
export const singleClientUpdate = (client, clock, structs, deleteSet = []) =>
  encodeUpdate({ clients: [{ client, clock, structs }], deleteSet })

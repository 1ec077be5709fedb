// lib/raw-update.mjs (the hand encoder of Yjs v1 updates) checked against Yjs itself:
// - the update Y.encodeStateAsUpdate writes for a document using most content kinds
//   (types, attributes, formats, embeds, any, binary, sub-document, deleted content,
//   a GC struct, two clients, a delete set) is byte-identical to the hand encoding of
//   the same structs;
// - what Yjs can read of the rest (JSON content, every Yjs type ref, skip structs,
//   parent_sub without origins, raw info bytes) decodes to the structs described;
// - what Yjs 13 cannot read (yrs' weak links, type ref 15, yrs' move) makes it throw.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import {
  encodeUpdate, singleClientUpdate, item, gc, skip, content as C, structIds, TypeRef, HAS_ORIGIN
} from './lib/raw-update.mjs'

describe('raw-update: hand-encoded Yjs v1 updates', () => {
  it('is byte-identical to Y.encodeStateAsUpdate for the same structs', () => {
    // The document: client 1 writes everything, client 2 types one character.
    const d = new Y.Doc()
    d.clientID = 1
    const body = d.getXmlFragment('body')
    const title = d.getText('title')
    let t
    d.transact(() => {
      const p = new Y.XmlElement('p')
      body.insert(0, [p])
      p.setAttribute('title', 'x')
      t = new Y.XmlText()
      p.insert(0, [t])
      t.insert(0, 'hi')
    })
    title.insert(0, 'T', { strong: true })
    title.insertEmbed(1, { img: 'x' })
    const arr = d.getArray('arr')
    arr.insert(0, [1, 'two', { three: 3 }, new Uint8Array([4, 5])])
    arr.insert(4, [new Y.Doc({ guid: 'sub-1' })])
    const m = d.getMap('m')
    d.transact(() => {
      const inner = new Y.Map()
      m.set('inner', inner)
      inner.set('k', 'v')
    })
    m.delete('inner') // the map item keeps a ContentDeleted, its entry becomes a GC struct
    t.delete(0, 1) // 'h' is split off and collected
    const d2 = new Y.Doc()
    d2.clientID = 2
    Y.applyUpdate(d2, Y.encodeStateAsUpdate(d))
    d2.getXmlFragment('body').get(0).get(0).insert(1, 'X')
    Y.applyUpdate(d, Y.encodeStateAsUpdate(d2))
    const expected = Y.encodeStateAsUpdate(d)

    const ours = encodeUpdate({
      clients: [
        { client: 2, clock: 0, structs: [item(C.string('X'), { origin: [1, 4] })] },
        {
          client: 1,
          clock: 0,
          structs: [
            item(C.xmlElement('p'), { parent: 'body' }), // 1:0
            item(C.any(['x']), { parent: [1, 0], parentSub: 'title' }), // 1:1
            item(C.xmlText(), { parent: [1, 0] }), // 1:2
            item(C.deleted(1), { parent: [1, 2] }), // 1:3 'h', collected
            item(C.string('i'), { origin: [1, 3] }), // 1:4
            item(C.format('strong', true), { parent: 'title' }), // 1:5
            item(C.string('T'), { origin: [1, 5] }), // 1:6
            item(C.format('strong', null), { origin: [1, 6] }), // 1:7
            item(C.embed({ img: 'x' }), { origin: [1, 7] }), // 1:8
            item(C.any([1, 'two', { three: 3 }]), { parent: 'arr' }), // 1:9..11
            item(C.binary(new Uint8Array([4, 5])), { origin: [1, 11] }), // 1:12
            item(C.doc('sub-1', {}), { origin: [1, 12] }), // 1:13
            item(C.deleted(1), { parent: 'm', parentSub: 'inner' }), // 1:14
            gc(1) // 1:15, the inner map's entry
          ]
        }
      ],
      deleteSet: [{ client: 1, ranges: [[3, 1], [14, 2]] }]
    })
    assert.equal(Buffer.from(ours).toString('hex'), Buffer.from(expected).toString('hex'))
    assert.deepEqual(structIds(1, 9, [item(C.any([1, 2, 3]), { parent: 'arr' }), gc(2), item(C.string('ab'), { origin: [1, 11] })]).map((x) => [x.clock, x.length]), [[9, 3], [12, 2], [14, 2]])
  })

  it('encodes what Yjs reads: JSON content, every Yjs type ref, skip structs, parent_sub, raw info bytes', () => {
    const structs = [
      item(C.json([{ a: 1 }, 'b', undefined]), { parent: 'list' }), // 7:0..2
      item(C.array(), { origin: [7, 2] }), // 7:3
      item(C.map(), { origin: [7, 3] }), // 7:4
      item(C.text(), { origin: [7, 4] }), // 7:5
      item(C.xmlElement('div'), { origin: [7, 5] }), // 7:6
      item(C.xmlFragment(), { origin: [7, 6] }), // 7:7
      item(C.xmlHook('hook'), { origin: [7, 7] }), // 7:8
      item(C.xmlText(), { origin: [7, 8] }), // 7:9
      item(C.format('em', { x: 1 }), { parent: [7, 9], parentSub: 'k' }), // 7:10, a format as a map entry
      skip(5), // 7:11..15
      item(C.string('é€😀'), { origin: [7, 9], info: 4 | HAS_ORIGIN }) // 7:16..19 (4 UTF-16 units)
    ]
    const { structs: read, ds } = Y.decodeUpdate(singleClientUpdate(7, 0, structs, [{ client: 7, ranges: [[0, 1]] }]))
    const kinds = read.map((s) => [s.constructor.name, s.id.clock, s.length, s.content?.constructor.name ?? null])
    assert.deepEqual(kinds, [
      ['Item', 0, 3, 'ContentJSON'], ['Item', 3, 1, 'ContentType'], ['Item', 4, 1, 'ContentType'], ['Item', 5, 1, 'ContentType'],
      ['Item', 6, 1, 'ContentType'], ['Item', 7, 1, 'ContentType'], ['Item', 8, 1, 'ContentType'], ['Item', 9, 1, 'ContentType'],
      ['Item', 10, 1, 'ContentFormat'], ['Skip', 11, 5, null], ['Item', 16, 4, 'ContentString']
    ])
    assert.deepEqual(read[0].content.arr, [{ a: 1 }, 'b', undefined])
    assert.deepEqual(read.slice(1, 8).map((s) => s.content.type.constructor.name), ['YArray', 'YMap', 'YText', 'YXmlElement', 'YXmlFragment', 'YXmlHook', 'YXmlText'])
    assert.equal(read[4].content.type.nodeName, 'div')
    assert.equal(read[6].content.type.hookName, 'hook')
    assert.equal(read[8].parentSub, 'k')
    assert.deepEqual([read[8].parent.client, read[8].parent.clock], [7, 9])
    assert.deepEqual(read[8].content.value, { x: 1 })
    assert.equal(read[10].content.str, 'é€😀')
    assert.deepEqual([...ds.clients.get(7)].map((x) => [x.clock, x.len]), [[0, 1]])
    // with an origin, a parent_sub flag carries no key (the origin's key is used)
    const keyed = Y.decodeUpdate(singleClientUpdate(8, 0, [item(C.any(['v']), { origin: [7, 10], parentSub: 'ignored' })])).structs[0]
    assert.equal(keyed.parentSub, null)
  })

  it('yrs-only content (type refs 7 and 15, content 11) makes Yjs 13 throw', () => {
    const cases = {
      'weak link': C.weakLink({ start: [1, 0] }),
      'weak link quote over a root': C.weakLink({ start: 'body', end: 'body' }),
      'undefined type': C.undefinedType(),
      move: C.move({ start: [1, 0], end: [1, 3], startAssoc: 'after', priority: 2 })
    }
    for (const [name, c] of Object.entries(cases)) {
      const u = singleClientUpdate(9, 0, [item(c, { parent: 'body' })])
      assert.throws(() => Y.applyUpdate(new Y.Doc(), u), TypeError, name)
    }
    // the bytes themselves: info byte, parent, type ref / flags, ids
    const weak = singleClientUpdate(9, 0, [item(C.weakLink({ start: [1, 0] }), { parent: 'body' })])
    assert.equal(Buffer.from(weak).toString('hex'), '010109' + '00' + '07' + '01' + '04626f6479' + '07' + '00' + '0100' + '00')
    const move = singleClientUpdate(9, 0, [item(C.move({ start: [1, 0], end: [1, 3], startAssoc: 'after', priority: 2 }), { parent: 'body' })])
    assert.equal(Buffer.from(move).toString('hex'), '010109' + '00' + '0b' + '01' + '04626f6479' + '8201' + '0100' + '0103' + '00')
    assert.equal(TypeRef.UNDEFINED, 15)
  })
})

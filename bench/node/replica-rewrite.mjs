#!/usr/bin/env node
// What an open editor pays for a host's rewrite of every paragraph: a Yjs replica
// (the npm `yjs` a browser runs) with a deep observer on the body, as y-prosemirror
// registers one, applies the update of the rewrite in the two shapes Chorus can
// send it:
//
//   runs     every paragraph edited in place, its changed run deleted and inserted
//            whole (what Chorus's differ does past its first 64 texts, and for
//            every text in strip mode): one event per paragraph;
//   replace  every paragraph removed and inserted anew where it was (what the
//            differ does past 128 in-place edits under a reject-mode guard): one
//            event in all.
//
//   node bench/node/replica-rewrite.mjs [--paragraphs 2000,20000] [--shapes runs,replace]
//
// Prints one JSON line per size and shape: {paragraphs, shape, apply_ms, events,
// update_kib}. Needs `npm ci` in bench/node. Figures in docs/PERFORMANCE.md
// ("External changes without deep events").
import * as Y from 'yjs'

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : fallback
}
const sizes = arg('paragraphs', '2000,20000').split(',').map(Number)
const shapes = arg('shapes', 'runs,replace').split(',')

const text = (i, word) => `Paragraph ${i}: the ${word} brown fox jumps over the lazy dog`

for (const n of sizes) {
  for (const shape of shapes) {
    if (!['runs', 'replace'].includes(shape)) throw new Error(`unknown shape ${shape}`)
    const host = new Y.Doc()
    const body = host.getXmlFragment('body')
    host.transact(() => {
      body.insert(0, Array.from({ length: n }, (_, i) => {
        const p = new Y.XmlElement('p')
        p.insert(0, [new Y.XmlText(text(i, 'quick'))])
        return p
      }))
    })
    const replica = new Y.Doc()
    Y.applyUpdate(replica, Y.encodeStateAsUpdate(host))
    let events = 0
    // y-prosemirror reads no deltas: it re-renders the types that changed.
    replica.getXmlFragment('body').observeDeep((evs) => { events += evs.length })

    const before = Y.encodeStateVector(host)
    host.transact(() => {
      if (shape === 'runs') {
        body.toArray().forEach((p, i) => {
          const t = p.get(0)
          t.delete(0, t.length)
          t.insert(0, text(i, 'swift'))
        })
      } else {
        for (let i = n - 1; i >= 0; i--) {
          body.delete(i, 1)
          const p = new Y.XmlElement('p')
          p.insert(0, [new Y.XmlText(text(i, 'swift'))])
          body.insert(i, [p])
        }
      }
    })
    const update = Y.encodeStateAsUpdate(host, before)
    const started = performance.now()
    Y.applyUpdate(replica, update)
    const applyMs = Math.round(performance.now() - started)
    if (replica.getXmlFragment('body').toString() !== body.toString()) {
      throw new Error(`the replica differs from the host after the ${shape} rewrite`)
    }
    console.log(JSON.stringify({ paragraphs: n, shape, apply_ms: applyMs, events, update_kib: Math.round(update.length / 1024) }))
  }
}

// Presence (awareness) states no editor library writes, for the "presence that
// cannot hurt" tests: each is sent by a view-only raw socket as it is, encoded by
// hand (y-protocols' awareness encoding: varuint count, then per state varuint
// client id, varuint clock, varstring JSON), so no client library cleans it first.
import * as encoding from 'lib0/encoding'

export const MSG_AWARENESS = 1

/** The reported one first: y-prosemirror's cursor plugin throws on it. */
export const HOSTILE_STATES = [
  '{"cursor":{}}',
  '{"cursor":{"anchor":{},"head":null}}',
  '{"cursor":{"anchor":{"item":{"client":"x","clock":1}},"head":{"item":{"client":"x","clock":1}}}}',
  '{"cursor":"here"}',
  '{"cursor":[1,2]}',
  '{"cursor":{"anchor":{"type":{"client":1,"clock":1},"tname":"default","item":null,"assoc":0},"head":7}}',
  '{"user":"mallory","cursor":{}}',
  '{"user":{"name":{"first":"M"},"color":"red;position:fixed;inset:0"},"cursor":null}',
  // Well formed, pointing at an item no document holds.
  '{"cursor":{"anchor":{"item":{"client":99,"clock":5},"assoc":0},"head":{"item":{"client":99,"clock":5},"assoc":0}}}',
  '{"cursor":{}}'
]

/** One awareness message per state, all for `clientId`, clocks 1, 2, … */
export function hostilePresenceFrames (clientId = 424242, states = HOSTILE_STATES) {
  return states.map((json, i) => {
    const inner = encoding.createEncoder()
    encoding.writeVarUint(inner, 1)
    encoding.writeVarUint(inner, clientId)
    encoding.writeVarUint(inner, i + 1)
    encoding.writeVarString(inner, json)
    const outer = encoding.createEncoder()
    encoding.writeVarUint(outer, MSG_AWARENESS)
    encoding.writeVarUint8Array(outer, encoding.toUint8Array(inner))
    return encoding.toUint8Array(outer)
  })
}

'use strict'
const { fmt } = require('./report')

// The best a figure can be, given work every message or link of this design
// must do on this machine, from figures of the same run. A target
// that asks for more cannot be met by tuning, only by changing what its bound
// rests on (the bound's text names it):
//
//   messages/s   every message is serialized by JSON.stringify on the sending
//                JavaScript thread and parsed by JSON.parse on the receiving one
//                (the API takes and hands out objects, and the wire is JSON). In
//                two processes the slower of the two threads limits the rate; in
//                one process both run on the same thread, so their times add.
//   new links    at best NoisePeer raw's link plus the handshake's X25519 (raw
//                does everything else an encrypted link does): one at a time,
//                their times add, since each step of a handshake waits on the
//                one before; many at a time, their CPU adds, shared by the cores.
//
// Each is a floor of this design, not a law of nature: a bound counts only
// work the run measured, so the real best is lower still.
//
// The round trip has no bound here. Every message received is read on a tokio
// thread and handled on the JavaScript thread (the design keeps network I/O
// on tokio): a crossing plain JS, whose loop reads its sockets itself, does
// not make. The run times a crossing there and back (`crossing`), but plain
// JS + that crossing is not a floor: NoisePeer spends less than plain JS on
// the rest of a message, and in one process its round trip was measured
// below that sum.

// { value, why } for figure `id` of NoisePeer `tk` ('enc' or 'raw') in
// arrangement `arr`, or null when nothing measured bounds it. `value` is the
// most the figure (a rate) can be.
// floors: { json: { [size]: { bytes, stringify, parse } } }
// value(id, tk): a figure of the same table; ceiling: as run.js's ceilingOf.
function limitOf ({ arr, id, tk, value, floors, ceiling, cores }) {
  const json = floors && floors.json
  const rate = /^msgs(\d+)$/.exec(id)
  if ((rate || id === 'mbps16384') && json) {
    const size = rate ? rate[1] : '16384'
    const j = json[size]
    if (!j) return null
    const both = arr === 'two' ? Math.min(j.stringify, j.parse) : 1 / (1 / j.stringify + 1 / j.parse)
    const where = arr === 'two'
      ? 'each on its process\'s JavaScript thread, the slower limits'
      : 'both on the one JavaScript thread'
    const why = `JSON.stringify alone ${fmt('msg/s', j.stringify)}, JSON.parse alone ${fmt('msg/s', j.parse)}, ${where}`
    return rate ? { value: both, why } : { value: both * j.bytes / 1e6, why }
  }
  if (tk === 'enc' && (id === 'linksSeq' || id === 'linksPar') && ceiling) {
    const dh = handshakeX25519(ceiling)
    if (id === 'linksSeq') {
      const raw = value(id, 'raw')
      if (!raw) return null
      const seconds = 1 / raw + dh
      return { value: 1 / seconds, why: `NoisePeer raw's ${fmt('µs', 1e6 / raw)} a link + the handshake's X25519 in series, ${fmt('µs', dh * 1e6)}` }
    }
    const rawCpu = value(id, 'raw', 'cpuUs')
    if (rawCpu == null) return null
    const cpu = rawCpu / 1e6 + dh
    return { value: cores / cpu, why: `${cores} cores ÷ (NoisePeer raw's CPU a link, ${fmt('µs', rawCpu)} + the handshake's X25519, ${fmt('µs', dh * 1e6)})` }
  }
  return null
}

// Seconds of X25519 one link costs both ends, key generations at their own rate.
function handshakeX25519 (ceiling) {
  const x = ceiling.exact
  if (!x) return ceiling.x25519PerLink / ceiling.x25519PerSecondOneCore
  return (ceiling.x25519PerLink - x.keygensPerLink) / ceiling.x25519PerSecondOneCore + x.keygensPerLink / x.keygenPerSecond
}

// Whether a target asks for more than `limit` allows: `need` is the figure the
// target wants (threshold × its base); `op` the target's.
function beyond (op, need, limit) {
  if (!limit || need == null || !Number.isFinite(need)) return false
  return op === '≥' ? need > limit.value : need < limit.value
}

module.exports = { limitOf, beyond, handshakeX25519 }

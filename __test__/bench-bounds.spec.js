'use strict'
// The benchmark's bounds (bench/bounds.js): the best a figure can be, from
// work the same run measured. Fixed inputs, so each expected value is worked
// out by hand here; and the crossing the round-trip bound rests on is timed
// once through the addon.
const assert = require('assert')
const { limitOf, beyond, handshakeX25519 } = require('../bench/bounds')
const { targetsText } = require('../bench/report')
const native = require('../lib/native')

const floors = {
  json: {
    100: { bytes: 100, stringify: 1e6, parse: 4e6 },
    16384: { bytes: 16384, stringify: 20e3, parse: 150e3 }
  }
}
// 10 of 13 X25519 at 40k/s (250 µs), 3 key generations at 100k/s (30 µs): 280 µs a link.
const ceiling = { x25519PerSecondOneCore: 40e3, x25519PerLink: 13, exact: { keygenPerSecond: 100e3, keygensPerLink: 3 } }
const figures = {
  rttP50: { plain: 60, enc: 80 },
  linksSeq: { raw: 2500 }, // 400 µs a link
  linksPar: { raw: 5000, rawCpu: 320 }
}
const value = (id, tk, field = 'value') => {
  const f = figures[id] || {}
  return field === 'cpuUs' ? f[tk + 'Cpu'] : f[tk]
}
const limit = (arr, id, tk = 'enc') => limitOf({ arr, id, tk, value, floors, ceiling, cores: 2 })
const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-6 * Math.max(1, Math.abs(b)), `${a} is not ${b}`)

describe('bench bounds (bench/bounds.js)', () => {
  it('limits messages/s by the slower JSON thread in two processes, by both JSON steps on one thread in one', () => {
    close(limit('two', 'msgs100').value, 1e6)
    close(limit('one', 'msgs100').value, 1 / (1 / 1e6 + 1 / 4e6)) // 800k/s
    close(limit('two', 'mbps16384').value, 20e3 * 16384 / 1e6)
    assert.match(limit('two', 'msgs100').why, /JSON\.stringify alone 1\.00M\/s/)
    assert.strictEqual(limit('two', 'msgs1024'), null, 'no JSON rate measured for 1 KiB')
  })

  it('puts links at raw plus the handshake X25519, and no bound on round trips', () => {
    close(handshakeX25519(ceiling), 280e-6)
    close(limit('one', 'linksSeq').value, 1 / (400e-6 + 280e-6)) // 1.47k/s
    close(limit('one', 'linksPar').value, 2 / (320e-6 + 280e-6)) // 3.33k/s
    assert.strictEqual(limit('one', 'linksSeq', 'raw'), null, 'raw links have no handshake to add')
    // Plain JS + a crossing is no floor: NoisePeer was measured below it.
    assert.strictEqual(limit('two', 'rttP50'), null)
    assert.strictEqual(limit('two', 'rttP99'), null)
  })

  it('calls a target beyond reach only when it asks for more than the bound', () => {
    const rate = { value: 1000 }
    assert.strictEqual(beyond('≥', 1001, rate), true)
    assert.strictEqual(beyond('≥', 1000, rate), false)
    const rtt = { value: 78 }
    assert.strictEqual(beyond('≤', 60, rtt), true, 'a round trip wanted under the least it can take')
    assert.strictEqual(beyond('≤', 90, rtt), false)
    assert.strictEqual(beyond('≥', 5, null), false)
  })

  it('names the bound under a target not met, and counts them', () => {
    const bound = { need: 3840, best: 3333, unit: 'links/s', why: 'raw plus X25519', beyond: true }
    const text = targetsText([
      { group: 'one process', text: 'links', op: '≥', threshold: 0.7, unit: '×', ratio: 0.4, measured: 'x', met: false, bound },
      { group: 'one process', text: 'other', op: '≥', threshold: 1.5, unit: '×', ratio: 1.4, measured: 'y', met: false, bound: { ...bound, beyond: false } },
      { group: 'one process', text: 'met', op: '≥', threshold: 1, unit: '×', ratio: 2, measured: 'z', met: true, bound }
    ])
    assert.match(text, /beyond this design here: wants 3\.84k\/s, at best 3\.33k\/s \(raw plus X25519\)/)
    assert.strictEqual(text.match(/beyond this design/g).length, 1, 'only the target not met and beyond its bound')
    assert.match(text, /1 of 3 met; 1 of the 2 not met ask for more than the bounds allow/)
  })

  it('has the crossing the run times: a call answered from a tokio thread, many at once', async () => {
    assert.strictEqual(typeof native.__echo, 'function')
    const answers = await Promise.all(Array.from({ length: 100 }, () => native.__echo()))
    assert.deepStrictEqual(answers, new Array(100).fill(undefined))
  })
})

'use strict'
// The `logger` option: one structured line per link event, levels asked
// once, refusals from one address rate-limited.

const assert = require('assert')
const { NoisePeer, generateKeypair, agentKey } = require('..')
const { EventLog } = require('../lib/log')
const { waitFor, rejection } = require('./helpers/fixture')

function recorder (enabled = () => true) {
  const lines = []
  const log = { isLevelEnabled: enabled }
  for (const level of ['error', 'warn', 'info', 'debug', 'trace']) log[level] = (text) => lines.push({ level, text })
  return { log, lines }
}

const refusal = (host, n) => ({ type: 'refused', link: n, agent: null, host, port: 1000 + n, pattern: null, initiator: false, reason: 'ERR_UNKNOWN_PEER', message: 'unknown agent', clean: false, written: 0, suppressed: 0 })

describe('logging (the logger option)', () => {
  const peers = []
  afterEach(async () => { await Promise.all(peers.splice(0).map((p) => p.close())) })

  it('logs a line per link event with its fields: open and orderly close at debug, a refusal at warn with the reason code', async () => {
    const { log, lines } = recorder()
    const ka = generateKeypair()
    const kb = generateKeypair()
    const a = new NoisePeer({ agent: ka.agent, keys: ka, logger: log, logName: 'a' })
    const b = new NoisePeer({ agent: kb.agent, keys: kb, logger: log, logName: 'b', peerKey: async (x) => x === ka.agent ? agentKey(x) : null })
    peers.push(a, b)
    b.onMessage(() => {})
    const addr = { agent: kb.agent, key: agentKey(kb.agent), ...(await b.listen()) }
    await a.send(addr, { n: 1 })
    a.end(kb.agent)
    await waitFor(() => lines.filter((l) => /closed/.test(l.text)).length === 2, 'both close lines')
    const open = lines.find((l) => l.text.startsWith('b: link') && /open with/.test(l.text))
    assert.strictEqual(open.level, 'debug')
    assert.match(open.text, new RegExp(`agent=${ka.agent} host=127\\.0\\.0\\.1 port=\\d+ pattern=KK dir=in`))
    const close = lines.find((l) => l.text.startsWith('b:') && /closed/.test(l.text))
    assert.strictEqual(close.level, 'debug')
    assert.match(close.text, /reason=PEER_CLOSED clean=true written=0/)
    const stranger = generateKeypair()
    const c = new NoisePeer({ agent: stranger.agent, keys: stranger })
    peers.push(c)
    await rejection(c.send(addr, { n: 2 }))
    await waitFor(() => lines.some((l) => l.level === 'warn' && /refused/.test(l.text)), 'the refusal line')
    assert.match(lines.find((l) => l.level === 'warn').text, /^b: handshake with \S+ refused: ERR_UNKNOWN_PEER .*reason=ERR_UNKNOWN_PEER/)
  })

  it('formats nothing for a level the logger says is off', async () => {
    let asked = 0
    const log = {
      isLevelEnabled: (level) => { asked++; return level === 'error' },
      error () {},
      warn () { throw new Error('warn is off: nothing should be logged at it') },
      info () { throw new Error('info is off') },
      debug () { throw new Error('debug is off') },
      trace () { throw new Error('trace is off') }
    }
    const ka = generateKeypair()
    const kb = generateKeypair()
    const a = new NoisePeer({ agent: ka.agent, keys: ka, logger: log })
    const b = new NoisePeer({ agent: kb.agent, keys: kb, peerKey: async (x) => agentKey(x), logger: log })
    peers.push(a, b)
    const before = asked
    b.onMessage(() => {})
    await a.send({ agent: kb.agent, ...(await b.listen()) }, { n: 1 })
    a.end(kb.agent)
    await waitFor(() => b.links().length === 0, 'the close')
    assert.strictEqual(asked, before, 'levels are asked once, when the peer is made, not per event')
  })

  it('rate-limits refusals from one address: one line per window, the next says how many were held', () => {
    const { log, lines } = recorder()
    let t = 0
    const el = new EventLog(log, 'n', () => t)
    for (let i = 0; i < 50; i++) el.event(refusal('10.0.0.1', i))
    el.event(refusal('10.0.0.2', 99))
    assert.deepStrictEqual(lines.map((l) => l.text.match(/host=(\S+)/)[1]), ['10.0.0.1', '10.0.0.2'], 'one line per address')
    t = 10001
    el.event(refusal('10.0.0.1', 100))
    assert.strictEqual(lines.length, 3)
    assert.match(lines[2].text, /held=49/, 'the next line counts those held back')
    // Remembers a bounded number of addresses.
    for (let i = 0; i < 5000; i++) el.event(refusal(`10.1.${i >> 8}.${i & 255}`, i))
    assert.ok(el.recent.size <= 1024, `bounded: ${el.recent.size}`)
  })
})

'use strict'
// Options: one set of defaults (Rust's), bad values refused with a coded
// error instead of being clamped, raw mode only when asked for.
const assert = require('assert')
const { NoisePeer, generateKeypair, DEFAULTS } = require('..')

describe('options', () => {
  const id = generateKeypair()
  const make = (o) => new NoisePeer({ agent: id.agent, keys: id, ...o })

  it('exports the defaults the node runs with', () => {
    assert.deepStrictEqual({ ...DEFAULTS }, {
      host: '127.0.0.1',
      port: 0,
      encrypt: true,
      timeout: 60000,
      handshakeTimeout: 5000,
      drainTimeout: 2000,
      maxFrame: 65536,
      maxMessage: 1048576,
      maxPending: 256,
      maxPendingPerIp: 32,
      maxLinks: 10000,
      maxLinksPerIp: 256,
      maxLinksPerAgent: 8,
      maxRefereeLinks: 256,
      connectRate: 100,
      maxQueuedBytes: 8388608,
      writeTimeout: 10000,
      keepalive: 0,
      maxBacklog: 1024,
      eventRate: 100,
      referee: false,
      legacy: false
    })
    assert.ok(Object.isFrozen(DEFAULTS))
  })

  it('refuses values out of range with ERR_INVALID_ARGUMENT instead of clamping them', () => {
    const bad = [
      { maxFrame: 10 }, { maxFrame: 70000 }, { maxFrame: 1.5 }, { maxFrame: 'big' },
      { maxMessage: 100 }, { maxPending: 0 }, { maxPendingPerIp: -1 },
      { timeout: -1 }, { handshakeTimeout: 0 }, { drainTimeout: Infinity }, { port: 70000 }
    ]
    for (const o of bad) {
      assert.throws(() => make(o), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(o))
    }
    assert.doesNotThrow(() => make({ maxFrame: 1024, maxMessage: 1024, maxPending: 1, timeout: 0 }))
  })

  it('needs keys to encrypt: leaving them out is an error, not raw mode', () => {
    assert.throws(() => new NoisePeer({ agent: id.agent }), { code: 'ERR_INVALID_ARGUMENT', message: /encrypt: false/ })
    assert.throws(() => new NoisePeer({ agent: id.agent, encrypt: true }), { code: 'ERR_INVALID_ARGUMENT' })
    assert.strictEqual(new NoisePeer({ agent: id.agent, encrypt: false }).encrypted, false)
    assert.strictEqual(new NoisePeer({ agent: id.agent, encrypt: false, keys: id }).encrypted, false)
    assert.strictEqual(make({}).encrypted, true)
  })
})

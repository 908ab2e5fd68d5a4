'use strict'
// Self-tests of the reference JavaScript peer (JsPeer against JsPeer over
// loopback), so that native interop tests can trust it.
const assert = require('assert')
const crypto = require('crypto')
const { keypair, agentToKey, keyCount, JsPeer } = require('./helpers/js-peer')

const HOST = '127.0.0.1'
const MAC = 16
const E = 32 // ephemeral public key
const S = 32 + MAC // encrypted static key

const { sleep } = require('./helpers/wait')
const letters = (peer, dir) => peer.frames.filter((f) => f.dir === dir).map((f) => f.letter).join('')
const jsonLen = (v) => Buffer.byteLength(JSON.stringify(v))

describe('js-peer reference peer', function () {
  this.timeout(10000)
  let peers = []

  // Make a listening peer; every peer made here is closed after each test.
  async function makePeer (opts = {}) {
    const id = keypair()
    const peer = new JsPeer(Object.assign({ agent: id.agent, keys: id, host: HOST }, opts))
    peer.id = id
    peers.push(peer)
    await peer.listen()
    return peer
  }

  afterEach(async () => {
    await Promise.all(peers.map((p) => p.close()))
    peers = []
  })

  it('derives the X25519 key from the agent id', () => {
    const id = keypair()
    assert.strictEqual(id.agent.length, 43) // 32 bytes, base64url, no padding
    assert.ok(/^[A-Za-z0-9_-]+$/.test(id.agent))
    assert.ok(agentToKey(id.agent).equals(id.publicKey))
    assert.throws(() => agentToKey('abc'))
  })

  it('counts keys the way the JS node filters K and A payloads', () => {
    assert.strictEqual(keyCount(null), 0)
    assert.strictEqual(keyCount(5), 0)
    assert.strictEqual(keyCount(true), 0)
    assert.strictEqual(keyCount({}), 0)
    assert.strictEqual(keyCount({ a: 1 }), 1)
    assert.strictEqual(keyCount([1, 2]), 2)
    assert.strictEqual(keyCount('ab'), 2)
  })

  // Independent check (Node's own HMAC-BLAKE2b and ChaCha20-Poly1305) of the
  // interop facts js-peer relies on: noise-protocol's Split() direction and
  // the transport nonce layout.
  it('noise-protocol: last writer sends with the first Split() key; nonce = 4 zero bytes + LE64', () => {
    const noise = require('noise-protocol')
    const cs = require('noise-protocol/cipher-state')({ cipher: require('noise-protocol/cipher')() })
    const ki = keypair()
    const kr = keypair()
    const ini = noise.initialize('IK', true, Buffer.alloc(0), { publicKey: ki.publicKey, secretKey: ki.privateKey }, null, kr.publicKey)
    const res = noise.initialize('IK', false, Buffer.alloc(0), { publicKey: kr.publicKey, secretKey: kr.privateKey })
    const m1 = Buffer.alloc(256)
    assert.strictEqual(noise.writeMessage(ini, Buffer.alloc(0), m1), undefined)
    noise.readMessage(res, m1.subarray(0, noise.writeMessage.bytes), Buffer.alloc(256))
    const m2 = Buffer.alloc(256)
    const rSplit = noise.writeMessage(res, Buffer.alloc(0), m2)
    const ck = Buffer.from(res.symmetricState.subarray(0, 64)) // chaining key, left in place by split
    const iSplit = noise.readMessage(ini, m2.subarray(0, noise.writeMessage.bytes), Buffer.alloc(256))
    const hmac = (k, d) => crypto.createHmac('blake2b512', k).update(d).digest()
    const temp = hmac(ck, Buffer.alloc(0))
    const out1 = hmac(temp, Buffer.from([1]))
    const k1 = out1.subarray(0, 32)
    const k2 = hmac(temp, Buffer.concat([out1, Buffer.from([2])])).subarray(0, 32)
    const key = (st) => Buffer.from(st.subarray(0, 32))
    assert.ok(key(rSplit.tx).equals(k1)) // responder wrote last: it sends with k1
    assert.ok(key(iSplit.rx).equals(k1))
    assert.ok(key(iSplit.tx).equals(k2)) // the spec would give k1 to the initiator
    assert.ok(key(rSplit.rx).equals(k2))
    // Transport ciphertext for nonces 0 and 1 equals IETF ChaCha20-Poly1305.
    for (const n of [0, 1]) {
      const pt = Buffer.from(`{"n":${n}}`)
      const out = Buffer.alloc(pt.length + MAC)
      cs.encryptWithAd(rSplit.tx, out, Buffer.alloc(0), pt)
      assert.strictEqual(cs.encryptWithAd.bytesWritten, pt.length + MAC)
      const nonce = Buffer.alloc(12)
      nonce.writeBigUInt64LE(BigInt(n), 4)
      const c = crypto.createCipheriv('chacha20-poly1305', k1, nonce, { authTagLength: MAC })
      c.setAAD(Buffer.alloc(0))
      const ref = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()])
      assert.ok(out.equals(ref))
    }
    noise.destroy(ini)
    noise.destroy(res)
  })

  for (const dir of ['A to B', 'B to A']) {
    it(`first contact by ticket (IK), ${dir}`, async () => {
      const a = await makePeer({ checkTicket: async (t) => t === 'tik-a' })
      const b = await makePeer({ checkTicket: async (t, msg, info) => t === 'tik-b' && info.remoteKey.equals(agentToKey(msg.from.agent)) })
      const [from, to, ticket] = dir === 'A to B' ? [a, b, 'tik-b'] : [b, a, 'tik-a']
      const msg = { target: 'tally', action: 'offer', n: 1 }
      const opened = from.waitFor('open')
      await from.send(to.address(), msg, { ticket })
      const got = await to.waitDelivered(1)
      assert.strictEqual(got[0].via, 'I')
      assert.strictEqual(got[0].agent, from.agent)
      assert.deepStrictEqual(got[0].message, Object.assign({}, msg, { to: to.address(), from: from.address(), ticket }))
      await opened
      assert.deepStrictEqual(from.delivered, []) // the A payload is empty: nothing handed on
      // I = letter + e + s + payload + MAC ; A = letter + e + empty payload MAC
      assert.deepStrictEqual(from.frames.map((f) => f.dir + f.letter), ['outI', 'inA'])
      assert.strictEqual(from.frames[0].length, 1 + E + S + jsonLen(got[0].message) + MAC)
      assert.strictEqual(from.frames[1].length, 1 + E + MAC)
    })
  }

  it('refuses a bad ticket: nothing delivered, connection closed, queued send rejected', async () => {
    const b = await makePeer({ checkTicket: async () => false })
    const a = await makePeer()
    const closed = a.waitFor('close')
    const first = a.send(b.address(), { target: 'x' }, { ticket: 'nope' })
    const second = a.send(b.address(), { target: 'y' }) // queued behind the handshake
    await first // I itself was written
    await assert.rejects(second, /connection closed/)
    await closed
    assert.deepStrictEqual(b.delivered, [])
    assert.deepStrictEqual(a.delivered, [])
    assert.ok(b.faults.some((f) => f.reason === 'ticket refused'))
    assert.strictEqual(letters(b, 'out'), '') // no A
  })

  it('reconnects by key (N then K), then T frames', async () => {
    const a = await makePeer()
    const b = await makePeer()
    const p1 = a.send(b.address(), { target: 'chit', n: 1 })
    const p2 = a.send(b.address(), { target: 'chit', n: 2 }) // queued until A
    await Promise.all([p1, p2])
    const got = await b.waitDelivered(2)
    assert.deepStrictEqual(got.map((d) => [d.via, d.message.n]), [['K', 1], ['T', 2]])
    assert.deepStrictEqual(got[0].message.from, a.address())
    assert.strictEqual(got[0].agent, a.agent)
    assert.strictEqual(letters(a, 'out'), 'NKT')
    assert.strictEqual(letters(b, 'out'), 'A')
    // N = letter + e + JSON string of agent id + MAC ; K = letter + e + payload + MAC
    const out = a.frames.filter((f) => f.dir === 'out')
    assert.strictEqual(out[0].length, 1 + E + jsonLen(a.agent) + MAC)
    assert.strictEqual(out[1].length, 1 + E + jsonLen(got[0].message) + MAC)
    assert.strictEqual(out[2].length, 1 + jsonLen(got[1].message) + MAC)
  })

  it('does not hand on K payloads without enumerable keys', async () => {
    const b = await makePeer()
    const a = await makePeer()
    for (const bare of [{}, 5, null, true]) {
      const opened = a.waitFor('open')
      await a.send(b.address(), bare, { asIs: true })
      await opened
      const after = b.waitFor('message', (m) => m.message.target === 'after')
      await a.send(b.address(), { target: 'after', bare }) // a T right behind it
      await after
      const closed = b.waitFor('close')
      a.byAgent.get(b.agent).close('next case') // a new connection per case
      await closed
    }
    assert.deepStrictEqual(b.delivered.map((d) => d.via), ['T', 'T', 'T', 'T'])
  })

  it('refuses N for an agent without a key', async () => {
    const b = await makePeer({ peerKey: async () => null })
    const a = await makePeer()
    const closed = a.waitFor('close')
    const first = a.send(b.address(), { target: 'x' }) // N + K
    const second = a.send(b.address(), { target: 'y' }) // queued behind the handshake
    await first
    await assert.rejects(second, /connection closed/)
    await closed
    assert.strictEqual(letters(b, 'out'), '') // no A
    assert.deepStrictEqual(b.delivered, [])
    assert.ok(b.faults.some((f) => /no key/.test(f.reason)))
  })

  it('carries messages both ways on one link, in order', async () => {
    const b = await makePeer({ checkTicket: async () => true })
    const a = await makePeer()
    await a.send(b.address(), { target: 't', n: 0 }, { ticket: 'ok' })
    await b.waitDelivered(1)
    const sends = []
    for (let i = 1; i <= 5; i++) {
      sends.push(a.send(b.address(), { target: 't', n: i }))
      sends.push(b.send(a.address(), { target: 't', n: -i }))
    }
    await Promise.all(sends)
    await b.waitDelivered(6)
    await a.waitDelivered(5)
    assert.deepStrictEqual(b.delivered.map((d) => d.message.n), [0, 1, 2, 3, 4, 5])
    assert.deepStrictEqual(a.delivered.map((d) => [d.via, d.message.n]), [1, 2, 3, 4, 5].map((i) => ['T', -i]))
    assert.strictEqual(a.conns.size, 1)
    assert.strictEqual(b.conns.size, 1)
    assert.strictEqual(letters(b, 'out'), 'ATTTTT') // B reused the inbound link
  })

  it('ignores unexpected letters', async () => {
    const b = await makePeer()
    const a = await makePeer()
    const opened = a.waitFor('open')
    await a.send(b.address(), { target: 't', n: 1 })
    await opened
    const conn = a.byAgent.get(b.agent)
    await conn.writeFrame('Q', Buffer.from('junk'))
    await conn.writeFrame('F', Buffer.alloc(40))
    await conn.writeFrame('A', Buffer.alloc(48))
    await a.send(b.address(), { target: 't', n: 2 })
    await b.waitDelivered(2)
    assert.deepStrictEqual(b.ignored.map((i) => i.letter), ['Q', 'F', 'A'])
    assert.deepStrictEqual(b.faults, [])
    assert.deepStrictEqual(b.delivered.map((d) => d.message.n), [1, 2])
  })

  it('closes an idle inbound connection, and the initiator reopens by key', async () => {
    const b = await makePeer({ idleTimeout: 300, checkTicket: async () => true })
    const a = await makePeer()
    const closedA = a.waitFor('close')
    const closedB = b.waitFor('close', (c, reason) => reason === 'idle timeout')
    const t0 = Date.now()
    await a.send(b.address(), { target: 't', n: 1 }, { ticket: 'ok' })
    await Promise.all([closedA, closedB])
    assert.ok(Date.now() - t0 >= 250, 'closed too early')
    assert.strictEqual(a.conns.size, 0)
    await a.send(b.address(), { target: 't', n: 2 })
    const got = await b.waitDelivered(2)
    assert.deepStrictEqual(got.map((d) => [d.via, d.message.n]), [['I', 1], ['K', 2]])
    assert.strictEqual(letters(a, 'out'), 'INK')
  })

  it('raw mode: same letters, plaintext JSON bodies', async () => {
    const b = await makePeer({ encrypt: false, checkTicket: async (t) => t === 'r' })
    const a = await makePeer({ encrypt: false })
    await a.send(b.address(), { target: 't', n: 1 }, { ticket: 'r' })
    await a.send(b.address(), { target: 't', n: 2 })
    await b.send(a.address(), { target: 't', n: 3 })
    await b.waitDelivered(2)
    await a.waitDelivered(1)
    assert.deepStrictEqual(b.delivered.map((d) => [d.via, d.message.n]), [['I', 1], ['T', 2]])
    assert.deepStrictEqual(a.delivered.map((d) => [d.via, d.message.n]), [['T', 3]])
    assert.strictEqual(letters(a, 'out'), 'IT')
    const out = a.frames.filter((f) => f.dir === 'out')
    assert.strictEqual(out[0].length, 1 + jsonLen(b.delivered[0].message))
    assert.strictEqual(out[1].length, 1 + jsonLen(b.delivered[1].message))
    assert.strictEqual(a.frames.find((f) => f.letter === 'A').length, 1) // empty A
    // By key in raw mode: N carries the agent id as a JSON string.
    const c = await makePeer({ encrypt: false })
    await c.send(b.address(), { target: 't', n: 4 })
    await b.waitDelivered(3)
    assert.strictEqual(b.delivered[2].via, 'K')
    assert.strictEqual(c.frames[0].length, 1 + jsonLen(c.agent))
  })

  it('sends a 100 KiB message as one T frame', async () => {
    const b = await makePeer()
    const a = await makePeer()
    const opened = a.waitFor('open')
    await a.send(b.address(), { target: 't', n: 1 })
    await opened
    const big = { target: 't', blob: 'x'.repeat(100 * 1024) }
    await a.send(b.address(), big)
    const got = await b.waitDelivered(2)
    assert.strictEqual(got[1].message.blob.length, 100 * 1024)
    const inT = b.frames.filter((f) => f.dir === 'in' && f.letter === 'T')
    assert.strictEqual(inT.length, 1)
    assert.strictEqual(inT[0].length, 1 + jsonLen(big) + MAC)
    assert.ok(inT[0].length > 65535)
  })

  it('fails the link on a tampered transport frame', async () => {
    const b = await makePeer()
    const a = await makePeer()
    const opened = a.waitFor('open')
    await a.send(b.address(), { target: 't', n: 1 })
    await opened
    const conn = a.byAgent.get(b.agent)
    const closed = a.waitFor('close')
    const ct = conn.encrypt(Buffer.from('{"n":2}'))
    ct[0] ^= 1
    await conn.writeFrame('T', ct)
    await closed
    assert.ok(b.faults.some((f) => /T frame rejected/.test(f.reason)))
    assert.strictEqual(b.delivered.length, 1)
  })
})

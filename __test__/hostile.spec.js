'use strict'
// Hostile input: what a NoisePeer does when the other end of a TCP connection
// misbehaves (garbage, broken frames, letters out of order, resets, silence,
// floods), and whether the process and the node's other links survive it.
// Loopback only; every wait is bounded; every test closes what it opens.

const assert = require('assert')
const crypto = require('crypto')
const { NoisePeer, generateKeypair } = require('..')
const {
  HOST, sleep, frame, prefix, parseFrames, rawClient, hit, EventLog, fakeServer, deadPort, kkClient, runChild, nativeTimestamp
} = require('./helpers/hostile')

const HS_TIMEOUT = 300 // handshakeTimeout of the node under attack, in ms

describe('NoisePeer under hostile input', function () {
  this.timeout(20000)

  let known = {} // agent -> X25519 public key: the partners every node knows
  let opened = [] // peers, servers and sockets to close after each test
  const peerKey = async (agent) => known[agent] || null

  afterEach(async () => {
    const all = opened.splice(0)
    await Promise.race([
      Promise.all(all.map((o) => {
        if (o instanceof NoisePeer) return o.close().catch(() => {})
        if (o.shutdown) return o.shutdown()
        if (o.destroy) return o.destroy()
        return null
      })),
      sleep(5000)
    ])
    known = {}
  })

  // A node that tests can attack: an encrypting (KK) NoisePeer with an event
  // log and a list of the messages it received.
  async function node (opts = {}) {
    const raw = opts.encrypt === false
    const id = raw ? { agent: `raw-${crypto.randomBytes(6).toString('hex')}` } : generateKeypair()
    if (!raw) known[id.agent] = id.publicKey
    const peer = new NoisePeer(Object.assign(
      raw ? { agent: id.agent, host: HOST } : { agent: id.agent, keys: id, host: HOST, peerKey },
      opts))
    opened.push(peer)
    peer.id = id
    peer.log = new EventLog(peer)
    peer.got = []
    peer.waiters = []
    peer.onMessage((from, message) => {
      peer.got.push({ from, message })
      for (const w of peer.waiters.slice()) w()
    })
    peer.addr = await peer.listen()
    peer.at = { agent: id.agent, host: HOST, port: peer.addr.port }
    return peer
  }

  // Resolves once `peer` holds `n` messages that match (bounded).
  function received (peer, pred, n = 1, ms = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = peer.got.filter(pred)
        if (m.length >= n) { done(); resolve(m) }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out: ${peer.got.filter(pred).length} of ${n} messages arrived`))
      }, ms)
      const done = () => { clearTimeout(timer); peer.waiters = peer.waiters.filter((w) => w !== check) }
      peer.waiters.push(check)
      check()
    })
  }

  // The user-visible proof that `target` still serves partners: a fresh
  // conversation from `other` (ping, then pong back on the same link).
  async function assertServes (target, other) {
    const n = crypto.randomBytes(4).toString('hex')
    await other.send(target.at, { ping: n })
    const [m] = await received(target, (x) => x.message.ping === n)
    assert.strictEqual(m.from.agent, other.id.agent)
    await target.send({ agent: other.id.agent, link: m.from.link }, { pong: n })
    await received(other, (x) => x.message.pong === n)
  }

  // The node closed `c` because its handshake did not finish in time: not
  // before the timeout, and not long after it.
  async function assertTimedOut (A, c) {
    const seen = await c.closed
    assert.ok(seen.closed, 'the node closes the socket')
    assert.ok(seen.ms >= HS_TIMEOUT - 50 && seen.ms < HS_TIMEOUT + 1500, `closed after about ${HS_TIMEOUT} ms (${seen.ms} ms)`)
    const ev = await A.log.fromPort(c.localPort)
    assert.strictEqual(ev.type, 'error')
    assert.strictEqual(ev.reason, 'ERR_HANDSHAKE_TIMEOUT')
  }

  // Nothing reached the application except what good partners sent.
  function assertOnlyFrom (peer, agents) {
    const strangers = peer.got.filter((m) => !agents.includes(m.from.agent))
    assert.deepStrictEqual(strangers.map((m) => m.message), [], 'no message from a misbehaving connection is delivered')
  }

  // The event for an outbound connection that never opened. (Its port is not
  // used to find it: see the test on the address in such events.)
  const dialFailed = (e) => e.initiator && (e.type === 'error' || e.type === 'refused')

  const typeOf = (reason) => ['ERR_HANDSHAKE_REJECTED', 'ERR_PEER_REFUSED', 'ERR_UNKNOWN_PEER', 'ERR_KEY_MISMATCH', 'ERR_TICKET_REFUSED', 'ERR_REPLAY', 'ERR_LEGACY_REFUSED', 'ERR_REFEREE_DISABLED'].includes(reason) ? 'refused' : 'error'

  // ---------------------------------------------------------------------------
  describe('raw TCP clients against a listening encrypted node', function () {
    const cases = [
      { does: 'sends plain-text garbage', bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'), reason: 'ERR_FRAME_TOO_LARGE' },
      { does: 'sends a zero-length frame', bytes: () => prefix(0), reason: 'ERR_EMPTY_FRAME' },
      { does: 'sends a length prefix of 0xFFFFFFFF', bytes: () => prefix(0xFFFFFFFF), reason: 'ERR_FRAME_TOO_LARGE' },
      { does: 'announces a frame of 65,537 bytes and sends no body', bytes: () => prefix(65537), reason: 'ERR_FRAME_TOO_LARGE' },
      { does: "sends a frame with the unknown letter 'X'", bytes: () => frame('X', crypto.randomBytes(40)), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends a lower-case letter 't'", bytes: () => frame('t', Buffer.from('{"a":1}')), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends a valid-looking 'I' of random bytes", bytes: () => frame('I', crypto.randomBytes(200)), reason: 'ERR_DECRYPT' },
      { does: "sends an 'I' of the largest allowed size (65,536 bytes) of random bytes", bytes: () => frame('I', crypto.randomBytes(65535)), reason: 'ERR_DECRYPT' },
      { does: "sends an 'N' of random bytes", bytes: () => frame('N', crypto.randomBytes(100)), reason: 'ERR_DECRYPT' },
      { does: "sends an 'I' too short to hold a key", bytes: () => frame('I', crypto.randomBytes(5)), reason: 'ERR_DECRYPT' },
      { does: "sends a 'T' before any handshake", bytes: () => frame('T', crypto.randomBytes(40)), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends an 'F' before any handshake", bytes: () => frame('F', crypto.randomBytes(40)), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends a 'K' without an 'N' first", bytes: () => frame('K', crypto.randomBytes(100)), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends an 'A' to a responder", bytes: () => frame('A', crypto.randomBytes(48)), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends a plaintext 'N' + 'K' (a raw-mode caller)", bytes: () => Buffer.concat([frame('N', Buffer.from('"someone"')), frame('K', Buffer.from('1'))]), reason: 'ERR_MODE_MISMATCH' }
    ]

    for (const c of cases) {
      it(`closes a connection that ${c.does} (${c.reason}), and keeps serving others`, async () => {
        const A = await node({ handshakeTimeout: HS_TIMEOUT })
        const B = await node()
        const seen = await hit(A.addr.port, c.bytes(), { ms: 3000 })
        assert.ok(seen.closed, 'the node closes the socket')
        assert.ok(seen.ms < HS_TIMEOUT + 200 || c.reason === 'ERR_HANDSHAKE_TIMEOUT', `closed at once, not by a timer (${seen.ms} ms)`)
        const ev = await A.log.fromPort(seen.localPort)
        assert.strictEqual(ev.reason, c.reason, ev.message)
        assert.strictEqual(ev.type, typeOf(c.reason))
        assert.strictEqual(ev.host, HOST)
        assert.strictEqual(ev.initiator, false)
        assert.strictEqual(typeof ev.message, 'string')
        await assertServes(A, B)
        assertOnlyFrom(A, [B.id.agent])
        assert.strictEqual(A.log.events.filter((e) => e.port === seen.localPort).length, 1, 'exactly one event for the bad connection')
      })
    }

    it('tells a raw-mode caller about the mode mismatch in a plaintext A before closing', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const seen = await hit(A.addr.port, Buffer.concat([frame('N', Buffer.from('"someone"')), frame('K', Buffer.from('1'))]))
      const { frames } = parseFrames(seen.data)
      assert.strictEqual(frames.length, 1)
      assert.strictEqual(frames[0].letter, 'A')
      assert.strictEqual(JSON.parse(frames[0].body.toString()).refused, 'ERR_MODE_MISMATCH')
    })

    it('closes a connection that sends half a frame then goes silent, at the handshake timeout, and keeps serving others', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const B = await node()
      const c = await rawClient(A.addr.port, { ms: 5000 })
      c.sock.write(frame('I', crypto.randomBytes(200)).subarray(0, 60))
      // While it hangs, others are served.
      await assertServes(A, B)
      await assertTimedOut(A, c)
      await assertServes(A, B)
      assertOnlyFrom(A, [B.id.agent])
    })

    it('closes a connection that connects and sends nothing, at the handshake timeout, and keeps serving others', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const B = await node()
      const c = await rawClient(A.addr.port, { ms: 5000 })
      await assertServes(A, B)
      await assertTimedOut(A, c)
      await assertServes(A, B)
    })

    it('closes a connection that sends one byte at a time too slowly to finish the handshake', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const B = await node()
      const c = await rawClient(A.addr.port, { ms: 5000 })
      const bytes = frame('I', crypto.randomBytes(100))
      let i = 0
      const drip = setInterval(() => { if (i < bytes.length && !c.sock.destroyed) c.sock.write(bytes.subarray(i, ++i)) }, 20)
      try {
        const seen = await c.closed
        assert.ok(seen.closed && seen.ms < HS_TIMEOUT + 1500, `closed at the handshake timeout (${seen.ms} ms)`)
      } finally { clearInterval(drip) }
      assert.strictEqual((await A.log.fromPort(c.localPort)).reason, 'ERR_HANDSHAKE_TIMEOUT')
      await assertServes(A, B)
    })

    it('reports a connection that ends in the middle of a frame as closed (ERR_CONNECTION_CLOSED), not as a socket error', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const B = await node()
      const c = await rawClient(A.addr.port)
      c.sock.end(frame('I', crypto.randomBytes(100)).subarray(0, 30)) // half a frame, then FIN
      const seen = await c.closed
      assert.ok(seen.closed)
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.type, 'error')
      assert.strictEqual(ev.reason, 'ERR_CONNECTION_CLOSED', `got ${ev.reason}: ${ev.message}`)
      await assertServes(A, B)
    })

    it('reports a connection that ends before any frame as closed (ERR_CONNECTION_CLOSED)', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const c = await rawClient(A.addr.port)
      c.sock.end()
      assert.ok((await c.closed).closed)
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.reason, 'ERR_CONNECTION_CLOSED')
    })
  })

  // ---------------------------------------------------------------------------
  describe('a partner that misbehaves after a valid handshake (encrypted)', function () {
    // m is a real partner of A (A knows its key) driving the socket by hand.
    async function setup (opts = {}) {
      const A = await node(Object.assign({ handshakeTimeout: HS_TIMEOUT }, opts))
      const B = await node()
      const m = generateKeypair()
      known[m.agent] = m.publicKey
      const c = await kkClient(A.addr.port, m, A.id.publicKey)
      opened.push(c.sock)
      await A.log.waitFor((e) => e.type === 'open' && e.port === c.localPort, 3000, 'the open event')
      return { A, B, m, c }
    }

    it('closes a link that sends a forged transport frame; what came before is delivered once, the forgery never', async () => {
      const { A, B, m, c } = await setup()
      c.sock.write(frame('T', c.seal('{"good":1}')))
      c.sock.write(frame('T', crypto.randomBytes(40)))
      const seen = await c.closed
      assert.ok(seen.closed)
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.type, 'close')
      assert.strictEqual(ev.reason, 'ERR_DECRYPT')
      assert.strictEqual(ev.agent, m.agent)
      assert.strictEqual(ev.clean, false)
      assert.deepStrictEqual(A.got.filter((x) => x.from.agent === m.agent).map((x) => x.message), [{ good: 1 }])
      await assertServes(A, B)
    })

    it('closes a link that replays a transport frame, and delivers the message only once', async () => {
      const { A, B, m, c } = await setup()
      const t = frame('T', c.seal('{"n":1}'))
      c.sock.write(Buffer.concat([t, t]))
      await c.closed
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.reason, 'ERR_DECRYPT')
      assert.deepStrictEqual(A.got.filter((x) => x.from.agent === m.agent).map((x) => x.message), [{ n: 1 }])
      await assertServes(A, B)
    })

    it('closes a link whose transport message is not a JSON object (ERR_BAD_MESSAGE), delivering nothing', async () => {
      const { A, B, m, c } = await setup()
      c.sock.write(frame('T', c.seal('[1,2,3]')))
      await c.closed
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.type, 'close')
      assert.strictEqual(ev.reason, 'ERR_BAD_MESSAGE')
      assertOnlyFrom(A, [B.id.agent])
      await assertServes(A, B)
      assert.strictEqual(A.got.filter((x) => x.from.agent === m.agent).length, 0)
    })

    it('closes a link that sends a handshake letter after it is open (ERR_UNEXPECTED_LETTER)', async () => {
      const { A, B, c } = await setup()
      c.sock.write(frame('I', crypto.randomBytes(100)))
      await c.closed
      assert.strictEqual((await A.log.fromPort(c.localPort)).reason, 'ERR_UNEXPECTED_LETTER')
      await assertServes(A, B)
    })

    it('closes a link that sends a zero-length frame after it is open (ERR_EMPTY_FRAME)', async () => {
      const { A, B, c } = await setup()
      c.sock.write(prefix(0))
      await c.closed
      assert.strictEqual((await A.log.fromPort(c.localPort)).reason, 'ERR_EMPTY_FRAME')
      await assertServes(A, B)
    })

    it('closes a link that sends fragments past the maximum message size (ERR_MESSAGE_TOO_LARGE), delivering nothing', async () => {
      const { A, B, m, c } = await setup({ maxMessage: 1024 })
      for (let i = 0; i < 4; i++) c.sock.write(frame('F', c.seal('x'.repeat(600), 'F')))
      const seen = await c.closed
      assert.ok(seen.closed)
      assert.strictEqual((await A.log.fromPort(c.localPort)).reason, 'ERR_MESSAGE_TOO_LARGE')
      assert.strictEqual(A.got.filter((x) => x.from.agent === m.agent).length, 0)
      await assertServes(A, B)
    })

    it('reports a TCP reset on an open link as a close with ERR_CONNECTION_RESET, and keeps serving others', async () => {
      const { A, B, m, c } = await setup()
      c.sock.resetAndDestroy()
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.type, 'close')
      assert.strictEqual(ev.reason, 'ERR_CONNECTION_RESET')
      assert.strictEqual(ev.agent, m.agent)
      assert.strictEqual(ev.clean, false)
      assert.ok(!A.links().some((l) => l.agent === m.agent), 'the reset link is gone from links()')
      await assertServes(A, B)
    })

    it('refuses a replayed handshake (ERR_REPLAY) from a captured N + K, and opens nothing', async () => {
      const { A, B, m, c } = await setup()
      c.sock.write(frame('T', c.seal('{"first":1}')))
      await received(A, (x) => x.message.first === 1)
      const seen = await hit(A.addr.port, c.hello)
      assert.ok(seen.closed)
      const ev = await A.log.fromPort(seen.localPort)
      assert.strictEqual(ev.type, 'refused')
      assert.strictEqual(ev.reason, 'ERR_REPLAY')
      assert.strictEqual(A.log.events.filter((e) => e.type === 'open' && e.agent === m.agent).length, 1, 'only the real handshake opened a link')
      assert.deepStrictEqual(parseFrames(seen.data).frames.map((f) => f.letter).filter((l) => l !== 'A'), [], 'nothing but a refusal is sent back')
      await assertServes(A, B)
    })

    it('closes an open link that goes silent at the idle timeout (IDLE_TIMEOUT)', async () => {
      const { A, B, c } = await setup({ timeout: 500, drainTimeout: 300 })
      const seen = await c.closed
      assert.ok(seen.closed)
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.type, 'close')
      assert.strictEqual(ev.reason, 'IDLE_TIMEOUT')
      await assertServes(A, B)
    })

    it('does not let a partner that stops reading make sends hang forever', async () => {
      const { A, B, m, c } = await setup({ timeout: 1000, drainTimeout: 300 })
      c.sock.pause() // reads nothing more: the socket buffers fill up
      const big = { pad: 'x'.repeat(60000) }
      const outcomes = []
      const sends = []
      for (let i = 0; i < 100; i++) {
        sends.push(A.send({ agent: m.agent, link: undefined }, big).then(() => outcomes.push('ok'), (e) => outcomes.push(e.code || String(e))))
      }
      // Meanwhile B is served.
      await assertServes(A, B)
      const t0 = Date.now()
      await Promise.race([Promise.all(sends), sleep(15000)])
      assert.strictEqual(outcomes.length, 100, `every send settles (settled ${outcomes.length} of 100 after ${Date.now() - t0} ms)`)
      assert.ok(outcomes.includes('ok'), 'what fit in the socket buffers was written')
      const failures = outcomes.filter((o) => o !== 'ok')
      assert.ok(failures.length > 0, 'the rest could not be written')
      assert.ok(failures.every((f) => /^ERR_/.test(f)), `every failure has a code: ${[...new Set(failures)]}`)
      await assertServes(A, B)
    })

    it('rejects sends that were queued on a link that then closed with a connection code, not ERR_INVALID_ARGUMENT', async () => {
      const { A, m, c } = await setup({ timeout: 1000, drainTimeout: 300 })
      c.sock.pause()
      const big = { pad: 'x'.repeat(60000) }
      const outcomes = []
      const sends = []
      for (let i = 0; i < 150; i++) {
        sends.push(A.send({ agent: m.agent }, big).then(() => outcomes.push('ok'), (e) => outcomes.push(e.code)))
      }
      await Promise.race([Promise.all(sends), sleep(15000)])
      const codes = [...new Set(outcomes.filter((o) => o !== 'ok'))]
      assert.ok(!codes.includes('ERR_INVALID_ARGUMENT'), `the caller's arguments were valid; got codes ${codes}`)
    })
  })

  // ---------------------------------------------------------------------------
  describe('raw TCP clients against a raw-mode node (encrypt: false)', function () {
    const cases = [
      { does: 'sends plain-text garbage', bytes: () => Buffer.from('hello, is anybody there?\n'), reason: 'ERR_FRAME_TOO_LARGE' },
      { does: 'sends a zero-length frame', bytes: () => prefix(0), reason: 'ERR_EMPTY_FRAME' },
      { does: 'sends a length prefix of 0xFFFFFFFF', bytes: () => prefix(0xFFFFFFFF), reason: 'ERR_FRAME_TOO_LARGE' },
      { does: 'announces a frame of 65,537 bytes and sends no body', bytes: () => prefix(65537), reason: 'ERR_FRAME_TOO_LARGE' },
      { does: "sends a frame with the unknown letter 'X'", bytes: () => frame('X', Buffer.from('{}')), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends a 'T' before any handshake", bytes: () => frame('T', Buffer.from('{"a":1}')), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends an 'A' to a responder", bytes: () => frame('A', Buffer.from('{}')), reason: 'ERR_UNEXPECTED_LETTER' },
      { does: "sends an 'I' of random bytes (an encrypting caller)", bytes: () => frame('I', crypto.randomBytes(120)), reason: 'ERR_MODE_MISMATCH' },
      { does: "sends an 'I' whose JSON has no from address", bytes: () => frame('I', Buffer.from('{"ticket":1}')), reason: 'ERR_BAD_PAYLOAD' },
      { does: "sends an 'N' whose JSON is an object, not an agent id", bytes: () => frame('N', Buffer.from('{"agent":"x"}')), reason: 'ERR_BAD_PAYLOAD' },
      { does: "sends an 'N' with an empty agent id", bytes: () => frame('N', Buffer.from('""')), reason: 'ERR_BAD_PAYLOAD' },
      { does: "sends a 'T' right after 'N', before 'K'", bytes: () => Buffer.concat([frame('N', Buffer.from('"x"')), frame('T', Buffer.from('{"a":1}'))]), reason: 'ERR_UNEXPECTED_LETTER' }
    ]

    for (const c of cases) {
      it(`closes a connection that ${c.does} (${c.reason}), and keeps serving others`, async () => {
        const A = await node({ encrypt: false, handshakeTimeout: HS_TIMEOUT })
        const B = await node({ encrypt: false })
        const seen = await hit(A.addr.port, c.bytes(), { ms: 3000 })
        assert.ok(seen.closed, 'the node closes the socket')
        assert.ok(seen.ms < HS_TIMEOUT + 200, `closed at once (${seen.ms} ms)`)
        const ev = await A.log.fromPort(seen.localPort)
        assert.strictEqual(ev.reason, c.reason, ev.message)
        assert.strictEqual(ev.type, typeOf(c.reason))
        await assertServes(A, B)
        assertOnlyFrom(A, [B.id.agent])
      })
    }

    it('closes a connection that sends half a frame then goes silent, at the handshake timeout (raw mode)', async () => {
      const A = await node({ encrypt: false, handshakeTimeout: HS_TIMEOUT })
      const B = await node({ encrypt: false })
      const c = await rawClient(A.addr.port, { ms: 5000 })
      c.sock.write(frame('N', Buffer.from('"someone-slow"')).subarray(0, 8))
      await assertTimedOut(A, c)
      await assertServes(A, B)
    })

    it('delivers what a hand-made raw partner sends, and closes its link on a transport message that is not a JSON object', async () => {
      const A = await node({ encrypt: false, handshakeTimeout: HS_TIMEOUT })
      const B = await node({ encrypt: false })
      const c = await rawClient(A.addr.port, { ms: 5000 })
      // A native initiator confirms with C right after its handshake (docs/PROTOCOL.md §5a).
      c.sock.write(Buffer.concat([frame('N', Buffer.from('"hand-made"')), frame('K', Buffer.from(String(nativeTimestamp()))),
        frame('C', Buffer.from('{"max":1048576,"frame":65536}'))]))
      await A.log.waitFor((e) => e.type === 'open' && e.port === c.localPort, 3000, 'the open event')
      c.sock.write(frame('T', Buffer.from('{"hello":1}')))
      await received(A, (x) => x.message.hello === 1)
      c.sock.write(frame('T', Buffer.from('not json at all')))
      c.sock.write(frame('T', Buffer.from('{"after":1}')))
      const seen = await c.closed
      assert.ok(seen.closed)
      const ev = await A.log.fromPort(c.localPort)
      assert.strictEqual(ev.type, 'close')
      assert.strictEqual(ev.reason, 'ERR_BAD_MESSAGE')
      assert.strictEqual(ev.agent, 'hand-made')
      assert.deepStrictEqual(A.got.filter((x) => x.from.agent === 'hand-made').map((x) => x.message), [{ hello: 1 }])
      await assertServes(A, B)
    })
  })

  // ---------------------------------------------------------------------------
  describe('TCP resets', function () {
    it('reports a reset from a client in the middle of the handshake (ERR_CONNECTION_RESET), and keeps serving others', async () => {
      const A = await node({ handshakeTimeout: 2000 })
      const B = await node()
      const c = await rawClient(A.addr.port)
      c.sock.write(frame('I', crypto.randomBytes(200)).subarray(0, 50))
      await sleep(50)
      c.sock.resetAndDestroy()
      const ev = await A.log.fromPort(c.localPort, 1500, 'the reset to be reported before the handshake timeout')
      assert.strictEqual(ev.type, 'error')
      assert.strictEqual(ev.reason, 'ERR_CONNECTION_RESET')
      await assertServes(A, B)
    })

    it('survives clients that reset right after connecting, and keeps serving others', async () => {
      const A = await node({ handshakeTimeout: 2000 })
      const B = await node()
      const clients = await Promise.all(Array.from({ length: 10 }, () => rawClient(A.addr.port)))
      for (const c of clients) c.sock.resetAndDestroy()
      const errors = await A.log.waitCount((e) => e.type === 'error', 10, 3000, 'reset reports')
      for (const e of errors) {
        assert.ok(['ERR_CONNECTION_RESET', 'ERR_CONNECTION_CLOSED'].includes(e.reason), e.reason)
      }
      await assertServes(A, B)
    })

    it('says which remote address a connection came from even when it was reset at once', async () => {
      // The node learns the address at accept; a reset that lands before it
      // asks the socket again must not erase it from the report.
      const A = await node({ handshakeTimeout: 2000, maxPendingPerIp: 100 })
      const N = 30
      const clients = await Promise.all(Array.from({ length: N }, () => rawClient(A.addr.port)))
      for (const c of clients) c.sock.resetAndDestroy()
      const errors = await A.log.waitCount((e) => e.type === 'error', N, 3000, 'reset reports')
      const ports = clients.map((c) => c.localPort).sort()
      const anonymous = errors.filter((e) => e.host !== HOST || e.port == null)
      assert.strictEqual(anonymous.length, 0, `${anonymous.length} of ${N} reset reports have no host/port`)
      assert.deepStrictEqual(errors.map((e) => e.port).sort(), ports)
    })

    it('rejects sends with ERR_CONNECTION_RESET (or ERR_HANDSHAKE_REJECTED) when the server it dials resets at once, every time, and reports each', async () => {
      const A = await node({ handshakeTimeout: 2000 })
      const B = await node()
      const server = await fakeServer((sock) => sock.resetAndDestroy())
      opened.push(server)
      const to = { agent: B.id.agent, host: HOST, port: server.port }
      const codes = {}
      const t0 = Date.now()
      const DIALS = 50
      for (let i = 0; i < DIALS; i++) {
        await assert.rejects(A.send(to, { hi: i }), (err) => {
          codes[err.code] = (codes[err.code] || 0) + 1
          return true
        })
      }
      assert.ok(Date.now() - t0 < 5000, 'each is rejected at once, not by the handshake timer')
      const events = await A.log.waitCount(dialFailed, DIALS, 3000, 'dial failure events')
      assert.ok(events.every((e) => e.reason === 'ERR_CONNECTION_RESET' || e.reason === 'ERR_HANDSHAKE_REJECTED' || e.reason === 'ERR_CONNECT_FAILED'))
      // The node still dials real partners.
      await A.send(B.at, { after: 1 })
      await received(B, (x) => x.message.after === 1)
      const wrong = Object.keys(codes).filter((c) => c !== 'ERR_CONNECTION_RESET' && c !== 'ERR_HANDSHAKE_REJECTED')
      assert.deepStrictEqual(wrong, [], `a server that accepted and then reset is not a failure to connect: ${JSON.stringify(codes)}`)
    })

    it('rejects a send when the server it dials reads the handshake and then resets', async () => {
      const A = await node({ handshakeTimeout: 2000 })
      const B = await node()
      const server = await fakeServer((sock) => sock.once('data', () => sock.resetAndDestroy()))
      opened.push(server)
      await assert.rejects(A.send({ agent: B.id.agent, host: HOST, port: server.port }, { hi: 1 }), (err) => {
        assert.ok(['ERR_CONNECTION_RESET', 'ERR_HANDSHAKE_REJECTED'].includes(err.code), `${err.code}: ${err.message}`)
        return true
      })
      await assertServes(B, A)
    })

    it('rejects a send with ERR_HANDSHAKE_REJECTED when the server it dials closes without a word', async () => {
      const A = await node({ handshakeTimeout: 2000 })
      const B = await node()
      const server = await fakeServer((sock) => sock.end())
      opened.push(server)
      await assert.rejects(A.send({ agent: B.id.agent, host: HOST, port: server.port }, { hi: 1 }), { code: 'ERR_HANDSHAKE_REJECTED' })
      const ev = await A.log.waitFor(dialFailed, 2000, 'a dial failure event')
      assert.strictEqual(ev.type, 'refused')
      assert.strictEqual(ev.reason, 'ERR_HANDSHAKE_REJECTED')
      await assertServes(B, A)
    })

    it('names the agent and the address it was dialling in the event for a failed dial', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const B = await node()
      const resetter = await fakeServer((sock) => sock.resetAndDestroy())
      const closer = await fakeServer((sock) => sock.end())
      const silent = await fakeServer(() => {})
      opened.push(resetter, closer, silent)
      const dead = await deadPort()
      const ports = [resetter.port, closer.port, silent.port, dead]
      for (const port of ports) {
        await A.send({ agent: B.id.agent, host: HOST, port }, { hi: 1 }).catch(() => {})
        await A.log.waitCount(dialFailed, ports.indexOf(port) + 1, 3000, 'dial failure events')
      }
      const events = A.log.events.filter(dialFailed)
      const summary = events.map((e) => ({ reason: e.reason, agent: e.agent === B.id.agent ? 'B' : e.agent, port: e.port }))
      assert.deepStrictEqual(summary, ports.map((port, i) => ({ reason: events[i].reason, agent: 'B', port })),
        'every dial failure event says which agent, at which address, could not be reached')
    })
  })

  // ---------------------------------------------------------------------------
  describe('servers that misbehave when the node dials them', function () {
    it('rejects a send with ERR_HANDSHAKE_TIMEOUT within the handshake timeout when the server never answers', async () => {
      const A = await node({ handshakeTimeout: 500 })
      const B = await node()
      const server = await fakeServer(() => {})
      opened.push(server)
      const to = { agent: B.id.agent, host: HOST, port: server.port }
      const t0 = Date.now()
      // Three sends queue on the one opening link; each is rejected.
      const results = await Promise.allSettled([A.send(to, { n: 1 }), A.send(to, { n: 2 }), A.send(to, { n: 3 })])
      const ms = Date.now() - t0
      assert.deepStrictEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected'])
      assert.deepStrictEqual(results.map((r) => r.reason.code), ['ERR_HANDSHAKE_TIMEOUT', 'ERR_HANDSHAKE_TIMEOUT', 'ERR_HANDSHAKE_TIMEOUT'])
      assert.ok(ms >= 450 && ms < 1500, `rejected at about 500 ms (${ms} ms)`)
      const ev = await A.log.waitFor(dialFailed, 2000, 'a dial failure event')
      assert.strictEqual(ev.type, 'error')
      assert.strictEqual(ev.reason, 'ERR_HANDSHAKE_TIMEOUT')
      await assertServes(A, B)
    })

    const replies = [
      { sends: "an 'A' of random bytes", bytes: () => frame('A', crypto.randomBytes(48)), codes: ['ERR_DECRYPT'] },
      { sends: "a 'T' instead of 'A'", bytes: () => frame('T', crypto.randomBytes(48)), codes: ['ERR_UNEXPECTED_LETTER'] },
      { sends: 'a zero-length frame', bytes: () => prefix(0), codes: ['ERR_EMPTY_FRAME'] },
      { sends: 'a length prefix of 0xFFFFFFFF', bytes: () => prefix(0xFFFFFFFF), codes: ['ERR_FRAME_TOO_LARGE'] },
      { sends: 'an HTTP response', bytes: () => Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), codes: ['ERR_FRAME_TOO_LARGE'] }
    ]
    for (const r of replies) {
      it(`rejects a send with ${r.codes.join('/')} when the server it dials answers with ${r.sends}`, async () => {
        const A = await node({ handshakeTimeout: 2000 })
        const B = await node()
        const server = await fakeServer((sock) => sock.write(r.bytes()))
        opened.push(server)
        const t0 = Date.now()
        await assert.rejects(A.send({ agent: B.id.agent, host: HOST, port: server.port }, { hi: 1 }), (err) => {
          assert.ok(r.codes.includes(err.code), `${err.code}: ${err.message}`)
          return true
        })
        assert.ok(Date.now() - t0 < 1500, 'rejected at once')
        const ev = await A.log.waitFor(dialFailed, 2000, 'a dial failure event')
        assert.ok(r.codes.includes(ev.reason), ev.reason)
        await assertServes(A, B)
      })
    }

    it('rejects a send with ERR_CONNECT_FAILED when nothing listens at the port, and reports it', async () => {
      const A = await node()
      const B = await node()
      const port = await deadPort()
      const t0 = Date.now()
      await assert.rejects(A.send({ agent: B.id.agent, host: HOST, port }, { hi: 1 }), (err) => {
        assert.strictEqual(err.code, 'ERR_CONNECT_FAILED', err.message)
        assert.ok(err.message.includes(String(port)), 'the message names the address')
        return true
      })
      assert.ok(Date.now() - t0 < 1500, 'rejected at once')
      const ev = await A.log.waitFor((e) => e.type === 'error' && e.reason === 'ERR_CONNECT_FAILED', 2000)
      assert.strictEqual(ev.port, port)
      assert.strictEqual(ev.initiator, true)
      await assertServes(A, B)
    })
  })

  // ---------------------------------------------------------------------------
  describe('caps on pending inbound connections', function () {
    it('closes a 4th pending connection from one IP at once (ERR_TOO_MANY_PENDING), and accepts again once the silent ones time out', async () => {
      const A = await node({ handshakeTimeout: 500, maxPendingPerIp: 3 })
      const B = await node()
      const silent = []
      for (let i = 0; i < 3; i++) silent.push(await rawClient(A.addr.port, { ms: 5000 }))
      await sleep(50) // let the node accept them
      const fourth = await hit(A.addr.port, Buffer.alloc(0), { ms: 3000 })
      assert.ok(fourth.closed, 'the 4th is closed')
      assert.ok(fourth.ms < 300, `at once, not by the handshake timer (${fourth.ms} ms)`)
      const ev = await A.log.fromPort(fourth.localPort)
      assert.strictEqual(ev.type, 'error')
      assert.strictEqual(ev.reason, 'ERR_TOO_MANY_PENDING')
      assert.strictEqual(ev.host, HOST)
      // A real partner from the same IP is capped too: its send fails fast, with a code.
      const t0 = Date.now()
      await assert.rejects(B.send(A.at, { capped: 1 }), (err) => {
        assert.ok(['ERR_CONNECTION_RESET', 'ERR_HANDSHAKE_REJECTED', 'ERR_CONNECTION_CLOSED'].includes(err.code), `${err.code}: ${err.message}`)
        return true
      })
      assert.ok(Date.now() - t0 < 400, 'the capped send is rejected before the silent ones time out')
      // The silent ones are closed by the handshake timer...
      const closed = await Promise.all(silent.map((c) => c.closed))
      assert.ok(closed.every((s) => s.closed))
      for (const c of silent) assert.strictEqual((await A.log.fromPort(c.localPort)).reason, 'ERR_HANDSHAKE_TIMEOUT')
      // ...and then a real partner is accepted again.
      await assertServes(A, B)
    })

    it('accepts again at once when silent pending connections go away', async () => {
      const A = await node({ handshakeTimeout: 10000, maxPendingPerIp: 3 })
      const B = await node()
      const silent = []
      for (let i = 0; i < 3; i++) silent.push(await rawClient(A.addr.port, { ms: 15000 }))
      await sleep(50)
      const refused = await hit(A.addr.port, Buffer.alloc(0), { ms: 3000 })
      assert.ok(refused.closed && refused.ms < 300)
      assert.strictEqual((await A.log.fromPort(refused.localPort)).reason, 'ERR_TOO_MANY_PENDING')
      for (const c of silent) c.sock.destroy()
      await A.log.waitCount((e) => silent.some((c) => c.localPort === e.port), 3, 3000, 'the silent ones to be noticed')
      const t0 = Date.now()
      await assertServes(A, B)
      assert.ok(Date.now() - t0 < 3000)
    })

    it('keeps an open link working while every pending slot is taken', async () => {
      const A = await node({ handshakeTimeout: 3000, maxPendingPerIp: 3 })
      const B = await node()
      await assertServes(A, B) // B's link is open before the flood
      const silent = []
      for (let i = 0; i < 3; i++) silent.push(await rawClient(A.addr.port, { ms: 10000 }))
      await sleep(50)
      const refused = await hit(A.addr.port, Buffer.alloc(0))
      assert.strictEqual((await A.log.fromPort(refused.localPort)).reason, 'ERR_TOO_MANY_PENDING')
      for (let i = 0; i < 10; i++) await assertServes(A, B)
      for (const c of silent) c.sock.destroy()
    })

    it('caps pending connections in total (maxPending): a full table closes its oldest entry to take a new one', async () => {
      const A = await node({ handshakeTimeout: 10000, maxPending: 2 })
      const B = await node()
      const silent = [await rawClient(A.addr.port, { ms: 15000 }), await rawClient(A.addr.port, { ms: 15000 })]
      await sleep(50)
      // A new connection, here an honest handshake, gets in; the oldest silent one goes.
      await assertServes(A, B)
      const first = await silent[0].closed
      assert.ok(first.closed, 'the oldest pending connection was closed')
      assert.strictEqual((await A.log.fromPort(silent[0].localPort)).reason, 'ERR_TOO_MANY_PENDING')
      silent[1].sock.destroy()
    })
  })

  // ---------------------------------------------------------------------------
  describe('many misbehaving clients at once', function () {
    it('delivers 200 messages each way, in order, while 50 garbage connections hit the node in parallel', async () => {
      const A = await node({ handshakeTimeout: HS_TIMEOUT })
      const B = await node()
      await assertServes(A, B) // the link is open
      const garbage = [
        () => Buffer.from('garbage garbage garbage'),
        () => prefix(0),
        () => prefix(0xFFFFFFFF),
        () => frame('X', crypto.randomBytes(10)),
        () => frame('I', crypto.randomBytes(150)),
        () => frame('T', crypto.randomBytes(30)),
        () => frame('A', crypto.randomBytes(48)),
        () => frame('N', crypto.randomBytes(80)),
        () => frame('I', crypto.randomBytes(150)).subarray(0, 20), // half a frame: the timer closes it
        () => Buffer.alloc(0) // silent: the timer closes it
      ]
      const attackers = Promise.all(Array.from({ length: 50 }, (_, i) => hit(A.addr.port, garbage[i % garbage.length](), { ms: 5000 })))
      const N = 200
      const sendsB = []
      const sendsA = []
      for (let i = 0; i < N; i++) {
        sendsB.push(B.send(A.at, { seq: i }))
        sendsA.push(A.send({ agent: B.id.agent }, { back: i }))
      }
      await Promise.all([...sendsB, ...sendsA])
      const toA = await received(A, (x) => 'seq' in x.message, N, 10000)
      const toB = await received(B, (x) => 'back' in x.message, N, 10000)
      assert.deepStrictEqual(toA.map((x) => x.message.seq), Array.from({ length: N }, (_, i) => i))
      assert.deepStrictEqual(toB.map((x) => x.message.back), Array.from({ length: N }, (_, i) => i))
      const seen = await attackers
      assert.ok(seen.every((s) => s.closed), `every garbage connection was closed by the node (${seen.filter((s) => !s.closed).length} left open)`)
      const ports = new Set(seen.map((s) => s.localPort))
      const reports = await A.log.waitCount((e) => ports.has(e.port), 50, 5000, 'garbage reports')
      assert.ok(reports.every((e) => e.type === 'error' && /^ERR_/.test(e.reason)), 'each bad connection is reported as an error with a code')
      assertOnlyFrom(A, [B.id.agent])
      // A newcomer is accepted after the storm.
      const C = await node()
      await assertServes(A, C)
    })
  })

  // ---------------------------------------------------------------------------
  describe('process safety (child processes)', function () {
    const preamble = `
const { NoisePeer, generateKeypair } = require(ROOT)
const out = (o) => console.log(JSON.stringify(o))
const keys = {}
const peerKey = async (agent) => keys[agent] || null
function make (opts = {}) {
  const id = generateKeypair()
  keys[id.agent] = id.publicKey
  const p = new NoisePeer(Object.assign({ agent: id.agent, keys: id, host: '127.0.0.1', peerKey }, opts))
  p.id = id
  return p
}
`

    it('exits by itself with code 0 after two peers exchange a message and close', async () => {
      const r = await runChild(preamble + `
;(async () => {
  const a = make(), b = make()
  const A = await a.listen(), B = await b.listen()
  const got = new Promise((resolve) => a.onMessage((from, m) => resolve(m)))
  const back = new Promise((resolve) => b.onMessage((from, m) => resolve(m)))
  a.onMessage((from, m) => { a.send({ agent: from.agent }, { pong: m.ping }) })
  await b.send({ agent: a.agent, host: '127.0.0.1', port: A.port }, { ping: 7 })
  out({ got: await got, back: await back })
  await Promise.all([a.close(), b.close()])
  out({ done: true })
})()
`, { ms: 10000 })
      assert.strictEqual(r.timedOut, false, `the child did not exit by itself; stdout: ${r.stdout} stderr: ${r.stderr}`)
      assert.strictEqual(r.signal, null, r.stderr)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.deepStrictEqual(r.lines[0], { got: { ping: 7 }, back: { pong: 7 } })
      assert.ok(r.afterDoneMs != null && r.afterDoneMs < 3000, `exits soon after close() (${r.afterDoneMs} ms)`)
      assert.strictEqual(r.stderr, '')
    })

    it('exits by itself after close() even with links still open and a handshake in progress', async () => {
      const r = await runChild(preamble + `
const net = require('net')
;(async () => {
  const a = make({ handshakeTimeout: 60000 }), b = make()
  const A = await a.listen()
  await b.listen()
  await b.send({ agent: a.agent, host: '127.0.0.1', port: A.port }, { x: 1 })
  const sock = net.connect(A.port, '127.0.0.1')
  sock.on('error', () => {})
  const silent = net.createServer(() => {})
  await new Promise((r) => silent.listen(0, '127.0.0.1', r))
  const dialling = b.send({ agent: generateKeypair().agent, host: '127.0.0.1', port: silent.address().port }, { y: 1 }).then(() => 'sent', (e) => e.code)
  sock.on('connect', () => sock.write(Buffer.from([0, 0, 0, 50, 73])))
  await new Promise((r) => setTimeout(r, 100))
  await Promise.all([a.close(), b.close()])
  out({ dialling: await dialling })
  sock.destroy()
  silent.close()
  out({ done: true })
})()
`, { ms: 10000 })
      assert.strictEqual(r.timedOut, false, `the child did not exit by itself; stderr: ${r.stderr}`)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.ok(r.afterDoneMs < 3000, `${r.afterDoneMs} ms`)
      assert.strictEqual(r.lines.find((l) => l.dialling).dialling, 'ERR_CLOSED', 'a send still dialling when close() is called is rejected with ERR_CLOSED')
    })

    it('refuses the handshake when a peerKey callback throws or a checkTicket callback rejects, and still exits 0', async () => {
      const r = await runChild(preamble + `
;(async () => {
  const events = []
  const throwsKey = make({ handshakeTimeout: 1000, peerKey: () => { throw new Error('key store down') } })
  const rejectsTicket = make({ handshakeTimeout: 1000, checkTicket: async () => { throw new Error('ticket store down') } })
  const neverAnswers = make({ handshakeTimeout: 500, peerKey: () => new Promise(() => {}) })
  const junkKey = make({ handshakeTimeout: 1000, peerKey: async () => 'not a key' })
  const caller = make({ handshakeTimeout: 2000 })
  const brokenCaller = make({ peerKey: () => { throw new Error('my store is down') } })
  const all = { throwsKey, rejectsTicket, neverAnswers, junkKey, caller, brokenCaller }
  for (const [name, p] of Object.entries(all)) p.onEvent((e) => events.push({ name, type: e.type, reason: e.reason }))
  const ports = {}
  for (const [name, p] of Object.entries(all)) ports[name] = (await p.listen()).port
  const attempt = async (name, from, to, opts) => {
    const t0 = Date.now()
    try { await from.send({ agent: to.agent, host: '127.0.0.1', port: ports[Object.keys(all).find((k) => all[k] === to)] }, { hi: 1 }, opts); out({ send: name, ok: true }) } catch (e) { out({ send: name, code: e.code, ms: Date.now() - t0 }) }
  }
  await attempt('throwsKey', caller, throwsKey)
  await attempt('rejectsTicket', caller, rejectsTicket, { ticket: { token: 'abc' } })
  await attempt('neverAnswers', caller, neverAnswers)
  await attempt('junkKey', caller, junkKey)
  await attempt('brokenCaller', brokenCaller, caller)
  await new Promise((r) => setTimeout(r, 200))
  out({ events })
  await Promise.all(Object.values(all).map((p) => p.close()))
  out({ done: true })
})()
process.on('unhandledRejection', (e) => { out({ unhandled: String(e) }) })
`, { ms: 15000 })
      assert.strictEqual(r.timedOut, false, `the child did not exit by itself; stdout: ${r.stdout} stderr: ${r.stderr}`)
      assert.strictEqual(r.signal, null, r.stderr)
      assert.strictEqual(r.code, 0, r.stderr)
      assert.ok(!r.lines.some((l) => l.unhandled), `no unhandled rejection: ${r.stdout}`)
      const sends = Object.fromEntries(r.lines.filter((l) => l.send).map((l) => [l.send, l]))
      const refusal = ['ERR_LOOKUP_FAILED', 'ERR_HANDSHAKE_REJECTED', 'ERR_PEER_REFUSED', 'ERR_TICKET_REFUSED', 'ERR_UNKNOWN_PEER']
      for (const name of ['throwsKey', 'rejectsTicket', 'neverAnswers', 'junkKey']) {
        assert.ok(sends[name], `the send to ${name} settled`)
        assert.ok(!sends[name].ok, `the handshake with ${name} was refused`)
        assert.ok(refusal.includes(sends[name].code), `${name}: ${sends[name].code}`)
      }
      assert.ok(sends.neverAnswers.ms < 2500, `a lookup that never answers is bounded (${sends.neverAnswers.ms} ms)`)
      assert.strictEqual(sends.brokenCaller.code, 'ERR_LOOKUP_FAILED', 'a caller whose own key lookup throws gets ERR_LOOKUP_FAILED')
      const { events } = r.lines.find((l) => l.events)
      const reasons = (name) => events.filter((e) => e.name === name).map((e) => e.reason)
      assert.ok(reasons('throwsKey').includes('ERR_LOOKUP_FAILED'), `throwsKey reported ${reasons('throwsKey')}`)
      assert.ok(reasons('rejectsTicket').includes('ERR_LOOKUP_FAILED'), `rejectsTicket reported ${reasons('rejectsTicket')}`)
      assert.ok(reasons('junkKey').includes('ERR_LOOKUP_FAILED'), `junkKey reported ${reasons('junkKey')}`)
      assert.ok(reasons('neverAnswers').some((x) => x === 'ERR_LOOKUP_FAILED' || x === 'ERR_HANDSHAKE_TIMEOUT'), `neverAnswers reported ${reasons('neverAnswers')}`)
      assert.ok(r.afterDoneMs < 3000, `exits soon after close() (${r.afterDoneMs} ms)`)
    })

    it('survives an onMessage listener that throws: reports ERR_LISTENER, keeps delivering, exits 0', async () => {
      const r = await runChild(preamble + `
process.on('uncaughtException', (e) => { out({ uncaught: String(e) }); process.exit(3) })
;(async () => {
  const a = make(), b = make()
  const A = await a.listen()
  await b.listen()
  const events = []
  a.onEvent((e) => events.push({ type: e.type, reason: e.reason, message: e.message }))
  const seen = []
  a.onMessage((from, m) => { seen.push(m.n); if (m.n === 1) throw new Error('listener bug') })
  for (let n = 1; n <= 3; n++) await b.send({ agent: a.agent, host: '127.0.0.1', port: A.port }, { n })
  const t0 = Date.now()
  while (seen.length < 3 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10))
  await a.send({ agent: b.agent }, { reply: 1 })
  out({ seen, events })
  await Promise.all([a.close(), b.close()])
  out({ done: true })
})()
`, { ms: 10000 })
      assert.strictEqual(r.timedOut, false, `the child did not exit by itself; stderr: ${r.stderr}`)
      assert.strictEqual(r.signal, null, r.stderr)
      assert.strictEqual(r.code, 0, `exit code ${r.code}; stdout: ${r.stdout} stderr: ${r.stderr}`)
      const res = r.lines.find((l) => l.seen)
      assert.deepStrictEqual(res.seen, [1, 2, 3], 'later messages are still delivered')
      const listener = res.events.filter((e) => e.reason === 'ERR_LISTENER')
      assert.strictEqual(listener.length, 1, `one ERR_LISTENER event: ${JSON.stringify(res.events)}`)
      assert.strictEqual(listener[0].type, 'error')
      assert.ok(/listener bug/.test(listener[0].message), 'the event carries the thrown error')
      assert.ok(!res.events.some((e) => e.type === 'close'), 'the link stays open')
    })

    it('survives an onEvent listener that throws, and exits 0', async () => {
      const r = await runChild(preamble + `
process.on('uncaughtException', (e) => { out({ uncaught: String(e) }); process.exit(3) })
;(async () => {
  const a = make({ handshakeTimeout: 200 }), b = make()
  const A = await a.listen()
  await b.listen()
  let calls = 0
  a.onEvent(() => { calls++; throw new Error('event listener bug') })
  const net = require('net')
  const sock = net.connect(A.port, '127.0.0.1', () => sock.write(Buffer.from([0, 0, 0, 0])))
  sock.on('error', () => {})
  await new Promise((r) => sock.on('close', r))
  const got = new Promise((resolve) => a.onMessage((f, m) => resolve(m)))
  await b.send({ agent: a.agent, host: '127.0.0.1', port: A.port }, { ok: 1 })
  const message = await got
  for (let i = 0; i < 200 && calls < 2; i++) await new Promise((r) => setTimeout(r, 10))
  out({ got: message, calls })
  await Promise.all([a.close(), b.close()])
  out({ done: true })
})()
`, { ms: 10000 })
      assert.strictEqual(r.timedOut, false, `the child did not exit by itself; stderr: ${r.stderr}`)
      assert.strictEqual(r.code, 0, `stdout: ${r.stdout} stderr: ${r.stderr}`)
      const res = r.lines.find((l) => l.got)
      assert.deepStrictEqual(res.got, { ok: 1 })
      assert.ok(res.calls >= 2)
    })

    it('survives every kind of malformed frame in a separate process (no crash, no abort) and exits 0', async () => {
      const r = await runChild(preamble + `
const net = require('net')
const crypto = require('crypto')
process.on('uncaughtException', (e) => { out({ uncaught: String(e) }); process.exit(3) })
const lp = (n, body = Buffer.alloc(0)) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return Buffer.concat([b, body]) }
const fr = (letter, body) => lp(body.length + 1, Buffer.concat([Buffer.from(letter, 'latin1'), body]))
;(async () => {
  const enc = make({ handshakeTimeout: 300 })
  const raw = new NoisePeer({ agent: 'raw-child', encrypt: false, host: '127.0.0.1', handshakeTimeout: 300 })
  const ports = [(await enc.listen()).port, (await raw.listen()).port]
  const inputs = []
  for (const letter of 'INKQATFX\\x00\\xff') {
    for (const len of [0, 1, 31, 32, 47, 48, 49, 64, 95, 96, 200, 1000, 65535]) inputs.push(fr(letter, crypto.randomBytes(len)))
  }
  inputs.push(lp(0), lp(1), lp(0xFFFFFFFF), lp(65537), lp(65536), crypto.randomBytes(3), crypto.randomBytes(1000))
  inputs.push(Buffer.concat([fr('N', Buffer.from('"x"')), fr('K', Buffer.from('{"to":1}')), fr('T', Buffer.from('{}'))]))
  inputs.push(Buffer.concat([fr('N', Buffer.from('"x"')), fr('K', Buffer.from('18446744073709551616')), fr('T', Buffer.from('{}'))]))
  inputs.push(Buffer.concat([fr('N', Buffer.from('"x"')), fr('K', Buffer.from('-1'))]))
  inputs.push(Buffer.concat([fr('N', Buffer.from('""')), fr('K', Buffer.from('1'))]))
  inputs.push(fr('I', Buffer.from('{"ticket":1,"from":{"agent":""}}')))
  inputs.push(fr('I', Buffer.from('{"ticket":1,"from":{"agent":"x","port":99999999}}')))
  inputs.push(fr('Q', Buffer.from('{}')))
  inputs.push(fr('N', Buffer.from('"' + 'x'.repeat(60000) + '"')))
  let closed = 0
  for (const port of ports) {
    for (let i = 0; i < inputs.length; i += 20) {
      await Promise.all(inputs.slice(i, i + 20).map((bytes) => new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => s.write(bytes))
          const t = setTimeout(() => { s.destroy(); resolve() }, 3000)
        s.resume() // read what the node answers, so its FIN is seen
        s.on('error', () => {})
        s.on('close', () => { closed++; clearTimeout(t); resolve() })
      })))
    }
  }
  out({ inputs: inputs.length * ports.length, closed })
  await Promise.all([enc.close(), raw.close()])
  out({ done: true })
})()
`, { ms: 30000 })
      assert.strictEqual(r.timedOut, false, `the child did not finish; stdout: ${r.stdout.slice(-500)} stderr: ${r.stderr.slice(-500)}`)
      assert.strictEqual(r.signal, null, `killed by ${r.signal}: ${r.stderr.slice(-500)}`)
      assert.strictEqual(r.code, 0, `stdout: ${r.stdout.slice(-500)} stderr: ${r.stderr.slice(-500)}`)
      const res = r.lines.find((l) => l.inputs)
      assert.strictEqual(res.closed, res.inputs, 'the node closed every malformed connection')
    })
  })
})

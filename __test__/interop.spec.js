'use strict'
// Wire interop: NoisePeer (native) <-> JsPeer (behaves like a JavaScript
// MyCHIPs node's Noise module), each as initiator and as responder.
// See docs/PROTOCOL.md §2-§9. Loopback only; every peer is closed
// after each test; every wait is bounded.
const assert = require('assert')
const { NoisePeer, generateKeypair, agentKey } = require('..')
const { keypair, agentToKey, JsPeer } = require('./helpers/js-peer')
const { parseFrames, Relay, Capture } = require('./helpers/wire-tap')
const { sleep, waitFor, rejection } = require('./helpers/wait')

const HOST = '127.0.0.1'
const MAC = 16
const E = 32 // ephemeral public key
const S = 32 + MAC // encrypted static key
const KIB = 1024
const jsonLen = (v) => Buffer.byteLength(JSON.stringify(v))

// Frame letters of one JsPeer connection, in one direction.
const lettersOf = (peer, dir, conn) => peer.frames.filter((f) => f.dir === dir && (conn == null || f.conn === conn)).map((f) => f.letter).join('')

describe('interop: NoisePeer <-> JavaScript node (JsPeer)', function () {
  this.timeout(20000)
  let natives = []
  let jss = []
  let taps = []

  // A listening NoisePeer that records what it gets.
  async function makeNative (opts = {}) {
    const id = generateKeypair()
    const peer = new NoisePeer(Object.assign({ agent: id.agent, keys: id, host: HOST }, opts))
    natives.push(peer)
    peer.id = id
    peer.got = [] // { from, message }
    peer.events = []
    peer.onMessage((from, message) => peer.got.push({ from, message }))
    peer.onEvent((e) => peer.events.push(e))
    const { port } = await peer.listen()
    peer.addr = { agent: id.agent, host: HOST, port }
    return peer
  }

  // A listening JsPeer.
  async function makeJs (opts = {}, id = keypair()) {
    const peer = new JsPeer(Object.assign({ agent: id.agent, keys: id, host: HOST }, opts))
    jss.push(peer)
    peer.id = id
    await peer.listen()
    return peer
  }

  // The NoisePeer key store: agent id -> key (as a MyCHIPs node would look
  // up agent_key); the partners are whoever the test says.
  const keyStore = (asked = []) => async (agent) => { asked.push(agent); return agentKey(agent) }

  afterEach(async () => {
    await Promise.all([...natives.map((p) => p.close()), ...jss.map((p) => p.close()), ...taps.map((t) => t.close())])
    natives = []
    jss = []
    taps = []
  })

  it('the identities agree: an agent id names the same X25519 key on both sides', () => {
    const n = generateKeypair()
    const j = keypair()
    assert.ok(agentToKey(n.agent).equals(n.publicKey))
    assert.ok(agentKey(j.agent).equals(j.publicKey))
  })

  // ---------------------------------------------------------------- 1. IK
  describe('1. first contact by ticket (IK)', () => {
    it('JS -> native: the message inside I is delivered once, as early data; T messages are not early', async () => {
      const tickets = []
      const n = await makeNative({ legacy: true, checkTicket: async (ticket, from) => { tickets.push({ ticket, from }); return ticket.token === 'tik-1' } })
      const j = await makeJs()
      const opened = j.waitFor('open')
      const first = { target: 'tally', action: 'offer', n: 0 }
      await j.send(n.addr, first, { ticket: { token: 'tik-1' } })
      await opened
      await j.send(n.addr, { target: 'tally', n: 1 })
      await j.send(n.addr, { target: 'tally', n: 2 })
      await waitFor(() => n.got.length >= 3, '3 messages')
      await sleep(100) // nothing more may arrive (no second delivery of I)
      assert.strictEqual(n.got.length, 3)
      const [e, t1, t2] = n.got
      assert.strictEqual(e.from.early, true)
      assert.deepStrictEqual(e.message, Object.assign({}, first, { to: n.addr, from: j.address(), ticket: { token: 'tik-1' } }))
      assert.strictEqual(e.from.agent, j.agent)
      assert.strictEqual(e.from.pattern, 'IK')
      assert.strictEqual(e.from.native, false)
      assert.strictEqual(e.from.initiator, false)
      assert.strictEqual(e.from.encrypted, true)
      for (const [d, i] of [[t1, 1], [t2, 2]]) {
        assert.ok(!d.from.early, 'a T message is not early')
        assert.deepStrictEqual(d.message, { target: 'tally', n: i })
      }
      assert.deepStrictEqual(tickets, [{ ticket: { token: 'tik-1' }, from: j.address() }])
      assert.deepStrictEqual(j.delivered, []) // the native A payload (empty) is not handed on
      assert.deepStrictEqual(j.faults, [])
      assert.strictEqual(lettersOf(j, 'out'), 'ITT')
      assert.strictEqual(lettersOf(j, 'in'), 'A')
    })

    it('JS -> native with a refused ticket: the message inside I is not delivered, JS sees the close', async () => {
      const n = await makeNative({ legacy: true, checkTicket: async () => false })
      const j = await makeJs()
      const closed = j.waitFor('close', () => true, 5000)
      j.send(n.addr, { target: 'tally', n: 0 }, { ticket: 'bad' }).catch(() => {})
      await closed
      await waitFor(() => n.events.some((e) => e.type === 'refused'), 'refused event')
      assert.strictEqual(n.events.find((e) => e.type === 'refused').reason, 'ERR_TICKET_REFUSED')
      await sleep(50)
      assert.deepStrictEqual(n.got, [])
      assert.strictEqual(lettersOf(j, 'in'), '', 'no A to a JS initiator')
    })

    it('JS -> native: a replayed legacy I (captured on the wire) with its spent ticket is refused; the early message stays delivered once', async () => {
      const spent = new Set()
      const n = await makeNative({ legacy: true, checkTicket: async (t) => { if (spent.has(t)) return false; spent.add(t); return true } })
      const j = await makeJs()
      const relay = new Relay(n.addr.port)
      taps.push(relay)
      await relay.listen()
      await j.send(Object.assign({}, n.addr, { port: relay.port }), { target: 'tally', n: 0 }, { ticket: 'once' })
      await waitFor(() => n.got.length >= 1, 'the early message')
      const wire = Buffer.concat(relay.conns[0].up)
      assert.deepStrictEqual(parseFrames(wire).frames.map((f) => f.letter), ['I'])
      // Replay the captured bytes on a fresh connection, as an attacker would.
      const net = require('net')
      const sock = net.connect({ host: HOST, port: n.addr.port })
      sock.on('error', () => {})
      const answer = []
      sock.on('data', (d) => answer.push(d))
      const gone = new Promise((resolve) => sock.once('close', resolve))
      sock.write(wire)
      await Promise.race([gone, sleep(4000)])
      sock.destroy()
      await waitFor(() => n.events.some((e) => e.type === 'refused'), 'refused event')
      assert.strictEqual(n.events.find((e) => e.type === 'refused').reason, 'ERR_TICKET_REFUSED')
      assert.strictEqual(Buffer.concat(answer).length, 0, 'no A to the replayer')
      await sleep(50)
      assert.strictEqual(n.got.length, 1)
      assert.strictEqual(n.got[0].from.early, true)
    })

    it('native -> JS: the JS app gets only the real messages; the native I payload has no `target`', async () => {
      const seen = []
      const j = await makeJs({ checkTicket: async (ticket, msg, info) => { seen.push({ ticket, msg, remoteKey: info.remoteKey }); return ticket === 'tik-2' } })
      const n = await makeNative()
      await n.send(j.address(), { target: 'chit', n: 1 }, { ticket: 'tik-2' })
      await n.send(j.address(), { target: 'chit', n: 2 })
      await j.waitDelivered(3)
      await sleep(50)
      // PROTOCOL §9: a JS responder hands every accepted I payload on; its
      // MyCHIPs application ignores messages without `target`.
      const [hello, ...rest] = j.delivered
      assert.strictEqual(hello.via, 'I')
      assert.strictEqual(hello.message.target, undefined, 'the native I payload must not look like an app message')
      assert.ok(!('target' in hello.message))
      assert.strictEqual(hello.message.ticket, 'tik-2')
      assert.strictEqual(hello.message.from.agent, n.agent)
      assert.ok(Number.isInteger(hello.message.ts) && hello.message.ts > 0, 'native I carries a timestamp')
      assert.ok(hello.message.native != null, 'native I is marked native')
      assert.deepStrictEqual(rest.map((d) => [d.via, d.message]), [['T', { target: 'chit', n: 1 }], ['T', { target: 'chit', n: 2 }]])
      const app = j.delivered.filter((d) => d.message && d.message.target !== undefined)
      assert.deepStrictEqual(app.map((d) => d.message.n), [1, 2])
      assert.strictEqual(seen.length, 1)
      assert.ok(seen[0].remoteKey.equals(n.id.publicKey), 'the IK handshake proved the native static key')
      assert.deepStrictEqual(j.faults, [])
      assert.strictEqual(lettersOf(j, 'in'), 'ITT')
      assert.strictEqual(lettersOf(j, 'out'), 'A')
      const opened = n.events.find((e) => e.type === 'open')
      assert.ok(opened && opened.pattern === 'IK' && opened.initiator === true)
    })
  })

  // ------------------------------------------------------------- 2. N + K
  describe('2. reconnection by key (N + K)', () => {
    it('JS -> native (legacy: true): the K-carried message is delivered once, as early data', async () => {
      const asked = []
      const n = await makeNative({ legacy: true, peerKey: keyStore(asked) })
      const j = await makeJs()
      const p1 = j.send(n.addr, { target: 'chit', n: 1 })
      const p2 = j.send(n.addr, { target: 'chit', n: 2 }) // queued until A, then T
      await Promise.all([p1, p2])
      await waitFor(() => n.got.length >= 2, '2 messages')
      await sleep(100)
      assert.strictEqual(n.got.length, 2)
      assert.strictEqual(n.got[0].from.early, true)
      assert.deepStrictEqual(n.got[0].message, { target: 'chit', n: 1, to: n.addr, from: j.address() })
      assert.ok(!n.got[1].from.early)
      assert.deepStrictEqual(n.got[1].message, { target: 'chit', n: 2 })
      for (const d of n.got) {
        assert.strictEqual(d.from.agent, j.agent)
        assert.strictEqual(d.from.pattern, 'KK')
        assert.strictEqual(d.from.native, false)
      }
      assert.deepStrictEqual(asked, [j.agent])
      assert.strictEqual(lettersOf(j, 'out'), 'NKT')
      assert.strictEqual(lettersOf(j, 'in'), 'A')
      assert.deepStrictEqual(j.delivered, [])
    })

    it('native -> JS: the JS app receives nothing from the native K (a bare number)', async () => {
      const j = await makeJs()
      const n = await makeNative()
      await n.send(j.address(), { target: 'chit', n: 1 })
      await n.send(j.address(), { target: 'chit', n: 2 })
      await j.waitDelivered(2)
      await sleep(50)
      assert.deepStrictEqual(j.delivered.filter((d) => d.via === 'K'), [])
      assert.deepStrictEqual(j.delivered.map((d) => [d.via, d.message]), [['T', { target: 'chit', n: 1 }], ['T', { target: 'chit', n: 2 }]])
      assert.strictEqual(lettersOf(j, 'in'), 'NKTT')
      assert.strictEqual(lettersOf(j, 'out'), 'A')
      assert.deepStrictEqual(j.faults, [])
      assert.deepStrictEqual(j.ignored, [])
      const opened = n.events.find((e) => e.type === 'open')
      assert.ok(opened && opened.pattern === 'KK' && opened.initiator === true)
    })
  })

  // ------------------------------------------------- 3. legacy refused
  describe('3. legacy: false (the default) refuses JavaScript initiators', () => {
    for (const how of ['I', 'N+K']) {
      it(`refuses a JS initiator by ${how}: nothing delivered, refused event, JS sees the close`, async () => {
        const n = await makeNative({ peerKey: keyStore(), checkTicket: async () => true })
        const j = await makeJs()
        const closed = j.waitFor('close', () => true, 5000)
        const opts = how === 'I' ? { ticket: 'tik' } : {}
        // The first send only needs its frames handed to frame-stream; the
        // native side may already be closing, so its outcome is not asserted.
        const first = j.send(n.addr, { target: 'chit', n: 1 }, opts).catch(() => {})
        const second = j.send(n.addr, { target: 'chit', n: 2 }) // queued behind the handshake
        await closed
        await first
        assert.ok(/connection closed/.test((await rejection(second)).message))
        await waitFor(() => n.events.some((e) => e.type === 'refused'), 'refused event')
        const refused = n.events.filter((e) => e.type === 'refused')
        assert.strictEqual(refused.length, 1)
        assert.strictEqual(refused[0].reason, 'ERR_LEGACY_REFUSED')
        assert.strictEqual(refused[0].initiator, false)
        assert.ok(!n.events.some((e) => e.type === 'open'))
        await sleep(50)
        assert.deepStrictEqual(n.got, [])
        assert.deepStrictEqual(j.delivered, [])
        assert.strictEqual(lettersOf(j, 'in'), '', 'no A to a JS initiator')
        assert.strictEqual(lettersOf(j, 'out'), how === 'I' ? 'I' : 'NK')
        assert.strictEqual(n.links().length, 0)
      })
    }
  })

  // ------------------------------------------------ 4. both ways, in order
  describe('4. messages both ways on one open link, in order', () => {
    const N = 100
    const cases = [
      ...['JS (N+K)', 'native (N+K)', 'JS (I)', 'native (I)'].map((opener) => ({ opener, encrypt: true })),
      ...['JS (N+K)', 'native (I)'].map((opener) => ({ opener, encrypt: false })) // raw mode (§7)
    ]
    for (const { opener, encrypt } of cases) {
      it(`${N} each way on a link opened by ${opener}${encrypt ? '' : ', raw mode'}`, async () => {
        const n = await makeNative({ encrypt, legacy: true, peerKey: keyStore(), checkTicket: async () => true })
        const j = await makeJs({ encrypt, checkTicket: async () => true })
        const byTicket = opener.endsWith('(I)')
        const opts = byTicket ? { ticket: 'ok' } : {}
        const nOpen = () => n.events.some((e) => e.type === 'open')
        const jOpened = j.waitFor('open')
        if (opener.startsWith('JS')) {
          await j.send(n.addr, { target: 'open', n: -1 }, opts)
          await waitFor(() => n.got.length >= 1, 'the opening message')
          // That message rode in the JavaScript node's replayable message 1: the
          // link takes routed sends once a transport message confirms it (§5a).
          await j.send(n.addr, { target: 'confirm', n: -2 })
        } else {
          await n.send(j.address(), { target: 'open', n: -1 }, opts)
          await waitFor(() => j.delivered.some((d) => d.message.target === 'open'), 'the opening message')
        }
        await jOpened
        await waitFor(nOpen, 'open on the native side')
        const jsBase = j.delivered.length
        const nBase = n.got.length
        // Fire all sends at once, interleaved, without waiting in between.
        const sends = []
        for (let i = 0; i < N; i++) {
          sends.push(n.send(j.address(), { target: 'n2j', i }))
          sends.push(j.send(n.addr, { target: 'j2n', i }))
        }
        await Promise.all(sends)
        await waitFor(() => j.delivered.length >= jsBase + N && n.got.length >= nBase + N, 'all messages', 8000)
        await sleep(50)
        const toJs = j.delivered.slice(jsBase)
        const toNative = n.got.slice(nBase)
        assert.strictEqual(toJs.length, N)
        assert.strictEqual(toNative.length, N)
        assert.deepStrictEqual(toJs.map((d) => d.message.i), [...Array(N).keys()], 'native -> JS order')
        assert.deepStrictEqual(toNative.map((d) => d.message.i), [...Array(N).keys()], 'JS -> native order')
        assert.ok(toJs.every((d) => d.via === 'T' && d.message.target === 'n2j'))
        assert.ok(toNative.every((d) => !d.from.early && d.message.target === 'j2n'))
        // One link, used both ways.
        assert.strictEqual(j.conns.size, 1)
        assert.strictEqual(n.links().length, 1)
        assert.deepStrictEqual(j.faults, [])
      })
    }
  })

  // ---------------------------------------------- 5. idle close, reopen
  describe('5. idle close and reopen', () => {
    it('native responder (timeout: 300) closes an idle link; the JS initiator reopens it and messages flow', async () => {
      const n = await makeNative({ legacy: true, timeout: 300, peerKey: keyStore(), checkTicket: async () => true })
      const j = await makeJs()
      const jClosed = j.waitFor('close', () => true, 4000)
      const t0 = Date.now()
      await j.send(n.addr, { target: 't', n: 1 }, { ticket: 'ok' })
      // The first T confirms the link (the message in I could be a replay,
      // §5a); from then on it is an open link with an idle timer.
      await j.send(n.addr, { target: 't', n: 11 })
      await jClosed
      assert.ok(Date.now() - t0 >= 250, `closed too early (${Date.now() - t0} ms)`)
      await waitFor(() => n.events.some((e) => e.type === 'close'), 'native close event')
      const close = n.events.find((e) => e.type === 'close')
      assert.strictEqual(close.reason, 'IDLE_TIMEOUT')
      assert.strictEqual(close.initiator, false)
      assert.strictEqual(j.conns.size, 0)
      // Reopen (by key: the ticket was spent) and keep talking.
      await j.send(n.addr, { target: 't', n: 2 })
      await j.send(n.addr, { target: 't', n: 3 })
      await waitFor(() => n.got.length >= 4, '4 messages')
      assert.deepStrictEqual(n.got.map((d) => [d.message.n, !!d.from.early, d.from.pattern]), [[1, true, 'IK'], [11, false, 'IK'], [2, true, 'KK'], [3, false, 'KK']])
      await n.send(j.address(), { target: 't', n: 4 })
      await j.waitDelivered(1)
      assert.deepStrictEqual(j.delivered.map((d) => [d.via, d.message.n]), [['T', 4]])
      assert.strictEqual(lettersOf(j, 'out'), 'ITNKT')
      assert.strictEqual(n.events.filter((e) => e.type === 'open').length, 2)
    })

    it('JS responder (idleTimeout: 300) closes an idle link; the native next send reopens it and arrives', async () => {
      const j = await makeJs({ idleTimeout: 300 })
      const n = await makeNative()
      const jClosed = j.waitFor('close', (c, reason) => reason === 'idle timeout', 4000)
      const t0 = Date.now()
      await n.send(j.address(), { target: 't', n: 1 })
      await jClosed
      assert.ok(Date.now() - t0 >= 250, `closed too early (${Date.now() - t0} ms)`)
      await waitFor(() => n.events.some((e) => e.type === 'close'), 'native close event')
      assert.strictEqual(n.links().length, 0)
      await n.send(j.address(), { target: 't', n: 2 })
      await j.waitDelivered(2)
      assert.deepStrictEqual(j.delivered.map((d) => [d.via, d.message.n]), [['T', 1], ['T', 2]])
      const conns = [...new Set(j.delivered.map((d) => d.conn))]
      assert.strictEqual(conns.length, 2, 'the second message went on a new connection')
      assert.strictEqual(lettersOf(j, 'in', conns[1]), 'NKT')
      assert.strictEqual(n.events.filter((e) => e.type === 'open').length, 2)
      assert.deepStrictEqual(j.faults, [])
    })
  })

  // ------------------------------------------------------------ 6. raw
  describe('6. raw mode (encrypt: false on both)', () => {
    it('JS -> native by ticket and by key: early data once, then T, plaintext bodies', async () => {
      const tickets = []
      const n = await makeNative({ encrypt: false, legacy: true, checkTicket: async (t) => { tickets.push(t); return t === 'raw-t' } })
      assert.strictEqual(n.encrypted, false)
      const j = await makeJs({ encrypt: false })
      await j.send(n.addr, { target: 't', n: 1 }, { ticket: 'raw-t' })
      await j.send(n.addr, { target: 't', n: 2 })
      await waitFor(() => n.got.length >= 2, '2 messages')
      const k = await makeJs({ encrypt: false }) // another JS node, by key
      await k.send(n.addr, { target: 't', n: 3 })
      await k.send(n.addr, { target: 't', n: 4 })
      await waitFor(() => n.got.length >= 4, '4 messages')
      await sleep(50)
      assert.deepStrictEqual(n.got.map((d) => [d.message.n, !!d.from.early, d.from.pattern, d.from.agent, d.from.encrypted]), [
        [1, true, 'IK', j.agent, false],
        [2, false, 'IK', j.agent, false],
        [3, true, 'KK', k.agent, false],
        [4, false, 'KK', k.agent, false]
      ])
      assert.deepStrictEqual(tickets, ['raw-t'])
      // Plain bodies: letter + JSON.
      const outJ = j.frames.filter((f) => f.dir === 'out')
      assert.strictEqual(outJ[1].length, 1 + jsonLen({ target: 't', n: 2 }))
      assert.strictEqual(j.frames.find((f) => f.letter === 'A').length, 1, 'empty A to a JS initiator')
      // And back on the open links.
      await n.send(j.address(), { target: 't', n: 5 })
      await n.send(k.address(), { target: 't', n: 6 })
      await j.waitDelivered(1)
      await k.waitDelivered(1)
      assert.deepStrictEqual(j.delivered.map((d) => [d.via, d.message.n]), [['T', 5]])
      assert.deepStrictEqual(k.delivered.map((d) => [d.via, d.message.n]), [['T', 6]])
      assert.deepStrictEqual([...j.faults, ...k.faults], [])
    })

    it('native -> JS by ticket and by key: only real messages reach the JS app', async () => {
      const j = await makeJs({ encrypt: false, checkTicket: async (t) => t === 'raw-t' })
      const k = await makeJs({ encrypt: false })
      const n = await makeNative({ encrypt: false })
      await n.send(j.address(), { target: 't', n: 1 }, { ticket: 'raw-t' })
      await n.send(k.address(), { target: 't', n: 2 })
      await j.waitDelivered(2)
      await k.waitDelivered(1)
      await sleep(50)
      assert.strictEqual(j.delivered[0].via, 'I')
      assert.ok(!('target' in j.delivered[0].message))
      assert.strictEqual(j.delivered[0].message.from.agent, n.agent)
      assert.deepStrictEqual(j.delivered.slice(1).map((d) => [d.via, d.message]), [['T', { target: 't', n: 1 }]])
      assert.deepStrictEqual(k.delivered.map((d) => [d.via, d.message]), [['T', { target: 't', n: 2 }]])
      assert.deepStrictEqual(k.delivered.filter((d) => d.via === 'K'), [])
      // Raw N: the agent id as a JSON string; raw K: a bare number.
      const inK = k.frames.filter((f) => f.dir === 'in')
      assert.strictEqual(inK.map((f) => f.letter).join(''), 'NKT')
      assert.strictEqual(inK[0].length, 1 + jsonLen(n.agent))
      assert.strictEqual(inK[1].length, 1 + String(Date.now() * 1000).length)
      assert.strictEqual(inK[2].length, 1 + jsonLen({ target: 't', n: 2 }))
      // Replies on the same links.
      await j.send(n.addr, { target: 't', n: 3 })
      await k.send(n.addr, { target: 't', n: 4 })
      await waitFor(() => n.got.length >= 2, '2 replies')
      assert.deepStrictEqual(n.got.map((d) => d.message.n).sort(), [3, 4])
      assert.deepStrictEqual([...j.faults, ...k.faults], [])
    })
  })

  // --------------------------------------------- 7. wrong key / forged N
  describe('7. a wrong key or a forged N is refused on both sides', () => {
    it('JS sends N naming a known agent but uses other static keys: native refuses (ERR_KEY_MISMATCH), delivers nothing', async () => {
      const asked = []
      const n = await makeNative({ legacy: true, peerKey: keyStore(asked) })
      const victim = keypair() // the agent the N names, whose key the native node knows
      const forger = keypair() // the static keys actually used
      const j = await makeJs({}, { agent: victim.agent, publicKey: forger.publicKey, privateKey: forger.privateKey })
      const closed = j.waitFor('close', () => true, 5000)
      j.send(n.addr, { target: 'chit', n: 1 }).catch(() => {})
      await closed
      await waitFor(() => n.events.some((e) => e.type === 'refused' || e.type === 'error'), 'native refusal')
      const ev = n.events.find((e) => e.type === 'refused' || e.type === 'error')
      assert.strictEqual(ev.type, 'refused')
      assert.strictEqual(ev.reason, 'ERR_KEY_MISMATCH')
      assert.deepStrictEqual(asked, [victim.agent])
      await sleep(50)
      assert.deepStrictEqual(n.got, [])
      assert.strictEqual(lettersOf(j, 'in'), '')
      assert.ok(!n.events.some((e) => e.type === 'open'))
    })

    it('JS sends I claiming another agent in from.agent: native refuses (ERR_KEY_MISMATCH), never asks the ticket', async () => {
      const tickets = []
      const n = await makeNative({ legacy: true, checkTicket: async (t) => { tickets.push(t); return true } })
      const victim = keypair()
      const j = await makeJs()
      const closed = j.waitFor('close', () => true, 5000)
      j.send(n.addr, { target: 'tally', from: { agent: victim.agent, host: HOST, port: j.port } }, { ticket: 'tik' }).catch(() => {})
      await closed
      await waitFor(() => n.events.some((e) => e.type === 'refused'), 'native refusal')
      assert.strictEqual(n.events.find((e) => e.type === 'refused').reason, 'ERR_KEY_MISMATCH')
      await sleep(50)
      assert.deepStrictEqual(n.got, [])
      assert.deepStrictEqual(tickets, [])
    })

    for (const how of ['N+K', 'I']) {
      it(`native dials a JS node by ${how} with a wrong key in the address: the JS side faults, the send rejects`, async () => {
        const j = await makeJs({ checkTicket: async () => true })
        const n = await makeNative()
        const wrong = keypair().publicKey
        const err = await rejection(n.send(Object.assign(j.address(), { key: wrong }), { target: 'chit', n: 1 }, how === 'I' ? { ticket: 'ok' } : {}))
        assert.ok(typeof err.code === 'string' && err.code.startsWith('ERR_'), `coded error, got ${err.code}: ${err.message}`)
        assert.ok(['ERR_HANDSHAKE_REJECTED', 'ERR_CONNECTION_RESET', 'ERR_CONNECTION_CLOSED'].includes(err.code), `${err.code}: ${err.message}`)
        await waitFor(() => j.faults.length >= 1, 'a JS fault')
        assert.ok(new RegExp(`${how === 'I' ? 'I' : 'N'} frame rejected`).test(j.faults[0].reason), j.faults[0].reason)
        assert.deepStrictEqual(j.delivered, [])
        assert.strictEqual(lettersOf(j, 'out'), '', 'the JS node sent no A')
        assert.ok(!n.events.some((e) => e.type === 'open'))
      })
    }

    it('JS dials native with a wrong key in the address: native fails the handshake, delivers nothing', async () => {
      const n = await makeNative({ legacy: true, peerKey: keyStore() })
      const j = await makeJs()
      const closed = j.waitFor('close', () => true, 5000)
      j.send(Object.assign({}, n.addr, { key: keypair().publicKey }), { target: 'chit', n: 1 }).catch(() => {})
      await closed
      await waitFor(() => n.events.some((e) => e.type === 'refused' || e.type === 'error'), 'native failure event')
      await sleep(50)
      assert.deepStrictEqual(n.got, [])
      assert.ok(!n.events.some((e) => e.type === 'open'))
      assert.strictEqual(lettersOf(j, 'in'), '')
    })
  })

  // ---------------------------------------------------- 8. byte-level pins
  describe('8. byte-level pins', () => {
    it('frames are a 4-byte big-endian length then the body; native IK message 1 = 1 + 32 + 48 + payload + 16', async () => {
      const cap = new Capture()
      taps.push(cap)
      await cap.listen()
      const n = await makeNative({ handshakeTimeout: 2000 })
      const target = keypair()
      const sending = n.send({ agent: target.agent, host: HOST, port: cap.port }, { target: 'x' }, { ticket: 'tik' })
      await waitFor(() => {
        const b = cap.bytes()
        return b.length >= 4 && b.length >= 4 + b.readUInt32BE(0)
      }, 'the first frame')
      const b = cap.bytes()
      const L = b.readUInt32BE(0)
      assert.ok(L < 65536, `length read big-endian is small (${L}); little-endian would be ${b.readUInt32LE(0)}`)
      assert.strictEqual(b.length, 4 + L, 'exactly one frame, nothing else, before A')
      assert.strictEqual(String.fromCharCode(b[4]), 'I')
      // The native I payload: {from, native, ticket, ts} (key order does not
      // change the length; ts is a 16-digit microsecond timestamp).
      const payload = { from: { agent: n.agent, host: HOST, port: n.addr.port }, native: 1, ticket: 'tik', ts: Date.now() * 1000 }
      assert.strictEqual(L, 1 + E + S + jsonLen(payload) + MAC)
      cap.close()
      const err = await rejection(sending)
      assert.ok(typeof err.code === 'string')
      assert.ok(!('target' in payload))
    })

    it('raw mode: the length prefix counts the letter plus the plaintext JSON exactly', async () => {
      const cap = new Capture()
      taps.push(cap)
      await cap.listen()
      const n = await makeNative({ encrypt: false, handshakeTimeout: 2000 })
      const target = keypair()
      const sending = n.send({ agent: target.agent, host: HOST, port: cap.port }, { target: 'x' })
      await waitFor(() => parseFrames(cap.bytes()).frames.length >= 2, 'N and K')
      const { frames, rest } = parseFrames(cap.bytes())
      assert.strictEqual(rest.length, 0)
      assert.deepStrictEqual(frames.map((f) => f.letter), ['N', 'K'])
      const b = cap.bytes()
      assert.deepStrictEqual([...b.subarray(0, 4)], [0, 0, 0, frames[0].length], 'big-endian length of a short frame')
      assert.strictEqual(JSON.parse(frames[0].body.subarray(1).toString()), n.agent)
      const k = JSON.parse(frames[1].body.subarray(1).toString())
      assert.strictEqual(typeof k, 'number', 'native K is a bare JSON number')
      assert.strictEqual(frames[1].length, 1 + String(k).length)
      cap.close()
      await rejection(sending)
    })

    it('header letters and lengths, native -> JS (I, then N + K) and JS -> native (I, then N + K)', async () => {
      const j = await makeJs({ checkTicket: async () => true })
      const n = await makeNative({ legacy: true, peerKey: keyStore(), checkTicket: async () => true })
      // native -> JS, IK
      const msg = { target: 'chit', n: 1 }
      await n.send(j.address(), msg, { ticket: 'ok' })
      await j.waitDelivered(2)
      const hello = j.delivered[0].message
      let inF = j.frames.filter((f) => f.dir === 'in')
      let outF = j.frames.filter((f) => f.dir === 'out')
      assert.deepStrictEqual(inF.map((f) => f.letter), ['I', 'T'])
      assert.strictEqual(inF[0].length, 1 + E + S + jsonLen(hello) + MAC, 'IK message 1 = 1 + 32 + 48 + payload + 16')
      assert.strictEqual(inF[1].length, 1 + jsonLen(msg) + MAC)
      assert.deepStrictEqual(outF.map((f) => [f.letter, f.length]), [['A', 1 + E + MAC]])
      // close it from the native side, then native -> JS by key
      n.end(j.agent)
      await j.waitFor('close', () => true, 4000)
      await waitFor(() => n.links().length === 0, 'native link gone')
      j.frames.length = 0
      await n.send(j.address(), msg)
      await j.waitDelivered(3)
      inF = j.frames.filter((f) => f.dir === 'in')
      outF = j.frames.filter((f) => f.dir === 'out')
      assert.deepStrictEqual(inF.map((f) => f.letter), ['N', 'K', 'T'])
      assert.strictEqual(inF[0].length, 1 + E + jsonLen(n.agent) + MAC, 'N = e + JSON string of the agent id + MAC')
      assert.strictEqual(inF[1].length, 1 + E + String(Date.now() * 1000).length + MAC, 'K = e + bare timestamp (microseconds) + MAC')
      assert.deepStrictEqual(outF.map((f) => [f.letter, f.length]), [['A', 1 + E + MAC]])
      n.end(j.agent)
      await j.waitFor('close', () => true, 4000)
      await waitFor(() => n.links().length === 0, 'native link gone')
      // JS -> native, IK then N + K: the native A to a JS initiator is empty.
      j.frames.length = 0
      await j.send(n.addr, msg, { ticket: 'ok' })
      await waitFor(() => n.got.length >= 1, 'I message')
      await waitFor(() => j.frames.some((f) => f.letter === 'A'), 'A')
      assert.deepStrictEqual(j.frames.map((f) => f.dir + f.letter), ['outI', 'inA'])
      assert.strictEqual(j.frames[1].length, 1 + E + MAC, 'empty A payload')
      j.byAgent.get(n.agent).close('next')
      await waitFor(() => n.links().length === 0, 'native link gone')
      j.frames.length = 0
      await j.send(n.addr, msg)
      await waitFor(() => n.got.length >= 2, 'K message')
      await waitFor(() => j.frames.some((f) => f.letter === 'A'), 'A')
      assert.deepStrictEqual(j.frames.map((f) => f.dir + f.letter), ['outN', 'outK', 'inA'])
      assert.strictEqual(j.frames[2].length, 1 + E + MAC)
      assert.deepStrictEqual(j.faults, [])
      assert.deepStrictEqual(j.ignored, [])
    })

    it('an independent parse of the bytes on the wire (4-byte BE prefix) matches both ends; the suite is Noise_IK_25519_ChaChaPoly_BLAKE2b', async () => {
      // noise-protocol builds its protocol name from these constants and has
      // no other DH, cipher or hash (p256-dh.js is not wired into index.js).
      // Since the name is hashed into h and ck before any key is mixed, a
      // native node using any other suite name (e.g. XChaChaPoly, SHA256)
      // would fail the MAC of the encrypted static key in IK message 1 and
      // of A: a completed IK handshake both ways proves that the native side
      // uses Noise_IK_25519_ChaChaPoly_BLAKE2b (and Noise_KK_/Noise_N_ alike).
      const dh = require('noise-protocol/dh')()
      const name = `Noise_IK_${dh.ALG}_${require('noise-protocol/cipher')().ALG}_${require('noise-protocol/hash')({ dh }).ALG}`
      assert.strictEqual(name, 'Noise_IK_25519_ChaChaPoly_BLAKE2b')

      const j = await makeJs({ checkTicket: async () => true })
      const n = await makeNative({ legacy: true, peerKey: keyStore(), checkTicket: async () => true })
      const relay = new Relay(j.port)
      taps.push(relay)
      await relay.listen()
      await n.send({ agent: j.agent, host: HOST, port: relay.port }, { target: 'x', n: 1 }, { ticket: 'ok' })
      await j.send(n.addr, { target: 'y', n: 2 }) // back on the same link (through the relay)
      await j.waitDelivered(2)
      await waitFor(() => n.got.length >= 1, 'reply')
      assert.strictEqual(n.got[0].from.pattern, 'IK')
      const up = relay.frames(0, 'up') // native -> JS
      const down = relay.frames(0, 'down') // JS -> native
      const jsIn = j.frames.filter((f) => f.dir === 'in').map((f) => [f.letter, f.length])
      const jsOut = j.frames.filter((f) => f.dir === 'out').map((f) => [f.letter, f.length])
      assert.deepStrictEqual(up.map((f) => [f.letter, f.length]), jsIn)
      assert.deepStrictEqual(down.map((f) => [f.letter, f.length]), jsOut)
      assert.deepStrictEqual(up.map((f) => f.letter).join(''), 'IT')
      assert.deepStrictEqual(down.map((f) => f.letter).join(''), 'AT')
      assert.strictEqual(up[0].length, 1 + E + S + jsonLen(j.delivered[0].message) + MAC)
      assert.deepStrictEqual(j.faults, [])
    })
  })

  // ------------------------------------------------------ 9. large messages
  describe('9. large messages', () => {
    // legacy: false (the default) only refuses JS *initiators*; a native node
    // dialling a JS node must still send it long messages as one T.
    for (const legacy of [false, true]) {
      it(`native (legacy: ${legacy}) -> JS: a 100 KiB message goes as ONE T frame (a JS node cannot parse F)`, async () => {
        await bigToJs(legacy)
      })
    }

    async function bigToJs (legacy) {
      const j = await makeJs()
      const n = await makeNative({ legacy })
      await n.send(j.address(), { target: 't', n: 1 })
      await j.waitDelivered(1)
      const big = { target: 't', blob: 'x'.repeat(100 * KIB) }
      await n.send(j.address(), big).catch((err) => assert.fail(`the 100 KiB send rejected: ${err.code}: ${err.message}`))
      await j.waitDelivered(2)
      await sleep(50)
      assert.strictEqual(j.delivered.length, 2)
      assert.strictEqual(j.delivered[1].message.blob, big.blob)
      const inT = j.frames.filter((f) => f.dir === 'in' && f.letter === 'T')
      assert.strictEqual(inT.length, 2)
      assert.strictEqual(inT[1].length, 1 + jsonLen(big) + MAC)
      assert.ok(inT[1].length > 65536)
      assert.ok(!j.frames.some((f) => f.letter === 'F'), 'no F frame to a JS node')
      assert.deepStrictEqual(j.ignored, [])
      assert.deepStrictEqual(j.faults, [])
    }

    it('JS -> native (legacy: true): a 100 KiB single T is accepted and delivered whole', async () => {
      const n = await makeNative({ legacy: true, peerKey: keyStore() })
      const j = await makeJs()
      await j.send(n.addr, { target: 't', n: 1 })
      await waitFor(() => n.got.length >= 1, 'first')
      const big = { target: 't', n: 2, blob: 'y'.repeat(100 * KIB) }
      await j.send(n.addr, big)
      await j.send(n.addr, { target: 't', n: 3 })
      await waitFor(() => n.got.length >= 3, 'big message and the one after it')
      assert.strictEqual(n.got[1].message.blob, big.blob)
      assert.strictEqual(n.got[2].message.n, 3)
      const outT = j.frames.filter((f) => f.dir === 'out' && f.letter === 'T')
      assert.ok(outT[0].length > 65536, 'it went as one oversized T')
      assert.ok(!n.events.some((e) => e.type === 'close' || e.type === 'error'))
    })

    it('native <-> native: a 200 KiB message goes as F frames then one T, each frame within the limit, and arrives whole', async () => {
      const a = await makeNative({ peerKey: keyStore() })
      const b = await makeNative({ peerKey: keyStore() })
      const relay = new Relay(b.addr.port)
      taps.push(relay)
      await relay.listen()
      const via = { agent: b.agent, host: HOST, port: relay.port }
      await a.send(via, { target: 't', n: 1 })
      await waitFor(() => b.got.length >= 1, 'first')
      assert.strictEqual(b.got[0].from.native, true)
      const big = { target: 't', n: 2, blob: 'z'.repeat(200 * KIB) }
      await a.send(via, big)
      await waitFor(() => b.got.length >= 2, 'the big message')
      assert.strictEqual(b.got[1].message.blob, big.blob)
      // And back, on the same link.
      await b.send(a.addr, big)
      await waitFor(() => a.got.length >= 1, 'the big reply')
      assert.strictEqual(a.got[0].message.blob, big.blob)
      const up = relay.frames(0, 'up')
      const down = relay.frames(0, 'down')
      const upLetters = up.map((f) => f.letter).join('')
      assert.ok(/^NKCT(F+)T$/.test(upLetters), upLetters)
      const pieces = upLetters.length - 4
      assert.strictEqual(pieces, Math.ceil(jsonLen(big) / (65535 - MAC)))
      const downLetters = down.map((f) => f.letter).join('')
      assert.ok(/^AF+T$/.test(downLetters), downLetters)
      for (const f of [...up, ...down]) assert.ok(f.length <= 65536, `frame of ${f.length} bytes`)
      const total = up.slice(4).reduce((s, f) => s + f.length - 1 - MAC, 0)
      assert.strictEqual(total, jsonLen(big))
    })
  })
})

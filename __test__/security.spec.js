'use strict'
// What a security review found, each as an attack over real loopback sockets
// (docs/PROTOCOL.md §5a, §5b, §6): a relay that captures and replays, a peer
// that stops reading, floods of silent connections from many addresses in
// 127.0.0.0/8, weak and aliased agent ids, probes that try to tell partners
// from strangers. Every loop is bounded in count and time. Figures the tests
// measure are printed.
const assert = require('assert')
const net = require('net')
const path = require('path')
const { fork } = require('child_process')
const noise = require('noise-protocol')
const { NoisePeer, generateKeypair } = require('..')
const { keypair, JsPeer } = require('./helpers/js-peer')
const { Relay } = require('./helpers/wire-tap')
const { frame, rawClient, kkClient, parseFrames, EventLog } = require('./helpers/hostile')
const { waitFor, sleep, rejection } = require('./helpers/wait')

const HOST = '127.0.0.1'
const KIB = 1024

function figure (what, value) {
  console.log(`      figure: ${what}: ${value}`)
}

describe('security: attacks a review found', function () {
  this.timeout(30000)
  let closers = []
  afterEach(async () => { await Promise.all(closers.splice(0).map((c) => c())) })

  // A recording NoisePeer that knows `keys` (agent -> X25519 key) as partners.
  async function node (keys, opts = {}, identity = generateKeypair()) {
    const peer = new NoisePeer({ agent: identity.agent, keys: identity, host: HOST, peerKey: async (a) => keys.get(a) || null, ...opts })
    peer.id = identity
    peer.got = []
    peer.log = new EventLog(peer)
    peer.onMessage((from, message) => peer.got.push({ from, message }))
    peer.addr = { agent: identity.agent, ...(await peer.listen()) }
    closers.push(() => peer.close())
    return peer
  }

  // A NoisePeer in a process of its own (helpers/child-node.js), so that its
  // memory is measured apart from the test's. `next(pred)` waits for a report.
  async function childNode (spec) {
    const child = fork(path.join(__dirname, 'helpers', 'child-node.js'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] })
    closers.push(() => child.kill('SIGKILL'))
    const reports = []
    child.on('message', (r) => reports.push(r))
    const next = async (pred, ms = 10000) => {
      await waitFor(() => reports.some(pred), 'a report from the child node', ms)
      return reports.splice(reports.findIndex(pred), 1)[0]
    }
    return { child, next, ...(await next((r) => r.ready)) }
  }

  // An N frame naming `agent`, encrypted to `responderKey` (anyone can make one).
  function nFrame (agent, responderKey) {
    const n = noise.initialize('N', true, Buffer.alloc(0), null, null, responderKey)
    const out = Buffer.alloc(256)
    noise.writeMessage(n, Buffer.from(JSON.stringify(agent)), out)
    const msg = Buffer.from(out.subarray(0, noise.writeMessage.bytes))
    noise.destroy(n)
    return frame('N', msg)
  }

  describe('1. a replayed message 1 never becomes a route (§5a)', () => {
    it('a JavaScript partner\'s captured N + K, replayed, does not take the messages meant for it', async () => {
      const jsId = keypair()
      const keys = new Map([[jsId.agent, jsId.publicKey]])
      const b = await node(keys, { legacy: true, handshakeTimeout: 1000 })
      const js = new JsPeer({ agent: jsId.agent, keys: jsId, host: HOST })
      await js.listen()
      closers.push(() => js.close())
      const tap = new Relay(b.addr.port, HOST)
      await tap.listen()
      closers.push(() => tap.close())
      await js.send({ ...b.addr, port: tap.port }, { target: 'tally', action: 'hello' })
      await waitFor(() => b.got.length === 1, 'the JavaScript node\'s message')
      assert.strictEqual(b.got[0].from.early, true)
      for (const c of [...js.conns]) c.close('done')
      await waitFor(() => b.links().length === 0, 'the link to close')
      const [n, k] = tap.frames(0, 'up')

      // The attacker replays the captured N + K from its own socket.
      const attacker = await rawClient(b.addr.port, { ms: 5000 })
      attacker.sock.write(Buffer.concat([n.body, k.body].map((body) => frame(String.fromCharCode(body[0]), body.subarray(1)))))
      await waitFor(() => b.got.length === 2, 'the replayed early message (marked early)')
      assert.strictEqual(b.got[1].from.early, true, 'it is marked as possibly replayed')
      // Our next message to that agent must reach the real node, not the replay.
      await b.send({ agent: jsId.agent, host: HOST, port: js.port }, { target: 'tally', action: 'secret' })
      await js.waitDelivered(1)
      assert.strictEqual(js.delivered[0].message.action, 'secret', 'the real partner got it')
      const seen = await attacker.closed
      const toAttacker = parseFrames(seen.data).frames.map((f) => f.letter)
      assert.deepStrictEqual(toAttacker.filter((l) => l === 'T'), [], 'nothing was routed to the replay')
      assert.ok(!b.log.events.some((e) => e.type === 'open' && e.port === attacker.localPort), 'no open event for the replay')
      const ev = await b.log.fromPort(attacker.localPort)
      assert.strictEqual(ev.reason, 'ERR_HANDSHAKE_TIMEOUT', 'the unconfirmed link closed at the handshake timeout')
    })

    it('a native partner\'s captured N + K, replayed after the responder restarts, opens nothing and takes nothing', async () => {
      const bId = generateKeypair()
      const a = await node(new Map([[bId.agent, bId.publicKey]]), {})
      const keys = new Map([[a.id.agent, a.id.publicKey]])
      const b1 = await node(keys, { handshakeTimeout: 1000 }, bId)
      const tap = new Relay(b1.addr.port, HOST)
      await tap.listen()
      closers.push(() => tap.close())
      await a.send({ ...b1.addr, port: tap.port }, { n: 1 })
      await waitFor(() => b1.got.length === 1, 'the message')
      const [n, k] = tap.frames(0, 'up')
      await b1.close()
      // The same node, restarted: a fresh process forgets its replay table.
      const b2 = await node(keys, { handshakeTimeout: 1000 }, bId)
      const attacker = await rawClient(b2.addr.port, { ms: 5000 })
      attacker.sock.write(Buffer.concat([n.body, k.body].map((body) => frame(String.fromCharCode(body[0]), body.subarray(1)))))
      await sleep(200)
      await b2.send({ agent: a.id.agent, host: HOST, port: a.addr.port }, { n: 2 })
      await waitFor(() => a.got.length === 1, 'the message at the real partner')
      const seen = await attacker.closed
      assert.deepStrictEqual(parseFrames(seen.data).frames.map((f) => f.letter).filter((l) => l !== 'A'), [], 'the replay got nothing but (at most) an A')
      assert.ok(!b2.log.events.some((e) => e.type === 'open' && e.port === attacker.localPort), 'no open event for the replay')
    })
  })

  describe('2. a peer that stops reading costs bounded memory and settles every send (§6)', () => {
    it('refuses sends past the queue budget at once, fails the link when it stays stuck, and settles everything', async () => {
      const m = generateKeypair()
      const a = await childNode({ partner: { agent: m.agent, key: m.publicKey.toString('hex') }, options: { maxQueuedBytes: 2 * 1024 * KIB, writeTimeout: 1500 } })
      const c = await kkClient(a.port, m, Buffer.from(a.publicKey, 'hex'))
      closers.push(() => c.sock.destroy())
      c.sock.pause() // reads nothing more: the socket buffers fill up
      await sleep(100)
      const t0 = Date.now()
      a.child.send({ send: { agent: m.agent, count: 300, size: 60 * KIB } }) // 18 MiB offered
      const sent = await a.next((r) => r.sent)
      const early = sent.sent.ERR_BACKPRESSURE || 0
      // Accepted: the 2 MiB budget, a link's write buffer (256 KiB and one
      // message), and what the kernel's socket buffers took meanwhile (a few
      // MiB on loopback); the rest of the 18 MiB fails at once.
      assert.ok(early >= 150, `sends past the budget fail at once (${early} of 300)`)
      const { settled } = await a.next((r) => r.settled, 10000)
      const total = Object.values(settled).reduce((n, k) => n + k, 0)
      assert.strictEqual(total, 300, `every send settles (${total} after ${Date.now() - t0} ms)`)
      assert.ok(settled.ERR_WRITE_TIMEOUT > 0, `the stuck link failed: ${JSON.stringify(settled)}`)
      assert.ok(Object.keys(settled).every((k) => k === 'ok' || /^ERR_/.test(k)))
      // Sends queued behind the stuck link fail with its reason, not a bare "closed".
      assert.deepStrictEqual(Object.keys(settled).filter((k) => !['ok', 'ERR_BACKPRESSURE', 'ERR_WRITE_TIMEOUT'].includes(k)), [],
        `every send that was not written names the stuck link's reason: ${JSON.stringify(settled)}`)
      const grew = sent.rss - a.rss
      figure('memory a node held for a peer that stopped reading (18 MiB offered, 2 MiB budget)', `${(grew / 2 ** 20).toFixed(1)} MiB; outcomes ${JSON.stringify(settled)}`)
      assert.ok(grew < 12 * 2 ** 20, `bounded: ${(grew / 2 ** 20).toFixed(1)} MiB`)
    })

    it('an initiator lets go of a peer that went silent (both roles keep an idle timer)', async () => {
      const b = await node(new Map(), { timeout: 0 }) // the responder never idles out
      const a = await node(new Map([[b.id.agent, b.id.publicKey]]), { timeout: 300 })
      b.onMessage(() => {})
      const keys = new Map([[a.id.agent, a.id.publicKey]])
      b.close()
      const b2 = await node(keys, { timeout: 0 }, b.id)
      await a.send(b2.addr, { n: 1 })
      await waitFor(() => a.log.events.some((e) => e.type === 'close' && e.reason === 'IDLE_TIMEOUT' && e.initiator), 'the initiator\'s idle close', 3000)
    })

    it('keeps a quiet native link open with keepalives, and delivers none of them', async () => {
      const b = await node(new Map(), { timeout: 400 })
      const a = await node(new Map(), { timeout: 400, keepalive: 100 }, generateKeypair())
      b.close()
      const b2 = await node(new Map([[a.id.agent, a.id.publicKey]]), { timeout: 400, keepalive: 100 }, b.id)
      await a.send(b2.addr, { n: 1 })
      await sleep(1200)
      assert.strictEqual(a.links().length, 1, 'still open after three idle timeouts')
      assert.deepStrictEqual(b2.got.map((g) => g.message), [{ n: 1 }], 'keepalives are delivered to nobody')
    })
  })

  describe('3. open links are bounded (§6)', () => {
    it('caps anonymous referee links apart from the rest', async () => {
      const referee = await node(new Map(), { referee: true, maxRefereeLinks: 3, handshakeTimeout: 1000 })
      const callers = await Promise.all(Array.from({ length: 5 }, () => node(new Map())))
      const outcomes = await Promise.all(callers.map((c) => c.send(referee.addr, { q: 1 }, { referee: true }).then(() => 'ok', (e) => e.code)))
      await sleep(300)
      assert.strictEqual(referee.links().filter((l) => l.pattern === 'NK').length, 3)
      assert.ok(referee.log.events.filter((e) => e.reason === 'ERR_TOO_MANY_LINKS').length === 2, JSON.stringify(outcomes))
    })

    it('caps inbound links per address, before any cryptography', async () => {
      const b = await node(new Map(), { maxLinksPerIp: 4, handshakeTimeout: 5000 })
      const socks = []
      for (let i = 0; i < 4; i++) socks.push(await rawClient(b.addr.port, { ms: 6000 }))
      closers.push(() => socks.forEach((s) => s.sock.destroy()))
      const fifth = await rawClient(b.addr.port, { ms: 3000 })
      const seen = await fifth.closed
      assert.ok(seen.closed && seen.ms < 1000, 'closed at once')
      assert.strictEqual((await b.log.fromPort(fifth.localPort)).reason, 'ERR_TOO_MANY_LINKS')
    })

    it('stops reading while the application is behind, so a slow node\'s memory stays bounded whatever it is sent', async () => {
      const a = generateKeypair()
      const COUNT = 960
      const SIZE = 64 * KIB // 60 MiB offered at once
      const slow = await childNode({ partner: { agent: a.agent, key: a.publicKey.toString('hex') }, options: { maxBacklog: 1 }, readMs: 4 })
      const fast = await node(new Map([[slow.agent, Buffer.from(slow.publicKey, 'hex')]]), { maxQueuedBytes: 64 * 1024 * KIB }, a)
      const msg = { pad: 'y'.repeat(SIZE - 20) }
      const sends = []
      for (let i = 0; i < COUNT; i++) sends.push(fast.send({ agent: slow.agent, host: HOST, port: slow.port }, msg))
      await Promise.all(sends)
      const { peak } = await slow.next((r) => r.seen === COUNT, 25000)
      figure('resident memory a 4 ms-per-message node gained while sent 60 MiB at once', `${((peak - slow.rss) / 2 ** 20).toFixed(1)} MiB`)
      assert.ok(peak - slow.rss < 30 * 2 ** 20, `the slow node grew ${((peak - slow.rss) / 2 ** 20).toFixed(1)} MiB`)
    })

    it('reports a flood of refused connections as a bounded number of events, with a count of the rest', async () => {
      const b = await node(new Map(), { eventRate: 10, handshakeTimeout: 2000, connectRate: 100000, maxPendingPerIp: 1000 })
      const hits = []
      for (let i = 0; i < 200; i++) {
        hits.push(new Promise((resolve) => {
          const s = net.connect(b.addr.port, HOST, () => s.end(Buffer.from([0, 0, 0, 0])))
          s.on('error', () => {})
          s.on('close', resolve)
        }))
      }
      await Promise.all(hits)
      await sleep(1200)
      // One more, after the gate refilled, carries the count of those held back.
      await new Promise((resolve) => {
        const s = net.connect(b.addr.port, HOST, () => s.end(Buffer.from([0, 0, 0, 0])))
        s.on('error', () => {})
        s.on('close', resolve)
      })
      await sleep(200)
      const failures = b.log.events.filter((e) => e.type === 'error' || e.type === 'refused')
      const total = failures.reduce((n, e) => n + 1 + (e.suppressed || 0), 0)
      assert.ok(failures.length < 40, `${failures.length} events for 201 failures`)
      assert.strictEqual(total, 201, 'each failure is counted once, reported or summed')
    })
  })

  describe('4. weak keys and aliased agent ids (§5b)', () => {
    const identityPoint = 'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'

    it('refuses an N naming the Edwards identity point, and a padded spelling of a real id', async () => {
      const p = generateKeypair()
      const b = await node(new Map([[p.agent, p.publicKey], [identityPoint, Buffer.alloc(32)]]), { handshakeTimeout: 1000 })
      for (const agent of [identityPoint, p.agent + '=']) {
        const c = await rawClient(b.addr.port, { ms: 3000 })
        c.sock.write(nFrame(agent, b.id.publicKey))
        const seen = await c.closed
        assert.ok(seen.closed)
        const ev = await b.log.fromPort(c.localPort)
        assert.strictEqual(ev.reason, 'ERR_BAD_PAYLOAD', agent)
      }
    })

    it('refuses a partner whose stored key is of small order, and a dial with such a key', async () => {
      const p = generateKeypair()
      const b = await node(new Map([[p.agent, Buffer.alloc(32)]]), { handshakeTimeout: 1000 })
      const a = await node(new Map(), {}, p)
      await rejection(a.send(b.addr, { n: 1 }))
      await waitFor(() => b.log.events.some((e) => e.type === 'refused'), 'the refusal')
      assert.strictEqual(b.log.events.find((e) => e.type === 'refused').reason, 'ERR_WEAK_KEY')
      const err = await rejection(a.send({ agent: generateKeypair().agent, host: HOST, port: b.addr.port, key: Buffer.alloc(32) }, { n: 1 }))
      assert.strictEqual(err.code, 'ERR_WEAK_KEY')
    })

    it('refuses invalid UTF-8 inside a message instead of replacing it', async () => {
      const m = generateKeypair()
      const b = await node(new Map([[m.agent, m.publicKey]]))
      const c = await kkClient(b.addr.port, m, b.id.publicKey)
      closers.push(() => c.sock.destroy())
      c.sock.write(frame('T', c.seal(Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]))))
      const seen = await c.closed
      assert.ok(seen.closed)
      await waitFor(() => b.log.events.some((e) => e.reason === 'ERR_BAD_MESSAGE'), 'the close')
      assert.strictEqual(b.got.length, 0)
    })
  })

  describe('5. strangers cannot make us do much', () => {
    it('takes no more than maxFrame before a link is open, whatever the legacy setting: four bytes cannot claim a megabyte', async () => {
      const b = await node(new Map(), { legacy: true, maxPendingPerIp: 1000, connectRate: 100000 })
      global.gc && global.gc()
      const rss0 = process.memoryUsage().rss
      const socks = []
      for (let i = 0; i < 200; i++) {
        socks.push(await new Promise((resolve) => {
          const s = net.connect(b.addr.port, HOST, () => { s.write(Buffer.from([0, 0x0f, 0, 0])); resolve(s) })
          s.on('error', () => {})
        }))
      }
      closers.push(() => socks.forEach((s) => s.destroy()))
      await sleep(300)
      const grew = process.memoryUsage().rss - rss0
      figure('resident memory after 200 connections each declaring a 960 KiB frame', `${(grew / 2 ** 20).toFixed(1)} MiB`)
      assert.ok(grew < 40 * 2 ** 20, `${(grew / 2 ** 20).toFixed(1)} MiB`)
      const events = b.log.events.filter((e) => e.reason === 'ERR_FRAME_TOO_LARGE')
      assert.ok(events.length > 0, 'refused as too large at once')
    })

    it('asks the application about a stranger once a second, however often it knocks', async () => {
      const stranger = generateKeypair().agent
      let asked = 0
      const id = generateKeypair()
      const b = new NoisePeer({ agent: id.agent, keys: id, host: HOST, peerKey: async () => { asked++; return null } })
      closers.push(() => b.close())
      const { port } = await b.listen()
      const knock = nFrame(stranger, id.publicKey)
      const t0 = Date.now()
      for (let i = 0; i < 50; i++) {
        const k = await rawClient(port, { ms: 2000 })
        k.sock.end(Buffer.concat([knock, frame('K', Buffer.alloc(96, 1))]))
        await k.closed
      }
      const seconds = (Date.now() - t0) / 1000
      assert.ok(asked <= Math.ceil(seconds) + 1, `${asked} lookups for 50 knocks in ${seconds.toFixed(1)} s`)
    })

    it('keeps serving partners while silent connections flood in from many addresses', async function () {
      this.timeout(40000)
      const p = generateKeypair()
      const b = await node(new Map([[p.agent, p.publicKey]]), { handshakeTimeout: 5000 })
      const a = await node(new Map([[b.id.agent, b.id.publicKey]]), { handshakeTimeout: 2000 }, p)
      const flood = []
      let stop = false
      const sources = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`)
      const attacker = (async () => {
        for (let round = 0; round < 40 && !stop; round++) {
          for (const localAddress of sources) {
            for (let i = 0; i < 8; i++) {
              const s = net.connect({ port: b.addr.port, host: HOST, localAddress })
              s.on('error', () => {})
              flood.push(s)
            }
          }
          await sleep(50)
        }
      })()
      closers.push(() => { stop = true; flood.forEach((s) => s.destroy()) })
      await sleep(500) // the pending table is full of silence by now
      let served = 0
      const t0 = Date.now()
      for (let i = 0; i < 20; i++) {
        try {
          await a.send(b.addr, { i })
          a.end(b.id.agent)
          await waitFor(() => a.links().length === 0, 'the close', 3000)
          served++
        } catch (e) { /* counted as not served */ }
      }
      stop = true
      await attacker
      figure('honest handshakes served during a flood of silent connections from 8 addresses', `${served} of 20 in ${Date.now() - t0} ms (${flood.length} flood connections)`)
      assert.strictEqual(served, 20)
    })
  })

  describe('6. partners cannot be told from strangers on the wire', () => {
    it('keeps an N open until K, and closes at K without a word, whether the agent is known or not', async () => {
      const known = generateKeypair()
      const b = await node(new Map([[known.agent, known.publicKey]]), { handshakeTimeout: 3000 })
      const probe = async (agent) => {
        const c = await rawClient(b.addr.port, { ms: 4000 })
        c.sock.write(nFrame(agent, b.id.publicKey))
        await sleep(300)
        const openAfterN = !c.sock.destroyed
        const t = Date.now()
        c.sock.write(frame('K', Buffer.alloc(96, 7)))
        const seen = await c.closed
        return { openAfterN, closedMs: Date.now() - t, bytes: seen.data.length }
      }
      const stranger = await probe(generateKeypair().agent)
      const partner = await probe(known.agent)
      assert.deepStrictEqual([stranger.openAfterN, partner.openAfterN], [true, true], 'N alone closes neither')
      assert.deepStrictEqual([stranger.bytes, partner.bytes], [0, 0], 'neither gets a reply')
      assert.ok(stranger.closedMs < 500 && partner.closedMs < 500, 'both close at K')
    })
  })

  describe('7. messages to one agent keep their order across links', () => {
    it('keeps using the link in use when a second link to the same agent opens', async () => {
      const [ia, ib] = [generateKeypair(), generateKeypair()]
      const keys = new Map([[ia.agent, ia.publicKey], [ib.agent, ib.publicKey]])
      const a = await node(keys, {}, ia)
      const b = await node(keys, {}, ib)
      const N = 1000
      const sends = []
      let second = null
      for (let i = 0; i < N; i++) {
        sends.push(a.send(b.addr, { i, pad: 'z'.repeat(2000) }))
        if (i === 200) {
          // A second link to a, opened (and confirmed) with b's key, while
          // the first one carries traffic: b restarting, or a race of dials.
          second = await kkClient(a.addr.port, ib, a.id.publicKey)
          closers.push(() => second.sock.destroy())
          await waitFor(() => a.links().length === 2, 'the second link')
        }
      }
      await Promise.all(sends)
      await waitFor(() => b.got.length === N, 'all messages', 20000)
      const order = b.got.map((g) => g.message.i)
      assert.deepStrictEqual(order, [...Array(N).keys()], 'in the order they were sent, over one link')
      const onSecond = []
      second.sock.on('data', (d) => onSecond.push(d))
      await sleep(100)
      assert.deepStrictEqual(parseFrames(Buffer.concat(onSecond)).frames.filter((f) => f.letter === 'T'), [], 'nothing went over the newer link')
    })
  })

  describe('8. the delivery contract holds both ways', () => {
    it('refuses, before writing, a message the receiver said it would refuse, and keeps the link', async () => {
      const [ia, ib] = [generateKeypair(), generateKeypair()]
      const keys = new Map([[ia.agent, ia.publicKey], [ib.agent, ib.publicKey]])
      const b = await node(keys, { maxMessage: 1024 }, ib)
      const a = await node(keys, {}, ia)
      await a.send(b.addr, { n: 1 })
      const err = await rejection(a.send(b.addr, { pad: 'x'.repeat(2000) }))
      assert.strictEqual(err.code, 'ERR_MESSAGE_TOO_LARGE')
      await a.send(b.addr, { n: 2 })
      await waitFor(() => b.got.length === 2, 'both small messages')
      assert.strictEqual(a.links().length, 1, 'the link carried on')
    })

    it('takes a JavaScript node\'s oversized T on a link it dialled, legacy off', async () => {
      const jsId = keypair()
      const js = new JsPeer({ agent: jsId.agent, keys: jsId, host: HOST })
      await js.listen()
      closers.push(() => js.close())
      const a = await node(new Map(), { legacy: false })
      await a.send(js.address(), { target: 't', n: 1 })
      await js.waitDelivered(1)
      await js.send(a.addr, { target: 't', blob: 'q'.repeat(100 * KIB) })
      await waitFor(() => a.got.length === 1, 'the 100 KiB message')
      assert.strictEqual(a.got[0].message.blob.length, 100 * KIB)
    })
  })
})

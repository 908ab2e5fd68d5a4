'use strict'
// NoisePeer over real loopback sockets: the behaviours a MyCHIPs node relies on.
const assert = require('assert')
const { fork, spawnSync } = require('child_process')
const { join } = require('path')
const sodium = require('sodium-native')
const { NoisePeer, generateKeypair, agentKey, keypairFromSeed } = require('..')
const { World, waitFor, sleep, rejection } = require('./helpers/fixture')

describe('identities', () => {
  it('makes agent ids that name the X25519 key libsodium derives', () => {
    const id = generateKeypair()
    assert.match(id.agent, /^[A-Za-z0-9_-]{43}$/)
    assert.strictEqual(id.publicKey.length, 32)
    assert.strictEqual(id.privateKey.length, 32)
    const ed = Buffer.from(id.agent, 'base64url')
    const x = Buffer.alloc(32)
    sodium.crypto_sign_ed25519_pk_to_curve25519(x, ed)
    assert.ok(x.equals(id.publicKey))
    assert.ok(agentKey(id.agent).equals(id.publicKey))
    assert.strictEqual(agentKey('not-a-key'), null)
  })

  it('derives the same X25519 pair as libsodium from an Ed25519 seed', () => {
    const seed = Buffer.alloc(32, 7)
    const pk = Buffer.alloc(32)
    const sk = Buffer.alloc(64)
    sodium.crypto_sign_seed_keypair(pk, sk, seed)
    const xsk = Buffer.alloc(32)
    sodium.crypto_sign_ed25519_sk_to_curve25519(xsk, sk)
    const id = keypairFromSeed(seed)
    assert.strictEqual(id.agent, pk.toString('base64url'))
    assert.ok(id.privateKey.equals(xsk))
  })

  it('refuses bad options with a coded error', () => {
    assert.throws(() => new NoisePeer({}), { code: 'ERR_INVALID_ARGUMENT' })
    const id = generateKeypair()
    assert.throws(() => new NoisePeer({ agent: id.agent, keys: { privateKey: Buffer.alloc(5) } }), { code: 'ERR_INVALID_ARGUMENT' })
  })
})

for (const encrypt of [true, false]) {
  describe(`links (${encrypt ? 'encrypted' : 'raw mode'})`, () => {
    let world
    beforeEach(() => { world = new World() })
    afterEach(() => world.close())

    it('exchanges messages both ways over one link, whichever side opened it', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      await a.send(b.addr, { n: 1 })
      // b answers once it has heard from a, by agent alone: it must reuse the
      // link. (A responder routes to a link once the initiator confirmed it,
      // docs/PROTOCOL.md §5a; a message from it means it has.)
      await waitFor(() => b.received.length === 1, 'the first message')
      await b.send({ agent: a.id.agent }, { n: 2 }) // no host/port: must reuse the link
      await waitFor(() => a.received.length === 1 && b.received.length === 1, 'both messages')
      assert.deepStrictEqual(b.received[0].message, { n: 1 })
      assert.deepStrictEqual(a.received[0].message, { n: 2 })
      assert.strictEqual(b.received[0].from.agent, a.id.agent)
      assert.strictEqual(a.received[0].from.agent, b.id.agent)
      assert.strictEqual(b.received[0].from.pattern, 'KK')
      assert.strictEqual(b.received[0].from.encrypted, encrypt)
      assert.strictEqual(a.links().length, 1)
      assert.strictEqual(b.links().length, 1)
      assert.strictEqual(a.events.filter(e => e.type === 'open').length, 1)
    })

    it('queues sends made while the link opens, uses one connection, keeps order', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      await Promise.all(Array.from({ length: 20 }, (_, i) => a.send(b.addr, { i })))
      await waitFor(() => b.received.length === 20, '20 messages')
      assert.deepStrictEqual(b.received.map(r => r.message.i), Array.from({ length: 20 }, (_, i) => i))
      assert.strictEqual(b.events.filter(e => e.type === 'open').length, 1, 'one connection accepted')
    })

    it('keeps call order when one turn mixes addresses, a send with options and end()', async () => {
      // A turn's later sends cross into Rust together when the turn ends;
      // what could overtake them must hand them over first.
      const [a, b, c] = await Promise.all([world.peer({ encrypt }), world.peer({ encrypt }), world.peer({ encrypt })])
      await Promise.all([a.send(b.addr, { i: -1 }), a.send(c.addr, { i: -1 })])
      await waitFor(() => b.received.length === 1 && c.received.length === 1, 'both links')
      const toB = a.links().find((l) => l.agent === b.id.agent).link
      const sends = []
      const wantB = [-1]
      const wantC = [-1]
      for (let i = 0; i < 30; i++) {
        const to = i % 3 === 0 ? c : b
        sends.push(a.send(to.addr, { i }))
        ;(to === b ? wantB : wantC).push(i)
        if (i === 10) {
          sends.push(a.send({ agent: b.id.agent, link: toB }, { i: 'bound' })) // crosses at once
          wantB.push('bound')
        }
      }
      assert.strictEqual(a.end(c.id.agent), 1) // c's sends so far go ahead of its close
      sends.push(a.send(c.addr, { i: 'after end' })) // on a new link
      wantC.push('after end')
      const settled = await Promise.allSettled(sends)
      assert.deepStrictEqual(settled.filter((s) => s.status !== 'fulfilled'), [])
      await waitFor(() => b.received.length === wantB.length && c.received.length === wantC.length, 'every message')
      assert.deepStrictEqual(b.received.map((r) => r.message.i), wantB)
      assert.deepStrictEqual(c.received.map((r) => r.message.i), wantC)
      const links = c.received.map((r) => r.from.link)
      assert.deepStrictEqual(new Set(links.slice(0, -1)).size, 1, 'sent before end(): on the link it closed')
      assert.notStrictEqual(links[links.length - 1], links[0], 'sent after end(): on a new link')
    })

    it('delivers 10,000 messages sent back to back, once each, in order', async function () {
      this.timeout(60000)
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      const sends = []
      for (let i = 0; i < 10000; i++) sends.push(a.send(b.addr, { i, pad: 'x'.repeat(64) }))
      await Promise.all(sends)
      await waitFor(() => b.received.length >= 10000, '10,000 messages', 30000)
      await sleep(50)
      assert.strictEqual(b.received.length, 10000)
      b.received.forEach((r, i) => assert.strictEqual(r.message.i, i))
    })

    it('delivers a 1 MiB message whole and refuses a larger one', async function () {
      this.timeout(20000)
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      const big = { blob: 'z'.repeat(1024 * 1024 - 20) }
      await a.send(b.addr, big)
      await waitFor(() => b.received.length === 1, 'the big message')
      assert.strictEqual(b.received[0].message.blob, big.blob)
      const err = await rejection(a.send(b.addr, { blob: 'z'.repeat(1024 * 1024) }))
      assert.strictEqual(err.code, 'ERR_INVALID_ARGUMENT')
      await a.send(b.addr, { after: true })
      await waitFor(() => b.received.length === 2, 'the link still works')
    })

    it('reopens after the responder idle timeout, from either side', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt, peer: { timeout: 200 } })
      await a.send(b.addr, { n: 1 })
      await waitFor(() => b.events.some(e => e.type === 'close'), 'the idle close')
      const close = b.events.find(e => e.type === 'close')
      assert.strictEqual(close.reason, 'IDLE_TIMEOUT')
      assert.strictEqual(close.clean, true)
      await waitFor(() => a.links().length === 0, 'the initiator to see the close')
      await a.send(b.addr, { n: 2 }) // the initiator reopens
      await waitFor(() => b.received.length === 2, 'message after reopen')
      await waitFor(() => b.events.filter(e => e.type === 'close').length === 2, 'second idle close')
      await waitFor(() => a.links().length === 0, 'the initiator to see the second close')
      await b.send(a.addr, { n: 3 }) // and now the other side opens
      await waitFor(() => a.received.length === 1, 'message from the former responder')
      assert.deepStrictEqual(b.received.map(r => r.message.n), [1, 2])
    })

    it('opens a link with connect() without sending', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      const link = await a.connect(b.addr)
      assert.strictEqual(link.agent, b.id.agent)
      assert.strictEqual(link.initiator, true)
      const again = await a.connect(b.addr)
      assert.strictEqual(again.link, link.link, 'reused')
      assert.strictEqual(b.received.length, 0)
    })

    it('first contact by ticket (IK): accepted ticket opens, refused ticket rejects the send', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      const stranger = await world.peer({ encrypt })
      world.keys.delete(stranger.id.agent) // b does not know it: only the ticket can let it in
      const err = await rejection(stranger.send(b.addr, { hi: 1 }, { ticket: 'bad-ticket' }))
      assert.strictEqual(err.code, encrypt ? 'ERR_TICKET_REFUSED' : 'ERR_TICKET_REFUSED')
      assert.match(err.message, /ticket/)
      await waitFor(() => b.events.some(e => e.type === 'refused'), 'refused event')
      assert.strictEqual(b.events.find(e => e.type === 'refused').reason, 'ERR_TICKET_REFUSED')
      await stranger.send(b.addr, { hi: 2 }, { ticket: 'good-ticket' })
      await waitFor(() => b.received.length === 1, 'message after the good ticket')
      assert.deepStrictEqual(b.received[0].message, { hi: 2 })
      assert.strictEqual(b.received[0].from.pattern, 'IK')
      assert.strictEqual(b.received[0].from.agent, stranger.id.agent)
      // the link opened by ticket carries replies too
      await b.send({ agent: stranger.id.agent }, { welcome: true })
      await waitFor(() => stranger.received.length === 1, 'the reply')
      assert.strictEqual(a.received.length, 0)
    })

    it('refuses KK from an agent it has no key for', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      world.keys.delete(a.id.agent)
      const err = await rejection(a.send(b.addr, { n: 1 }))
      assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
      await waitFor(() => b.events.some(e => e.type === 'refused'), 'refused event')
      assert.strictEqual(b.events.find(e => e.type === 'refused').reason, 'ERR_UNKNOWN_PEER')
      assert.strictEqual(b.received.length, 0)
    })

    it('answers anonymous referee queries (NK) only when it is a referee', async () => {
      const referee = await world.peer({ encrypt, peer: { referee: true } })
      const plain = await world.peer({ encrypt })
      const asker = await world.peer({ encrypt })
      referee.onMessage((from, message) => {
        if (message.query) referee.send({ link: from.link }, { answer: message.query * 2 })
      })
      await asker.send(referee.addr, { query: 21 }, { referee: true })
      await waitFor(() => asker.received.length === 1, 'the referee answer')
      assert.deepStrictEqual(asker.received[0].message, { answer: 42 })
      assert.strictEqual(referee.received[0].from.agent, null)
      assert.strictEqual(referee.received[0].from.pattern, 'NK')
      const err = await rejection(asker.send(plain.addr, { query: 1 }, { referee: true }))
      assert.strictEqual(err.code, 'ERR_REFEREE_DISABLED')
      assert.strictEqual(plain.received.length, 0)
    })

    it('rejects a message that serializes to no JSON object, first in a turn or later', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      for (const bad of [{ toJSON: () => undefined }, { toJSON: () => 'text' }]) {
        const alone = await rejection(a.send(b.addr, bad))
        assert.strictEqual(alone.code, 'ERR_INVALID_ARGUMENT')
        const [ok, later] = await Promise.allSettled([a.send(b.addr, { n: 1 }), a.send(b.addr, bad)])
        assert.strictEqual(ok.status, 'fulfilled')
        assert.strictEqual(later.reason.code, 'ERR_INVALID_ARGUMENT')
      }
      await waitFor(() => b.received.length === 2, 'the good messages')
    })

    it('rejects sends after close() with ERR_CLOSED', async () => {
      const a = await world.peer({ encrypt })
      const b = await world.peer({ encrypt })
      await a.close()
      const err = await rejection(a.send(b.addr, { n: 1 }))
      assert.strictEqual(err.code, 'ERR_CLOSED')
    })
  })
}

describe('authentication', () => {
  let world
  beforeEach(() => { world = new World() })
  afterEach(() => world.close())

  it('refuses an IK handshake whose key is not the claimed agent\'s', async () => {
    const b = await world.peer()
    const victim = world.identity()
    const impostorKeys = generateKeypair()
    // Claims to be `victim`, but holds another key: b must notice.
    const impostor = await world.peer({ identity: { ...impostorKeys, agent: victim.agent } })
    const err = await rejection(impostor.send(b.addr, { steal: 1 }, { ticket: 'good-ticket' }))
    assert.strictEqual(err.code, 'ERR_PEER_REFUSED')
    assert.match(err.message, /ERR_KEY_MISMATCH/)
    await waitFor(() => b.events.some(e => e.type === 'refused'), 'refused event')
    assert.strictEqual(b.events.find(e => e.type === 'refused').reason, 'ERR_KEY_MISMATCH')
    assert.strictEqual(b.received.length, 0)
  })

  it('refuses KK when the key it holds for the agent does not match', async () => {
    const a = await world.peer()
    const b = await world.peer()
    world.keys.set(a.id.agent, generateKeypair().publicKey) // b's record of a is stale
    const err = await rejection(a.send(b.addr, { n: 1 }))
    assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
    await waitFor(() => b.events.some(e => e.type === 'refused'), 'refused event')
    assert.strictEqual(b.events.find(e => e.type === 'refused').reason, 'ERR_KEY_MISMATCH')
    assert.strictEqual(b.received.length, 0)
  })

  it('rejects a send to a peer whose key is unknown and not derivable', async () => {
    const a = await world.peer()
    const err = await rejection(a.send({ agent: 'no-such-agent', host: '127.0.0.1', port: 9 }, { n: 1 }))
    assert.strictEqual(err.code, 'ERR_UNKNOWN_PEER')
  })

  it('reports a raw peer talking to an encrypting one as a mode mismatch on both sides', async () => {
    const enc = await world.peer()
    const raw = await world.peer({ encrypt: false })
    let err = await rejection(raw.send(enc.addr, { n: 1 }))
    assert.strictEqual(err.code, 'ERR_MODE_MISMATCH')
    await waitFor(() => enc.events.some(e => e.reason === 'ERR_MODE_MISMATCH'), 'mismatch event on the encrypting side')
    err = await rejection(enc.send(raw.addr, { n: 2 }))
    assert.strictEqual(err.code, 'ERR_MODE_MISMATCH')
    await waitFor(() => raw.events.some(e => e.reason === 'ERR_MODE_MISMATCH'), 'mismatch event on the raw side')
    assert.strictEqual(enc.received.length + raw.received.length, 0)
  })

  it('treats a throwing or rejecting key store as a refusal', async () => {
    const a = await world.peer()
    const b = await world.peer({ peer: { peerKey: async () => { throw new Error('database down') } } })
    const err = await rejection(a.send(b.addr, { n: 1 }))
    assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
    await waitFor(() => b.events.some(e => e.reason === 'ERR_LOOKUP_FAILED'), 'lookup failure event')
    assert.match(b.events.find(e => e.reason === 'ERR_LOOKUP_FAILED').message, /database down/)
  })
})

describe('live figures (stats)', () => {
  let world
  beforeEach(() => { world = new World() })
  afterEach(() => world.close())

  it('counts links by pattern, handshakes by outcome, traffic each way, and the same per partner', async () => {
    const a = await world.peer()
    const b = await world.peer()
    for (let i = 0; i < 10; i++) await a.send(b.addr, { i })
    await waitFor(() => b.received.length === 10, 'ten messages')
    await b.send({ agent: a.id.agent }, { back: 1 })
    await waitFor(() => a.received.length === 1, 'the answer')
    // A stranger b has no key for: refused.
    const stranger = await world.peer({ identity: generateKeypair() })
    await rejection(stranger.send(b.addr, { n: 1 }))
    await waitFor(() => b.stats().handshakes.refused.ERR_UNKNOWN_PEER === 1, 'the refusal counted')
    const s = b.stats()
    assert.deepStrictEqual(s.links.open, { KK: 1 })
    assert.strictEqual(s.links.dialling, 0)
    assert.strictEqual(s.handshakes.accepted.KK, 1)
    assert.strictEqual(s.traffic.messagesIn, 10)
    assert.strictEqual(s.traffic.messagesOut, 1)
    assert.ok(s.traffic.bytesIn > 10 * JSON.stringify({ i: 0 }).length, 'bytes in count whole frames')
    assert.strictEqual(s.peers.length, 1)
    assert.strictEqual(s.peers[0].agent, a.id.agent)
    assert.strictEqual(s.peers[0].links, 1)
    assert.strictEqual(s.peers[0].traffic.messagesIn, 10)
    assert.strictEqual(s.queuedBytes, 0)
    // Once the link ends, its traffic stays in the totals and the close is counted.
    a.end(b.id.agent)
    await waitFor(() => b.stats().handshakes.closed.PEER_CLOSED === 1, 'the close counted')
    const after = b.stats()
    assert.deepStrictEqual(after.links.open, {})
    assert.deepStrictEqual(after.peers, [])
    assert.strictEqual(after.traffic.messagesIn, 10)
    assert.strictEqual(after.traffic.messagesOut, 1)
  })
})

describe('delivery across closes', () => {
  let world
  beforeEach(() => { world = new World() })
  afterEach(() => world.close())

  it('never loses a message reported sent when the responder idles out mid-stream', async function () {
    this.timeout(30000)
    const a = await world.peer()
    const b = await world.peer({ peer: { timeout: 60 } })
    const sent = []
    for (let i = 0; i < 60; i++) {
      // Gaps straddle the idle timeout, so some sends race the responder's close.
      await sleep(40 + (i % 5) * 10)
      try {
        await a.send(b.addr, { i })
        sent.push(i)
      } catch (err) {
        assert.ok(err.code, 'a failed send says why')
      }
    }
    await waitFor(() => b.received.length >= sent.length, 'every message reported sent', 10000)
    await sleep(100)
    const got = b.received.map(r => r.message.i)
    assert.deepStrictEqual(got, sent, 'each message reported sent arrives exactly once, in order')
    assert.ok(b.events.filter(e => e.type === 'close').length >= 2, 'the link idled out several times')
  })

  it('finishes delivery when the other side ends the link during a burst', async () => {
    const a = await world.peer()
    const b = await world.peer()
    await a.send(b.addr, { i: -1 })
    await waitFor(() => b.received.length === 1, 'first message')
    const results = []
    const burst = Array.from({ length: 500 }, (_, i) =>
      a.send(b.addr, { i }).then(() => results.push(i), (err) => results.push(err.code)))
    setImmediate(() => b.end(a.id.agent))
    await Promise.all(burst)
    const ok = results.filter(r => typeof r === 'number').sort((x, y) => x - y)
    await waitFor(() => b.received.length - 1 >= ok.length, 'all sent messages', 10000)
    const got = b.received.slice(1).map(r => r.message.i).sort((x, y) => x - y)
    assert.deepStrictEqual(got, ok, 'every resolved send arrived once')
  })
})

describe('two processes', () => {
  it('exchange messages both ways over one link', async function () {
    this.timeout(30000)
    const world = new World()
    const local = await world.peer()
    const child = fork(join(__dirname, 'helpers', 'echo-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    try {
      const hello = await new Promise((resolve, reject) => {
        child.once('message', resolve)
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)))
      })
      world.keys.set(hello.agent, Buffer.from(hello.publicKey, 'base64'))
      child.send({ peer: { agent: local.id.agent, publicKey: local.id.publicKey.toString('base64'), host: local.addr.host, port: local.addr.port } })
      await waitFor(() => local.received.length === 1, 'the child greeting', 10000) // the child opened the link
      await local.send({ agent: hello.agent }, { ping: 1 }) // reuse it the other way
      await waitFor(() => local.received.length === 2, 'the echo', 10000)
      assert.deepStrictEqual(local.received[1].message, { echo: { ping: 1 } })
      assert.strictEqual(local.links().length, 1)
      const code = await new Promise(resolve => { child.once('exit', resolve); child.send({ quit: true }) })
      assert.strictEqual(code, 0, 'the child closed and exited by itself')
    } finally {
      child.kill()
      await world.close()
    }
  })
})

describe('panics in Rust', () => {
  it('become JavaScript errors (sync and async); Node keeps running', function () {
    this.timeout(20000)
    const script = `
      const native = require(${JSON.stringify(join(__dirname, '..', 'lib', 'native'))})
      let sync = null
      try { native.__panicForTest('sync') } catch (err) { sync = err.message }
      native.__panicForTest('async').then(
        () => { console.log('resolved'); process.exit(3) },
        (err) => { console.log(JSON.stringify({ sync, async: err.message })); process.exit(0) })
    `
    const child = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, MYCHIPS_NOISE_TEST_HOOKS: '1', RUST_BACKTRACE: '0' }, encoding: 'utf8', timeout: 15000 })
    assert.strictEqual(child.status, 0, `child exited ${child.status} (${child.signal || ''}): ${child.stderr}`)
    const out = JSON.parse(child.stdout.trim().split('\n').pop())
    assert.match(out.sync, /deliberate panic/)
    assert.match(out.async, /deliberate panic/)
  })

  it('the test hook is inert unless enabled', () => {
    const native = require('../lib/native')
    assert.throws(() => native.__panicForTest('sync'), /test hooks are off/)
  })
})

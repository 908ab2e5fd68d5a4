'use strict'
// What MyCHIPs' own socket-module tests need, written here against our
// classes: its plain-socket test (two servers on fixed ports, a 'localhost'
// peer string, an echo, local loopback) and its Noise-module test (noise-
// protocol key pairs, agent ids, queryCB answering 'noiseKey' and 'ticket',
// connection.send, peerAddress(), connections.size(), end and resend after
// 25 ms), in the shapes and timings those tests use. Also: the key shapes
// MyCHIPs hands a peer module, and the one-flag switch.
const assert = require('assert')
const sodium = require('sodium-native')
const Noise = require('noise-protocol')
const { Address6 } = require('ip-address')
const { PeerNoise, PeerSocket, NoisePeer, peerModule, keypairFromJwk, generateKeypair } = require('..')
const { freePort, recordingLog } = require('./helpers/compat')
const { waitFor } = require('./helpers/wait')

const HOST = 'localhost'

describe('MyCHIPs plain socket module (PeerSocket)', function () {
  this.timeout(2000) // MyCHIPs' mocha default: the link must deliver promptly
  let server1, server2, callback1, callback2, serv1

  before(async () => {
    const [port1, port2] = [await freePort(), await freePort()]
    serv1 = `${HOST}:${port1}`
    // Constructed and used at once, without waiting: they listen at once.
    server1 = new PeerSocket({ port: port1, bind: '127.0.0.1', log: recordingLog() }, (c, o) => callback1(c, o))
    server2 = new PeerSocket({ port: port2, bind: '127.0.0.1', log: recordingLog() }, (c, o) => callback2(c, o))
    callback1 = (serv, obj) => server1.send(serv, obj) // loop it back
  })
  after(() => Promise.all([server1.close(), server2.close()]))

  it('sends an object to a server named by host:port, which echoes it to the sender', (done) => {
    callback2 = (serv, obj) => { assert.strictEqual(obj.txt, 'This is a test message.'); done() }
    server2.send(serv1, { txt: 'This is a test message.' })
  })

  it('sends a second object', (done) => {
    callback2 = (serv, obj) => { assert.strictEqual(obj.txt, 'Hello there!'); done() }
    server2.send(serv1, { txt: 'Hello there!' })
  })

  it('loops a message back to its own server', (done) => {
    callback1 = (serv, obj) => { assert.strictEqual(obj.txt, 'loop'); done() }
    server1.send(serv1, { txt: 'loop' })
  })
})

// MyCHIPs' Noise-module test, its configuration fixed: agent ids in both
// configs, and the query callbacks answering 'noiseKey' with the other side's
// X25519 key (its agent ids are noise-protocol public keys, not Ed25519 ids).
function noiseSuite (raw) {
  return function () {
    this.timeout(2000)
    let initiator, responder, initCB, respCB, initCHAD, respCHAD, cfg
    const token = 'My Custom Token'

    before(async () => {
      const [initPort, respPort] = [await freePort(), await freePort()]
      const initKeys = Noise.keygen()
      const respKeys = Noise.keygen()
      const initAgent = Buffer.from(initKeys.publicKey).toString('base64url')
      const respAgent = Buffer.from(respKeys.publicKey).toString('base64url')
      if (raw) { delete initKeys.secretKey; delete respKeys.secretKey } // no private key: unencrypted
      initCHAD = { agent: initAgent, host: HOST, port: initPort }
      respCHAD = { agent: respAgent, host: HOST, port: respPort }
      const keyOf = { [initAgent]: initKeys.publicKey, [respAgent]: respKeys.publicKey }
      cfg = { asked: [] }
      const queryCB = (who) => (req, data, cb) => {
        cfg.asked.push([who, req])
        if (req === 'noiseKey') return keyOf[data]
        if (req === 'ticket') cb(data.token === token)
      }
      responder = new PeerNoise({ agent: respAgent, log: recordingLog(), host: HOST, bind: '127.0.0.1', port: respPort, keys: respKeys, queryCB: queryCB('resp') }, (c, o) => respCB(c, o))
      initiator = new PeerNoise({ agent: initAgent, log: recordingLog(), host: HOST, bind: '127.0.0.1', port: initPort, keys: initKeys, queryCB: queryCB('init') }, (c, o) => initCB(c, o))
    })
    after(() => Promise.all([initiator.close(), responder.close()]))

    it(`runs ${raw ? 'unencrypted (no private key)' : 'encrypted'}`, () => {
      assert.strictEqual(initiator.encrypted, !raw)
      assert.strictEqual(responder.encrypted, !raw)
    })

    it('sends a message to the responder, which answers on the connection', (done) => {
      respCB = (connection, obj) => connection.send(obj)
      initCB = (connection, obj) => { assert.strictEqual(obj.text, 'This is a test message.'); done() }
      initiator.send({ to: respCHAD, text: 'This is a test message.' }, null, (e) => done(e))
    })

    it('sends from the responder to the initiator on the existing connection', (done) => {
      let dc = 2
      const half = () => { if (!--dc) done() }
      initCB = (connection, obj) => {
        assert.strictEqual(obj.text, 'I hear you!')
        assert.strictEqual(responder.connections.size(), 1, 'the existing connection is reused')
        half()
      }
      responder.send({ to: initCHAD, text: 'I hear you!' }, half, (e) => done(e))
    })

    it('delivers a message to itself', (done) => {
      let dc = 2
      const half = () => { if (!--dc) done() }
      initCB = (connection, obj) => { assert.strictEqual(obj.text, 'Can I hear myself?'); half() }
      initiator.send({ to: initCHAD, text: 'Can I hear myself?' }, half, (e) => done(e))
    })

    it('calls the failure callback for a bad address', (done) => {
      responder.send({ to: { agent: 'bad_agent' }, text: 'x' }, null, (err) => { assert.strictEqual(err.code, 'ERR_INVALID_ARGUMENT'); done() })
    })

    it('gives the remote address in IPv6 form, as ip-address writes it', (done) => {
      respCB = (connection, obj) => {
        const pa = connection.peerAddress()
        assert.ok(pa)
        assert.strictEqual(pa, new Address6(connection.socket.remoteAddress).correctForm())
        assert.strictEqual(connection.peerAgent, initCHAD.agent)
        done()
      }
      initiator.send({ to: respCHAD, text: 'address?' }, null, (e) => done(e))
    })

    it('closes a connection and sends again 25 ms later', (done) => {
      respCB = (connection, obj) => { assert.strictEqual(obj.text, 'again'); done() }
      initiator.end(respCHAD.agent)
      setTimeout(() => initiator.send({ to: respCHAD, text: 'again' }, null, (e) => done(e)), 25)
    })

    it('makes first contact with a ticket (IK) when the message is a tally ticket, checked by queryCB', (done) => {
      initiator.end(respCHAD.agent)
      respCB = (connection, obj) => {
        assert.strictEqual(obj.action, 'ticket')
        assert.deepStrictEqual(obj.from, initCHAD, 'from carries our CHIP address')
        assert.ok(cfg.asked.some(([who, req]) => who === 'resp' && req === 'ticket'))
        done()
      }
      setTimeout(() => initiator.send({ to: respCHAD, target: 'tally', action: 'ticket', ticket: { token } }, null, (e) => done(e)), 25)
    })

    if (!raw) {
      it('asked queryCB for keys with noiseKey', () => {
        assert.ok(cfg.asked.some(([who, req]) => who === 'resp' && req === 'noiseKey'))
        assert.ok(cfg.asked.some(([who, req]) => who === 'init' && req === 'noiseKey'))
      })
    }
  }
}

describe('MyCHIPs Noise module (PeerNoise), noise-protocol key pairs', noiseSuite(false))
describe('MyCHIPs Noise module (PeerNoise), raw mode', noiseSuite(true))

describe('key shapes a MyCHIPs peer module is given', function () {
  this.timeout(5000)
  const nodes = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map((n) => n.close())) })

  // An Ed25519 key pair from libsodium, as MyCHIPs keeps agent keys (JWK).
  function ed25519 () {
    const pk = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES)
    const sk = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES)
    sodium.crypto_sign_keypair(pk, sk)
    const xpk = Buffer.alloc(32)
    const xsk = Buffer.alloc(32)
    sodium.crypto_sign_ed25519_pk_to_curve25519(xpk, pk)
    sodium.crypto_sign_ed25519_sk_to_curve25519(xsk, sk)
    const x = pk.toString('base64url')
    const jwk = {
      publicKey: { kty: 'OKP', crv: 'Ed25519', x },
      privateKey: { kty: 'OKP', crv: 'Ed25519', x, d: sk.subarray(0, 32).toString('base64url') }
    }
    return { pk, sk, xpk, xsk, jwk, agent: x }
  }

  it('derives from an Ed25519 JWK pair the X25519 pair libsodium derives, for many keys', () => {
    for (let i = 0; i < 50; i++) {
      const k = ed25519()
      const id = keypairFromJwk(k.jwk)
      assert.strictEqual(id.agent, k.agent, 'the agent id is x')
      assert.ok(id.publicKey.equals(k.xpk), 'X25519 public key')
      assert.ok(id.privateKey.equals(k.xsk), 'X25519 private key')
    }
  })

  it('refuses a JWK pair whose halves do not belong together, or without d', () => {
    const a = ed25519()
    const b = ed25519()
    assert.throws(() => keypairFromJwk({ publicKey: a.jwk.publicKey, privateKey: { ...b.jwk.privateKey, x: a.agent } }), { code: 'ERR_INVALID_ARGUMENT' })
    assert.throws(() => keypairFromJwk({ publicKey: a.jwk.publicKey }), { code: 'ERR_INVALID_ARGUMENT' })
  })

  for (const shape of ['an Ed25519 JWK pair', 'a libsodium Ed25519 secret key as privateKey', 'an X25519 { publicKey, privateKey } pair', 'noise-protocol { publicKey, secretKey }']) {
    it(`encrypts with ${shape}, and a NoisePeer that knows only the agent id can talk to it`, async () => {
      const k = ed25519()
      let keys, agent
      if (shape.includes('JWK')) keys = k.jwk
      else if (shape.includes('libsodium')) keys = { publicKey: k.pk, privateKey: k.sk }
      else if (shape.includes('X25519')) keys = { publicKey: k.xpk, privateKey: k.xsk }
      else keys = { publicKey: k.xpk, secretKey: k.xsk }
      if (!shape.includes('JWK') && !shape.includes('libsodium')) agent = k.agent // raw X25519 bytes: say who we are
      const got = []
      const port = await freePort()
      const p = new PeerNoise({ agent, keys, host: '127.0.0.1', bind: '127.0.0.1', port }, (c, m) => got.push(m))
      nodes.push(p)
      assert.strictEqual(p.agent, k.agent)
      assert.strictEqual(p.encrypted, true)
      const other = generateKeypair()
      const n = new NoisePeer({ agent: other.agent, keys: other })
      nodes.push(n)
      await n.send({ agent: k.agent, host: '127.0.0.1', port }, { hi: shape })
      await waitFor(() => got.length === 1, 'the message')
      assert.strictEqual(n.links()[0].pattern, 'KK')
    })
  }

  it('runs raw, as MyCHIPs\' JavaScript module does, when the pair has no private half (its protocol tests pass plain strings)', async () => {
    const port = await freePort()
    const p = new PeerNoise({ keys: { publicKey: 'P65434' }, host: '127.0.0.1', bind: '127.0.0.1', port }, () => {})
    nodes.push(p)
    assert.strictEqual(p.encrypted, false)
    assert.strictEqual(p.agent, Buffer.from('P65434').toString('base64url'), 'the agent id derived as MyCHIPs derives it')
  })
})

describe('peerModule: one flag between this package and MyCHIPs\' own module', () => {
  class OldModule { constructor (config, cb) { this.old = true; this.config = config; this.cb = cb } }
  const saved = process.env.MYCHIPS_PEER_NATIVE
  afterEach(() => { if (saved === undefined) delete process.env.MYCHIPS_PEER_NATIVE; else process.env.MYCHIPS_PEER_NATIVE = saved })

  it('builds PeerNoise by default and requires the fallback only when it is chosen', async () => {
    let required = 0
    const Module = peerModule({ fallback: () => { required++; return OldModule } })
    const port = await freePort()
    const p = new Module({ keys: { publicKey: 'x' }, port, bind: '127.0.0.1' }, () => {})
    assert.ok(p instanceof PeerNoise)
    await p.close()
    assert.strictEqual(required, 0)
    const old = new Module({ peerNative: false, port }, () => {})
    assert.ok(old instanceof OldModule && old.old)
    assert.strictEqual(required, 1)
  })

  it('follows MYCHIPS_PEER_NATIVE, and an explicit native flag over both', async () => {
    process.env.MYCHIPS_PEER_NATIVE = '0'
    const Module = peerModule({ fallback: () => OldModule })
    assert.ok(new Module({}, () => {}) instanceof OldModule)
    const Forced = peerModule({ native: true, kind: 'socket', fallback: () => OldModule })
    const s = new Forced({ port: await freePort(), bind: '127.0.0.1' }, () => {})
    assert.ok(s instanceof PeerSocket)
    await s.close()
    assert.throws(() => peerModule({ kind: 'other' }), { code: 'ERR_INVALID_ARGUMENT' })
    assert.throws(() => new (peerModule({ native: false }))({}, () => {}), { code: 'ERR_INVALID_ARGUMENT' })
  })
})

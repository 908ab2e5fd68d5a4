'use strict'
// PeerNoise against a JavaScript MyCHIPs node (the reference JsPeer): both
// roles, legacy on by default (JavaScript nodes dial us with a replayable
// first message), and a JavaScript node that runs unencrypted without
// saying so (MyCHIPs' module given { publicKey, privateKey }): reported as
// ERR_MODE_MISMATCH where it can be seen, never a hang, never plaintext.
const assert = require('assert')
const { PeerNoise } = require('..')
const { keypair, JsPeer } = require('./helpers/js-peer')
const { freePort, recordingLog } = require('./helpers/compat')
const { waitFor } = require('./helpers/wait')
const { Relay } = require('./helpers/wire-tap')

const HOST = '127.0.0.1'

describe('PeerNoise <-> a JavaScript MyCHIPs node', function () {
  this.timeout(15000)
  let closers = []
  afterEach(async () => { await Promise.all(closers.map((c) => c())); closers = [] })

  async function peerNoise (config = {}) {
    const id = keypair()
    const port = await freePort()
    const got = []
    const log = recordingLog()
    const p = new PeerNoise({ agent: id.agent, keys: { publicKey: id.publicKey, privateKey: id.privateKey }, host: HOST, bind: HOST, port, log, ...config }, (c, m) => {
      got.push({ c, m })
      if (m.echo) c.send({ echoed: m.echo })
    })
    closers.push(() => p.close())
    return { p, id, got, log, chad: { agent: id.agent, host: HOST, port } }
  }

  async function jsNode (opts = {}) {
    const id = keypair()
    const j = new JsPeer({ agent: id.agent, keys: id, host: HOST, checkTicket: async () => true, ...opts })
    await j.listen()
    closers.push(() => j.close())
    return j
  }

  it('takes a JavaScript node\'s call by key (N + K, its first message inside K) without configuration: legacy is on', async () => {
    const n = await peerNoise()
    const j = await jsNode()
    await j.send(n.chad, { target: 'chit', echo: 1, from: { cid: 'c' } })
    await waitFor(() => n.got.length === 1, 'the message inside K')
    assert.strictEqual(n.got[0].c.peerAgent, j.agent)
    assert.strictEqual(n.got[0].m.echo, 1)
    await j.waitDelivered(1)
    assert.deepStrictEqual(j.delivered[0].message, { echoed: 1 }, 'the answer on the same connection')
  })

  it('refuses JavaScript callers when legacy is turned off', async () => {
    const n = await peerNoise({ legacy: false })
    const j = await jsNode()
    await j.send(n.chad, { target: 'chit', n: 1 }).catch(() => {})
    await waitFor(() => n.log.lines.some((l) => /ERR_LEGACY_REFUSED/.test(l.text)), 'the refusal in the log')
    assert.strictEqual(n.got.length, 0)
  })

  it('dials a JavaScript node by key and by ticket; the JavaScript application gets only the real messages', async () => {
    const n = await peerNoise()
    const j = await jsNode()
    await new Promise((resolve, reject) => n.p.send({ to: j.address(), target: 'tally', action: 'ticket', ticket: { token: 't' }, n: 1 }, resolve, reject))
    await new Promise((resolve, reject) => n.p.send({ to: j.address(), target: 'chit', n: 2 }, resolve, reject))
    await j.waitDelivered(3)
    // A JavaScript responder hands the I payload (ticket, from) to its application, then the T messages.
    assert.deepStrictEqual(j.delivered.map((d) => d.via), ['I', 'T', 'T'])
    assert.deepStrictEqual(j.delivered.slice(1).map((d) => d.message.n), [1, 2])
    assert.deepStrictEqual(j.delivered[1].message.from, n.chad, 'from carries our CHIP address')
  })

  it('reports a JavaScript caller that runs unencrypted as ERR_MODE_MISMATCH, and delivers nothing', async () => {
    const n = await peerNoise()
    const j = await jsNode({ encrypt: false })
    await j.send(n.chad, { target: 'chit', n: 1 }).catch(() => {})
    await waitFor(() => n.log.lines.some((l) => /ERR_MODE_MISMATCH/.test(l.text)), 'the mismatch in the log')
    assert.strictEqual(n.got.length, 0)
  })

  it('fails a send to a JavaScript node that runs unencrypted, within the handshake timeout, and writes no plaintext', async () => {
    const n = await peerNoise({ handshakeTimeout: 1000 })
    const j = await jsNode({ encrypt: false })
    const tap = new Relay(j.port, HOST)
    await tap.listen()
    closers.push(() => tap.close())
    const t0 = Date.now()
    const err = await new Promise((resolve) => n.p.send({ to: { ...j.address(), port: tap.port }, target: 'chit', secret: 'SECRET-TEXT' }, () => resolve(null), resolve))
    assert.ok(err, 'the failure callback is called')
    assert.ok(['ERR_HANDSHAKE_REJECTED', 'ERR_HANDSHAKE_TIMEOUT', 'ERR_MODE_MISMATCH'].includes(err.code), err.code)
    assert.ok(Date.now() - t0 < 3000, 'no hang')
    const wire = Buffer.concat(tap.conns.flatMap((c) => c.up)).toString('latin1')
    assert.ok(!wire.includes('SECRET-TEXT'), 'nothing in plaintext')
    assert.ok(n.log.lines.some((l) => l.level === 'error' && l.text.includes(err.code)), 'the failure is logged')
  })
})

'use strict'
// What MyCHIPs' protocol suite asks of the peer link, with sites written
// here: three sites, each its own PeerNoise (built through peerModule, as
// MyCHIPs' lib/peernoise.js would) on its own PostgreSQL database. A user
// opens a tally with another site's user by ticket, they trade chits, and a
// lift travels along a chain of tallies and back, with the suite's fixed
// 250 ms pauses and mocha's 2 s timeout (the link must deliver promptly),
// and its checks of connections.size(). Once encrypted, with each site's
// database deciding who may connect, and once raw with MyCHIPs' test keys.
const assert = require('assert')
const sodium = require('sodium-native')
const { peerModule } = require('..')
const { TestServer } = require('../scripts/embedded-db')
const { freePort, recordingLog } = require('./helpers/compat')
const { sleep } = require('./helpers/wait')

const PeerModule = peerModule({ fallback: () => { throw new Error('the native module is expected here') } })
const HOST = '127.0.0.1'
const settle = () => sleep(250) // MyCHIPs' "wait for consensus to settle"

function ed25519Jwk () {
  const pk = Buffer.alloc(32)
  const sk = Buffer.alloc(64)
  sodium.crypto_sign_keypair(pk, sk)
  const x = pk.toString('base64url')
  return { publicKey: { kty: 'OKP', crv: 'Ed25519', x }, privateKey: { kty: 'OKP', crv: 'Ed25519', x, d: sk.subarray(0, 32).toString('base64url') } }
}

// A site: a peer module plus just enough application to play MyCHIPs'
// tally, chit and lift messages against its own database.
class Site {
  constructor (name, server, url, encrypted) {
    Object.assign(this, { name, server, url, encrypted, inbox: [], log: recordingLog(), chits: [], lifts: [] })
  }

  async start () {
    this.port = await freePort()
    const keys = this.encrypted ? ed25519Jwk() : { publicKey: `P${this.port}` } // MyCHIPs' raw test keys
    this.peer = new PeerModule({
      host: HOST,
      bind: HOST,
      port: this.port,
      keys,
      log: this.log,
      database: this.encrypted ? { connectionString: this.url } : undefined,
      queryCB: (req, data, cb) => { if (req === 'ticket') cb(true) } // raw sites: MyCHIPs' query answers
    }, (conn, msg) => this.receive(conn, msg))
    this.agent = this.peer.agent
    this.chad = { cid: this.name, agent: this.agent, host: HOST, port: this.port }
    if (this.encrypted) {
      await this.sql('insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3)', [this.agent, HOST, this.port])
      await this.sql('insert into mychips.users (user_ent, peer_cid, peer_agent) values ($1, $1, $2)', [this.name, this.agent])
    }
  }

  sql (text, params) { return this.server.sql(this.url, text, params) }

  send (msg) {
    return new Promise((resolve, reject) => this.peer.send(msg, resolve, reject))
  }

  async ticket () {
    if (!this.encrypted) return { token: 'raw-token', chad: this.chad }
    const r = await this.sql('insert into mychips.tokens (token_ent, token_seq) values ($1, (select count(*) + 1 from mychips.tokens)) returning token', [this.name])
    return { token: r.rows[0].token, chad: this.chad }
  }

  async recordTally (partner, status) {
    if (!this.encrypted) return
    await this.sql(`insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3) on conflict do nothing`, [partner.agent, partner.host, partner.port])
    await this.sql(`insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent)
      values ($1, (select count(*) + 1 from mychips.tallies), $2, $3, $4)`, [this.name, status, this.agent, partner.agent])
  }

  async setTallies (status) {
    if (this.encrypted) await this.sql('update mychips.tallies set status = $1 where tally_ent = $2', [status, this.name])
  }

  // MyCHIPs' message handlers, reduced to what crosses the link.
  async receive (conn, msg) {
    this.inbox.push(msg)
    if (msg.target === 'tally' && msg.action === 'ticket') {
      await this.recordTally(msg.from, 'draft')
      await this.send({ target: 'tally', action: 'draft', to: msg.from, from: this.chad })
    } else if (msg.target === 'tally' && msg.action === 'draft') {
      await this.recordTally(msg.from, 'draft')
    } else if (msg.target === 'chit') {
      this.chits.push(msg.units)
    } else if (msg.target === 'lift' && msg.action === 'query') {
      // Forward along the chain of tallies; the answer goes back the same way.
      const path = [...msg.path, this.name]
      const back = [...msg.back, msg.from]
      if (msg.next.length) {
        const [next, ...rest] = msg.next
        await this.send({ ...msg, path, back, next: rest, to: next, from: this.chad })
      } else {
        await this.send({ target: 'lift', action: 'good', path, back: back.slice(0, -1), to: back[back.length - 1], from: this.chad })
      }
    } else if (msg.target === 'lift' && msg.action === 'good') {
      if (msg.back.length) await this.send({ ...msg, back: msg.back.slice(0, -1), to: msg.back[msg.back.length - 1], from: this.chad })
      else this.lifts.push(msg.path)
    }
  }
}

for (const encrypted of [true, false]) {
  describe(`MyCHIPs sites over the peer link (${encrypted ? 'encrypted, partners from each site\'s database' : 'raw, MyCHIPs\' test keys'})`, function () {
    this.timeout(2000) // mocha's default, as in MyCHIPs' suite
    let server
    const sites = {}

    before(async function () {
      this.timeout(60000)
      server = await TestServer.start()
      for (const name of ['adam', 'bill', 'cora']) {
        const url = await server.createDatabase(`noise_site_${name}_${process.pid}_${encrypted ? 'e' : 'r'}`)
        sites[name] = new Site(name, server, url, encrypted)
        await sites[name].start()
      }
    })
    after(async function () {
      this.timeout(30000)
      await Promise.all(Object.values(sites).map((s) => s.peer.close()))
      if (server) await server.close()
    })

    it('adam opens a tally with bill by ticket (IK); bill records it and answers', async () => {
      const { adam, bill } = sites
      const ticket = await bill.ticket()
      await adam.send({ target: 'tally', action: 'ticket', ticket, to: ticket.chad, from: adam.chad })
      assert.strictEqual(adam.peer.connections.size(), 1)
      await settle()
      assert.deepStrictEqual(bill.inbox.map((m) => m.action), ['ticket'])
      assert.deepStrictEqual(adam.inbox.map((m) => m.action), ['draft'])
      assert.strictEqual(bill.peer.connections.size(), 1, 'bill answered on the link adam opened')
      if (encrypted) assert.strictEqual(adam.peer._peer.links()[0].pattern, 'IK')
    })

    it('bill opens a tally with cora by ticket the same way', async () => {
      const { bill, cora } = sites
      const ticket = await cora.ticket()
      await bill.send({ target: 'tally', action: 'ticket', ticket, to: ticket.chad, from: bill.chad })
      await settle()
      assert.deepStrictEqual(bill.inbox.map((m) => m.action), ['ticket', 'draft'])
      assert.strictEqual(bill.peer.connections.size(), 2)
    })

    it('the tallies open, and chits flow both ways, in order, on the open links', async () => {
      const { adam, bill, cora } = sites
      for (const s of [adam, bill, cora]) await s.setTallies('offer')
      for (const s of [adam, bill, cora]) await s.setTallies('open')
      for (let units = 1; units <= 20; units++) {
        await adam.send({ target: 'chit', action: 'pay', units, to: bill.chad, from: adam.chad })
        await bill.send({ target: 'chit', action: 'pay', units: -units, to: adam.chad, from: bill.chad })
      }
      await settle()
      assert.deepStrictEqual(bill.chits, Array.from({ length: 20 }, (_, i) => i + 1))
      assert.deepStrictEqual(adam.chits, Array.from({ length: 20 }, (_, i) => -(i + 1)))
      assert.strictEqual(adam.peer.connections.size(), 1)
    })

    it('reconnects by tally key (N + KK) after the links close, in both directions', async () => {
      const { adam, bill, cora } = sites
      for (const s of [adam, bill, cora]) s.peer.end()
      await settle()
      assert.strictEqual(adam.peer.connections.size() + bill.peer.connections.size(), 0)
      await bill.send({ target: 'chit', action: 'pay', units: 100, to: adam.chad, from: bill.chad })
      await cora.send({ target: 'chit', action: 'pay', units: 200, to: bill.chad, from: cora.chad })
      await settle()
      assert.strictEqual(adam.chits.slice(-1)[0], 100)
      assert.strictEqual(bill.chits.slice(-1)[0], 200)
      if (encrypted) assert.deepStrictEqual(adam.peer._peer.links().map((l) => l.pattern), ['KK'])
    })

    it('a lift travels adam -> bill -> cora along the tallies, and its answer comes back the same way', async () => {
      const { adam, bill, cora } = sites
      await adam.send({ target: 'lift', action: 'query', path: [], back: [], next: [cora.chad], to: bill.chad, from: adam.chad })
      await settle()
      assert.deepStrictEqual(adam.lifts, [['bill', 'cora']])
      assert.strictEqual(cora.peer.connections.size(), 1, 'cora talks to bill only')
      assert.strictEqual(bill.peer.connections.size(), 2)
    })

    if (encrypted) {
      it('a site that shares no tally with another is refused by key, and the refusal is logged', async () => {
        const { adam, cora } = sites
        const err = await adam.send({ target: 'chit', action: 'pay', units: 1, to: cora.chad, from: adam.chad }).then(() => null, (e) => e)
        assert.strictEqual(err && err.code, 'ERR_HANDSHAKE_REJECTED')
        await settle()
        assert.ok(cora.log.lines.some((l) => l.level === 'warn' && /ERR_UNKNOWN_PEER/.test(l.text)), 'cora logs why')
        assert.ok(adam.log.lines.some((l) => l.level === 'error' && /ERR_HANDSHAKE_REJECTED/.test(l.text)), 'adam logs the failed send')
        assert.strictEqual(cora.chits.length, 0, 'nothing from adam reached cora')
      })
    }
  })
}

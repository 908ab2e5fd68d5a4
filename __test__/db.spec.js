'use strict'
// The PostgreSQL store over real sockets and a real PostgreSQL (the embedded
// server, or DATABASE_URL's): who may connect by key (tally statuses), first
// contact by ticket, keys checked against agent ids, the cache kept true by
// LISTEN/NOTIFY, a database that goes away and comes back, and two processes
// that serve one node.
const assert = require('assert')
const path = require('path')
const { fork } = require('child_process')
const { NoisePeer, generateKeypair } = require('..')
const { TestServer } = require('../scripts/embedded-db')
const { DbWorld } = require('./helpers/db-world')
const { waitFor, rejection, sleep } = require('./helpers/wait')

const refusals = (peer) => peer.events.filter((e) => e.type === 'refused')
// Run `change` (SQL that makes the database notify) and wait until `peer`'s
// store has heard of it.
async function changed (peer, change) {
  const before = peer.stats().store.invalidations
  await change()
  await waitFor(() => peer.stats().store.invalidations > before, 'the notification')
}
const lastRefusal = (peer) => refusals(peer).slice(-1)[0]

describe('PostgreSQL store', function () {
  this.timeout(30000)
  let server
  let world
  let n = 0

  before(async function () {
    this.timeout(120000)
    server = await TestServer.start()
  })
  after(async () => { if (server) await server.close() })

  beforeEach(async () => {
    const url = await server.createDatabase(`noise_db_${process.pid}_${++n}`)
    world = new DbWorld(server, url)
  })
  afterEach(() => world.close())

  describe('KK: who may connect by key', () => {
    for (const status of ['draft', 'offer', 'open', 'close']) {
      it(`accepts a partner that shares a ${status} tally`, async () => {
        const b = await world.served()
        const p = await world.peer()
        await world.tally(b, p.id.agent, status)
        await p.send(b.addr, { hello: status })
        await waitFor(() => b.received.length === 1, 'the message')
        assert.deepStrictEqual(b.received[0].message, { hello: status })
        assert.strictEqual(b.received[0].from.agent, p.id.agent)
        assert.strictEqual(b.received[0].from.pattern, 'KK')
      })
    }

    it('refuses a partner whose only tally is void (ERR_UNKNOWN_PEER), delivering nothing', async () => {
      const b = await world.served()
      const p = await world.peer()
      await world.tally(b, p.id.agent, 'void')
      const err = await rejection(p.send(b.addr, { n: 1 }))
      assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_UNKNOWN_PEER')
      assert.strictEqual(lastRefusal(b).agent, p.id.agent)
      assert.strictEqual(b.received.length, 0)
    })

    it('refuses an agent the database does not know, and a known node that shares no tally with us', async () => {
      const b = await world.served()
      const unknown = await world.peer()
      const known = await world.peer()
      await world.knowAgent(known.id.agent)
      const other = await world.peer() // a partner of another agent in the same database
      await world.knowAgent(other.id.agent)
      await world.sql(`insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent)
        values ($1, 999, 'open', $2, $2)`, [world.user, other.id.agent])
      for (const caller of [unknown, known, other]) {
        const err = await rejection(caller.send(b.addr, { n: 1 }))
        assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
      }
      await waitFor(() => refusals(b).length === 3, 'three refusals')
      assert.deepStrictEqual(refusals(b).map((e) => e.reason), ['ERR_UNKNOWN_PEER', 'ERR_UNKNOWN_PEER', 'ERR_UNKNOWN_PEER'])
      assert.strictEqual(b.received.length, 0)
    })

    it('refuses a partner on its next handshake once its last tally is voided, then accepts it again after a new tally, with no restart', async () => {
      const b = await world.served()
      const p = await world.peer()
      const t = await world.tally(b, p.id.agent, 'offer')
      await p.send(b.addr, { n: 1 })
      p.end(b.id.agent)
      await waitFor(() => b.links().length === 0, 'the link to close')
      const { lookups, cacheHits } = b.stats().store
      await p.send(b.addr, { n: 2 }) // a second handshake: from the cache, no database
      assert.strictEqual(b.stats().store.lookups, lookups, 'no database lookup')
      assert.strictEqual(b.stats().store.cacheHits, cacheHits + 2, 'key and partner decision from the cache')
      p.end(b.id.agent)
      await waitFor(() => b.links().length === 0, 'the link to close')

      await changed(b, () => world.setStatus(t, 'void'))
      const err = await rejection(p.send(b.addr, { n: 3 }))
      assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_UNKNOWN_PEER')

      await changed(b, () => world.tally(b, p.id.agent, 'draft'))
      await p.send(b.addr, { n: 4 })
      await waitFor(() => b.received.length === 3, 'the message after the new tally')
      assert.deepStrictEqual(b.received.map((r) => r.message.n), [1, 2, 4])
    })

    it('refuses a partner whose tally was deleted', async () => {
      const b = await world.served()
      const p = await world.peer()
      const t = await world.tally(b, p.id.agent, 'draft')
      await p.send(b.addr, { n: 1 })
      p.end(b.id.agent)
      await waitFor(() => b.links().length === 0, 'the link to close')
      await changed(b, () => world.sql('delete from mychips.tallies where tally_seq = $1', [t]))
      await rejection(p.send(b.addr, { n: 2 }))
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_UNKNOWN_PEER')
    })

    it('keeps a link that is already open when the tally is voided (only the next handshake is refused)', async () => {
      const b = await world.served()
      const p = await world.peer()
      const t = await world.tally(b, p.id.agent, 'offer')
      await p.send(b.addr, { n: 1 })
      await changed(b, () => world.setStatus(t, 'void'))
      await p.send(b.addr, { n: 2 })
      await b.send({ agent: p.id.agent }, { back: 1 })
      await waitFor(() => b.received.length === 2 && p.received.length === 1, 'both ways')
    })
  })

  describe('keys: the database key must be the one the agent id names', () => {
    it('refuses a partner whose stored agent_key differs from its id (ERR_KEY_MISMATCH)', async () => {
      const b = await world.served()
      const p = await world.peer()
      await world.tally(b, p.id.agent, 'open')
      await world.sql('update mychips.agents set agent_key = $1 where agent = $2', [generateKeypair().publicKey, p.id.agent])
      await rejection(p.send(b.addr, { n: 1 }))
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_KEY_MISMATCH')
      assert.strictEqual(b.received.length, 0)
    })

    it('rejects a send to an agent whose stored key differs from its id, before dialling', async () => {
      const b = await world.served()
      const target = generateKeypair()
      await world.knowAgent(target.agent)
      await world.sql('update mychips.agents set agent_key = $1 where agent = $2', [generateKeypair().publicKey, target.agent])
      const err = await rejection(b.send({ agent: target.agent, host: '127.0.0.1', port: 9 }, { n: 1 }))
      assert.strictEqual(err.code, 'ERR_KEY_MISMATCH')
    })

    it('forgets a cached key after cacheTtl', async () => {
      const b = await world.served({ database: { cacheTtl: 300 } })
      const p = await world.peer()
      await world.tally(b, p.id.agent, 'open')
      await p.send(b.addr, { n: 1 }) // caches p's key
      p.end(b.id.agent)
      await waitFor(() => b.links().length === 0, 'the link to close')
      await world.sql('update mychips.agents set agent_key = $1 where agent = $2', [generateKeypair().publicKey, p.id.agent])
      await sleep(400)
      await rejection(p.send(b.addr, { n: 2 }))
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_KEY_MISMATCH')
    })

    it('forgets cached keys at once when the optional agents trigger is installed', async () => {
      await server.installAgentsNotify(world.url)
      const b = await world.served() // default cacheTtl: 60 s
      const p = await world.peer()
      await world.tally(b, p.id.agent, 'open')
      await p.send(b.addr, { n: 1 })
      p.end(b.id.agent)
      await waitFor(() => b.links().length === 0, 'the link to close')
      await changed(b, () => world.sql('update mychips.agents set agent_key = $1 where agent = $2', [generateKeypair().publicKey, p.id.agent]))
      await rejection(p.send(b.addr, { n: 2 }))
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_KEY_MISMATCH')
    })
  })

  describe('IK: first contact by ticket', () => {
    it('lets a first contact in with a valid ticket, before any tally names it', async () => {
      const b = await world.served()
      const stranger = await world.peer()
      const ticket = await world.ticket()
      await stranger.send(b.addr, { target: 'tally', action: 'ticket' }, { ticket })
      await waitFor(() => b.received.length === 1, 'the message')
      assert.strictEqual(b.received[0].from.pattern, 'IK')
      assert.strictEqual(b.received[0].from.agent, stranger.id.agent)
      const rows = await world.sql('select used from mychips.tokens where token = $1', [ticket.token])
      assert.strictEqual(rows.rows[0].used, null, 'checked, not used up: MyCHIPs consumes it in its tally logic')
    })

    for (const [how, opts] of [['expired', { expired: true }], ['used', { used: true }]]) {
      it(`refuses an ${how} ticket (ERR_TICKET_REFUSED on both sides)`, async () => {
        const b = await world.served()
        const stranger = await world.peer()
        const ticket = await world.ticket(opts)
        const err = await rejection(stranger.send(b.addr, { n: 1 }, { ticket }))
        assert.strictEqual(err.code, 'ERR_TICKET_REFUSED')
        await waitFor(() => refusals(b).length === 1, 'the refusal')
        assert.strictEqual(lastRefusal(b).reason, 'ERR_TICKET_REFUSED')
        assert.strictEqual(b.received.length, 0)
      })
    }

    it('refuses an unknown ticket, and one that is not even a token', async () => {
      const b = await world.served()
      const stranger = await world.peer()
      for (const ticket of [{ token: 'no-such-token' }, 42]) {
        const err = await rejection(stranger.send(b.addr, { n: 1 }, { ticket }))
        assert.strictEqual(err.code, 'ERR_TICKET_REFUSED')
      }
      assert.strictEqual(b.received.length, 0)
    })

    it('uses a ticket up when consumeTickets is set, so it opens one link only', async () => {
      const b = await world.served({ database: { consumeTickets: true } })
      const s1 = await world.peer()
      const s2 = await world.peer()
      const ticket = await world.ticket()
      await s1.send(b.addr, { n: 1 }, { ticket })
      const err = await rejection(s2.send(b.addr, { n: 2 }, { ticket }))
      assert.strictEqual(err.code, 'ERR_TICKET_REFUSED')
      const rows = await world.sql('select used from mychips.tokens where token = $1', [ticket.token])
      assert.ok(rows.rows[0].used, 'marked used')
    })

    it('combines: the database for keys and tallies, a callback for tickets', async () => {
      const seen = []
      const b = await world.served({ peer: { checkTicket: async (ticket) => { seen.push(ticket); return ticket === 'cb-ticket' } } })
      const p = await world.peer()
      await world.tally(b, p.id.agent, 'open')
      await p.send(b.addr, { kk: 1 })
      const stranger = await world.peer()
      await stranger.send(b.addr, { ik: 1 }, { ticket: 'cb-ticket' })
      const dbTicket = await world.ticket()
      const err = await rejection((await world.peer()).send(b.addr, { ik: 2 }, { ticket: dbTicket }))
      assert.strictEqual(err.code, 'ERR_TICKET_REFUSED', 'the database ticket means nothing to the callback')
      await waitFor(() => b.received.length === 2, 'both messages')
      assert.deepStrictEqual(seen, ['cb-ticket', dbTicket])
    })
  })

  describe('a database that goes away', () => {
    it('fails closed with ERR_STORE_UNAVAILABLE while it is down, keeps open links working, and recovers when it is back', async function () {
      if (server.external) this.skip() // cannot stop a server we did not start
      const b = await world.served({ peer: { handshakeTimeout: 2000 }, database: { timeout: 500 } })
      const p = await world.peer()
      const q = await world.peer()
      await world.tally(b, p.id.agent, 'open')
      await world.tally(b, q.id.agent, 'open')
      await p.send(b.addr, { n: 1 }) // an open link, and q's decision not cached
      await waitFor(() => b.stats().store.listening, 'the notification connection')

      await server.stop()
      await waitFor(() => !b.stats().store.listening, 'the store to notice')
      const t0 = Date.now()
      const err = await rejection(q.send(b.addr, { n: 1 }))
      assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
      await waitFor(() => refusals(b).length === 1, 'the refusal')
      assert.strictEqual(lastRefusal(b).reason, 'ERR_STORE_UNAVAILABLE')
      assert.ok(Date.now() - t0 < 2000, `refused within the handshake timeout (${Date.now() - t0} ms)`)

      // Our own dial needs the database for the partner's key: it fails closed too.
      const dialErr = await rejection(b.send({ agent: generateKeypair().agent, host: '127.0.0.1', port: 9 }, { n: 1 }))
      assert.strictEqual(dialErr.code, 'ERR_STORE_UNAVAILABLE')

      // The link that was open carries on, both ways.
      await p.send(b.addr, { n: 2 })
      await b.send({ agent: p.id.agent }, { back: 1 })
      await waitFor(() => b.received.length === 2 && p.received.length === 1, 'traffic on the open link')

      await server.restart()
      await waitFor(() => b.stats().store.listening, 'the store to reconnect', 15000)
      await q.send(b.addr, { n: 2 })
      await waitFor(() => b.received.some((r) => r.from.agent === q.id.agent), 'q gets in again')
      assert.ok(b.stats().store.failures >= 2)
    })
  })

  it('fails closed within database.timeout when the database is slow, and keeps serving partners it has cached', async () => {
    // The partner question takes 5 s; the lookup deadline is 300 ms.
    const slow = "select pg_sleep(5) is not null and exists (select 1 from mychips.tallies where part_agent = $1 and hold_agent = $2 and status = any($3))"
    const b = await world.served({ database: { timeout: 300, queries: { partner: slow } } })
    const p = await world.peer()
    await world.tally(b, p.id.agent, 'open')
    const t0 = Date.now()
    const err = await rejection(p.send(b.addr, { n: 1 }))
    assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
    await waitFor(() => refusals(b).length === 1, 'the refusal')
    assert.strictEqual(lastRefusal(b).reason, 'ERR_STORE_UNAVAILABLE')
    assert.ok(Date.now() - t0 < 1500, `refused after ${Date.now() - t0} ms, not after the 5 s query`)
    // The statement timeout ended the query on the server too: the pool is usable at once.
    const ticket = await world.ticket()
    await (await world.peer()).send(b.addr, { ik: 1 }, { ticket })
    await waitFor(() => b.received.length === 1, 'a first contact that needs no partner query')
  })

  it('reports a query the database refuses (a wrong column) as ERR_LOOKUP_FAILED with the server\'s reason, not as a database that is down', async () => {
    const broken = 'select exists (select 1 from mychips.tallies where no_such_column = $1)'
    const b = await world.served({ database: { queries: { partner: broken } } })
    const p = await world.peer()
    await world.tally(b, p.id.agent, 'open')
    const err = await rejection(p.send(b.addr, { n: 1 }))
    assert.strictEqual(err.code, 'ERR_HANDSHAKE_REJECTED')
    // Our own fault, not the caller's: an error event, not a refusal.
    await waitFor(() => b.events.some((e) => e.type === 'error'), 'the error event')
    const failed = b.events.find((e) => e.type === 'error')
    assert.strictEqual(failed.reason, 'ERR_LOOKUP_FAILED')
    assert.match(failed.message, /partner query .*no_such_column.*42703/)
    assert.strictEqual(refusals(b).length, 0)
    // The other questions still reach the database: a first contact gets in.
    const ticket = await world.ticket()
    await (await world.peer()).send(b.addr, { ik: 1 }, { ticket })
    await waitFor(() => b.received.length === 1, 'a first contact that needs no partner query')
  })

  describe('two processes that serve one node', () => {
    it('both refuse a partner on its next handshake once its tally is voided', async () => {
      const b1 = await world.served()
      const child = fork(path.join(__dirname, 'helpers', 'db-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const replies = []
      child.on('message', (m) => replies.push(m))
      try {
        child.send({ url: world.url, identity: { agent: b1.id.agent, privateKey: b1.id.privateKey.toString('base64') } })
        await waitFor(() => replies.some((m) => m.port), 'the second process to listen', 10000)
        const b2addr = { agent: b1.id.agent, host: '127.0.0.1', port: replies.find((m) => m.port).port }
        const p = await world.peer()
        const t = await world.tally(b1, p.id.agent, 'offer')
        const roundTrip = async (addr, n) => {
          await p.send(addr, { n })
          p.end(b1.id.agent)
          await waitFor(() => p.links().length === 0, 'the link to close')
        }
        await roundTrip(b1.addr, 1) // each process caches p as a partner...
        await roundTrip(b2addr, 2)
        await roundTrip(b2addr, 3) // ...and the second handshake comes from its cache

        const childStats = async () => {
          const at = replies.length
          child.send({ report: true })
          await waitFor(() => replies.length > at, 'a report from the second process')
          return replies[replies.length - 1]
        }
        const childBefore = (await childStats()).stats.store.invalidations
        await changed(b1, () => world.setStatus(t, 'void'))
        for (let tries = 0; (await childStats()).stats.store.invalidations === childBefore; tries++) {
          if (tries > 200) throw new Error('the second process did not hear the notification')
          await sleep(10)
        }
        assert.strictEqual((await rejection(p.send(b1.addr, { n: 4 }))).code, 'ERR_HANDSHAKE_REJECTED')
        assert.strictEqual((await rejection(p.send(b2addr, { n: 5 }))).code, 'ERR_HANDSHAKE_REJECTED')
        // The second process reports its refusal on its own thread, which may
        // be after our side saw the connection close: ask until it has.
        let report = await childStats()
        for (let tries = 0; report.refused.length === 0 && tries < 200; tries++) {
          await sleep(10)
          report = await childStats()
        }
        assert.deepStrictEqual(report.refused, ['ERR_UNKNOWN_PEER'])
        assert.ok(report.stats.store.invalidations > childBefore, 'the second process heard the notification too')
        assert.ok(report.stats.store.cacheHits >= 2, 'it had p cached as a partner')
        assert.deepStrictEqual(b1.received.map((r) => r.message.n), [1])
        assert.deepStrictEqual(report.received, [2, 3])
      } finally {
        child.send({ close: true })
        await new Promise((resolve) => child.once('exit', resolve))
      }
    })
  })

  describe('configuration', () => {
    it('reads DATABASE_URL for database: true, and refuses a missing URL or a timeout that is not below the handshake timeout', async () => {
      const id = generateKeypair()
      const saved = process.env.DATABASE_URL
      try {
        delete process.env.DATABASE_URL
        assert.throws(() => new NoisePeer({ agent: id.agent, keys: id, database: true }), { code: 'ERR_INVALID_ARGUMENT' })
        process.env.DATABASE_URL = world.url
        const p = new NoisePeer({ agent: id.agent, keys: id, database: true })
        await p.close()
      } finally {
        if (saved === undefined) delete process.env.DATABASE_URL
        else process.env.DATABASE_URL = saved
      }
      assert.throws(() => new NoisePeer({ agent: id.agent, keys: id, handshakeTimeout: 1000, database: { connectionString: world.url, timeout: 1000 } }), { code: 'ERR_INVALID_ARGUMENT' })
      assert.throws(() => new NoisePeer({ agent: id.agent, keys: id, database: { connectionString: 'not a url at all ::' } }), { code: 'ERR_INVALID_ARGUMENT' })
    })
  })
})

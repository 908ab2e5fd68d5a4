'use strict'
// npm run demo: the main job on a fresh machine. Nodes on loopback whose
// keys, tally partners and tickets live in PostgreSQL (an embedded server,
// or the one DATABASE_URL names), as a MyCHIPs site keeps them:
//
//   1. Bob issues a one-time ticket; Alice makes first contact with it (IK).
//   2. The contact makes a tally, in both databases.
//   3. Later Alice reconnects by tally key (N + KK).
//   4. Alice asks Carol, a referee, anonymously (NK).
//   5. Mallory, a stranger, is refused, with the reason.
//   6. Bob voids the tally; Alice is refused on her next handshake.
//   7. What crossed the wire, frame by frame.
//
// Everything it creates (databases, a server, a data directory) is removed
// at the end, also on Ctrl-C.

const { NoisePeer, generateKeypair } = require('..')
const { TestServer } = require('../scripts/embedded-db')
const { Relay } = require('../__test__/helpers/wire-tap')

const short = (agent) => (agent ? agent.slice(0, 8) + '…' : 'anonymous')
const say = (who, text) => console.log(`   ${who.padEnd(8)} ${text}`)
const step = (n, text) => console.log(`\n${n}. ${text}`)
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const cleanups = []
let cleaning = null
function cleanup () {
  cleaning = cleaning || (async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {})
  })()
  return cleaning
}
process.on('SIGINT', () => {
  console.log('\ninterrupted: cleaning up')
  cleanup().then(() => process.exit(130))
})

// Wait for `predicate()`, up to `ms`.
async function until (predicate, what, ms = 5000) {
  const end = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await pause(5)
  }
}

async function main () {
  console.log('mychips-noise demo: MyCHIPs-style nodes on loopback; who may connect is in PostgreSQL\n')
  const server = new TestServer()
  cleanups.push(() => server.close())
  await server.start()
  const tag = `${process.pid}`
  const dbAlice = await server.createDatabase(`noise_demo_alice_${tag}`)
  const dbBob = await server.createDatabase(`noise_demo_bob_${tag}`)
  console.log(server.external
    ? '   postgres: the server DATABASE_URL names (two throwaway databases)'
    : `   postgres: an embedded server on 127.0.0.1:${server.port} (DATABASE_URL is not set)`)

  // A node whose database is `url`, with a row for itself and one user.
  const nodes = []
  async function node (name, url, opts = {}) {
    const id = generateKeypair()
    const peer = new NoisePeer({ agent: id.agent, keys: id, handshakeTimeout: 2000, ...(url ? { database: url } : {}), ...opts })
    const addr = { agent: id.agent, ...(await peer.listen()) }
    cleanups.push(() => peer.close())
    const n = { name, id, peer, addr, url, received: [], refused: [] }
    peer.onMessage((from, msg) => n.received.push({ from, msg }))
    peer.onEvent((e) => { if (e.type === 'refused') n.refused.push(e) })
    if (url) {
      await server.sql(url, 'insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3)', [id.agent, addr.host, addr.port])
      await server.sql(url, 'insert into mychips.users (user_ent, peer_cid, peer_agent) values ($1, $1, $2)', [name, id.agent])
    }
    nodes.push(n)
    say(name, `agent ${short(id.agent)}  listens ${addr.host}:${addr.port}${url ? '  keys, partners, tickets from its database' : ''}${opts.referee ? '  (referee)' : ''}`)
    return n
  }
  const alice = await node('alice', dbAlice)
  const bob = await node('bob', dbBob)
  const carol = await node('carol', null, { referee: true })
  const mallory = await node('mallory', null)

  // Everything sent to Bob goes through a tap that records the frames.
  const tap = new Relay(bob.addr.port)
  await tap.listen()
  cleanups.push(() => tap.close())
  const bobVia = { ...bob.addr, port: tap.port }
  const legs = [] // which tapped connection was what
  const tapped = async (label, fn) => {
    legs.push({ label, index: tap.conns.length })
    return fn()
  }

  step(1, 'Bob issues a one-time ticket; Alice makes first contact with it (IK)')
  const t = await server.sql(dbBob, "insert into mychips.tokens (token_ent, token_seq) values ('bob', 1) returning token, expires")
  const ticket = { token: t.rows[0].token, expires: t.rows[0].expires, chad: { cid: 'bob', agent: bob.id.agent, host: bob.addr.host, port: bob.addr.port } }
  say('bob', `ticket ${ticket.token.slice(0, 8)}… in mychips.tokens, valid until ${ticket.expires.toISOString()}`)
  await tapped('first contact (IK)', () => alice.peer.send(bobVia, { target: 'tally', action: 'ticket', from: { cid: 'alice' } }, { ticket }))
  await until(() => bob.received.length === 1, 'the first contact')
  let r = bob.received[0]
  say('bob', `<- ${short(r.from.agent)} (${r.from.pattern}, ticket checked by mychips.token_valid): ${JSON.stringify(r.msg)}`)

  step(2, 'The first contact makes a draft tally, on both sides')
  await server.sql(dbAlice, 'insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3)', [bob.id.agent, bob.addr.host, bob.addr.port])
  await server.sql(dbBob, 'insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3)', [alice.id.agent, alice.addr.host, alice.addr.port])
  await server.sql(dbAlice, "insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent) values ('alice', 1, 'draft', $1, $2)", [alice.id.agent, bob.id.agent])
  await server.sql(dbBob, "insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent) values ('bob', 1, 'draft', $1, $2)", [bob.id.agent, alice.id.agent])
  say('alice', 'mychips.tallies: alice 1, draft, partner bob')
  say('bob', 'mychips.tallies: bob 1, draft, partner alice')
  alice.peer.end(bob.id.agent)
  await until(() => bob.peer.links().length === 0, 'the first link to close')

  step(3, 'Later, Alice reconnects by tally key (N + KK) and they trade offers on one link')
  await tapped('tally partner (N + KK)', () => alice.peer.send(bobVia, { target: 'tally', action: 'offer', units: 0 }))
  await until(() => bob.received.length === 2, 'the offer')
  r = bob.received[1]
  say('bob', `<- ${short(r.from.agent)} (${r.from.pattern}: bob's database says alice shares a draft tally): ${JSON.stringify(r.msg)}`)
  await server.sql(dbBob, "update mychips.tallies set status = 'offer' where tally_ent = 'bob'")
  await bob.peer.send({ agent: alice.id.agent }, { target: 'tally', action: 'received' })
  await until(() => alice.received.length === 1, 'the answer')
  say('alice', `<- ${short(alice.received[0].from.agent)} (same link, ${alice.received[0].from.pattern}): ${JSON.stringify(alice.received[0].msg)}`)
  await alice.peer.send(bobVia, { target: 'chit', action: 'pay', units: 1200 })
  await until(() => bob.received.length === 3, 'the chit')
  say('bob', `<- ${short(bob.received[2].from.agent)} (${bob.received[2].from.pattern}, same link): ${JSON.stringify(bob.received[2].msg)}`)

  step(4, 'Alice asks Carol, a referee, without saying who she is (NK)')
  carol.peer.onMessage((from, msg) => carol.peer.send({ link: from.link }, { answer: 'route found', to: msg.query }).catch(() => {}))
  await alice.peer.send(carol.addr, { query: 'route to dan' }, { referee: true })
  await until(() => carol.received.length === 1 && alice.received.length === 2, 'the referee answer')
  say('carol', `<- ${short(carol.received[0].from.agent)} (${carol.received[0].from.pattern}): ${JSON.stringify(carol.received[0].msg)}`)
  say('alice', `<- carol (${alice.received[1].from.pattern}): ${JSON.stringify(alice.received[1].msg)}`)

  step(5, 'Mallory, a stranger who knows Bob\'s address, tries to connect by key')
  const err = await tapped('stranger (N + KK)', () => mallory.peer.send(bobVia, { target: 'tally', action: 'offer' }).then(() => null, (e) => e))
  say('mallory', `send rejected: ${err && err.code} (${err && err.message})`)
  await until(() => bob.refused.length === 1, 'the refusal')
  say('bob', `refused ${short(bob.refused[0].agent)}: ${bob.refused[0].reason} (no tally with bob in his database)`)

  step(6, 'Bob voids the tally; Alice is refused on her next handshake')
  alice.peer.end(bob.id.agent)
  await until(() => bob.peer.links().length === 0, 'the link to close')
  const heard = bob.peer.stats().store.invalidations
  await server.sql(dbBob, "update mychips.tallies set status = 'void' where tally_ent = 'bob'")
  await until(() => bob.peer.stats().store.invalidations > heard, 'the notification')
  say('bob', 'mychips.tallies: bob 1 is void; mychips_admin notified, bob\'s cache forgot alice (no restart)')
  const err2 = await tapped('former partner (N + KK)', () => alice.peer.send(bobVia, { target: 'chit', action: 'pay' }).then(() => null, (e) => e))
  say('alice', `send rejected: ${err2 && err2.code}`)
  await until(() => bob.refused.length === 2, 'the refusal')
  say('bob', `refused ${short(bob.refused[1].agent)}: ${bob.refused[1].reason}`)

  step(7, 'What crossed the wire to and from Bob (a tap on his port)')
  await pause(100)
  const rows = legs.map(({ label, index }) => {
    const show = (frames) => frames.map((f) => `${f.letter} ${f.length + 4}`).join(', ') || '-'
    return [label, show(tap.frames(index, 'up')), show(tap.frames(index, 'down'))]
  })
  const head = ['link', 'to Bob (letter, bytes)', 'from Bob']
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
  for (const row of [head, width.map((w) => '-'.repeat(w)), ...rows]) {
    console.log('   ' + row.map((c, i) => c.padEnd(width[i])).join('  '))
  }
  console.log('   (I: first contact, N: who is calling, K and A: the key handshake, T: a message; every byte after the letter is encrypted)')
  const s = bob.peer.stats().store
  console.log(`\n   bob's store: ${s.lookups} database lookups, ${s.cacheHits} answered from the cache, ${s.invalidations} notifications heard, ${s.failures} failures`)
}

main()
  .then(() => cleanup())
  .then(() => console.log('\ndone: databases dropped, nodes closed' + (process.env.DATABASE_URL ? '' : ', embedded server stopped and removed')))
  .catch(async (err) => {
    console.error('demo failed:', err)
    await cleanup()
    process.exitCode = 1
  })

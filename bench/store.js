'use strict'
// KK handshakes against a node whose partners live in PostgreSQL (an embedded
// server from scripts/embedded-db.js, or DATABASE_URL's), beside the same node
// with a callback store. `cacheTtl: 1` makes every handshake ask the database
// (cold); the default keeps the partner's answers (warm). Runs in the bench's
// own process (it measures handshake rates, not CPU or memory); the database
// server is stopped on every way out.

const { NoisePeer, generateKeypair } = require('..')
const { TestServer } = require('../scripts/embedded-db')
const { onSignal } = require('./harness')
const { median, withDeadline, hrnow } = require('./util')

const now = () => Number(hrnow()) / 1e6

async function variantRound (served, caller, opts, links, ms) {
  const keys = new Map([[served.agent, served.publicKey], [caller.agent, caller.publicKey]])
  const b = new NoisePeer({ agent: served.agent, keys: served, ...opts(keys) })
  const a = new NoisePeer({ agent: caller.agent, keys: caller })
  try {
    // The caller is given the key, so only the served node's store is measured.
    const addr = { agent: served.agent, key: served.publicKey, ...(await b.listen()) }
    let opening = 0 // time from connect() to open; closing between is not counted
    const once = async () => {
      const t0 = now()
      await a.connect(addr)
      opening += now() - t0
      a.end(served.agent)
      const until = Date.now() + 5000
      while (a.links().length || b.links().length) {
        if (Date.now() > until) throw new Error('bench: a link to the store node did not close within 5 s')
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    }
    await once() // warm-up: connections, statements, the cache
    opening = 0
    await withDeadline((async () => { for (let i = 0; i < links; i++) await once() })(), ms, 'store handshakes')
    return { rate: links / (opening / 1000), stats: opts(keys).database ? b.stats().store : null }
  } finally {
    await Promise.all([a.close(), b.close()])
  }
}

async function storeHandshakes ({ rounds, links, ms, progress }) {
  const server = await TestServer.start()
  const forget = onSignal(() => server.close())
  try {
    const url = await server.createDatabase(`noise_bench_${process.pid}`)
    const served = generateKeypair()
    const caller = generateKeypair()
    await server.sql(url, 'insert into mychips.agents (agent) values ($1), ($2)', [served.agent, caller.agent])
    await server.sql(url, "insert into mychips.users (user_ent, peer_cid, peer_agent) values ('u', 'u', $1)", [served.agent])
    await server.sql(url, "insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent) values ('u', 1, 'open', $1, $2)", [served.agent, caller.agent])
    const variants = {
      callback: (keys) => ({ peerKey: async (a) => keys.get(a) || null }),
      'database, cache warm': () => ({ database: { connectionString: url } }),
      'database, cache cold': () => ({ database: { connectionString: url, cacheTtl: 1 } })
    }
    const out = Object.fromEntries(Object.keys(variants).map((k) => [k, { rounds: [], stats: null }]))
    for (let r = 0; r < rounds; r++) {
      for (const [name, opts] of Object.entries(variants)) { // interleaved, so drift hits all alike
        progress(`store · KK handshakes, ${name} · round ${r + 1}/${rounds}`)
        const { rate, stats } = await variantRound(served, caller, opts, links, ms)
        out[name].rounds.push(rate)
        out[name].stats = stats
      }
    }
    for (const v of Object.values(out)) v.value = median(v.rounds)
    return out
  } finally {
    await server.close()
    forget()
  }
}

module.exports = { storeHandshakes }

'use strict'
// npm run bench: throughput and handshake cost of NoisePeer, as ratios against the
// alternatives measured in the same run on the same machine:
//   - the JavaScript Noise module MyCHIPs nodes run today (noise-protocol over
//     frame-stream; here the reference peer from __test__/helpers/js-peer.js),
//   - a plain unencrypted TCP socket carrying newline-delimited JSON (the shape of
//     MyCHIPs' existing socket module).
// Absolute numbers depend on the machine; the ratios are what we track.
// Loopback only; every loop is bounded. Options: BENCH_N (messages), BENCH_LINKS.

const net = require('net')
const { execFileSync } = require('child_process')
const { NoisePeer, generateKeypair } = require('..')
const { JsPeer, keypair } = require('../__test__/helpers/js-peer')

const N = Number(process.env.BENCH_N || 20000)
const LINKS = Number(process.env.BENCH_LINKS || 200)
const IDLE = Number(process.env.BENCH_IDLE_LINKS || 300)
const ROUNDS = 3
const MESSAGE = { target: 'chit', action: 'update', to: { cid: 'bob', agent: 'x' }, from: { cid: 'alice' }, object: { uuid: '8c1bd0f0-1111-4e2a-9c0f-5b6a7c8d9e0f', units: 12345, memo: 'x'.repeat(160) } }

const now = () => Number(process.hrtime.bigint()) / 1e6
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function deadline (ms, what) {
  let timer
  const p = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`bench: ${what} took over ${ms} ms`)), ms) })
  return { p, clear: () => clearTimeout(timer) }
}

// --- the three contenders, behind one shape: { send(i), onCount(cb), close() } --------

async function noisePair (encrypt) {
  const ids = [generateKeypair(), generateKeypair()]
  const keys = new Map(ids.map(k => [k.agent, k.publicKey]))
  const peers = ids.map(id => new NoisePeer({ agent: id.agent, keys: encrypt ? id : undefined, encrypt, peerKey: async a => keys.get(a) || null }))
  const [a, b] = peers
  const addr = { agent: ids[1].agent, ...(await b.listen()) }
  await a.listen()
  let count = 0
  let waiter = null
  b.onMessage(() => { count++; if (waiter) waiter() })
  return {
    send: () => a.send(addr, MESSAGE),
    received: () => count,
    wait: (target) => new Promise(resolve => { waiter = () => { if (count >= target) resolve() }; waiter() }),
    handshake: async () => { await a.connect(addr); a.end(ids[1].agent) },
    close: () => Promise.all(peers.map(p => p.close()))
  }
}

async function jsPair () {
  const ids = [keypair(), keypair()]
  const keys = new Map(ids.map(k => [k.agent, k.publicKey]))
  const peers = ids.map(id => new JsPeer({ agent: id.agent, keys: id, peerKey: async a => keys.get(a) || null }))
  const [a, b] = peers
  await a.listen()
  const addr = { ...(await b.listen()), agent: ids[1].agent }
  let count = 0
  let waiter = null
  b.on('message', () => { count++; if (waiter) waiter() })
  // The reference peer logs every frame and message for tests; keep the logs short here.
  const trim = () => { for (const p of peers) { p.frames.length = 0; p.delivered.length = 0 } }
  return {
    send: () => a.send(addr, MESSAGE),
    received: () => count,
    wait: (target) => new Promise(resolve => { waiter = () => { if (count >= target) { trim(); resolve() } }; waiter() }),
    handshake: async () => {
      const before = count
      await a.send(addr, MESSAGE) // a JS node opens a link only with a message in K
      await new Promise(resolve => { waiter = () => { if (count > before) resolve() }; waiter() })
      for (const c of [...a.conns]) c.close('bench')
      trim()
    },
    close: () => Promise.all(peers.map(p => p.close()))
  }
}

async function plainPair () {
  let count = 0
  let waiter = null
  const server = net.createServer(socket => {
    let buf = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => {
      buf += chunk
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        JSON.parse(buf.slice(0, i))
        buf = buf.slice(i + 1)
        count++
      }
      if (waiter) waiter()
    })
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = net.connect(server.address().port, '127.0.0.1')
  await new Promise(resolve => client.once('connect', resolve))
  client.setNoDelay(true)
  return {
    send: () => new Promise(resolve => client.write(JSON.stringify(MESSAGE) + '\n', resolve)),
    received: () => count,
    wait: (target) => new Promise(resolve => { waiter = () => { if (count >= target) resolve() }; waiter() }),
    close: () => new Promise(resolve => { client.destroy(); server.close(resolve) })
  }
}

// --- measurements ----------------------------------------------------------------------

async function throughput (make) {
  const times = []
  for (let r = 0; r < ROUNDS; r++) {
    const pair = await make()
    await pair.send()
    await pair.wait(1) // link open before the clock starts
    const guard = deadline(120000, 'throughput')
    const t0 = now()
    const sends = []
    for (let i = 0; i < N; i++) sends.push(pair.send())
    await Promise.race([Promise.all(sends).then(() => pair.wait(N + 1)), guard.p])
    times.push(now() - t0)
    guard.clear()
    await pair.close()
  }
  return N / (median(times) / 1000)
}

async function handshakes (make) {
  const pair = await make()
  const guard = deadline(120000, 'handshakes')
  const t0 = now()
  await Promise.race([(async () => { for (let i = 0; i < LINKS; i++) await pair.handshake() })(), guard.p])
  const ms = now() - t0
  guard.clear()
  await pair.close()
  return LINKS / (ms / 1000)
}

// Handshakes against a node whose partners live in PostgreSQL, beside the
// same node with a callback store. `cacheTtl: 1` makes every handshake ask
// the database (cold); the default keeps the partner's answers (warm).
async function storeHandshakes (server, url) {
  const served = generateKeypair()
  const caller = generateKeypair()
  await server.sql(url, 'insert into mychips.agents (agent) values ($1), ($2)', [served.agent, caller.agent])
  await server.sql(url, "insert into mychips.users (user_ent, peer_cid, peer_agent) values ('u', 'u', $1)", [served.agent])
  await server.sql(url, "insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent) values ('u', 1, 'open', $1, $2)", [served.agent, caller.agent])
  const keys = new Map([[served.agent, served.publicKey], [caller.agent, caller.publicKey]])
  const variants = {
    callback: { peerKey: async (a) => keys.get(a) || null },
    'database, cache warm': { database: { connectionString: url } },
    'database, cache cold': { database: { connectionString: url, cacheTtl: 1 } }
  }
  const rates = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, opts] of Object.entries(variants)) { // interleaved, so drift hits all alike
      const b = new NoisePeer({ agent: served.agent, keys: served, ...opts })
      const a = new NoisePeer({ agent: caller.agent, keys: caller })
      // The caller is given the key, so only the served node's store is measured.
      const addr = { agent: served.agent, key: served.publicKey, ...(await b.listen()) }
      let opening = 0 // time from connect() to open; closing between is not counted
      const once = async () => {
        const t0 = now()
        await a.connect(addr)
        opening += now() - t0
        a.end(served.agent)
        while (a.links().length || b.links().length) await new Promise(resolve => setImmediate(resolve))
      }
      await once() // warm-up: connections, statements, the cache
      opening = 0
      const guard = deadline(120000, 'store handshakes')
      await Promise.race([(async () => { for (let i = 0; i < LINKS; i++) await once() })(), guard.p])
      rates[name].push(LINKS / (opening / 1000))
      guard.clear()
      if (name !== 'callback') rates[name].stats = b.stats().store
      await Promise.all([a.close(), b.close()])
    }
  }
  return Object.entries(rates).map(([name, xs]) => [name, median(xs), xs.stats])
}

// Memory held per open, idle link: IDLE callers each open one link to one node
// and stay connected. Both ends live in this process, so the figure covers a
// link's two ends (and each caller's own peer object).
async function idleLinks (kind) {
  const settle = async () => { global.gc && global.gc(); await new Promise(resolve => setTimeout(resolve, 200)) }
  const server = kind === 'noise' ? generateKeypair() : keypair()
  const callers = Array.from({ length: IDLE }, () => kind === 'noise' ? generateKeypair() : keypair())
  const keys = new Map([server, ...callers].map(k => [k.agent, k.publicKey]))
  const peerKey = async (a) => keys.get(a) || null
  // All callers come from 127.0.0.1 at once: lift the node's pending caps.
  const make = (id, caps = {}) => kind === 'noise'
    ? new NoisePeer({ agent: id.agent, keys: id, peerKey, ...caps })
    : new JsPeer({ agent: id.agent, keys: id, peerKey })
  const node = make(server, { maxPending: IDLE * 2, maxPendingPerIp: IDLE * 2 })
  const addr = { ...(await node.listen()), agent: server.agent }
  await settle()
  const before = process.memoryUsage().rss
  const peers = callers.map(make)
  const guard = deadline(120000, 'idle links')
  await Promise.race([Promise.all(peers.map(p => p.send(addr, { hello: 1 }))), guard.p])
  guard.clear()
  await settle()
  const perLink = (process.memoryUsage().rss - before) / IDLE
  await Promise.all([node, ...peers].map(p => p.close()))
  return perLink
}

async function main () {
  const fmt = (x) => x.toFixed(0).padStart(9)
  console.log(`messages: ${N} of ${JSON.stringify(MESSAGE).length} bytes, median of ${ROUNDS} rounds; handshakes: ${LINKS} sequential links`)
  const rows = [
    ['NoisePeer, encrypted', await throughput(() => noisePair(true))],
    ['JS Noise module (noise-protocol)', await throughput(jsPair)],
    ['NoisePeer, raw mode', await throughput(() => noisePair(false))],
    ['plain TCP, JSON lines', await throughput(plainPair)]
  ]
  console.log('\nthroughput (messages/s, one link, both ends in this process)')
  for (const [name, rate] of rows) console.log(`  ${name.padEnd(34)}${fmt(rate)}`)
  const hs = [
    ['NoisePeer, N+KK', await handshakes(() => noisePair(true))],
    ['JS Noise module, N+KK', await handshakes(jsPair)]
  ]
  console.log('\nlinks opened and closed per second (sequential)')
  for (const [name, rate] of hs) console.log(`  ${name.padEnd(34)}${fmt(rate)}`)
  const { TestServer } = require('../scripts/embedded-db')
  const server = await TestServer.start()
  let store
  try {
    store = await storeHandshakes(server, await server.createDatabase(`noise_bench_${process.pid}`))
  } finally {
    await server.close()
  }
  console.log(`\nKK handshakes per second against a node whose partners are in PostgreSQL (sequential, median of ${ROUNDS})`)
  for (const [name, rate, stats] of store) {
    const detail = stats ? `   (${stats.lookups} database lookups, ${stats.cacheHits} cache hits in the last round)` : ''
    console.log(`  ${name.padEnd(34)}${fmt(rate)}${detail}`)
  }
  // Each in a fresh process: RSS after the throughput rounds says more about
  // the allocator's leftovers than about links.
  const measure = (kind) => Number(execFileSync(process.execPath, ['--expose-gc', __filename, '--idle-links', kind], { encoding: 'utf8', timeout: 180000 }).trim())
  const mem = [
    ['NoisePeer', measure('noise')],
    ['JS Noise module', measure('js')]
  ]
  console.log(`\nmemory per open idle link (RSS growth over ${IDLE} links, both ends, KiB)`)
  for (const [name, bytes] of mem) console.log(`  ${name.padEnd(34)}${fmt(bytes / 1024)}`)
  console.log('\nratios')
  console.log(`  encrypted throughput, NoisePeer / JS Noise module: ${(rows[0][1] / rows[1][1]).toFixed(2)}`)
  console.log(`  raw throughput, NoisePeer raw / plain TCP:          ${(rows[2][1] / rows[3][1]).toFixed(2)}`)
  console.log(`  cost of encryption, NoisePeer encrypted / raw:      ${(rows[0][1] / rows[2][1]).toFixed(2)}`)
  console.log(`  handshakes, NoisePeer / JS Noise module:            ${(hs[0][1] / hs[1][1]).toFixed(2)}`)
  console.log(`  memory per idle link, NoisePeer / JS Noise module:  ${(mem[0][1] / mem[1][1]).toFixed(2)}`)
  console.log(`  handshakes, database store warm / callback store:   ${(store[1][1] / store[0][1]).toFixed(2)}`)
  console.log(`  handshakes, database store cold / callback store:   ${(store[2][1] / store[0][1]).toFixed(2)}`)
  console.log(`\nRSS after the run: ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`)
}

if (process.argv[2] === '--idle-links') {
  idleLinks(process.argv[3]).then((bytes) => console.log(bytes), (err) => { console.error(err); process.exitCode = 1 })
} else {
  main().catch((err) => { console.error(err); process.exitCode = 1 })
}

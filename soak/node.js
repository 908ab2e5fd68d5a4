'use strict'
// One soak node: a NoisePeer in a process of its own, started by the
// controller (soak/controller.js) with one JSON argument and driven over IPC.
// It sends JSON messages to every other node, records what it sent, what
// became of each send and what it received, and streams those records to
// the controller in batches (every FLUSH_MS), so that a SIGKILL loses at most
// the last batch. It checks nothing itself: the controller keeps the books.
//
// Records (compact arrays, `t` = Date.now()):
//   [0, r, seq, t, bytes]                   send called to node r
//   [1, r, seq, t]                          that send resolved (written to the socket)
//   [2, r, seq, t, code]                    that send rejected
//   [3, s, sInc, seq, link, t, flags]       a message from node s delivered (flags: 1 from.agent
//                                           is not s's agent, 2 corrupt payload, 4 not meant for us)
//   [4, type, peerIndex, link, t, reason, clean, written, initiator]   an event
//   [5, t, listening]                       the store's notification connection came or went
//
// IPC in: { op: 'go' } start sending (to every node: pauses end); { op: 'end', peer } end the links to a node;
// { op: 'endAll' }; { op: 'race', peer, at } stop sending to `peer`, end its links, and
// at time `at` send to it at once (the other node does the same: both dial);
// { op: 'pause', peer, ms } send nothing to `peer` for a while; { op: 'rss' } resident set after a collection; { op: 'stop' } stop sending;
// { op: 'close' } close the peer, flush, exit.
// IPC out: { ready, port, rss }, { rec: [...] }, { beat: { rss, pending, links, store } }, and replies.
// Exits on its own when the controller goes away and after `lifetime` ms.

const { NoisePeer, keypairFromSeed, agentKey } = require('..')

const cfg = JSON.parse(process.argv[2])
const { index: me, inc, host, port, peers, traffic, lifetime } = cfg
const FLUSH_MS = 100

setTimeout(() => { process.exit(3) }, lifetime).unref()
process.on('disconnect', () => process.exit(0))

const id = keypairFromSeed(Buffer.from(cfg.seed, 'hex'))
const byAgent = new Map(peers.map((p) => [p.agent, p.index]))
const keys = new Map(peers.map((p) => [p.agent, agentKey(p.agent)]))

const options = { agent: id.agent, host, port, ...cfg.options }
if (cfg.raw) options.encrypt = false
else options.keys = id
if (cfg.database) options.database = cfg.database
else options.peerKey = async (agent) => keys.get(agent) || null

let records = []
const rec = (r) => records.push(r)
function flush () {
  if (records.length === 0 || !process.connected) return
  const batch = records
  records = []
  process.send({ rec: batch })
}
setInterval(flush, FLUSH_MS)

const peer = new NoisePeer(options)
peer.onMessage((from, m) => {
  let flags = 0
  if (from.agent !== cfg.agents[m.s]) flags |= 1
  if (typeof m.pad !== 'string' || m.pad.length !== m.len || m.pad !== padFor(m.seq, m.len)) flags |= 2
  if (m.r !== me) flags |= 4
  rec([3, m.s, m.inc, m.seq, from.link, Date.now(), flags])
})
peer.onEvent((e) => {
  const who = e.agent == null ? -1 : (byAgent.has(e.agent) ? byAgent.get(e.agent) : -2)
  rec([4, e.type, who, e.link, Date.now(), e.reason || null, e.clean == null ? null : !!e.clean, e.written || 0, !!e.initiator])
})

// A payload whose content the receiver can check: one letter, from the sequence number.
function padFor (seq, len) {
  return String.fromCharCode(97 + (seq % 26)).repeat(len)
}

const seqs = new Map(peers.map((p) => [p.index, 0]))
const pending = new Map(peers.map((p) => [p.index, 0]))
const paused = new Set()
let sending = false
let skipped = 0
const rand = (n) => Math.floor(Math.random() * n)

function sizeOf () {
  if (traffic.large && Math.random() < traffic.large) return 60000 + rand(90000) // F fragments between native nodes
  return 20 + rand(traffic.padMax)
}

function sendTo (p) {
  if (pending.get(p.index) >= traffic.maxPending) { skipped++; return }
  const seq = seqs.get(p.index) + 1
  seqs.set(p.index, seq)
  const len = sizeOf()
  const m = { s: me, r: p.index, inc, seq, id: `${me}.${inc}.${p.index}.${seq}`, t: Date.now(), len, pad: padFor(seq, len) }
  rec([0, p.index, seq, m.t, len])
  pending.set(p.index, pending.get(p.index) + 1)
  const address = { agent: p.agent, host: p.host, port: p.port }
  if (p.withKey) address.key = keys.get(p.agent)
  peer.send(address, m).then(
    () => { pending.set(p.index, pending.get(p.index) - 1); rec([1, p.index, seq, Date.now()]) },
    (err) => { pending.set(p.index, pending.get(p.index) - 1); rec([2, p.index, seq, Date.now(), err.code || 'NO_CODE']) })
}

function burst (p) {
  const n = 1 + rand(traffic.burst)
  for (let i = 0; i < n; i++) sendTo(p)
}

setInterval(() => {
  if (!sending) return
  for (const p of peers) if (!paused.has(p.index)) burst(p)
}, traffic.tick)

function rss (gc) {
  if (gc && global.gc) global.gc()
  return process.memoryUsage.rss()
}

const totalPending = () => [...pending.values()].reduce((a, b) => a + b, 0)

// A heartbeat: memory, unsettled sends, open links, the store.
setInterval(() => {
  if (!process.connected) return
  let links = 0
  let store = null
  try {
    links = peer.links().length
    store = peer.stats().store || null
  } catch (_) {}
  process.send({ beat: { t: Date.now(), rss: rss(false), pending: totalPending(), links, skipped, store } })
}, 1000)

// With a database, say at once when the notification connection comes or goes.
if (cfg.database) {
  let listening = null
  setInterval(() => {
    let now = null
    try { now = !!peer.stats().store.listening } catch (_) { return }
    if (now !== listening) {
      listening = now
      rec([5, Date.now(), now])
    }
  }, 50)
}

const reply = (m, body) => { if (process.connected) process.send({ reply: m.rid, ...body }) }

process.on('message', async (m) => {
  const p = m.peer == null ? null : peers.find((x) => x.index === m.peer)
  switch (m.op) {
    case 'go':
      sending = true
      // The calm spell at the end starts with a go: a pause still running
      // (an idle fault's) must not keep a pair quiet through it.
      paused.clear()
      break
    case 'end':
      reply(m, { ended: peer.end(p.agent) })
      break
    case 'endAll':
      reply(m, { ended: peers.reduce((n, x) => n + peer.end(x.agent), 0) })
      break
    case 'race': {
      paused.add(p.index)
      peer.end(p.agent)
      setTimeout(() => {
        const before = peer.links().filter((l) => l.agent === p.agent).length
        paused.delete(p.index)
        burst(p) // both nodes send first, now
        setTimeout(() => {
          const after = peer.links().filter((l) => l.agent === p.agent)
          reply(m, { before, after: after.length, initiated: after.filter((l) => l.initiator).length })
        }, 300)
      }, Math.max(0, m.at - Date.now()))
      break
    }
    case 'pause': // quiet both ways for a while, so the link's idle timeout closes it
      paused.add(p.index)
      setTimeout(() => paused.delete(p.index), m.ms)
      reply(m, {})
      break
    case 'rss':
      reply(m, { rss: rss(true) })
      break
    case 'stop':
      sending = false
      reply(m, { pending: totalPending() })
      break
    case 'pending':
      reply(m, { pending: totalPending() })
      break
    case 'close':
      sending = false
      try { await peer.close() } catch (_) {}
      flush()
      reply(m, { closed: true })
      setTimeout(() => process.exit(0), 50)
      break
  }
})

// The port is the node's for the whole run: after a SIGKILL the new process
// binds it again (a few tries, in case the old socket lingers).
async function listen () {
  for (let i = 0; ; i++) {
    try { return await peer.listen() } catch (err) {
      if (i >= 50) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

listen().then((addr) => {
  process.send({ ready: true, port: addr.port, rss: rss(true), t: Date.now() })
  if (cfg.go) sending = true
}, (err) => {
  console.error(`soak node ${me}: cannot listen: ${err.code} ${err.message}`)
  process.exit(4)
})

'use strict'
// The soak controller: starts the nodes (soak/node.js, one process each),
// lets every pair exchange messages for a bounded time while it causes
// faults, then stops the traffic, lets every send settle, closes the nodes in
// order and checks the books (soak/ledger.js).
//
// Variants:
//   loopback  nodes on 127.0.0.1, every dial through a relay the controller
//             owns (soak/relay.js). Faults: SIGKILL and restart (same keys,
//             same port), relay resets (RST both ways), `end` of a pair's
//             links, both nodes of a pair dialling each other at once, a
//             pair left quiet until its link's idle timeout closes it.
//   netns     each node in a network namespace of its own, joined by
//             soak/impair.py (delay, jitter, loss, reordering, duplication).
//             Faults: kills, `end`, simultaneous opens, a node cut off (every
//             packet dropped), stalled (data dropped: connects succeed,
//             handshakes time out), its device set down; profile changes.
//   db        nodes whose partners (tallies) are in PostgreSQL (embedded);
//             the controller stops it during handshakes and starts it again;
//             also kills, `end` and simultaneous opens.
// Node 0 is never killed: its resident set is measured over the whole run.

const { fork, spawn } = require('child_process')
const crypto = require('crypto')
const net = require('net')
const path = require('path')
const { keypairFromSeed } = require('..')
const { Ledger } = require('./ledger')
const { Relay } = require('./relay')
const netns = require('./netns')

const NODE_JS = path.join(__dirname, 'node.js')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const rand = (n) => Math.floor(Math.random() * n)
const pick = (list) => list[rand(list.length)]
const MiB = 1024 * 1024

// How often each fault comes, by variant (each comes once, in a random order,
// before any comes twice).
const FAULTS = {
  loopback: { kill: 3, reset: 3, end: 2, race: 2, idle: 1 },
  netns: { kill: 2, end: 1, race: 1, cut: 2, stall: 2, down: 1, profile: 2 },
  db: { kill: 1, end: 1, race: 1, dbstop: 3 }
}

// Network profiles for the netns variant (as netem would be set).
const PROFILES = {
  calm: { delay: 2, jitter: 1, loss: 0, reorder: 0, duplicate: 0 },
  lossy: { delay: 15, jitter: 10, loss: 0.02, reorder: 0.1, duplicate: 0.01 },
  bad: { delay: 60, jitter: 40, loss: 0.06, reorder: 0.25, duplicate: 0.02 }
}

// Growth of a node's resident set from the end of warm-up to the end of the
// run that is still "steady state" (see README, "### Soak").
const RSS_GROWTH_ABS = 24 * MiB
const RSS_GROWTH_REL = 0.3

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function parseDuration (text) {
  if (typeof text === 'number') return text
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(text).trim())
  if (!m) throw new Error(`not a duration: ${text} (say 30s, 10m, 1h, 500ms)`)
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || 's'])
}

class Soak {
  constructor (o = {}) {
    this.variant = o.variant || 'loopback'
    if (!FAULTS[this.variant]) throw new Error(`unknown variant ${this.variant} (loopback, netns, db)`)
    this.duration = parseDuration(o.duration || '10m')
    this.count = o.nodes || 4
    if (this.count < 3) throw new Error('a soak needs at least 3 nodes')
    this.raw = !!o.raw
    this.faultEvery = parseDuration(o.faultEvery || (this.duration <= 60000 ? '1.2s' : '2s'))
    this.log = o.log || (() => {})
    this.handshakeTimeout = o.handshakeTimeout || 2000
    this.writeTimeout = 10000
    this.drainTimeout = 2000
    this.idleTimeout = this.variant === 'netns' ? 8000 : 4000
    this.nodeOptions = {
      handshakeTimeout: this.handshakeTimeout,
      timeout: this.idleTimeout,
      writeTimeout: this.writeTimeout,
      drainTimeout: this.drainTimeout
    }
    this.traffic = { tick: 100, burst: 3, padMax: 1500, large: o.large == null ? 0.003 : o.large, maxPending: 2000 }
    // Windows around a fault within which a written message may be lost (ledger.js).
    // In namespaces a message written as a cut starts (up to 4 s) waits in its
    // sender's kernel for TCP to resend it, and the retransmission timer,
    // doubling through the cut, can wait about as long again after it ends:
    // runs have measured 10.8 s from a fault to a pair's next delivery. A
    // node killed in that time loses what it wrote, acknowledged by nobody.
    this.D = this.variant === 'netns' ? 5000 : 2000
    this.W = this.variant === 'netns' ? 13000 : 5000
    this.settleBound = this.writeTimeout + 3 * this.handshakeTimeout + this.drainTimeout + 5000
    this.warmAt = Math.min(60000, Math.round(this.duration * 0.3))
    this.lifetime = this.duration + 180000 // each node's own bound
    this.ledger = new Ledger()
    this.nodes = []
    this.incs = new Map()
    this.children = new Set()
    this.relays = []
    this.restarts = new Set()
    this.down = new Set()
    this.races = []
    this.outages = []
    this.recoveries = []
    this.failures = []
    this.notes = []
    this.faultCount = {}
    this.started = false
    this.stopping = false
    this.net = null
    this.db = null
    this.rid = 0
  }

  // --- nodes -------------------------------------------------------------

  async _setupNodes () {
    for (let i = 0; i < this.count; i++) {
      const seed = crypto.randomBytes(32).toString('hex')
      const id = keypairFromSeed(Buffer.from(seed, 'hex'))
      this.nodes.push({ index: i, seed, agent: id.agent, host: '127.0.0.1', port: 0, dialPort: 0, inc: 0, current: null })
    }
    if (this.variant === 'netns') {
      for (const n of this.nodes) {
        n.host = this.net.nodes[n.index].addr
        n.port = n.dialPort = 4100
      }
    } else {
      for (const n of this.nodes) {
        n.port = await freePort()
        n.dialPort = n.port
        if (this.variant === 'loopback') {
          const relay = new Relay(n.port)
          n.dialPort = await relay.listen(0)
          this.relays[n.index] = relay
        }
      }
    }
    this.agents = this.nodes.map((n) => n.agent)
  }

  _peersOf (i) {
    return this.nodes.filter((n) => n.index !== i).map((n) => ({
      index: n.index,
      agent: n.agent,
      host: n.host,
      port: n.dialPort,
      // With a database: half the pairs dial with the key in the address, so
      // the responder's store decides; the others ask their own store first.
      withKey: this.variant === 'db' && (i + n.index) % 2 === 0
    }))
  }

  _spawn (i) {
    const n = this.nodes[i]
    const inc = ++n.inc
    const cfg = {
      index: i,
      inc,
      seed: n.seed,
      host: n.host,
      port: n.port,
      agents: this.agents,
      peers: this._peersOf(i),
      traffic: this.traffic,
      options: this.nodeOptions,
      raw: this.raw,
      database: this.db ? { connectionString: this.db.url, timeout: 500 } : undefined,
      lifetime: this.lifetime,
      go: this.started && !this.stopping
    }
    const stdio = ['ignore', 'inherit', 'inherit', 'ipc']
    const child = this.net
      ? spawn('ip', ['netns', 'exec', this.net.nodes[i].ns, process.execPath, '--expose-gc', NODE_JS, JSON.stringify(cfg)], { stdio })
      : fork(NODE_JS, [JSON.stringify(cfg)], { execArgv: ['--expose-gc'], stdio })
    const rec = {
      node: i, inc, pid: child.pid, child, tStart: Date.now(), tReady: null, killedAt: null, diedAt: null,
      closing: false, rss: {}, beat: null, listening: null, replies: new Map(), exited: null
    }
    rec.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      rec.diedAt = Date.now()
      this.children.delete(child)
      if (rec.killedAt == null && !rec.closing) {
        rec.killedAt = rec.diedAt // for the books: it died, as if killed
        this.failures.push(`node ${i}#${inc} exited by itself (code ${code}, signal ${signal})`)
      }
      for (const r of rec.replies.values()) r.reject(new Error(`node ${i}#${inc} exited`))
      rec.replies.clear()
      resolve()
    }))
    this.children.add(child)
    this.incs.set(`${i}:${inc}`, rec)
    n.current = rec
    const ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${i}#${inc} not ready after 20 s`)), 20000)
      rec.onReady = () => { clearTimeout(timer); resolve(rec) }
      rec.exited.then(() => { clearTimeout(timer); reject(new Error(`node ${i}#${inc} exited before it was ready`)) })
    })
    child.on('message', (m) => this._onMessage(rec, m))
    return ready
  }

  _onMessage (rec, m) {
    if (m.rec) {
      this.ledger.ingest(rec.node, rec.inc, m.rec)
      for (const x of m.rec) if (x[0] === 5) rec.listening = x[2]
    } else if (m.beat) {
      rec.beat = m.beat
    } else if (m.ready) {
      rec.tReady = m.t
      rec.rss.start = m.rss
      if (rec.onReady) rec.onReady()
    } else if (m.reply != null) {
      const r = rec.replies.get(m.reply)
      if (r) { rec.replies.delete(m.reply); r.resolve(m) }
    }
  }

  _request (rec, op, body = {}, ms = 10000) {
    return new Promise((resolve, reject) => {
      if (!rec.child.connected) return reject(new Error(`node ${rec.node}#${rec.inc} is gone`))
      const rid = ++this.rid
      const timer = setTimeout(() => { rec.replies.delete(rid); reject(new Error(`node ${rec.node}#${rec.inc}: no answer to ${op}`)) }, ms)
      rec.replies.set(rid, { resolve: (m) => { clearTimeout(timer); resolve(m) }, reject: (e) => { clearTimeout(timer); reject(e) } })
      try { rec.child.send({ op, rid, ...body }) } catch (err) { rec.replies.delete(rid); clearTimeout(timer); reject(err) }
    })
  }

  _alive () {
    return this.nodes.map((n) => n.current).filter((r) => r && r.tReady && r.killedAt == null && r.diedAt == null)
  }

  // --- faults ------------------------------------------------------------

  _deck () {
    const weights = FAULTS[this.variant]
    const first = Object.keys(weights).sort(() => Math.random() - 0.5)
    const bag = []
    for (const [k, w] of Object.entries(weights)) for (let i = 0; i < w; i++) bag.push(k)
    let n = 0
    return () => (n < first.length ? first[n++] : pick(bag))
  }

  async _faultLoop (until) {
    const next = this._deck()
    let again = null // a fault that could not be made (no node free for it) comes next time
    for (let i = 0; i < 100000 && Date.now() < until; i++) {
      await sleep(Math.round(this.faultEvery * (0.5 + Math.random())))
      if (Date.now() >= until) break
      const kind = again || next()
      again = null
      try {
        const done = await this['_' + kind]()
        if (done === false) again = kind
        else this.faultCount[kind] = (this.faultCount[kind] || 0) + 1
      } catch (err) {
        this.notes.push(`fault ${kind}: ${err.message}`)
      }
    }
  }

  _pair () {
    const alive = this._alive()
    if (alive.length < 2) return null
    const a = pick(alive)
    const b = pick(alive.filter((r) => r !== a))
    return [a, b]
  }

  async _kill () {
    if (this.down.size > 0) return false // one node down at a time
    const candidates = this._alive().filter((r) => r.node !== 0)
    if (candidates.length === 0) return false
    const rec = pick(candidates)
    const i = rec.node
    rec.killedAt = Date.now()
    this.down.add(i)
    try { process.kill(rec.pid, 'SIGKILL') } catch (_) {}
    this.ledger.fault({ type: 'kill', nodes: [i], a: rec.killedAt, b: rec.killedAt })
    const restart = (async () => {
      await Promise.race([rec.exited, sleep(5000)])
      await sleep(100 + rand(1200))
      try {
        await this._spawn(i)
      } catch (err) {
        this.failures.push(`restart of node ${i}: ${err.message}`)
      }
      this.down.delete(i)
    })()
    this.restarts.add(restart)
    restart.finally(() => this.restarts.delete(restart))
  }

  async _reset () {
    const live = this.relays.filter((r) => r.pairs.size > 0)
    if (live.length === 0) return false
    const relay = pick(live)
    const i = this.relays.indexOf(relay)
    const t = Date.now()
    const n = relay.reset(1 + rand(2))
    this.ledger.fault({ type: 'reset', nodes: [i], a: t, b: t, n })
  }

  async _end () {
    const pair = this._pair()
    if (!pair) return false
    const [a, b] = pair
    await this._request(a, 'end', { peer: b.node })
    this.ledger.fault({ type: 'end', nodes: [a.node, b.node], a: Date.now(), b: Date.now() })
  }

  async _race () {
    const pair = this._pair()
    if (!pair) return false
    const [a, b] = pair
    const at = Date.now() + 400
    const [ra, rb] = await Promise.all([this._request(a, 'race', { peer: b.node, at }), this._request(b, 'race', { peer: a.node, at })])
    this.races.push({ nodes: [a.node, b.node], at, before: [ra.before, rb.before], after: [ra.after, rb.after], initiated: [ra.initiated, rb.initiated] })
    this.ledger.fault({ type: 'race', nodes: [a.node, b.node], a: at, b: at })
  }

  async _idle () {
    const pair = this._pair()
    if (!pair) return false
    const [a, b] = pair
    const ms = this.idleTimeout + 1500
    await Promise.all([this._request(a, 'pause', { peer: b.node, ms }), this._request(b, 'pause', { peer: a.node, ms })])
    this.ledger.fault({ type: 'idle', nodes: [a.node, b.node], a: Date.now(), b: Date.now() + ms })
  }

  // A fault on one node's network for a while; `recovery` is then measured.
  async _netFault (type, on, off, hold) {
    const i = rand(this.count)
    const a = Date.now()
    await on(i)
    await sleep(hold)
    await off(i)
    const f = this.ledger.fault({ type, nodes: [i], a, b: Date.now() })
    this.recoveries.push(f)
  }

  _cut () {
    return this._netFault('cut', (i) => this.net.cut(i, true), (i) => this.net.cut(i, false), 2000 + rand(2000))
  }

  _stall () {
    // Links end (in order) at once, so the node's next handshakes meet the stall.
    return this._netFault('stall', async (i) => {
      await this.net.stall(i, true)
      const rec = this.nodes[i].current
      if (rec && rec.tReady && rec.killedAt == null) await this._request(rec, 'endAll').catch(() => {})
    }, (i) => this.net.stall(i, false), this.handshakeTimeout + 1500)
  }

  _down () {
    return this._netFault('down', (i) => this.net.link(i, false), (i) => this.net.link(i, true), 1500 + rand(1500))
  }

  async _profile () {
    const name = pick(Object.keys(PROFILES).filter((p) => p !== this.profileName))
    await this.net.profile(PROFILES[name])
    this.profileName = name
    this.ledger.fault({ type: 'profile', nodes: [], a: Date.now(), b: Date.now(), name })
  }

  async _dbstop () {
    const o = { start: Date.now() }
    // Handshakes in flight as it goes: every link ends first.
    await Promise.all(this._alive().map((r) => this._request(r, 'endAll').catch(() => {})))
    await this.db.server.stop()
    o.stopped = Date.now()
    await this._until(() => this._alive().every((r) => r.listening === false), 10000, 'every store to notice the database is gone')
    o.noticed = Date.now()
    // From here every handshake needs the database: end the links again.
    await Promise.all(this._alive().map((r) => this._request(r, 'endAll').catch(() => {})))
    await sleep(1500 + rand(1500))
    o.restart = Date.now()
    await this.db.server.restart()
    o.restarted = Date.now()
    await this._until(() => this._alive().every((r) => r.listening === true), 30000, 'every store to reconnect')
    o.recovered = Date.now()
    this.outages.push(o)
    this.ledger.fault({ type: 'dbstop', nodes: [], a: o.start, b: o.recovered })
  }

  async _until (predicate, ms, what) {
    const end = Date.now() + ms
    while (!predicate()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await sleep(20)
    }
  }

  // --- the run -----------------------------------------------------------

  async run () {
    const t0 = Date.now()
    try {
      if (this.variant === 'netns') {
        const why = netns.unavailable()
        if (why) return { skipped: `network namespaces cannot be used here: ${why}` }
        this.net = new netns.Network(this.count, { lifetime: this.lifetime + 60000 })
        await this.net.setup()
        await this.net.profile(PROFILES.calm)
        this.profileName = 'calm'
      }
      await this._setupNodes()
      if (this.variant === 'db') {
        const { startDb } = require('./db')
        this.db = await startDb(this.nodes)
      }
      this.log(`${this.variant}: ${this.count} nodes (${this.raw ? 'raw' : 'encrypted'}), ${Math.round(this.duration / 1000)} s, a fault every ~${this.faultEvery} ms`)
      await Promise.all(this.nodes.map((n) => this._spawn(n.index)))
      if (this.db) await this._until(() => this._alive().every((r) => r.listening === true), 20000, 'every store to listen')
      this.started = true
      this.tGo = Date.now()
      for (const r of this._alive()) r.child.send({ op: 'go' })
      const until = this.tGo + this.duration
      const warm = setTimeout(() => this._sampleWarm(), this.warmAt)
      const progress = setInterval(() => this._progress(), 10000)
      try {
        await this._faultLoop(until)
        await sleep(Math.max(0, until - Date.now()))
      } finally {
        clearTimeout(warm)
        clearInterval(progress)
      }
      await this._finish()
      return this._report(Date.now() - t0)
    } finally {
      await this.cleanup()
    }
  }

  async _sampleWarm () {
    this.tWarm = Date.now()
    for (const r of this._alive()) {
      try { r.rss.warm = (await this._request(r, 'rss')).rss } catch (_) {}
    }
  }

  _progress () {
    const f = this.ledger.counts
    const faults = Object.entries(this.faultCount).map(([k, v]) => `${k} ${v}`).join(', ')
    this.log(`  ${Math.round((Date.now() - this.tGo) / 1000)} s: ${f.deliveries} delivered; faults: ${faults || 'none yet'}`)
  }

  async _finish () {
    this.stopping = true
    this.tStop = Date.now()
    await Promise.all([...this.restarts])
    if (this.net) {
      await this.net.profile(PROFILES.calm)
      for (let i = 0; i < this.count; i++) {
        await this.net.cut(i, false)
        await this.net.stall(i, false)
        this.net.link(i, true)
      }
    }
    if (this.db && !this.db.server.running) await this.db.server.restart()
    for (const n of this.nodes) {
      if (!n.current || n.current.diedAt != null) await this._spawn(n.index).catch((err) => this.failures.push(`final restart of node ${n.index}: ${err.message}`))
    }
    // A calm spell: no faults, traffic on, every pair's link forms again.
    this.tCalm = Date.now()
    const calm = this.variant === 'netns' ? 4000 : 2500
    for (const r of this._alive()) r.child.send({ op: 'go' })
    await sleep(calm)
    // Stop sending; every send settles (bounded); deliveries come in.
    await Promise.all(this._alive().map((r) => this._request(r, 'stop').catch(() => {})))
    const settleEnd = Date.now() + this.settleBound
    for (;;) {
      const answers = await Promise.all(this._alive().map((r) => this._request(r, 'pending').then((m) => m.pending, () => 0)))
      if (answers.every((p) => p === 0) || Date.now() > settleEnd) break
      await sleep(100)
    }
    await sleep(1500) // the last deliveries and records
    for (const r of this._alive()) {
      try { r.rss.end = (await this._request(r, 'rss')).rss } catch (_) {}
    }
    if (this.net) this.impairStats = await this.net.readStats()
    // Close in order; the last records come with the close.
    await Promise.all(this._alive().map(async (r) => {
      r.closing = true
      try { await this._request(r, 'close', {}, 15000) } catch (err) { this.notes.push(err.message) }
      await Promise.race([r.exited, sleep(5000)])
    }))
  }

  // Kill every child, stop the relays, the database, the namespaces.
  async cleanup () {
    this.killAll()
    await Promise.all(this.relays.map((r) => r && r.close()))
    this.relays = []
    if (this.net) await this.net.teardown()
    if (this.db) {
      await this.db.server.close().catch(() => {})
      this.db = null
    }
  }

  // Synchronous, for process exit and signals: no child outlives the controller.
  killAll () {
    for (const child of this.children) {
      try { process.kill(child.pid, 'SIGKILL') } catch (_) {}
    }
    this.children.clear()
    if (this.net) this.net.teardownSync()
  }

  // --- the report --------------------------------------------------------

  _report (elapsed) {
    const { figures: f, links, examples } = this.ledger.analyze(this.incs, { D: this.D, W: this.W, settleBound: this.settleBound })
    const checks = []
    const check = (name, ok, detail) => checks.push({ name, ok: !!ok, detail })
    check('every message delivered at most once (duplicated = 0)', f.duplicated === 0, f.duplicated)
    check('in order on every link (reordered within a link = 0)', f.reorderedInLink === 0, f.reorderedInLink)
    check('no resolved message lost but to a killed node or on a link whose close said clean: false (lost, unexplained = 0)', f.lostUnexplained === 0,
      `${f.lostUnexplained} (on a clean link ${f.lostCleanLink}, of them closed by the other side ${f.lostCleanPeerClosed}; on no link ${f.lostNoLink})`)
    check('no rejected message delivered', f.deliveredRejected === 0, f.deliveredRejected)
    check('nothing delivered that was never sent', f.phantom === 0, f.phantom)
    check('every message from its sender, intact, to its receiver', f.badAgent + f.corrupt + f.misrouted === 0,
      `wrong agent ${f.badAgent}, corrupt ${f.corrupt}, misrouted ${f.misrouted}`)
    check('every send of a live node settled', f.unsettled === 0, f.unsettled)
    check(`every send settled within ${this.settleBound} ms`, f.stuck === 0, `${f.stuck} (longest ${f.settleMax} ms)`)
    check('messages flowed', f.delivered > 0 && f.resolved > 0, f.delivered)
    const lastWords = []
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (a !== b && this.ledger.firstDeliveryAfter(a.index, b.index, this.tCalm) == null) lastWords.push(`${a.index}>${b.index}`)
      }
    }
    check('every pair delivered after the faults stopped', lastWords.length === 0, lastWords.join(' ') || 'all')
    check('no node died by itself', !this.failures.some((x) => /by itself/.test(x)), this.failures.filter((x) => /by itself/.test(x)).join('; ') || 'none')

    // Memory: each node's resident set at its start and at the end; growth
    // from the end of warm-up to the end for every process that lived through both.
    const rss = []
    for (const n of this.nodes) {
      const first = this.incs.get(`${n.index}:1`)
      const last = n.current
      const row = { node: n.index, incarnations: n.inc, start: first.rss.start, end: last.rss.end, warm: null, growth: null, bound: null }
      if (last.rss.warm != null && last.rss.end != null) {
        row.warm = last.rss.warm
        row.growth = last.rss.end - last.rss.warm
        row.bound = Math.max(RSS_GROWTH_ABS, RSS_GROWTH_REL * last.rss.warm)
      }
      rss.push(row)
    }
    const measured = rss.filter((r) => r.growth != null)
    check(`resident set growth after warm-up below max(${RSS_GROWTH_ABS / MiB} MiB, ${RSS_GROWTH_REL * 100}%)`,
      measured.length > 0 && measured.every((r) => r.growth < r.bound),
      measured.map((r) => `node ${r.node}: ${(r.growth / MiB).toFixed(1)} MiB`).join(', ') || 'not measured')

    const opensIn = (a, b) => this.ledger.events.filter((e) => e[2] === 'open' && e[5] >= a && e[5] <= b).length
    const storeFigures = {}
    if (this.variant === 'db') {
      const grace = 300
      let opensDown = 0
      for (const o of this.outages) {
        o.opensWhileDown = opensIn(o.noticed + grace, o.restart)
        opensDown += o.opensWhileDown
        o.refusedWhileDown = this.ledger.events.filter((e) => e[2] === 'refused' && e[6] === 'ERR_STORE_UNAVAILABLE' && e[5] >= o.stopped && e[5] <= o.restarted + 1000).length
        // Every pair talks again after the store is back.
        o.pairsBack = 0
        o.pairsBackMax = 0
        for (const a of this.nodes) {
          for (const b of this.nodes) {
            if (a === b) continue
            const t = this.ledger.firstDeliveryAfter(a.index, b.index, o.recovered)
            if (t != null) { o.pairsBack++; o.pairsBackMax = Math.max(o.pairsBackMax, t - o.recovered) }
          }
        }
      }
      storeFigures.refused = links.refusedBy.ERR_STORE_UNAVAILABLE || 0
      storeFigures.rejected = f.rejectedBy.ERR_STORE_UNAVAILABLE || 0
      check('PostgreSQL stopped and started again at least once', this.outages.length > 0, this.outages.length)
      check('no link opened while the database was down (fails closed)', opensDown === 0, opensDown)
      check('handshakes refused with ERR_STORE_UNAVAILABLE while it was down (responder: refused event; initiator: rejected send)',
        storeFigures.refused > 0 && storeFigures.rejected > 0, `refused ${storeFigures.refused}, rejected ${storeFigures.rejected}`)
      check('every store reconnected, and every pair talked again within 10 s of it',
        this.outages.every((o) => o.recovered && o.pairsBack === this.count * (this.count - 1) && o.pairsBackMax < 10000),
        this.outages.map((o) => `${o.pairsBack} pairs, ${o.pairsBackMax} ms`).join('; '))
    }

    const netFigures = {}
    if (this.variant === 'netns') {
      const hs = f.latency.ERR_HANDSHAKE_TIMEOUT
      netFigures.handshakeTimeouts = hs ? hs.n : 0
      netFigures.handshakeTimeoutMs = hs ? { min: hs.min, mean: hs.mean, max: hs.max } : null
      const responderTimeouts = links.errorBy.ERR_HANDSHAKE_TIMEOUT || 0
      netFigures.responderTimeouts = responderTimeouts
      if (this.faultCount.stall) {
        check('a stalled node\'s handshakes time out (ERR_HANDSHAKE_TIMEOUT)', hs && hs.n > 0, netFigures.handshakeTimeouts)
        check(`handshake timeouts honour handshakeTimeout (${this.handshakeTimeout} ms): the longest waited it, none waited past 3 links`,
          hs && hs.max >= this.handshakeTimeout - 250 && hs.max <= 3 * this.handshakeTimeout + 2000,
          hs ? `${hs.min}..${hs.max} ms` : 'none')
      }
      // Retries: after each cut, stall or down, a pair whose dials failed
      // during it (ERR_HANDSHAKE_TIMEOUT, ERR_CONNECT_FAILED) gets through on
      // a later send: the first send called after the fault ends resolves
      // within RETRY_BOUND (one dial still under way when it ended, then at
      // most two more, each bounded by handshakeTimeout).
      const retryBound = 3 * this.handshakeTimeout + 2000
      const codes = ['ERR_HANDSHAKE_TIMEOUT', 'ERR_CONNECT_FAILED']
      const retries = []
      let silent = 0
      let gapMax = 0 // for information: first delivery on each of the node's pairs after the fault
      for (const x of this.recoveries) {
        const i = x.nodes[0]
        for (const n of this.nodes) {
          if (n.index === i) continue
          for (const [s, r] of [[i, n.index], [n.index, i]]) {
            const t = this.ledger.firstDeliveryAfter(s, r, x.b)
            if (t == null) silent++
            else gapMax = Math.max(gapMax, t - x.b)
            const { rejected, first } = this.ledger.sendsBetween(s, r, codes, x.a, x.b + this.handshakeTimeout, x.b)
            if (rejected === 0) continue
            retries.push({ fault: x.type, pair: `${s}>${r}`, ms: first ? first.tSet - x.b : null })
          }
        }
      }
      const worst = retries.reduce((m, r) => (r.ms == null || m == null ? null : Math.max(m, r.ms)), 0)
      netFigures.retries = retries.length
      netFigures.retryMaxMs = worst
      netFigures.retryMedianMs = retries.length ? retries.map((r) => r.ms).sort((p, q) => p - q)[retries.length >> 1] : null
      netFigures.recoveryMaxMs = gapMax
      if (retries.length) {
        check(`after a cut, stall or down, a pair whose handshakes failed gets through on a later send within ${retryBound} ms of its end`,
          worst != null && worst <= retryBound, `${retries.length} pairs, slowest ${worst} ms` +
          (worst == null || worst > retryBound ? `: ${JSON.stringify(retries.filter((r) => r.ms == null || r.ms > retryBound).slice(0, 5))}` : ''))
      }
      check('every pair talked again after every network fault', silent === 0, `${silent} silent`)
    }

    const crossed = this.races.filter((r) => r.after.some((x) => x >= 2) || (r.initiated[0] > 0 && r.initiated[1] > 0)).length
    const result = {
      variant: this.variant,
      mode: this.raw ? 'raw' : 'encrypted',
      nodes: this.count,
      duration: this.duration,
      elapsed,
      figures: f,
      links,
      faults: this.faultCount,
      kills: [...this.incs.values()].filter((r) => r.killedAt != null && !this.failures.some((x) => x.startsWith(`node ${r.node}#${r.inc} `))).length,
      races: { count: this.races.length, crossed, clean: this.races.filter((r) => r.before.every((x) => x === 0)).length },
      outages: this.outages,
      store: storeFigures,
      net: netFigures,
      impair: this.impairStats || null,
      rss,
      checks,
      examples,
      failures: this.failures,
      notes: this.notes,
      windows: { D: this.D, W: this.W },
      faultLog: this.ledger.faults,
      incarnations: [...this.incs.values()].map((r) => ({ node: r.node, inc: r.inc, start: r.tStart, ready: r.tReady, killedAt: r.killedAt, diedAt: r.diedAt }))
    }
    result.ok = checks.every((c) => c.ok) && this.failures.length === 0
    return result
  }
}

module.exports = { Soak, parseDuration, PROFILES, RSS_GROWTH_ABS, RSS_GROWTH_REL }

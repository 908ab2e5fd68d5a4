'use strict'
// What a bench child process does: it holds named nodes of one transport and
// runs the operations the parent asks for (node-process.js is the IPC side).
// Every operation that waits is bounded by a deadline given by the parent.

const fs = require('fs')
const { transport } = require('./transports')
const { sleep, hrnow, percentile, withDeadline } = require('./util')

const nodes = new Map() // name -> state

// Lines of /proc/self/maps (Linux), or null.
function mapCount () {
  try { return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1 } catch (_) { return null }
}

// --- messages ------------------------------------------------------------------------

// A JSON message of about `size` bytes (its JSON text; within the few bytes the
// sequence number's digits add), shaped like a MyCHIPs protocol message.
const pads = new Map()
function message (size, seq) {
  if (!pads.has(size)) {
    const base = JSON.stringify({ target: 'chit', action: 'update', seq: 10000, memo: '' }).length
    pads.set(size, 'x'.repeat(Math.max(0, size - base)))
  }
  return { target: 'chit', action: 'update', seq, memo: pads.get(size) }
}

// Calls of fn(i) per second, run in slices until about `ms` have passed.
// (Its results are summed, so that none of the work can be left out.)
function rateOf (ms, fn) {
  let n = 0
  let sink = 0
  const t0 = hrnow()
  const until = t0 + BigInt(ms) * 1000000n
  let now = t0
  while (now < until) {
    for (let k = 0; k < 100; k++) sink += fn(n++)
    now = hrnow()
  }
  if (sink < 0) throw new Error('unreachable')
  return n / (Number(now - t0) / 1e9)
}

// --- nodes ---------------------------------------------------------------------------

function get (name) {
  const s = nodes.get(name)
  if (!s) throw new Error(`bench child: no node named ${name}`)
  return s
}

function add (name, t) {
  const node = t.create(t.identity())
  const s = {
    name,
    node,
    received: 0,
    goal: null, // { target, t, resolve }: when `received` reaches target
    echo: false, // answer every message on its own link
    replyWait: null, // the round-trip sender's waiter: called with the arrival time
    fromWait: new Map(), // agent -> called when a message from that agent arrives
    wakers: new Set(), // waiters for a link to close
    failure: null // an echo that failed: reported by the next operation
  }
  node.onMessage((from, msg) => {
    s.received++
    if (s.echo) node.reply(from, msg).catch((err) => { s.failure = s.failure || err })
    if (s.replyWait) {
      const w = s.replyWait
      s.replyWait = null
      w(hrnow())
    }
    if (s.fromWait.size) {
      const w = s.fromWait.get(from.agent)
      if (w) { s.fromWait.delete(from.agent); w() }
    }
    if (s.goal && s.received >= s.goal.target) {
      s.goal.t = hrnow()
      s.goal.resolve()
    }
  })
  node.onLinkClosed(() => { for (const w of s.wakers) w() })
  nodes.set(name, s)
  return s
}

// Resolves once pred() holds, checked whenever a link of one of `states`
// closes, and every 20 ms in case a transport reports a close late.
function until (pred, states, ms, what) {
  if (pred()) return Promise.resolve()
  let wake, timer
  const done = new Promise((resolve) => {
    wake = () => { if (pred()) resolve() }
    timer = setInterval(wake, 20)
    for (const s of states) s.wakers.add(wake)
  })
  return withDeadline(done, ms, what).finally(() => {
    clearInterval(timer)
    for (const s of states) s.wakers.delete(wake)
  })
}

function checkFailure (s) {
  if (s.failure) throw new Error(`${s.name}: an answer failed: ${s.failure.message}`)
}

// --- operations (the parent calls these by name) ---------------------------------------

const ops = {
  // `count` nodes named name0.. (or one named `name`), each with an identity of its own.
  create ({ name, transport: key, count }) {
    const t = transport(key)
    if (count === undefined) return add(name, t).node.agent
    for (let i = 0; i < count; i++) add(name + i, t)
    return count
  },

  listen ({ name }) { return get(name).node.listen() },

  messageSize ({ size }) { return JSON.stringify(message(size, 10000)).length },

  // Record the time `name` has received `target` messages in all (reached() waits for it).
  arm ({ name, target }) {
    const s = get(name)
    s.goal = { target, t: null, resolve: null }
    s.goal.done = new Promise((resolve) => { s.goal.resolve = resolve })
    if (s.received >= target) { s.goal.t = hrnow(); s.goal.resolve() }
    return s.received
  },

  async reached ({ name, ms }) {
    const s = get(name)
    const goal = s.goal
    await withDeadline(goal.done, ms, `${name} receiving message ${goal.target} (had ${s.received})`)
    return { t: String(goal.t) }
  },

  // Send `count` messages, keeping at most `window` sends (and `maxBytes` of
  // messages) unsettled; resolves with the start time once every send settled.
  blast ({ name, to, count, size, window, maxBytes = Infinity, ms }) {
    const s = get(name)
    window = Math.max(1, Math.min(window, Math.floor(maxBytes / size)))
    return new Promise((resolve, reject) => {
      let sent = 0
      let settled = 0
      let inflight = 0
      let failed = false
      const fail = (err) => {
        if (failed) return
        failed = true
        clearTimeout(timer)
        reject(err)
      }
      const timer = setTimeout(() => fail(new Error(`bench: ${name} had ${settled} of ${count} sends settled after ${(ms / 1000).toFixed(0)} s`)), ms)
      const pump = () => {
        while (!failed && inflight < window && sent < count) {
          inflight++
          s.node.send(to, message(size, sent++)).then(onSettled, fail)
        }
      }
      const onSettled = () => {
        inflight--
        if (++settled === count) {
          clearTimeout(timer)
          resolve({ t0: String(t0) })
        } else pump()
      }
      const t0 = hrnow()
      pump()
    })
  },

  echo ({ name }) { get(name).echo = true },

  // Strictly one round trip at a time; the clock stops when the answer arrives.
  async rtt ({ name, to, count, warmup, size, ms }) {
    const s = get(name)
    const msg = message(size, 1)
    const end = Date.now() + ms
    const samples = new Float64Array(count)
    for (let i = 0; i < warmup + count; i++) {
      if (Date.now() > end) throw new Error(`bench: round trips: ${i} of ${warmup + count} done after ${(ms / 1000).toFixed(0)} s`)
      const answered = new Promise((resolve) => { s.replyWait = resolve })
      const t0 = hrnow()
      const sent = s.node.send(to, msg)
      const t1 = await withDeadline(answered, Math.max(1, end - Date.now()), `round trip ${i}`)
      await sent
      if (i >= warmup) samples[i - warmup] = Number(t1 - t0) / 1000
    }
    checkFailure(s)
    samples.sort()
    return { p50: percentile(samples, 50), p99: percentile(samples, 99), count }
  },

  // New links: each caller (callers: count of nodes named prefix0..) opens a
  // link to `to` (held by `server`), delivers one message on it, closes it and
  // waits until neither end has a link between them, `perCaller` times.
  async churn ({ server, prefix, callers, to, perCaller, size, ms }) {
    const srv = get(server)
    const msg = message(size, 1)
    const end = Date.now() + ms
    const t0 = hrnow()
    await Promise.all(Array.from({ length: callers }, async (_, k) => {
      const c = get(prefix + k)
      const agent = c.node.agent
      for (let i = 0; i < perCaller; i++) {
        const left = () => Math.max(1, end - Date.now())
        const delivered = new Promise((resolve) => srv.fromWait.set(agent, resolve))
        await withDeadline(Promise.all([c.node.send(to, msg), delivered]), left(), `link ${i} of ${prefix + k}: opening and delivering`)
        c.node.end(to.agent)
        await until(() => c.node.linkCount() === 0 && srv.node.linkCount(agent) === 0, [c, srv], left(), `link ${i} of ${prefix + k}: closing`)
      }
    }))
    return { links: callers * perCaller, ns: String(hrnow() - t0) }
  },

  // Callers prefix[from..to) each send one message to `to` (opening a link) and stay.
  async open ({ prefix, from, to: upto, address, size, ms }) {
    const msg = message(size, 1)
    const sends = []
    for (let i = from; i < upto; i++) sends.push(get(prefix + i).node.send(address, msg))
    await withDeadline(Promise.all(sends), ms, `opening links ${from}..${upto - 1}`)
    // Logs the reference peer keeps for tests are not part of a link's cost.
    for (let i = from; i < upto; i++) get(prefix + i).node.trim()
  },

  linkCount ({ name }) { return get(name).node.linkCount() },

  trim ({ name }) { get(name).node.trim() },

  cpu () { return process.cpuUsage() },

  // Resident set after full collections, and a pause for the allocator to
  // hand memory back; and how many memory maps the process has (a JS Noise
  // node runs out of them: sodium-native guards every key with pages of its own).
  async rss ({ settle = 500 }) {
    for (const s of nodes.values()) s.node.trim()
    global.gc()
    await sleep(settle)
    global.gc()
    await sleep(100)
    return { rss: process.memoryUsage.rss(), maps: mapCount() }
  },

  // The handshake ceiling's inputs: [x25519 ops/s on one core, ops per link].
  dhRate ({ ms }) {
    const native = require('../lib/native')
    return typeof native.__dhRate === 'function' ? native.__dhRate(ms) : null
  },

  // What the JSON of these messages costs one JavaScript thread, for the
  // bounds: per size, messages/s that JSON.stringify manages alone (the
  // sender's part of every transport here) and JSON.parse alone (the
  // receiver's), each for about `ms`, and the JSON text's length.
  jsonRate ({ sizes, ms }) {
    const out = {}
    for (const size of sizes) {
      const messages = Array.from({ length: 1000 }, (_, i) => message(size, 10000 + i))
      const text = JSON.stringify(messages[0])
      out[size] = {
        bytes: text.length,
        stringify: rateOf(ms, (i) => JSON.stringify(messages[i % 1000]).length),
        parse: rateOf(ms, () => JSON.parse(text).seq)
      }
    }
    return out
  },

  // The crossing every received NoisePeer message makes, there and back: a
  // call into the addon answered by a task on a tokio thread. Percentiles of
  // `count` calls, one at a time, after `warmup`; null without `__echo`.
  async crossing ({ count, warmup }) {
    const native = require('../lib/native')
    if (typeof native.__echo !== 'function') return null
    const us = []
    for (let i = 0; i < warmup + count; i++) {
      const t = hrnow()
      await native.__echo()
      if (i >= warmup) us.push(Number(hrnow() - t) / 1000)
    }
    us.sort((a, b) => a - b)
    return { p50: percentile(us, 50), p99: percentile(us, 99) }
  },

  async closeAll () {
    await Promise.all([...nodes.values()].map((s) => s.node.close()))
    nodes.clear()
  }
}

module.exports = { ops, message }

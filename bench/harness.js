'use strict'
// The parent's side of the child processes: fork, call operations over IPC
// with deadlines, and kill every child we started (by its own handle, so by
// its pid) when a measurement ends, fails, or this process exits.

const path = require('path')
const { fork } = require('child_process')
const { withDeadline } = require('./util')

const SCRIPT = path.join(__dirname, 'node-process.js')
const live = new Set() // children not yet known to have exited

class Child {
  // lifetime: the child's own bound (ms); it exits by itself after that.
  constructor (label, lifetime) {
    this.label = label
    this.pending = new Map() // id -> { resolve, reject, op }
    this.nextId = 0
    this.exited = false
    // --expose-gc: the memory figures collect before every reading. The
    // child's stdout goes to our stderr, to keep stdout for the report.
    this.proc = fork(SCRIPT, [String(lifetime)], { execArgv: ['--expose-gc'], stdio: ['ignore', 2, 2, 'ipc'] })
    live.add(this)
    this.ready = new Promise((resolve, reject) => {
      this.proc.once('message', (m) => m && m.ready ? resolve() : reject(new Error(`${label}: unexpected first message`)))
      this.proc.once('error', reject)
      this.proc.once('exit', (code, signal) => reject(new Error(`${label} exited before it was ready (${signal || code})`)))
    })
    this.proc.on('message', (m) => {
      const p = m && this.pending.get(m.id)
      if (!p) return
      this.pending.delete(m.id)
      if (m.error !== undefined) p.reject(new Error(`${label}: ${p.op}: ${m.error}`))
      else p.resolve(m.result)
    })
    this.proc.on('exit', (code, signal) => {
      this.exited = true
      live.delete(this)
      // A crash (or a rebuilt addon failing to load) ends every call at once.
      for (const p of this.pending.values()) p.reject(new Error(`${label} (pid ${this.proc.pid}) exited during ${p.op} (${signal || 'code ' + code})`))
      this.pending.clear()
    })
  }

  get pid () { return this.proc.pid }

  // Call operation `op` in the child; fails after `ms`.
  call (op, args, ms = 60000) {
    if (this.exited) return Promise.reject(new Error(`${this.label} has exited; cannot ${op}`))
    const id = ++this.nextId
    const answer = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, op })
      this.proc.send({ id, op, args })
    })
    return withDeadline(answer, ms, `${this.label}: ${op}`)
  }

  // Close the nodes politely (bounded), then kill the process and wait for it.
  async stop () {
    if (!this.exited) await this.call('closeAll', {}, 5000).catch(() => {})
    this.kill()
    if (!this.exited) await withDeadline(new Promise((resolve) => this.proc.once('exit', resolve)), 5000, `${this.label} exiting`).catch(() => {})
  }

  kill () {
    if (!this.exited) this.proc.kill('SIGKILL')
  }
}

// Start children and wait until each is ready.
async function spawn (labels, lifetime) {
  const children = labels.map((label) => new Child(label, lifetime))
  try {
    await withDeadline(Promise.all(children.map((c) => c.ready)), 30000, 'starting child processes')
  } catch (err) {
    children.forEach((c) => c.kill())
    throw err
  }
  return children
}

// Run fn(children) with fresh children, stopped afterwards whatever happens.
async function withChildren (labels, lifetime, fn) {
  const children = await spawn(labels, lifetime)
  try {
    return await fn(children)
  } finally {
    await Promise.all(children.map((c) => c.stop()))
  }
}

function killAll () {
  for (const c of live) c.kill()
}

// Async clean-ups to run on a signal (the store section's PostgreSQL).
const cleanups = new Set()
function onSignal (fn) {
  cleanups.add(fn)
  return () => cleanups.delete(fn)
}

// Kill what is left on any way out of this process.
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, async () => {
    killAll()
    process.stderr.write(`\nbench: ${signal}, stopping\n`)
    await withDeadline(Promise.allSettled([...cleanups].map((fn) => fn())), 15000, 'clean-up').catch(() => {})
    process.exit(130)
  })
}

module.exports = { spawn, withChildren, killAll, onSignal }

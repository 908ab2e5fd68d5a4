'use strict'
// The soak's own network: one namespace per node, named with the
// controller's pid (parallel runs do not clash), joined by soak/impair.py,
// which gives each a TUN device with an address in 10.231.0.0/24 (inside the
// namespaces only: nothing of it is visible outside them) and delays, drops,
// reorders and duplicates what crosses. Everything is deleted at the end,
// also after a failure or a signal (the controller calls `teardown`).

const { spawn, spawnSync } = require('child_process')
const path = require('path')
const readline = require('readline')

const PREFIX = 'mnsoak'
const SUBNET = '10.231.0.'

function ipSync (args) {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10000 })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || '').trim()}`)
  return r.stdout
}

// Why namespaces cannot be used here, or null when they can: makes and
// deletes a namespace, and checks for TUN and python3.
function unavailable () {
  if (process.platform !== 'linux') return 'not Linux'
  const probe = `${PREFIX}-probe-${process.pid}`
  try {
    ipSync(['netns', 'add', probe])
  } catch (err) {
    return `'ip netns add' is not permitted here (${err.message.split('\n')[0]})`
  }
  try { ipSync(['netns', 'del', probe]) } catch (_) {}
  try {
    require('fs').accessSync('/dev/net/tun')
  } catch (_) {
    return 'no /dev/net/tun'
  }
  const py = spawnSync('python3', ['-c', 'import fcntl, selectors'], { timeout: 10000 })
  if (py.error || py.status !== 0) return 'no python3 (soak/impair.py needs it)'
  return null
}

// Namespaces of earlier runs whose controller is gone (killed before it
// could clean up): deleted, since nothing of theirs can still use them.
function removeStale () {
  let list = ''
  try { list = ipSync(['netns', 'list']) } catch (_) { return [] }
  const gone = []
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0]
    const m = /^mnsoak-(\d+)-/.exec(name)
    if (!m || Number(m[1]) === process.pid) continue
    try { process.kill(Number(m[1]), 0); continue } catch (err) { if (err.code === 'EPERM') continue }
    try { ipSync(['netns', 'del', name]); gone.push(name) } catch (_) {}
  }
  return gone
}

class Network {
  constructor (count, { lifetime, seed = 1 }) {
    this.nodes = []
    for (let i = 0; i < count; i++) {
      this.nodes.push({
        ns: `${PREFIX}-${process.pid}-${i}`,
        dev: `mns${process.pid % 100000}t${i}`, // at most 15 characters
        addr: SUBNET + (10 + i)
      })
    }
    this.lifetime = lifetime
    this.seed = seed
    this.proc = null
    this.created = []
    this.waiters = []
    this.stats = null
  }

  async setup () {
    removeStale()
    for (const n of this.nodes) {
      ipSync(['netns', 'add', n.ns])
      this.created.push(n.ns)
    }
    const arg = JSON.stringify({ nodes: this.nodes, lifetime: Math.ceil(this.lifetime / 1000), seed: this.seed })
    this.proc = spawn('python3', [path.join(__dirname, 'impair.py'), arg], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.proc.on('exit', () => { this.proc = null; for (const w of this.waiters.splice(0)) w.reject(new Error('impair.py exited')) })
    this.proc.stdin.on('error', () => {})
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let m
      try { m = JSON.parse(line) } catch (_) { return }
      if (m.stats) this.stats = m.stats
      const w = this.waiters.shift()
      if (w) w.resolve(m)
    })
    await this._wait(15000, 'impair.py to set up the devices')
  }

  _wait (ms, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
      this.waiters.push({ resolve: (m) => { clearTimeout(timer); resolve(m) }, reject: (e) => { clearTimeout(timer); reject(e) } })
    })
  }

  // One command to impair.py; resolves with its answer.
  command (obj) {
    if (!this.proc) return Promise.reject(new Error('impair.py is not running'))
    const answer = this._wait(5000, `impair.py to answer ${JSON.stringify(obj)}`)
    this.proc.stdin.write(JSON.stringify(obj) + '\n')
    return answer
  }

  profile (p) { return this.command({ profile: p }) }
  cut (i, on) { return this.command({ cut: i, on }) }
  stall (i, on) { return this.command({ stall: i, on }) }
  // The kernel's own cut: the node's device down (its routes go) and up again.
  link (i, up) {
    const n = this.nodes[i]
    ipSync(['-n', n.ns, 'link', 'set', 'dev', n.dev, up ? 'up' : 'down'])
  }

  async readStats () {
    try { await this.command({ stats: true }) } catch (_) {}
    return this.stats
  }

  // Stop impair.py and delete the namespaces; safe to call more than once.
  async teardown () {
    if (this.proc) {
      const proc = this.proc
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      try { proc.stdin.end() } catch (_) {}
      const timer = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL') } catch (_) {} }, 2000)
      await exited
      clearTimeout(timer)
    }
    this.teardownSync()
  }

  teardownSync () {
    if (this.proc) { try { process.kill(this.proc.pid, 'SIGKILL') } catch (_) {} }
    for (const ns of this.created.splice(0)) {
      try { ipSync(['netns', 'del', ns]) } catch (_) {}
    }
  }
}

module.exports = { Network, unavailable, removeStale }

'use strict'
// Tools for hostile-input tests: raw TCP clients that speak broken frames,
// fake servers, an event log with bounded waits, a hand-made KK client (so a
// test can misbehave after a valid handshake), and child Node processes.
// Loopback only; every wait is bounded in time.

const wireTap = require('./wire-tap')
const net = require('net')
const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const { spawn } = require('child_process')
const noise = require('noise-protocol')
const cipherState = require('noise-protocol/cipher-state')({ cipher: require('noise-protocol/cipher')() })

const HOST = '127.0.0.1'
const ROOT = path.resolve(__dirname, '..', '..')

const { sleep } = require('./wait')

// A frame: 4-byte big-endian length, then letter + body (docs/PROTOCOL.md §2).
function frame (letter, body = Buffer.alloc(0)) {
  const b = Buffer.concat([Buffer.from(letter, 'latin1'), Buffer.from(body)])
  const len = Buffer.alloc(4)
  len.writeUInt32BE(b.length)
  return Buffer.concat([len, b])
}

// Just a length prefix (with an optional, possibly short, body).
function prefix (n, body = Buffer.alloc(0)) {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(n >>> 0)
  return Buffer.concat([len, Buffer.from(body)])
}

// Split frames off a byte stream; returns { frames: [{letter, body}], rest },
// with `body` the bytes after the letter.
function parseFrames (buf) {
  const { frames, rest } = wireTap.parseFrames(buf)
  return { frames: frames.map(f => ({ letter: f.letter, body: f.body.subarray(1) })), rest }
}

// Connect a raw TCP client. Resolves once connected with a handle whose
// `closed` promise settles on 'close' (with what the client saw), or after
// `ms` with { closed: false } (the socket is then destroyed by us).
function rawClient (port, { ms = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const sock = net.connect({ port, host: HOST })
    const seen = { data: Buffer.alloc(0), error: null, closed: false, ms: 0, hadError: false }
    let timer = null
    const closed = new Promise((resolveClosed) => {
      sock.on('data', (d) => { seen.data = Buffer.concat([seen.data, d]) })
      sock.on('error', (e) => { seen.error = e })
      sock.on('close', (hadError) => {
        clearTimeout(timer)
        seen.closed = true
        seen.hadError = hadError
        seen.ms = Date.now() - t0
        resolveClosed(seen)
      })
      timer = setTimeout(() => { seen.ms = Date.now() - t0; resolveClosed({ ...seen }); sock.destroy() }, ms)
    })
    sock.once('connect', () => resolve({ sock, closed, localPort: sock.localPort, t0 }))
    sock.once('error', (e) => { clearTimeout(timer); reject(e) })
  })
}

// Connect, write `bytes`, and wait for the peer to close (bounded).
async function hit (port, bytes, opts) {
  const c = await rawClient(port, opts)
  if (bytes && bytes.length) c.sock.write(bytes)
  const seen = await c.closed
  seen.localPort = c.localPort
  return seen
}

// Records a peer's events; waitFor resolves with the first matching event
// (already seen or still to come), or rejects after `ms`.
class EventLog {
  constructor (peer) {
    this.events = []
    this.waiters = []
    peer.onEvent((e) => {
      this.events.push(e)
      for (const w of this.waiters.slice()) {
        if (w.pred(e)) { this.waiters.splice(this.waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(e) }
      }
    })
  }

  waitFor (pred, ms = 3000, what = 'an event') {
    const found = this.events.find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const w = { pred, resolve }
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; events: ${JSON.stringify(this.events.map(brief))}`))
      }, ms)
      this.waiters.push(w)
    })
  }

  // Resolves once `n` events match (bounded).
  async waitCount (pred, n, ms = 5000, what = 'events') {
    const end = Date.now() + ms
    while (this.events.filter(pred).length < n) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${n} ${what}; got ${this.events.filter(pred).length}: ${JSON.stringify(this.events.map(brief))}`)
      await sleep(10)
    }
    return this.events.filter(pred)
  }

  // The event about the connection from a local client port (the peer's view
  // of the remote port is the client's local port).
  fromPort (port, ms, what) {
    return this.waitFor((e) => e.port === port && e.type !== 'open', ms, what || `an event for client port ${port}`)
  }
}

const brief = (e) => ({ type: e.type, reason: e.reason, port: e.port, link: e.link, agent: e.agent && e.agent.slice(0, 6) })

// A server that closes what it binds once the test is done.
async function fakeServer (onConnection) {
  const sockets = new Set()
  const server = net.createServer((sock) => {
    sockets.add(sock)
    sock.on('error', () => {})
    sock.on('close', () => sockets.delete(sock))
    onConnection(sock)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, resolve)
  })
  server.port = server.address().port
  server.shutdown = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  })
  return server
}

// A loopback port where nothing listens (bound, noted, closed).
async function deadPort () {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, HOST, resolve))
  const port = server.address().port
  await new Promise((resolve) => server.close(resolve))
  return port
}

// --- a hand-made KK initiator (noise-protocol), to misbehave after a valid handshake ---

// A native handshake timestamp: microseconds since the epoch, strictly
// increasing within this process (docs/PROTOCOL.md §5).
let lastTs = 0
function nativeTimestamp () {
  lastTs = Math.max(Date.now() * 1000, lastTs + 1)
  return lastTs
}

// The associated data of a native transport message (a version label, then
// the letter): what a native node authenticates on every T, F and C.
const AD_LABEL = Buffer.from('MyCHIPs-noise/1 ')
const nativeAd = (letter) => Buffer.concat([AD_LABEL, Buffer.from(letter, 'latin1')])

// Opens N + K with a native timestamp, reads A, confirms with C (docs/PROTOCOL.md
// §5a) unless { confirm: false }, and hands back a socket with transport keys, so
// a test can send well-formed or broken T frames.
async function kkClient (port, me, responderKey, { ms = 3000, confirm = true } = {}) {
  const c = await rawClient(port, { ms: ms + 5000 })
  const toJson = (v) => Buffer.from(JSON.stringify(v))
  const n = noise.initialize('N', true, Buffer.alloc(0), null, null, responderKey)
  const nOut = Buffer.alloc(256)
  noise.writeMessage(n, toJson(me.agent), nOut)
  const nMsg = Buffer.from(nOut.subarray(0, noise.writeMessage.bytes))
  noise.destroy(n)
  const hs = noise.initialize('KK', true, Buffer.alloc(0), { publicKey: me.publicKey, secretKey: me.privateKey }, null, responderKey)
  const kOut = Buffer.alloc(256)
  noise.writeMessage(hs, toJson(nativeTimestamp()), kOut)
  const kMsg = Buffer.from(kOut.subarray(0, noise.writeMessage.bytes))
  c.hello = Buffer.concat([frame('N', nMsg), frame('K', kMsg)])
  c.sock.write(c.hello)
  // Wait for A.
  const end = Date.now() + ms
  let buf = Buffer.alloc(0)
  const onData = (d) => { buf = Buffer.concat([buf, d]) }
  c.sock.on('data', onData)
  let a = null
  while (!a) {
    const { frames } = parseFrames(buf)
    a = frames.find((f) => f.letter === 'A')
    if (a) break
    if (Date.now() > end || c.sock.destroyed) { c.sock.destroy(); throw new Error('no A reply to the KK handshake') }
    await sleep(5)
  }
  c.sock.off('data', onData)
  const out = Buffer.alloc(a.body.length)
  const split = noise.readMessage(hs, a.body, out)
  noise.destroy(hs)
  const reply = JSON.parse(out.subarray(0, noise.readMessage.bytes).toString() || 'null')
  c.reply = reply
  c.seal = (plaintext, letter = 'T') => {
    const pt = Buffer.from(plaintext)
    const ct = Buffer.alloc(pt.length + 16)
    cipherState.encryptWithAd(split.tx, ct, nativeAd(letter), pt)
    return ct.subarray(0, cipherState.encryptWithAd.bytesWritten)
  }
  if (confirm) c.sock.write(frame('C', c.seal(JSON.stringify({ max: 1048576, frame: 65536 }), 'C')))
  return c
}

// --- child processes ---

// Run `source` as a Node script in a child process (the file goes to the OS
// temp directory). Resolves with { code, signal, timedOut, stdout, stderr,
// lines (parsed JSON lines of stdout), exitMs }; kills the child after `ms`.
function runChild (source, { ms = 10000 } = {}) {
  const file = path.join(os.tmpdir(), `mychips-noise-hostile-${process.pid}-${crypto.randomBytes(6).toString('hex')}.js`)
  fs.writeFileSync(file, `'use strict'\nconst ROOT = ${JSON.stringify(ROOT)}\n${source}\n`)
  return new Promise((resolve) => {
    const t0 = Date.now()
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let doneAt = null
    child.stdout.on('data', (d) => {
      stdout += d
      if (doneAt == null && /"done":true/.test(stdout)) doneAt = Date.now()
    })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, ms)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      try { fs.unlinkSync(file) } catch (_) {}
      const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) } catch (_) { return { unparsed: l } } })
      const exitAt = Date.now()
      resolve({ code, signal, timedOut, stdout, stderr, lines, ms: exitAt - t0, afterDoneMs: doneAt == null ? null : exitAt - doneAt })
    })
  })
}

module.exports = { HOST, ROOT, sleep, frame, prefix, parseFrames, rawClient, hit, EventLog, fakeServer, deadPort, kkClient, runChild, nativeTimestamp, nativeAd }

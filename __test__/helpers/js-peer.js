'use strict'
// Reference "legacy" peer for tests: behaves on the wire like a JavaScript
// MyCHIPs node's Noise socket module (see docs/PROTOCOL.md §2-4, §9).
// It is deliberately permissive the way a JS node is (ignores unexpected
// letters, no frame size limit, whole messages in one T frame), so native tests
// can check interop against it. Test-only code: loopback use, no hardening.

const net = require('net')
const { EventEmitter } = require('events')
const sodium = require('sodium-native')
const frame = require('frame-stream')
const noise = require('noise-protocol')
// index.js of noise-protocol does not export the cipher-state functions; build
// them the same way it does internally (they are stateless apart from the
// bytesWritten/bytesRead properties, so a separate instance is equivalent).
const cipherState = require('noise-protocol/cipher-state')({ cipher: require('noise-protocol/cipher')() })

const PROLOGUE = Buffer.alloc(0) // empty prologue (§3)
const NO_AD = Buffer.alloc(0)
const MACLEN = cipherState.MACLEN // 16

// --- identities -------------------------------------------------------------

// Fresh Ed25519 identity plus the X25519 pair derived from it (§1).
function keypair () {
  const edPublic = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES)
  const edSecret = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES)
  sodium.crypto_sign_keypair(edPublic, edSecret)
  const publicKey = Buffer.alloc(32)
  const privateKey = Buffer.alloc(32)
  sodium.crypto_sign_ed25519_pk_to_curve25519(publicKey, edPublic)
  sodium.crypto_sign_ed25519_sk_to_curve25519(privateKey, edSecret)
  return { agent: edPublic.toString('base64url'), publicKey, privateKey, edPublic, edSecret }
}

// Agent id (base64url Ed25519 public key) -> X25519 public key. Throws on a
// malformed id or a point that does not map.
function agentToKey (agent) {
  const ed = Buffer.from(String(agent), 'base64url')
  if (ed.length !== 32) throw new Error(`agent id is not 32 bytes: ${agent}`)
  const x = Buffer.alloc(32)
  sodium.crypto_sign_ed25519_pk_to_curve25519(x, ed)
  return x
}

// How many enumerable keys a parsed JSON value has; primitives count like
// Object.keys(Object(v)) does (a string has one key per character).
function keyCount (v) {
  return v == null ? 0 : Object.keys(Object(v)).length
}

// Parse a payload; returns { ok:false } for an empty or malformed one.
function parse (buf) {
  if (!buf || buf.length === 0) return { ok: false }
  try { return { ok: true, value: JSON.parse(buf.toString('utf8')) } } catch (e) { return { ok: false } }
}

const toJson = (v) => Buffer.from(JSON.stringify(v), 'utf8')

// --- one TCP connection -----------------------------------------------------

let nextConnId = 1

class Connection {
  constructor (peer, socket, role) {
    this.id = nextConnId++
    this.peer = peer
    this.socket = socket
    this.role = role // 'initiator' | 'responder'
    this.state = 'none' // none | pending | id | open | closed
    this.agent = null // remote agent, once known
    this.via = null // 'I' | 'K' : how the handshake went
    this.frames = [] // { dir: 'in'|'out', letter, length } ; length = body bytes incl. letter
    this.queue = [] // initiator: { message, resolve, reject } sent before 'A'
    this.hs = null
    this.tx = null
    this.rx = null
    this.chain = Promise.resolve() // frames are handled one at a time, in order
    this.closeReason = null
    this.closing = false

    this.encoder = frame.encode()
    this.encoder.pipe(socket)
    // No maxSize: the JS node's decoder sets no limit (§9).
    socket.pipe(frame.decode()).on('data', (body) => {
      this._log('in', body)
      this.chain = this.chain.then(() => this._onFrame(body)).catch((err) => this.fail(err.message))
    })
    socket.on('error', (err) => { this.closeReason = this.closeReason || err.message })
    socket.on('close', () => this._closed())
  }

  _log (dir, body) {
    const entry = { dir, letter: body.length ? String.fromCharCode(body[0]) : '', length: body.length }
    this.frames.push(entry)
    this.peer.frames.push(Object.assign({ conn: this.id }, entry))
    this.peer.emit('frame', Object.assign({ conn: this }, entry))
  }

  // Write one frame: letter + body. Resolves when frame-stream took it.
  writeFrame (letter, body) {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed' || this.closing) return reject(new Error('connection closed'))
      const buf = Buffer.concat([Buffer.from(letter, 'latin1'), body || Buffer.alloc(0)])
      this._log('out', buf)
      this.encoder.write(buf, (err) => err ? reject(err) : resolve())
    })
  }

  fail (reason) {
    this.peer._fault(this, reason)
    this.close(reason)
  }

  close (reason) {
    if (this.state === 'closed') return
    this.closing = true // 'close' comes later; stop handling frames now
    this.closeReason = this.closeReason || reason || 'closed'
    this.socket.destroy()
  }

  _closed () {
    if (this.state === 'closed') return
    this.state = 'closed'
    const err = new Error(`connection closed: ${this.closeReason || 'remote closed'}`)
    for (const q of this.queue.splice(0)) q.reject(err)
    if (this.hs) noise.destroy(this.hs)
    this.hs = null
    this.peer._forget(this)
  }

  // Handshake buffers: payload plus e (32), encrypted s (48) and MAC (16).
  _hsWrite (payload) {
    const out = Buffer.alloc(payload.length + 128)
    const split = noise.writeMessage(this.hs, payload, out)
    return { msg: out.subarray(0, noise.writeMessage.bytes), split }
  }

  _hsRead (msg) {
    const out = Buffer.alloc(msg.length) // payload is never longer than the message
    const split = noise.readMessage(this.hs, msg, out) // throws on a bad MAC
    return { payload: out.subarray(0, noise.readMessage.bytes), split }
  }

  // noise-protocol gives Split()'s first key to whoever wrote the last
  // handshake message and names the pair from this side's view: use as is.
  _setTransport (split) {
    this.tx = split.tx
    this.rx = split.rx
    noise.destroy(this.hs)
    this.hs = null
  }

  encrypt (pt) {
    if (!this.peer.encrypt) return pt
    const out = Buffer.alloc(pt.length + MACLEN)
    cipherState.encryptWithAd(this.tx, out, NO_AD, pt)
    return out.subarray(0, cipherState.encryptWithAd.bytesWritten)
  }

  decrypt (ct) {
    if (!this.peer.encrypt) return ct
    if (ct.length < MACLEN) throw new Error('transport message shorter than MAC')
    const out = Buffer.alloc(ct.length - MACLEN)
    cipherState.decryptWithAd(this.rx, out, NO_AD, ct) // throws on a bad MAC
    return out.subarray(0, cipherState.decryptWithAd.bytesWritten)
  }

  // --- initiator ---

  // First frames of a connection we opened: I (ticket) or N + K (by key).
  // The first message gets `to`/`from` (when absent) and `ticket`, unless
  // asIs is set (lets tests put an exact payload in I or K).
  async start (address, message, { ticket, asIs } = {}) {
    const peer = this.peer
    const rs = address.key ? Buffer.from(address.key) : agentToKey(address.agent)
    const first = asIs ? message : Object.assign({}, message)
    if (!asIs && first.to === undefined) first.to = { agent: address.agent, host: address.host, port: address.port }
    if (!asIs && first.from === undefined) first.from = peer.address()
    this.state = 'pending'
    if (ticket !== undefined) {
      this.via = 'I'
      if (!asIs) first.ticket = ticket
      if (!peer.encrypt) return this.writeFrame('I', toJson(first))
      this.hs = noise.initialize('IK', true, PROLOGUE, peer.static, null, rs)
      return this.writeFrame('I', this._hsWrite(toJson(first)).msg)
    }
    this.via = 'K'
    if (!peer.encrypt) {
      await this.writeFrame('N', toJson(peer.agent))
      return this.writeFrame('K', toJson(first))
    }
    // One-way N to the responder's key, carrying our agent id as a JSON string.
    const n = noise.initialize('N', true, PROLOGUE, null, null, rs)
    const nOut = Buffer.alloc(256)
    noise.writeMessage(n, toJson(peer.agent), nOut)
    const nMsg = nOut.subarray(0, noise.writeMessage.bytes)
    noise.destroy(n)
    // Both frames go out back to back, without waiting for anything.
    const pN = this.writeFrame('N', nMsg)
    this.hs = noise.initialize('KK', true, PROLOGUE, peer.static, null, rs)
    const pK = this.writeFrame('K', this._hsWrite(toJson(first)).msg)
    await pN
    return pK
  }

  async _onA (body) {
    let payload = body
    if (this.peer.encrypt) {
      const r = this._hsRead(body)
      this._setTransport(r.split)
      payload = r.payload
    }
    this.state = 'open'
    this.peer.emit('open', this)
    // A JS initiator hands A's payload on when it parses to a value with at
    // most one key. Choice: an empty (or unparsable) payload has no value, so
    // nothing is handed on - this is what a native responder sends.
    const p = parse(payload)
    if (p.ok && keyCount(p.value) <= 1) this.peer._deliver(this, p.value, 'A')
    // Flush what was queued during the handshake, in order, as T frames.
    for (const q of this.queue.splice(0)) {
      this.writeFrame('T', this.encrypt(toJson(q.message))).then(q.resolve, q.reject)
    }
  }

  // --- responder ---

  async _onI (body) {
    const peer = this.peer
    let payload = body
    let remoteKey = null
    if (peer.encrypt) {
      this.hs = noise.initialize('IK', false, PROLOGUE, peer.static)
      payload = this._hsRead(body).payload
      remoteKey = Buffer.from(this.hs.rs)
    }
    const p = parse(payload)
    if (!p.ok || p.value == null || typeof p.value !== 'object') return this.fail('I payload is not a JSON object')
    const msg = p.value
    this.state = 'ticket'
    let ok = false
    try { ok = await peer.checkTicket(msg.ticket, msg, { remoteKey, conn: this }) } catch (e) { ok = false }
    if (this.closing) return
    if (!ok) return this.fail('ticket refused')
    this.agent = msg.from && msg.from.agent ? msg.from.agent : null
    await this._accept()
    // The JS node always hands the I payload on once the ticket is accepted.
    peer._deliver(this, msg, 'I')
  }

  async _onN (body) {
    const peer = this.peer
    let payload = body
    if (peer.encrypt) {
      // One-way N: a single message, decrypted with our static key alone.
      const n = noise.initialize('N', false, PROLOGUE, peer.static)
      const out = Buffer.alloc(body.length)
      try {
        noise.readMessage(n, body, out)
        payload = out.subarray(0, noise.readMessage.bytes)
      } finally { noise.destroy(n) }
    }
    const p = parse(payload)
    if (!p.ok || typeof p.value !== 'string') return this.fail('N payload is not an agent id')
    let key = null
    try { key = await peer.peerKey(p.value) } catch (e) { key = null }
    if (this.closing) return
    if (!key) return this.fail(`no key for agent ${p.value}`)
    this.agent = p.value
    this.remoteKey = Buffer.from(key)
    this.state = 'id'
  }

  async _onK (body) {
    const peer = this.peer
    let payload = body
    if (peer.encrypt) {
      this.hs = noise.initialize('KK', false, PROLOGUE, peer.static, null, this.remoteKey)
      payload = this._hsRead(body).payload
    }
    await this._accept()
    // K's payload goes on only if it has at least one enumerable key.
    const p = parse(payload)
    if (p.ok && keyCount(p.value) >= 1) peer._deliver(this, p.value, 'K')
  }

  // Reply A (empty payload) and open the connection.
  async _accept () {
    let body = Buffer.alloc(0)
    if (this.peer.encrypt) {
      const w = this._hsWrite(Buffer.alloc(0))
      this._setTransport(w.split)
      body = w.msg
    }
    this.state = 'open'
    this.peer._register(this)
    const sent = this.writeFrame('A', body)
    this.peer.emit('open', this)
    return sent
  }

  // --- dispatch ---

  async _onFrame (body) {
    if (this.closing || this.state === 'closed') return
    const letter = body.length ? String.fromCharCode(body[0]) : ''
    const rest = body.subarray(1)
    const st = this.state
    try {
      if (st === 'open' && letter === 'T') {
        const p = parse(this.decrypt(rest))
        if (!p.ok) return this.peer._fault(this, 'T payload is not JSON')
        return this.peer._deliver(this, p.value, 'T')
      }
      if (this.role === 'initiator' && st === 'pending' && letter === 'A') return await this._onA(rest)
      if (this.role === 'responder' && st === 'none' && letter === 'I') return await this._onI(rest)
      if (this.role === 'responder' && st === 'none' && letter === 'N') return await this._onN(rest)
      if (this.role === 'responder' && st === 'id' && letter === 'K') return await this._onK(rest)
    } catch (err) {
      return this.fail(`${letter} frame rejected: ${err.message}`)
    }
    // Anything else (Q, F, a letter out of order, an empty frame) is ignored.
    this.peer.ignored.push({ conn: this.id, letter, length: body.length, state: st })
    this.peer.emit('ignored', { conn: this, letter, length: body.length, state: st })
  }
}

// --- the peer (a node's socket module) --------------------------------------

class JsPeer extends EventEmitter {
  constructor (opts = {}) {
    super()
    if (!opts.agent || !opts.keys) throw new Error('JsPeer needs agent and keys')
    this.agent = opts.agent
    this.static = { publicKey: Buffer.from(opts.keys.publicKey), secretKey: Buffer.from(opts.keys.privateKey) }
    this.encrypt = opts.encrypt !== false
    this.host = opts.host || '127.0.0.1'
    this.port = opts.port || 0
    this.idleTimeout = opts.idleTimeout === undefined ? 60000 : opts.idleTimeout
    this.checkTicket = opts.checkTicket || (async () => false)
    // Default lookup: the agent id alone gives the key (§1).
    this.peerKey = opts.peerKey || (async (agent) => { try { return agentToKey(agent) } catch (e) { return null } })
    this.delivered = [] // { message, via: 'I'|'K'|'A'|'T', agent, conn }
    this.frames = [] // { conn, dir, letter, length }
    this.faults = [] // { conn, reason }
    this.ignored = [] // { conn, letter, length, state }
    this.conns = new Set()
    this.byAgent = new Map() // agent -> Connection used by send()
    this.server = null
  }

  address () { return { agent: this.agent, host: this.host, port: this.port } }

  listen () {
    return new Promise((resolve, reject) => {
      this.server = net.createServer((socket) => {
        const conn = this._track(new Connection(this, socket, 'responder'))
        // Responder idle timeout: no traffic for idleTimeout ms closes it
        // (socket inactivity in either direction; every frame is traffic).
        if (this.idleTimeout > 0) {
          socket.setTimeout(this.idleTimeout, () => conn.close('idle timeout'))
        }
        this.emit('connection', conn)
      })
      this.server.once('error', reject)
      this.server.listen(this.port, this.host, () => {
        this.port = this.server.address().port
        resolve({ host: this.host, port: this.port })
      })
    })
  }

  // Send one application message to address {agent, host, port, key?}.
  // opts: { ticket } for first contact (IK), else N+K by key; { asIs: true }
  // puts `message` into I/K exactly as given (no to/from/ticket added).
  // Resolves once its frame was handed to the socket; rejects if the
  // connection fails or closes before that.
  send (address, message, opts = {}) {
    // An existing link to that agent is reused (a ticket is then not needed);
    // one that is already closing does not count.
    let conn = this.byAgent.get(address.agent)
    if (conn && conn.closing) conn = null
    if (conn && conn.state === 'open') return conn.writeFrame('T', conn.encrypt(toJson(message)))
    if (conn) return new Promise((resolve, reject) => conn.queue.push({ message, resolve, reject }))
    // No connection yet: open one; this message rides in I or K.
    const socket = net.connect({ host: address.host || '127.0.0.1', port: address.port })
    conn = this._track(new Connection(this, socket, 'initiator'))
    conn.agent = address.agent
    this._register(conn)
    return new Promise((resolve, reject) => {
      socket.once('connect', () => {
        this.emit('connection', conn)
        conn.start(address, message, opts).then(resolve, (err) => { reject(err); conn.fail(err.message) })
      })
      socket.once('close', () => reject(new Error(`connection closed: ${conn.closeReason || 'remote closed'}`)))
    })
  }

  // Close the server and every connection so the process can exit.
  close () {
    for (const c of this.conns) c.close('peer closed')
    if (!this.server) return Promise.resolve()
    const s = this.server
    this.server = null
    return new Promise((resolve) => s.close(() => resolve()))
  }

  // Wait (bounded) until `event` fires with an argument satisfying `pred`.
  waitFor (event, pred = () => true, ms = 3000) {
    return new Promise((resolve, reject) => {
      const on = (...args) => { if (pred(...args)) { done(); resolve(args[0]) } }
      const timer = setTimeout(() => { done(); reject(new Error(`timeout waiting for ${event}`)) }, ms)
      const done = () => { clearTimeout(timer); this.off(event, on) }
      this.on(event, on)
    })
  }

  // Wait (bounded) until at least n messages were delivered in total.
  async waitDelivered (n, ms = 3000) {
    if (this.delivered.length < n) await this.waitFor('message', () => this.delivered.length >= n, ms)
    return this.delivered
  }

  _track (conn) {
    this.conns.add(conn)
    return conn
  }

  _register (conn) {
    if (conn.agent) this.byAgent.set(conn.agent, conn)
  }

  _forget (conn) {
    this.conns.delete(conn)
    if (conn.agent && this.byAgent.get(conn.agent) === conn) this.byAgent.delete(conn.agent)
    this.emit('close', conn, conn.closeReason)
  }

  _deliver (conn, message, via) {
    const entry = { message, via, agent: conn.agent, conn: conn.id }
    this.delivered.push(entry)
    this.emit('message', entry)
  }

  _fault (conn, reason) {
    this.faults.push({ conn: conn.id, reason })
    this.emit('fault', { conn, reason })
  }
}

module.exports = { keypair, agentToKey, keyCount, JsPeer, Connection }

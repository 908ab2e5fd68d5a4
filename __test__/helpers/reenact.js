'use strict'
// A native initiator written by hand with noise-protocol, so a test can
// re-enact, frame for frame, the up-stream a NoisePeer sends (docs/PROTOCOL.md
// §3, §5a; docs/NATIVE.md), and tamper with it on a live connection: a frame
// sealed after `A` depends on the responder's fresh ephemeral key, so a
// captured one cannot be tampered with meaningfully on a new connection; a
// re-enacted one can.
//
//   const s = await Scripted.connect(port, { me, responderKey, ticket, from })
//   s.hello                   message 1 as whole frames: [I] or [N, K]
//   s.write(bytes)            what goes on the wire (the test may edit it)
//   await s.answer(ms)        the A (parsed, transport keys ready), or null
//   s.transport(messages)     C, then each message as T (or F pieces and a T,
//                             to the responder's frame limit), sealed in order
//   s.end(); await s.closed   what the client saw once the node ended its
//                             side: { data, closed, ms }; s.destroy() after
//
// Also: regions(frame) names the regions of each frame (length prefix,
// letter, ephemeral key, encrypted static key, ciphertext, tag), so a sweep
// can cover each of them. Loopback only; every wait is bounded.

const net = require('net')
const noise = require('noise-protocol')
const cipherState = require('noise-protocol/cipher-state')({ cipher: require('noise-protocol/cipher')() })
const { HOST, frame, parseFrames, nativeTimestamp, nativeAd, sleep } = require('./hostile')

const TAG = 16
const DH = 32
const json = (v) => Buffer.from(JSON.stringify(v))

// A TCP client like hostile.rawClient, but half-open: it answers the node's
// end of stream only after `linger` ms, so an orderly close by the node (it
// ends its side, then reads on until our end or its drain timeout) is decided
// by the node's own timers, not by our reply. `closed` settles once the node
// ended its side or the socket closed, with what the client saw ({ data,
// closed: true, ms }), or after `ms` with { closed: false } (the socket is
// then destroyed). The test destroys the socket once it has looked.
function halfOpenClient (port, ms, linger) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const sock = net.connect({ port, host: HOST, allowHalfOpen: true })
    const seen = { data: Buffer.alloc(0), error: null, closed: false, ms: 0 }
    let timer = null
    const closed = new Promise((resolveClosed) => {
      const done = () => {
        if (seen.closed) return
        clearTimeout(timer)
        seen.closed = true
        seen.ms = Date.now() - t0
        resolveClosed(seen)
      }
      sock.on('data', (d) => { seen.data = Buffer.concat([seen.data, d]) })
      sock.on('end', () => {
        done()
        setTimeout(() => { if (!sock.destroyed) sock.end() }, linger).unref()
      })
      sock.on('error', (e) => { seen.error = e })
      sock.on('close', done)
      timer = setTimeout(() => { seen.ms = Date.now() - t0; resolveClosed({ ...seen }); sock.destroy() }, ms)
    })
    sock.once('connect', () => resolve({ sock, closed, localPort: sock.localPort, t0 }))
    sock.once('error', (e) => { clearTimeout(timer); reject(e) })
  })
}

// Noise message 1 with a payload, as bytes.
function write1 (hs, payload) {
  const out = Buffer.alloc(payload.length + 256)
  noise.writeMessage(hs, payload, out)
  return Buffer.from(out.subarray(0, noise.writeMessage.bytes))
}

class Scripted {
  // Connects and builds message 1 (not yet written). With `ticket`, IK (its
  // payload what a native node puts in I: ticket, from, ts, native); else
  // N + KK (N: our agent id as a JSON string; K: a bare timestamp).
  static async connect (port, { me, responderKey, ticket, from, ms = 4000, linger = 3000 }) {
    const s = new Scripted()
    const c = await halfOpenClient(port, ms, linger)
    Object.assign(s, { sock: c.sock, closed: c.closed, localPort: c.localPort, t0: c.t0 })
    s.buf = Buffer.alloc(0)
    s.sock.on('data', (d) => { s.buf = Buffer.concat([s.buf, d]) })
    const keys = { publicKey: me.publicKey, secretKey: me.privateKey }
    if (ticket !== undefined) {
      s.pattern = 'IK'
      s.hs = noise.initialize('IK', true, Buffer.alloc(0), keys, null, responderKey)
      const hello = { from: { agent: me.agent, ...from }, native: 1, ticket, ts: nativeTimestamp() }
      s.hello = [frame('I', write1(s.hs, json(hello)))]
    } else {
      s.pattern = 'KK'
      const n = noise.initialize('N', true, Buffer.alloc(0), null, null, responderKey)
      const nMsg = write1(n, json(me.agent))
      noise.destroy(n)
      s.hs = noise.initialize('KK', true, Buffer.alloc(0), keys, null, responderKey)
      s.hello = [frame('N', nMsg), frame('K', write1(s.hs, json(nativeTimestamp())))]
    }
    return s
  }

  write (bytes) {
    if (bytes.length && !this.sock.destroyed && !this.sock.writableEnded) this.sock.write(bytes)
  }

  // Our end of stream (FIN); a half-open socket then closes once the node's
  // end arrives.
  end () {
    if (!this.sock.destroyed && !this.sock.writableEnded) this.sock.end()
  }

  // Closes the socket and frees the handshake's secure memory if no A came.
  destroy () {
    this.sock.destroy()
    if (this.hs) { noise.destroy(this.hs); this.hs = null }
  }

  // Waits (at most `ms`) for the responder's A. Resolves with its payload
  // (an accepting one makes the transport keys ready), or with null when the
  // connection closed or nothing came.
  async answer (ms = 2000) {
    const end = Date.now() + ms
    let a = null
    while (!a) {
      a = parseFrames(this.buf).frames.find((f) => f.letter === 'A')
      if (a) break
      if (Date.now() > end || this.sock.destroyed || this.sock.readableEnded || this.sock.closed) return null
      await sleep(2)
    }
    const out = Buffer.alloc(a.body.length)
    let split
    try {
      split = noise.readMessage(this.hs, a.body, out)
    } catch (e) {
      return null
    }
    const text = out.subarray(0, noise.readMessage.bytes).toString()
    noise.destroy(this.hs)
    this.hs = null
    this.reply = text ? JSON.parse(text) : {}
    if (this.reply.ok) this.tx = split.tx
    return this.reply
  }

  // One transport frame: letter, then the message sealed with the next nonce
  // and the native associated data (the version label and the letter).
  seal (letter, plaintext) {
    const pt = Buffer.from(plaintext)
    const ct = Buffer.alloc(pt.length + TAG)
    cipherState.encryptWithAd(this.tx, ct, nativeAd(letter), pt)
    return frame(letter, ct.subarray(0, cipherState.encryptWithAd.bytesWritten))
  }

  // The up-stream after A: C (our limits), then every message, each as one
  // T or as F pieces and a final T within the responder's frame limit.
  // Returns whole frames, with `messageOf[i]` the index of the message that
  // frame i completes (-1 for C and for F pieces).
  transport (messages, limits = { max: 1048576, frame: 65536 }) {
    const frames = [this.seal('C', JSON.stringify(limits))]
    const messageOf = [-1]
    const piece = Math.min(65535 - TAG, ((this.reply && this.reply.frame) || 65536) - 1 - TAG)
    messages.forEach((m, i) => {
      const text = Buffer.from(JSON.stringify(m))
      for (let off = 0; off < text.length; off += piece) {
        const last = off + piece >= text.length
        frames.push(this.seal(last ? 'T' : 'F', text.subarray(off, off + piece)))
        messageOf.push(last ? i : -1)
      }
    })
    frames.messageOf = messageOf
    return frames
  }
}

// The regions of one whole frame (4-byte length, then the body), as
// [name, start, end) offsets into the frame: what a tamper sweep covers.
function regions (f) {
  const letter = String.fromCharCode(f[4])
  const end = f.length
  const r = [['length', 0, 4], ['letter', 4, 5]]
  const at = 5
  if (letter === 'I') { // e, encrypted s (key + tag), encrypted payload (text + tag)
    r.push(['ephemeral', at, at + DH], ['static', at + DH, at + 2 * DH], ['static-tag', at + 2 * DH, at + 2 * DH + TAG])
    r.push(['ciphertext', at + 2 * DH + TAG, end - TAG], ['tag', end - TAG, end])
  } else if (letter === 'N' || letter === 'K') { // e, encrypted payload
    r.push(['ephemeral', at, at + DH], ['ciphertext', at + DH, end - TAG], ['tag', end - TAG, end])
  } else { // a transport message
    r.push(['ciphertext', at, end - TAG], ['tag', end - TAG, end])
  }
  return r.filter(([, s, e]) => e > s)
}

module.exports = { Scripted, regions }

'use strict'
// Loopback wire taps for byte-level interop tests (test-only code).
//
// - Relay: a TCP proxy that forwards every connection to a target port and
//   records the raw bytes of each direction, so tests can parse the frames
//   independently of either endpoint's own framing code.
// - Capture: a TCP server that records what a client writes and answers nothing.
//
// parseFrames() reads a byte stream as frames with a 4-byte big-endian length
// prefix (docs/PROTOCOL.md §2); it knows nothing else about the protocol.

const net = require('net')

// Split `buf` into frames: [{ length, letter, body }]; `rest` is a trailing
// incomplete frame (bytes still in flight), if any.
function parseFrames (buf) {
  const frames = []
  let off = 0
  while (buf.length - off >= 4) {
    const length = buf.readUInt32BE(off)
    if (buf.length - off - 4 < length) break
    const body = buf.subarray(off + 4, off + 4 + length)
    frames.push({ length, letter: length ? String.fromCharCode(body[0]) : '', body })
    off += 4 + length
  }
  return { frames, rest: buf.subarray(off) }
}

class Relay {
  constructor (targetPort, targetHost = '127.0.0.1') {
    this.targetPort = targetPort
    this.targetHost = targetHost
    this.conns = [] // { up: Buffer[] (client -> target), down: Buffer[] (target -> client) }
    this.sockets = new Set()
    this.server = null
    this.port = 0
  }

  listen () {
    return new Promise((resolve, reject) => {
      this.server = net.createServer((client) => {
        const rec = { up: [], down: [] }
        this.conns.push(rec)
        const target = net.connect({ host: this.targetHost, port: this.targetPort })
        for (const s of [client, target]) {
          this.sockets.add(s)
          s.on('close', () => this.sockets.delete(s))
          s.on('error', () => {})
        }
        client.on('data', (d) => { rec.up.push(Buffer.from(d)); target.write(d) })
        target.on('data', (d) => { rec.down.push(Buffer.from(d)); client.write(d) })
        client.on('end', () => target.end())
        target.on('end', () => client.end())
        client.on('close', () => target.destroy())
        target.on('close', () => client.destroy())
      })
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port
        resolve(this.port)
      })
    })
  }

  // Frames of connection `i` in direction 'up' or 'down'.
  frames (i, dir) {
    return parseFrames(Buffer.concat(this.conns[i][dir])).frames
  }

  close () {
    for (const s of this.sockets) s.destroy()
    if (!this.server) return Promise.resolve()
    const s = this.server
    this.server = null
    return new Promise((resolve) => s.close(() => resolve()))
  }
}

class Capture {
  constructor () {
    this.conns = [] // { socket, chunks: Buffer[] }
    this.server = null
    this.port = 0
  }

  listen () {
    return new Promise((resolve, reject) => {
      this.server = net.createServer((socket) => {
        const rec = { socket, chunks: [] }
        this.conns.push(rec)
        socket.on('data', (d) => rec.chunks.push(Buffer.from(d)))
        socket.on('error', () => {})
      })
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port
        resolve(this.port)
      })
    })
  }

  bytes (i = 0) {
    return this.conns[i] ? Buffer.concat(this.conns[i].chunks) : Buffer.alloc(0)
  }

  close () {
    for (const c of this.conns) c.socket.destroy()
    if (!this.server) return Promise.resolve()
    const s = this.server
    this.server = null
    return new Promise((resolve) => s.close(() => resolve()))
  }
}

module.exports = { parseFrames, Relay, Capture }

'use strict'
// Plain JavaScript transport: what MyCHIPs ran before Noise. JSON messages, one
// per frame-stream frame (4-byte big-endian length prefix), on plain `net`
// sockets; no cryptography at all.
//
// Links are keyed by agent, like the other transports: the first send to an
// agent opens a TCP connection, whose first frame is our agent id as a JSON
// string (the plain counterpart of Noise's N frame: it tells the listener who
// is calling, so an answer to that agent goes back on the same connection).

const net = require('net')
const crypto = require('crypto')
const frame = require('frame-stream')

// An identity is only a name here; same length as an Ed25519 agent id (43 chars).
const identity = () => ({ agent: crypto.randomBytes(32).toString('base64url') })

class PlainNode {
  constructor (id) {
    this.agent = id.agent
    this.links = new Map() // agent -> link used by send()
    this.all = new Set() // every open link, named or not yet
    this.server = null
    this.listeners = []
    this.closeListeners = []
  }

  listen () {
    return new Promise((resolve, reject) => {
      this.server = net.createServer((socket) => this._adopt(socket, null))
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => {
        const { address, port } = this.server.address()
        resolve({ agent: this.agent, host: address, port })
      })
    })
  }

  // One connection, either direction. `agent` is known for outbound links and
  // learnt from the first frame of inbound ones.
  _adopt (socket, agent) {
    const link = { socket, agent, encoder: frame.encode() }
    link.encoder.pipe(socket)
    socket.pipe(frame.decode()).on('data', (body) => this._frame(link, body))
    socket.on('error', () => {}) // 'close' follows; the sender's deadline reports a stall
    socket.on('close', () => {
      this.all.delete(link)
      if (link.agent && this.links.get(link.agent) === link) this.links.delete(link.agent)
      for (const fn of this.closeListeners) fn()
    })
    this.all.add(link)
    return link
  }

  _frame (link, body) {
    const value = JSON.parse(body.toString('utf8'))
    if (link.agent === null) { // the caller's greeting
      link.agent = String(value)
      if (!this.links.has(link.agent)) this.links.set(link.agent, link)
      return
    }
    const from = { agent: link.agent }
    for (const fn of this.listeners) fn(from, value)
  }

  _write (link, text) {
    return new Promise((resolve, reject) => link.encoder.write(Buffer.from(text, 'utf8'), (err) => err ? reject(err) : resolve()))
  }

  send (to, message) {
    let link = this.links.get(to.agent)
    if (!link) {
      link = this._adopt(net.connect({ host: to.host, port: to.port }), to.agent)
      this.links.set(to.agent, link)
      this._write(link, JSON.stringify(this.agent))
    }
    return this._write(link, JSON.stringify(message))
  }

  onMessage (fn) { this.listeners.push(fn) }
  reply (from, message) { return this.send({ agent: from.agent }, message) }
  onLinkClosed (fn) { this.closeListeners.push(fn) }

  // Orderly: FIN after what was written; the other side ends its half in turn.
  end (agent) {
    for (const link of this.all) if (link.agent === agent) link.socket.end()
  }

  linkCount (agent) {
    if (agent === undefined) return this.all.size
    let n = 0
    for (const link of this.all) if (link.agent === agent) n++
    return n
  }

  trim () {}

  close () {
    for (const link of this.all) link.socket.destroy()
    if (!this.server) return Promise.resolve()
    const server = this.server
    this.server = null
    return new Promise((resolve) => server.close(() => resolve()))
  }
}

module.exports = { key: 'plain', label: 'plain JS', identity, create: (id) => new PlainNode(id) }

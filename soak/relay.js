'use strict'
// A TCP relay on loopback in front of one node: other nodes dial the relay's
// port, the relay dials the node and copies bytes both ways. The controller
// uses it to break connections abnormally: `reset()` ends a live connection
// with a TCP reset on both sides (RST), as a crashed middlebox or a dropped
// NAT entry would. When the node is down, a caller's connection is accepted
// and then closed, as an unreachable upstream looks through a proxy.

const net = require('net')

class Relay {
  constructor (targetPort, host = '127.0.0.1') {
    this.target = { host, port: targetPort }
    this.pairs = new Set()
    this.accepted = 0
    this.resets = 0
    // Half-closes travel through as they are: an orderly close stays orderly.
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this._pair(client))
    this.server.on('error', () => {})
  }

  listen (port = 0) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, this.target.host, () => {
        this.port = this.server.address().port
        resolve(this.port)
      })
    })
  }

  _pair (client) {
    this.accepted++
    const upstream = net.connect({ ...this.target, allowHalfOpen: true })
    const pair = { client, upstream }
    this.pairs.add(pair)
    const done = () => {
      if (!this.pairs.delete(pair)) return
      if (!client.destroyed) client.destroy()
      if (!upstream.destroyed) upstream.destroy()
    }
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.pipe(upstream)
    upstream.pipe(client)
    // A half-close travels on (pipe ends the other side); either socket
    // failing or closing ends both.
    for (const s of [client, upstream]) {
      s.on('error', done)
      s.on('close', done)
    }
  }

  // Reset up to `count` live connections (both sides); returns how many.
  reset (count = 1) {
    let n = 0
    for (const pair of [...this.pairs]) {
      if (n >= count) break
      if (!this.pairs.delete(pair)) continue
      for (const s of [pair.client, pair.upstream]) {
        try { if (!s.destroyed) s.resetAndDestroy() } catch (_) { s.destroy() }
      }
      n++
    }
    this.resets += n
    return n
  }

  close () {
    for (const pair of [...this.pairs]) {
      pair.client.destroy()
      pair.upstream.destroy()
    }
    this.pairs.clear()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

module.exports = { Relay }

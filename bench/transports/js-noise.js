'use strict'
// The JavaScript Noise transport MyCHIPs runs now (noise-protocol +
// sodium-native + frame-stream), as the reference peer the tests use
// (__test__/helpers/js-peer.js). It opens a link only with a message inside
// its handshake (N, then K carrying the message), so "open a link" here always
// carries the first message.
//
// The reference peer logs every frame and message for the tests (peer.frames,
// peer.delivered, and each connection's frames): trim() empties those logs,
// and the node trims them itself every so many messages so they stay short.

const { JsPeer, keypair } = require('../../__test__/helpers/js-peer')

const TRIM_EVERY = 256

class JsNoiseNode {
  constructor (id) {
    this.agent = id.agent
    // Default peerKey: the agent id names the key (like NoisePeer's agentKey).
    this.peer = new JsPeer({ agent: id.agent, keys: id, idleTimeout: 0 })
    this.listeners = []
    this.ops = 0 // frames logged since the last trim, roughly
    this.peer.on('message', (entry) => {
      if (++this.ops % TRIM_EVERY === 0) this.trim()
      const from = { agent: entry.agent }
      for (const fn of this.listeners) fn(from, entry.message)
    })
  }

  async listen () {
    const { host, port } = await this.peer.listen()
    return { agent: this.agent, host, port }
  }

  send (to, message) {
    if (++this.ops % TRIM_EVERY === 0) this.trim()
    return this.peer.send(to, message)
  }

  onMessage (fn) { this.listeners.push(fn) }
  // The responder registered the caller's agent on accept: this reuses that connection.
  reply (from, message) { return this.peer.send({ agent: from.agent }, message) }
  onLinkClosed (fn) { this.peer.on('close', () => fn()) }

  // The reference peer has no orderly close of one link: it destroys the socket.
  end (agent) {
    for (const c of this.peer.conns) if (c.agent === agent) c.close('bench')
  }

  linkCount (agent) {
    if (agent === undefined) return this.peer.conns.size
    let n = 0
    for (const c of this.peer.conns) if (c.agent === agent) n++
    return n
  }

  trim () {
    const p = this.peer
    p.frames.length = 0
    p.delivered.length = 0
    p.faults.length = 0
    p.ignored.length = 0
    for (const c of p.conns) c.frames.length = 0
  }

  close () { return this.peer.close() }
}

module.exports = { key: 'js', label: 'JS Noise', identity: keypair, create: (id) => new JsNoiseNode(id) }

'use strict'
// NoisePeer, this package: the native transport, raw (no encryption) or encrypted.

const { NoisePeer, generateKeypair, agentKey } = require('../..')

// All callers come from 127.0.0.1, and the memory figure holds 10,000 links at
// once: lift the caps meant for strangers (defaults: maxPending 256,
// maxPendingPerIp 32, maxLinks 10000, maxLinksPerIp 256, connectRate 100/s).
const BENCH_CAPS = {
  maxPending: 20000,
  maxPendingPerIp: 20000,
  maxLinks: 40000,
  maxLinksPerIp: 40000,
  connectRate: 1000000
}

class NoisePeerNode {
  constructor (id, encrypt) {
    this.agent = id.agent
    this.peer = new NoisePeer({
      agent: id.agent,
      keys: encrypt ? id : undefined,
      encrypt,
      timeout: 0,
      ...BENCH_CAPS,
      // A callback store that knows every agent: its key is named by its id.
      peerKey: async (agent) => agentKey(agent)
    })
    this.closeListeners = []
    this.peer.onEvent((e) => {
      if (e.type === 'close') for (const fn of this.closeListeners) fn()
    })
  }

  async listen () {
    const { host, port } = await this.peer.listen()
    return { agent: this.agent, host, port }
  }

  send (to, message) { return this.peer.send(to, message) }
  onMessage (fn) { this.peer.onMessage(fn) }
  reply (from, message) { return this.peer.send({ agent: from.agent }, message) }
  onLinkClosed (fn) { this.closeListeners.push(fn) }
  end (agent) { this.peer.end(agent) }

  linkCount (agent) {
    const links = this.peer.links()
    return agent === undefined ? links.length : links.filter((l) => l.agent === agent).length
  }

  trim () {}
  close () { return this.peer.close() }
}

const make = (key, label, encrypt) => ({
  key,
  label,
  identity: generateKeypair,
  create: (id) => new NoisePeerNode(id, encrypt)
})

module.exports = {
  raw: make('raw', 'NoisePeer raw', false),
  encrypted: make('enc', 'NoisePeer encrypted', true),
  BENCH_CAPS
}

'use strict'
// Peer factories and waiting helpers for the NoisePeer suites.
const { NoisePeer, generateKeypair } = require('../..')
const { waitFor, sleep, rejection } = require('./wait')

// A listening NoisePeer for identity `id` (options as NoisePeer's, `agent`
// filled in) that records what it sees: `received` ({ from, message }) and
// `events`; `addr` is where to reach it. Closed again if it cannot listen.
async function listeningPeer (id, options) {
  const peer = new NoisePeer({ agent: id.agent, ...options })
  peer.id = id
  peer.received = []
  peer.events = []
  peer.onMessage((from, message) => peer.received.push({ from, message }))
  peer.onEvent((event) => peer.events.push(event))
  try {
    peer.addr = { agent: id.agent, ...(await peer.listen()) }
  } catch (err) {
    await peer.close().catch(() => {})
    throw err
  }
  return peer
}

// A small world of nodes that know each other's keys (a tally relation each way).
class World {
  constructor () {
    this.keys = new Map() // agent -> X25519 public key
    this.peers = []
  }

  identity () {
    const id = generateKeypair()
    this.keys.set(id.agent, id.publicKey)
    return id
  }

  // A listening peer that records every message and event it sees.
  async peer (options = {}) {
    const id = options.identity || this.identity()
    const peer = await listeningPeer(id, {
      keys: options.encrypt === false ? undefined : { publicKey: id.publicKey, privateKey: id.privateKey },
      encrypt: options.encrypt,
      peerKey: async (agent) => this.keys.get(agent) || null,
      checkTicket: async (ticket) => ticket === 'good-ticket',
      ...options.peer
    })
    this.peers.push(peer)
    return peer
  }

  async close () {
    await Promise.all(this.peers.map(p => p.close()))
    this.peers = []
  }
}

module.exports = { World, listeningPeer, waitFor, sleep, rejection }

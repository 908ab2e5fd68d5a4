'use strict'
// Nodes whose keys, tally partners and tickets live in a real PostgreSQL
// with the fixture schema: the node we serve (`served`) reads them from the
// database; partners and strangers are plain nodes that dial it.
const { NoisePeer, generateKeypair } = require('../..')

let seq = 0

class DbWorld {
  constructor (server, url) {
    this.server = server
    this.url = url
    this.peers = []
    this.user = null
  }

  sql (text, params) {
    return this.server.sql(this.url, text, params)
  }

  // A recording NoisePeer that listens on loopback.
  async peer (options = {}) {
    const id = options.identity || generateKeypair()
    const peer = new NoisePeer({ agent: id.agent, keys: id, handshakeTimeout: 2000, ...options.peer })
    peer.id = id
    peer.received = []
    peer.events = []
    peer.onMessage((from, message) => peer.received.push({ from, message }))
    peer.onEvent((event) => peer.events.push(event))
    const { host, port } = await peer.listen()
    peer.addr = { agent: id.agent, host, port }
    this.peers.push(peer)
    return peer
  }

  // The node whose database this is: a user and its agent row.
  async served (options = {}) {
    const id = options.identity || generateKeypair()
    const db = { connectionString: this.url, ...options.database }
    const peer = await this.peer({ identity: id, peer: { database: db, ...options.peer } })
    await this.sql('insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3) on conflict do nothing',
      [id.agent, peer.addr.host, peer.addr.port])
    this.user = this.user || `u${++seq}`
    await this.sql('insert into mychips.users (user_ent, peer_cid, peer_agent) values ($1, $2, $3) on conflict do nothing',
      [this.user, this.user, id.agent])
    return peer
  }

  // Record `agent` as a known node (a row in mychips.agents).
  async knowAgent (agent) {
    await this.sql('insert into mychips.agents (agent) values ($1) on conflict do nothing', [agent])
  }

  // A tally between the user of `served` and `partnerAgent`; returns its seq.
  async tally (served, partnerAgent, status) {
    await this.knowAgent(partnerAgent)
    const n = ++seq
    await this.sql(`insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent)
      values ($1, $2, $3, $4, $5)`, [this.user, n, status, served.id.agent, partnerAgent])
    return n
  }

  setStatus (n, status) {
    return this.sql('update mychips.tallies set status = $1 where tally_seq = $2', [status, n])
  }

  // A ticket (token row) for a first contact; `how` sets expiry and use.
  async ticket ({ expired = false, used = false, reuse = false } = {}) {
    const n = ++seq
    const r = await this.sql(`insert into mychips.tokens (token_ent, token_seq, reuse, used, expires)
      values ($1, $2, $3, $4, $5) returning token`, [this.user || 'nobody', n, reuse,
      used ? new Date() : null, expired ? new Date(Date.now() - 60000) : new Date(Date.now() + 45 * 60000)])
    return { token: r.rows[0].token }
  }

  async close () {
    await Promise.all(this.peers.map((p) => p.close()))
    this.peers = []
  }
}

module.exports = { DbWorld }

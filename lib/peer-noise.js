'use strict'
// PeerNoise: the interface of MyCHIPs' Noise peer module (lib/peernoise.js,
// which its peer server constructs), over NoisePeer. Same constructor,
// methods, properties and callback shapes; the link underneath is this
// package's: encrypted whenever a private key is given, replay-safe between
// two of our nodes, and wire-compatible with MyCHIPs' JavaScript nodes.
//
//   new PeerNoise({ agent, host, port, keys, timeout, log, queryCB }, messageCB)
//   send({ to: {agent, host, port}, ...message }, successCB, failureCB)
//   messageCB(connection, message)   connection: { send, peerAddress(), peerAgent }
//   end(agent); close(); connections.size()

const os = require('os')
const { NoisePeer, agentKey } = require('./noise-peer')
const { identityFrom, bytes } = require('./keys')
const { coded } = require('./errors')
const { logger } = require('./log')
const { ipv6Form, anyAddress } = require('./addresses')

const DEFAULT_PORT = 65430

// The other end of a link, as MyCHIPs' messageCB sees it.
class Connection {
  constructor (owner, from) {
    this._owner = owner
    this._link = from.link
    this.peerAgent = from.agent
    this.peerHost = from.host
    this.peerPort = from.port
    // What a net.Socket would say of a dual-stack server's client.
    this.socket = { remoteAddress: from.host.includes(':') ? from.host : `::ffff:${from.host}`, remotePort: from.port, remoteFamily: 'IPv6' }
  }

  /** Answer on this same link. */
  send (message, successCB, failureCB) {
    this._owner._settle(this._owner._peer.send({ link: this._link }, message), successCB, failureCB)
    return true
  }

  /** The remote IP, in IPv6 form (an IPv4 address as ::ffff:a.b.c.d, canonical). */
  peerAddress () {
    return ipv6Form(this.peerHost)
  }

  end () {
    this._owner.end(this.peerAgent)
  }
}

class PeerNoise {
  constructor (config, messageCB) {
    config = config || {}
    const id = identityFrom(config.agent, config.keys)
    this.agent = id.agent
    this.host = config.host || os.hostname() // the address other nodes reach us by
    this.port = config.port || DEFAULT_PORT
    this.chad = { agent: this.agent, host: this.host, port: this.port }
    this.timeout = config.timeout || 60000
    this.messageCB = messageCB
    this.queryCB = typeof config.queryCB === 'function' ? config.queryCB : null
    this.log = logger(config.log)
    this.encrypted = !!id.privateKey
    this._connections = new Map() // link id -> Connection
    this._peer = new NoisePeer({
      agent: this.agent,
      keys: id.privateKey ? { privateKey: id.privateKey } : undefined,
      encrypt: !!id.privateKey,
      // Listen on every interface (as MyCHIPs' module does) unless told where.
      host: config.bind || anyAddress(),
      port: this.port,
      address: { host: this.host, port: this.port },
      timeout: this.timeout,
      handshakeTimeout: config.handshakeTimeout,
      // JavaScript MyCHIPs nodes dial with a replayable first message; they
      // must get in (see the README), so legacy initiators are accepted here.
      legacy: config.legacy == null ? true : !!config.legacy,
      referee: config.referee,
      database: config.database,
      // Without a database, an agent that proves the key its id names (or
      // queryCB's 'noiseKey' gives) may connect by key, as in MyCHIPs' module.
      // In raw mode nothing is proven, and every agent is let in.
      peerKey: id.privateKey && !config.database ? (agent) => this._noiseKey(agent) : undefined,
      checkTicket: config.database ? undefined : (ticket) => this._ticket(ticket),
      logger: this.log,
      logName: 'peernoise'
    })
    this._peer.onMessage((from, message) => this._receive(from, message))
    this._peer.onEvent((e) => {
      if (e.type === 'close') this._connections.delete(e.link)
    })
    this.connections = {
      size: () => this._peer.links().length,
      [Symbol.iterator]: () => this._peer.links().map((l) => this._connection(l)).values()
    }
    this.log.debug(`peernoise: ${this.agent} listening on port ${this.port}${this.encrypted ? '' : ' (raw mode: no private key)'}`)
    // Listening starts now, as MyCHIPs' modules start theirs: a message sent
    // to this node right after the constructor returns is taken.
    try {
      this._peer.listenNow()
      this.listening = Promise.resolve()
    } catch (err) {
      this.log.error(`peernoise: cannot listen on port ${this.port}: ${err.message}`)
      this.listening = Promise.reject(err)
      this.listening.catch(() => {}) // reported above; awaiting it is optional
    }
  }

  /** Send a message to `message.to = {agent, host, port}`, opening a link if needed. */
  send (message, successCB, failureCB) {
    const to = message && message.to
    if (!to || !to.agent || !to.host || !to.port) {
      const err = coded('ERR_INVALID_ARGUMENT', 'the message needs to: {agent, host, port}')
      this.log.error(`peernoise: send refused: ${err.message}`)
      if (failureCB) failureCB(err)
      return
    }
    if (to.agent === this.agent) { // local traffic: back to ourselves on a later tick
      setTimeout(() => {
        this.messageCB(this.agent, message)
        if (successCB) successCB()
      })
      return
    }
    // Our CHIP address rides in `from`, so the other side can answer.
    const out = { ...message, from: { ...(message.from || {}), ...this.chad } }
    const opts = message.target === 'tally' && message.action === 'ticket' && message.ticket ? { ticket: message.ticket } : undefined
    this._settle(this._peer.send({ agent: to.agent, host: to.host, port: to.port }, out, opts), successCB, failureCB)
  }

  /** Close the links to `agent`. */
  end (agent) {
    if (agent == null) {
      for (const l of this._peer.links()) this._peer.end(l.agent)
      return
    }
    this._peer.end(String(agent))
  }

  /** Stop listening and close every link. */
  close () {
    this.log.debug(`peernoise: closing the server on port ${this.port}`)
    return this._peer.close()
  }

  /** Figures of the link layer (NoisePeer's stats). */
  stats () {
    return this._peer.stats()
  }

  _settle (promise, successCB, failureCB) {
    promise.then(() => { if (successCB) successCB() }, (err) => {
      this.log.error(`peernoise: send failed: ${err.code}: ${err.message}`)
      if (failureCB) failureCB(err)
    })
  }

  _connection (from) {
    let c = this._connections.get(from.link)
    if (!c) {
      c = new Connection(this, from)
      this._connections.set(from.link, c)
    }
    return c
  }

  _receive (from, message) {
    try {
      this.messageCB(this._connection(from), message)
    } catch (err) {
      this.log.error(`peernoise: the message callback threw: ${err && err.stack ? err.stack : err}`)
    }
  }

  // queryCB('noiseKey', agent) answers synchronously (MyCHIPs derives the key
  // from the agent id), or with a promise. No usable answer (a queryCB that
  // does not know 'noiseKey' returns nothing): the key the agent id names.
  async _noiseKey (agent) {
    const answer = this.queryCB ? await this.queryCB('noiseKey', agent) : null
    const key = answer == null ? null : bytes(answer)
    if (key && key.length === 32) return key
    return agentKey(agent)
  }

  // queryCB('ticket', ticket, cb) answers with cb(valid); only true lets the
  // first contact in.
  _ticket (ticket) {
    if (!this.queryCB) return false
    return new Promise((resolve) => {
      const r = this.queryCB('ticket', ticket, (valid) => resolve(valid === true))
      if (r instanceof Promise) r.then((valid) => { if (valid !== undefined) resolve(valid === true) }, () => resolve(false))
    })
  }
}

module.exports = { PeerNoise, DEFAULT_PORT }

'use strict'
// PeerSocket: the interface of MyCHIPs' plain socket module (lib/peercomm.js),
// over NoisePeer in raw mode (no encryption; for simulations and trusted
// networks). Peers are named by address strings, as there:
//
//   new PeerSocket({ port, timeout, log }, messageCB)   listens at once
//   messageCB(peer, message)   peer: 'host:port' of the sender's listening
//                              port ('[ipv6]:port' for IPv6)
//   send(peer, message, successCB, failureCB); end(peer); close()
//
// The sender's listening port travels in its handshake: a node's agent id
// here is `<random>@<port>`, so the receiver names the sender by the address
// it connected from and the port it listens on, and an answer to that name
// goes back on the same link (or, once that has closed, to the listening
// port). This speaks this package's wire format, not peercomm.js's.

const crypto = require('crypto')
const { NoisePeer } = require('./noise-peer')
const { coded } = require('./errors')
const { logger } = require('./log')
const { anyAddress, peerString, parsePeer } = require('./addresses')

const DEFAULT_PORT = 65430

class PeerSocket {
  constructor (config, messageCB) {
    config = config || {}
    this.port = config.port || DEFAULT_PORT
    this.timeout = config.timeout || 60000
    this.messageCB = messageCB
    this.log = logger(config.log)
    this.agent = `${crypto.randomBytes(9).toString('base64url')}@${this.port}`
    this._agents = new Map() // peer string -> the agent id behind it (links that dialled us)
    this._names = new Map() // agent id -> the peer string we dialled it by
    this._peer = new NoisePeer({
      agent: this.agent,
      encrypt: false,
      host: config.bind || anyAddress(),
      port: this.port,
      timeout: this.timeout,
      handshakeTimeout: config.handshakeTimeout,
      logger: this.log,
      logName: 'peercomm'
    })
    this._peer.onMessage((from, message) => this._receive(from, message))
    this.log.debug(`peercomm: listening on port ${this.port}`)
    // Listening starts now, as MyCHIPs' modules start theirs: a message sent
    // to this node right after the constructor returns is taken.
    try {
      this._peer.listenNow()
      this.listening = Promise.resolve()
    } catch (err) {
      this.log.error(`peercomm: cannot listen on port ${this.port}: ${err.message}`)
      this.listening = Promise.reject(err)
      this.listening.catch(() => {}) // reported above; awaiting it is optional
    }
  }

  /** Send a message to `peer` ('host:port'), opening a link if needed. */
  send (peer, message, successCB, failureCB) {
    const addr = typeof peer === 'string' ? parsePeer(peer) : null
    if (!addr) {
      const err = coded('ERR_INVALID_ARGUMENT', `not a peer address (host:port): ${peer}`)
      this.log.error(`peercomm: send refused: ${err.message}`)
      if (failureCB) failureCB(err)
      return
    }
    const agent = this._agents.get(peer) || peer
    this._names.set(agent, peer)
    this._peer.send({ agent, host: addr.host, port: addr.port }, message).then(() => { if (successCB) successCB() }, (err) => {
      this.log.error(`peercomm: send to ${peer} failed: ${err.code}: ${err.message}`)
      if (failureCB) failureCB(err)
    })
  }

  /** Close the links to `peer`. */
  end (peer) {
    this._peer.end(this._agents.get(peer) || String(peer))
  }

  /** Stop listening and close every link. */
  close () {
    this.log.debug(`peercomm: closing the server on port ${this.port}`)
    return this._peer.close()
  }

  _receive (from, message) {
    // A link we dialled is named by the string we dialled; one that dialled
    // us, by its address and the listening port its agent id carries.
    let peer = this._names.get(from.agent) || from.agent
    const port = from.initiator ? null : /@(\d+)$/.exec(from.agent || '')
    if (port) {
      peer = peerString(from.host, port[1])
      this._agents.set(peer, from.agent)
    }
    try {
      this.messageCB(peer, message)
    } catch (err) {
      this.log.error(`peercomm: the message callback threw: ${err && err.stack ? err.stack : err}`)
    }
  }
}

module.exports = { PeerSocket, DEFAULT_PORT }

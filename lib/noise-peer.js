'use strict'
// NoisePeer, a thin JavaScript layer over the native peer.
// It owns what is JavaScript-shaped (JSON text <-> objects, listener lists,
// awaiting the application's async callbacks, error codes) and nothing else:
// every protocol rule runs in Rust.

const native = require('./native')
const { invalid, fromNative, call, ERR_LISTENER, ERR_NO_LISTENER } = require('./errors')
const { bytes, identityFrom } = require('./keys')
const { logger, EventLog } = require('./log')

// The defaults of every option, from the Rust settings (the one source).
const DEFAULTS = Object.freeze(native.defaults())

// What the native send says: to be reported later, written, or corked.
const SENT_WRITTEN = 1
const SENT_CORKED = 2

// A turn's gathered sends cross into Rust once they hold this much text, so a
// burst of large messages is refused by the queue budget as it comes instead
// of being held twice (JavaScript text, then Rust's copy) for the whole turn.
const BATCH_TEXT = 64 * 1024

// Messages that arrive before the first onMessage listener are held, up to this many.
const EARLY_BUFFER = 10000

// A 32-byte X25519 key from a Buffer, a Uint8Array or base64url text.
function toKey (key, what) {
  const buf = bytes(key)
  if (!buf || buf.length !== 32) throw invalid(`${what} must be a 32-byte X25519 key (Buffer or base64url)`)
  return buf
}

function toTarget (address) {
  if (!address || typeof address !== 'object') throw invalid('the address must be an object {agent, host, port, key?}')
  const { agent, host, port, key, link } = address
  if (link == null && (typeof agent !== 'string' || agent === '')) throw invalid('the address needs an agent id')
  if (port != null && !(Number.isInteger(port) && port >= 0 && port <= 65535)) throw invalid('port must be an integer 0..65535')
  return {
    agent: agent == null ? undefined : agent,
    host: host == null ? undefined : String(host),
    port: port == null ? undefined : port,
    key: key == null ? undefined : toKey(key, 'address.key'),
    link: link == null ? undefined : Number(link)
  }
}

function toSendOptions (opts) {
  if (opts == null) return undefined
  const out = {}
  if (opts.ticket != null) out.ticket = JSON.stringify(opts.ticket)
  if (opts.referee) out.referee = true
  return out
}

// `database`: options for the PostgreSQL store, a connection string, or
// true for the one in DATABASE_URL.
function toDatabase (db) {
  if (db == null || db === false) return undefined
  if (db === true) db = {}
  if (typeof db === 'string') db = { connectionString: db }
  if (typeof db !== 'object') throw invalid('database must be true, a connection string or an object')
  const connectionString = db.connectionString || (db.connectionString == null ? process.env.DATABASE_URL : null)
  if (typeof connectionString !== 'string' || connectionString === '') {
    throw invalid('database needs a connectionString (or DATABASE_URL in the environment)')
  }
  const queries = db.queries || {}
  return {
    connectionString,
    agent: db.agent,
    poolSize: db.poolSize,
    timeout: db.timeout,
    cacheTtl: db.cacheTtl,
    cacheSize: db.cacheSize,
    keyQuery: queries.key,
    partnerQuery: queries.partner,
    ticketQuery: queries.ticket,
    statuses: db.statuses,
    keyFormat: db.keyFormat,
    consumeTickets: db.consumeTickets,
    channel: db.channel,
    agentsChannel: db.agentsChannel
  }
}

class NoisePeer {
  constructor (options = {}) {
    const o = options || {}
    if (o.peerKey != null && typeof o.peerKey !== 'function') throw invalid('peerKey must be a function')
    if (o.checkTicket != null && typeof o.checkTicket !== 'function') throw invalid('checkTicket must be a function')
    if (o.logger != null && typeof o.logger !== 'object' && typeof o.logger !== 'function') throw invalid('logger must be an object with error/warn/info/debug/trace methods')
    // One line per link event to the application's logger (MyCHIPs passes
    // wyclif's), refusals from one address rate-limited.
    this._eventLog = o.logger ? new EventLog(logger(o.logger), o.logName ? String(o.logName) : 'mychips-noise') : null
    const privateKey = o.encrypt !== false && o.keys != null ? toKey(o.keys.privateKey, 'keys.privateKey') : undefined
    this._peerKey = o.peerKey || null
    this._checkTicket = o.checkTicket || null
    this._messageListeners = []
    this._eventListeners = []
    this._held = []
    // Sends in one turn of the event loop: the first is written at once, the
    // rest go in one write per link when the turn ends (`_endTurn`).
    this._turn = false
    this._corked = false
    // The turn's later sends without options, not yet in Rust: runs of sends
    // to one address, in call order ({ agent, host, port, first, texts }). Each
    // run crosses in one call; anything else that could be ordered after
    // them (a send with options, connect, end, close) hands them over first.
    this._batch = []
    this._batchText = 0
    this._endTurn = () => {
      this._turn = false
      if (!this._corked) return
      this._corked = false
      this._flushBatch()
      let written = []
      try { written = this._native.uncork() } catch (_) { /* closed: Rust reports each send */ }
      this._sent(written)
    }
    // Who is at the other end of each link that delivered (Rust says it once).
    this._from = new Map()
    this._closed = null
    this._keepAlive = null // a ref'd timer: a listening peer keeps Node running, like net.Server
    this._unref = false
    this._listening = false
    this._sends = new Map() // send id -> { resolve, reject }
    this._nextSend = 0
    // Defaults and ranges are Rust's: options go through as given, and a bad
    // one comes back as ERR_INVALID_ARGUMENT.
    this._native = call(() => new native.NativePeer({
      agent: o.agent,
      host: o.host == null ? undefined : String(o.host),
      port: o.port,
      advertiseHost: o.address && o.address.host != null ? String(o.address.host) : undefined,
      advertisePort: o.address ? o.address.port : undefined,
      privateKey,
      encrypt: o.encrypt,
      timeout: o.timeout,
      handshakeTimeout: o.handshakeTimeout,
      drainTimeout: o.drainTimeout,
      maxFrame: o.maxFrame,
      maxMessage: o.maxMessage,
      maxPending: o.maxPending,
      maxPendingPerIp: o.maxPendingPerIp,
      maxLinks: o.maxLinks,
      maxLinksPerIp: o.maxLinksPerIp,
      maxLinksPerAgent: o.maxLinksPerAgent,
      maxRefereeLinks: o.maxRefereeLinks,
      connectRate: o.connectRate,
      maxQueuedBytes: o.maxQueuedBytes,
      writeTimeout: o.writeTimeout,
      keepalive: o.keepalive,
      maxBacklog: o.maxBacklog,
      eventRate: o.eventRate,
      referee: o.referee == null ? undefined : !!o.referee,
      legacy: o.legacy == null ? undefined : !!o.legacy,
      hasPeerKey: !!o.peerKey,
      hasCheckTicket: !!o.checkTicket,
      database: toDatabase(o.database)
    }, (link, messages, early, from, event) => {
      if (messages != null) this._deliver({ link, messages, early, from })
      else this._emit(event)
    }, (r) => this._lookup(r), (written, failed) => this._sent(written, failed)))
    this.agent = o.agent
    this.encrypted = this._native.encrypted
  }

  /** Start listening. Resolves with `{ host, port }`. */
  async listen () {
    return this.listenNow()
  }

  /**
   * Bind and listen at once, as `net.Server#listen(port)` does: the port takes
   * connections when this returns. Returns `{ host, port }`; throws on failure.
   */
  listenNow () {
    this.address = call(() => this._native.listen())
    this._listening = !this._closed
    this._holdProcess()
    return { ...this.address }
  }

  /** Let the process exit even while listening (like net.Server#unref). */
  unref () {
    this._unref = true
    this._holdProcess()
    return this
  }

  /** Undo unref(): keep the process running while listening (the default). */
  ref () {
    this._unref = false
    this._holdProcess()
    return this
  }

  // Sockets and callbacks live in Rust, where libuv cannot see them. A ref'd
  // timer stands in for them: the process stays up while we listen (unless
  // unref'd) and while any send is unsettled, and not a moment longer.
  _holdProcess () {
    const needed = (this._listening && !this._unref) || this._sends.size > 0
    if (needed && !this._keepAlive) {
      this._keepAlive = setInterval(() => {}, 1 << 30)
    } else if (!needed && this._keepAlive) {
      clearInterval(this._keepAlive)
      this._keepAlive = null
    }
  }

  /** Call `fn(from, message)` for every message. Returns a function that removes it. */
  onMessage (fn) {
    if (typeof fn !== 'function') throw invalid('onMessage takes a function')
    this._messageListeners.push(fn)
    const held = this._held.splice(0)
    for (const d of held) this._deliver(d)
    return () => { this._messageListeners = this._messageListeners.filter(f => f !== fn) }
  }

  /** Call `fn(event)` for connection events. Returns a function that removes it. */
  onEvent (fn) {
    if (typeof fn !== 'function') throw invalid('onEvent takes a function')
    this._eventListeners.push(fn)
    return () => { this._eventListeners = this._eventListeners.filter(f => f !== fn) }
  }

  /** Open (or reuse) a link to `address` without sending. Resolves with the link. */
  async connect (address, opts) {
    const target = toTarget(address)
    this._flushBatch()
    try {
      return await this._native.connect(target, toSendOptions(opts))
    } catch (err) { throw fromNative(err) }
  }

  /**
   * Send one message (a plain object). Opens a link if none is open; resolves once
   * the message has been handed to the socket, rejects with a coded error otherwise.
   */
  send (address, message, opts) {
    let target, text, options
    try {
      target = toTarget(address)
      if (message === null || typeof message !== 'object' || Array.isArray(message)) {
        throw invalid('a message must be a plain object')
      }
      text = JSON.stringify(message)
      // A toJSON() that returns undefined leaves no text at all.
      if (typeof text !== 'string') throw invalid('a message must serialize to a JSON object')
      options = toSendOptions(opts)
    } catch (err) {
      return Promise.reject(err)
    }
    const id = ++this._nextSend
    // The first send of a turn is written at once; later ones in the same
    // turn are corked and written together when the turn ends.
    const cork = this._turn
    if (!cork) {
      this._turn = true
      queueMicrotask(this._endTurn)
    } else if (target.key === undefined && target.link === undefined && options === undefined) {
      let run = this._batch[this._batch.length - 1]
      if (run === undefined || run.agent !== target.agent || run.host !== target.host || run.port !== target.port) {
        // A run is consecutive sends, so its ids are too: `first` and on.
        run = { agent: target.agent, host: target.host, port: target.port, first: id, texts: [] }
        this._batch.push(run)
      }
      run.texts.push(text)
      this._corked = true
      this._batchText += text.length
      const promise = this._pending(id)
      if (this._batchText >= BATCH_TEXT) this._flushBatch()
      return promise
    } else {
      this._flushBatch()
    }
    let sent
    try {
      // Agent, host and port cross as they are; anything rarer in one object.
      const extra = target.key !== undefined || target.link !== undefined || options !== undefined
        ? { key: target.key, link: target.link, ...options }
        : undefined
      sent = this._native.send(id, target.agent ?? null, target.host ?? null, target.port ?? null, text, extra, cork)
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
    // Written to the socket already: nothing more will come for this id.
    if (sent === SENT_WRITTEN) return Promise.resolve()
    if (sent === SENT_CORKED) this._corked = true
    return this._pending(id)
  }

  // The promise of send `id`, settled by `_sent`.
  _pending (id) {
    return new Promise((resolve, reject) => {
      this._sends.set(id, { resolve, reject })
      this._holdProcess()
    })
  }

  // Hand the turn's gathered sends to Rust, corked, in call order.
  _flushBatch () {
    if (this._batch.length === 0) return
    const runs = this._batch
    this._batch = []
    this._batchText = 0
    for (const run of runs) {
      try {
        // One text for the run: JSON text has no raw line breaks.
        this._native.sendCorked(run.first, run.texts.length, run.agent ?? null, run.host ?? null, run.port ?? null, run.texts.join('\n'))
      } catch (err) {
        const { code, message } = fromNative(err)
        this._sent([], run.texts.map((_, i) => ({ id: run.first + i, code, message })))
      }
    }
  }

  // Send outcomes, in batches from Rust: each settles its promise exactly
  // once. `written`: runs of consecutive ids, [first, count, first, count, ...].
  _sent (written, failed) {
    for (let i = 0; i + 1 < written.length; i += 2) {
      for (let id = written[i], end = id + written[i + 1]; id < end; id++) {
        const pending = this._sends.get(id)
        if (!pending) continue
        this._sends.delete(id)
        pending.resolve()
      }
    }
    if (failed) {
      for (const { id, code, message } of failed) {
        const pending = this._sends.get(id)
        if (!pending) continue
        this._sends.delete(id)
        const err = new Error(message)
        err.code = code
        pending.reject(err)
      }
    }
    this._holdProcess()
  }

  /** Close, in order, every link to `agent`. Returns how many there were. */
  end (agent) {
    this._flushBatch() // the turn's sends go ahead of the close, as they were called
    return call(() => this._native.end(String(agent)))
  }

  /** The links open now. */
  links () {
    return call(() => this._native.links())
  }

  /** Figures of the running node: `{ store: { cacheHits, lookups, failures, invalidations, listens, listening } }`. */
  stats () {
    return call(() => this._native.stats())
  }

  /** Stop listening and close every link; afterwards the process can exit. */
  close () {
    this._flushBatch()
    this._listening = false
    this._holdProcess()
    if (!this._closed) {
      this._closed = this._native.close().catch((err) => { throw fromNative(err) }).then(() => {
        this._messageListeners = []
        this._eventListeners = []
      })
    }
    return this._closed
  }

  // A batch of messages from one link, in order: `messages` is one JSON
  // array text, `early` the indexes of those that rode in a replayable
  // handshake message, `from` given with a link's first batch only.
  _deliver (d) {
    if (d.from) {
      if (d.from.agent === undefined) d.from.agent = null // anonymous referee query
      this._from.set(d.link, d.from)
    } else {
      d.from = this._from.get(d.link)
    }
    if (this._messageListeners.length === 0) {
      if (this._held.length < EARLY_BUFFER) this._held.push(d)
      else this._emit({ type: 'error', link: d.link, agent: d.from.agent, reason: ERR_NO_LISTENER, message: 'messages arrived with no onMessage listener and the hold buffer is full', clean: false, written: 0, initiator: false })
      return
    }
    const base = d.from
    const messages = JSON.parse(d.messages) // the core checked each is one JSON object
    for (let i = 0; i < messages.length; i++) {
      // Each message gets its own `from`, so a listener may keep or change it.
      const from = d.early && d.early.includes(i) ? { ...base, early: true } : { ...base }
      for (const fn of this._messageListeners) {
        try { fn(from, messages[i]) } catch (err) { this._listenerFailed(err) }
      }
    }
  }

  _emit (event) {
    if (event.type !== 'open') this._from.delete(event.link)
    if (this._eventLog) this._eventLog.event(event)
    for (const fn of this._eventListeners) {
      try { fn(event) } catch (err) { console.error('mychips-noise: an onEvent listener threw:', err) }
    }
  }

  // A throwing listener must not take the node down with it: report it as an event.
  _listenerFailed (err) {
    this._emit({ type: 'error', link: 0, reason: ERR_LISTENER, message: `an onMessage listener threw: ${err && err.stack ? err.stack : err}`, clean: false, written: 0, initiator: false })
  }

  // Answer the core's questions with the application's callbacks. Whatever they
  // do (throw, reject, return junk), the core gets an answer: a failure refuses.
  _lookup (r) {
    const answer = (key, ok, error) => {
      try { this._native.answer(r.id, key, ok, error) } catch (_) { /* peer closed */ }
    }
    Promise.resolve().then(async () => {
      if (r.kind === 'peerKey') {
        if (!this._peerKey) return answer(null, null, null)
        const key = await this._peerKey(r.agent)
        answer(key == null ? null : toKey(key, 'the key from peerKey'), null, null)
      } else {
        if (!this._checkTicket) return answer(null, false, null)
        const ok = await this._checkTicket(JSON.parse(r.ticket), JSON.parse(r.from))
        answer(null, ok === true, null)
      }
    }).catch((err) => answer(null, null, `${r.kind} failed: ${err && err.message ? err.message : err}`))
  }
}

/** A fresh identity: `{ agent, publicKey, privateKey }` (X25519 pair derived from Ed25519). */
function generateKeypair () {
  return call(() => native.generateKeypair())
}

/** The identity for a 32-byte Ed25519 seed. */
function keypairFromSeed (seed) {
  return call(() => native.keypairFromSeed(seed))
}

/**
 * The identity of a MyCHIPs agent key pair: Ed25519 JWKs `{ publicKey: {kty, crv, x},
 * privateKey: {kty, crv, x, d} }` (X25519 JWKs too). `{ agent, publicKey, privateKey }`.
 */
function keypairFromJwk (pair) {
  if (!pair || typeof pair !== 'object') throw invalid('keypairFromJwk takes { publicKey, privateKey } JWKs')
  const id = identityFrom(null, pair)
  if (!id.privateKey) throw invalid('keypairFromJwk needs the private JWK (with d)')
  return { agent: id.agent, publicKey: id.publicKey, privateKey: id.privateKey }
}

/** The X25519 public key an agent id names, or null. */
function agentKey (agent) {
  return call(() => native.agentKey(String(agent)))
}

module.exports = { NoisePeer, generateKeypair, keypairFromSeed, keypairFromJwk, agentKey, DEFAULTS }

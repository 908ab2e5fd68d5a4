#!/usr/bin/env node
'use strict'
// mychips-noise: the operator's command line for this package.
//
//   keygen --out FILE [--force]           a fresh Ed25519 identity as MyCHIPs' JWK pair (mode 0600)
//   key FILE                              the agent id and X25519 key of a key file
//   listen [--key FILE] [options]         run a node; print links, refusals and messages; answer pings
//   ping [--key FILE] AGENT@HOST:PORT     open a link, time the handshake and ping/pong round trips
//   bench [args...]                       node --expose-gc bench/run.js args...
//
// Exit codes: 0 ok; 1 the link failed (refused, unreachable, timed out, closed);
// 2 usage (bad options, a bad key or ticket file, a file that would be overwritten);
// 3 (ping) the link opened but no pong came back.
//
// Colours and the status line only when stdout is a terminal; piped, every line
// is plain text (or, with --json, one JSON object).

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { spawn } = require('child_process')

const EXIT_OK = 0
const EXIT_FAILED = 1
const EXIT_USAGE = 2
const EXIT_NO_PONG = 3

// A mistake in what the operator gave us: exit 2.
class UsageError extends Error {}

// A failure with a stable code (the addon's ERR_*, or the CLI's own): exit 1 unless said otherwise.
class Failure extends Error {
  constructor (code, message, exit = EXIT_FAILED) {
    super(message)
    this.code = code
    this.exit = exit
  }
}

const root = path.join(__dirname, '..')
const pkg = require(path.join(root, 'package.json'))

// The addon is loaded on first use, so `--help` and argument errors work without it.
let api = null
const noise = () => api || (api = require(root))
const keysLib = () => require(path.join(root, 'lib', 'keys.js'))

// ---------------------------------------------------------------------------
// Output: plain lines when piped; colours and one status line at the bottom on a terminal.

const tty = !!process.stdout.isTTY
const pc = require('picocolors').createColors(tty && !('NO_COLOR' in process.env))

const out = {
  status: '',
  write (text) { process.stdout.write(text) },
  clear () { if (this.status) this.write('\r\x1b[2K') },
  line (text) {
    this.clear()
    this.write(text + '\n')
    if (this.status) this.write(this.status)
  },
  err (text) {
    this.clear()
    process.stderr.write(text + '\n')
    if (this.status) this.write(this.status)
  },
  // The status line: only on a terminal, cut to its width.
  setStatus (text) {
    if (!tty) return
    const width = Math.max(10, (process.stdout.columns || 80) - 1)
    const shown = text.length > width ? text.slice(0, width - 1) + '…' : text
    this.clear()
    this.status = pc.dim(shown)
    this.write(this.status)
  },
  endStatus () {
    this.clear()
    this.status = ''
  },
  json (obj) { this.line(JSON.stringify(obj)) }
}

const clock = () => new Date().toISOString().slice(11, 23)
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6
const round = (x) => Math.round(x * 1000) / 1000
const hostPort = (host, port) => `${host && host.includes(':') ? `[${host}]` : host}:${port}`
const shortJson = (obj, max = 400) => {
  const s = JSON.stringify(obj)
  return s.length > max ? s.slice(0, max - 1) + '…' : s
}

// ---------------------------------------------------------------------------
// Key files.
//
// Accepted (what lib/keys.js accepts, as a file):
// - JSON: MyCHIPs' Ed25519 JWK pair { publicKey: {kty, crv, x}, privateKey: {kty, crv, x, d} },
//   an X25519 JWK pair, a lone JWK (with d: a pair; without: public only),
//   { publicKey, privateKey } or noise-protocol's { publicKey, secretKey } with values
//   in base64url, hex, or Buffer JSON ({ type: 'Buffer', data }): X25519 with a 32-byte
//   private key, a libsodium Ed25519 secret key with a 64-byte one.
// - Raw: a 32-byte Ed25519 seed or a 64-byte libsodium Ed25519 secret key, as
//   binary, hex or base64(url) text.

const AGENT_RE = /^[A-Za-z0-9_-]{43}$/

function keyBytes (v) {
  if (v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data)) return Buffer.from(v.data)
  if (typeof v === 'string' && /^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$/.test(v)) return Buffer.from(v, 'hex')
  return v
}

function rawBytes (buf) {
  const text = buf.toString('utf8').trim()
  if (/^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$/.test(text)) return Buffer.from(text, 'hex')
  if (/^[A-Za-z0-9+/_-]+=*$/.test(text)) {
    const b = Buffer.from(text, 'base64')
    if (b.length === 32 || b.length === 64) return b
  }
  if (buf.length === 32 || buf.length === 64) return buf
  return null
}

// { file, format, agent, publicKey (X25519), privateKey (X25519) | null }
function loadIdentity (file) {
  let buf
  try {
    buf = fs.readFileSync(file)
  } catch (err) {
    throw new UsageError(`cannot read key file ${file}: ${err.code || err.message}`)
  }
  const bad = (why) => new UsageError(`${file}: ${why}`)
  const text = buf.toString('utf8').trim()
  if (text.startsWith('{')) {
    let obj
    try { obj = JSON.parse(text) } catch (err) { throw bad(`not valid JSON (${err.message})`) }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw bad('expected a JSON object')
    let pair = obj
    if (typeof obj.kty === 'string') pair = obj.d ? { privateKey: obj } : { publicKey: obj }
    pair = { publicKey: keyBytes(pair.publicKey), privateKey: keyBytes(pair.privateKey), secretKey: keyBytes(pair.secretKey) }
    const jwk = [pair.privateKey, pair.publicKey].find((k) => k && typeof k === 'object' && typeof k.kty === 'string')
    if (pair.publicKey == null && pair.privateKey == null && pair.secretKey == null) {
      throw bad('no key found: expected { publicKey, privateKey } (MyCHIPs JWK pair), { publicKey, secretKey }, or a JWK')
    }
    let id
    try {
      noise() // the addon first: keys.js needs it
      id = keysLib().identityFrom(null, pair)
    } catch (err) { throw bad(err.message) }
    const priv = pair.privateKey || pair.secretKey
    const secretLength = priv && !jwk ? (keysLib().bytes(priv) || []).length : 0
    const format = jwk
      ? `${jwk.crv} JWK ${id.privateKey ? 'pair' : '(public key only)'}`
      : secretLength === 64 ? 'libsodium Ed25519 secret key' : pair.secretKey ? 'noise-protocol X25519 key pair' : 'X25519 key pair'
    let publicKey = id.publicKey
    if (!publicKey) {
      publicKey = jwk && jwk.crv === 'X25519' ? Buffer.from(jwk.x, 'base64url') : noise().agentKey(id.agent)
      if (!publicKey) throw bad('a public key only, whose agent id names no Ed25519 key')
    }
    return { file, format, agent: id.agent, publicKey, privateKey: id.privateKey || null }
  }
  const raw = rawBytes(buf)
  if (!raw) {
    throw bad('not a key file: expected a MyCHIPs JWK pair (JSON), or a 32-byte Ed25519 seed / 64-byte libsodium secret key (binary, hex or base64)')
  }
  let id
  try { id = noise().keypairFromSeed(raw) } catch (err) { throw bad(err.message) }
  return { file, format: raw.length === 32 ? 'Ed25519 seed' : 'libsodium Ed25519 secret key', agent: id.agent, publicKey: id.publicKey, privateKey: id.privateKey }
}

// Does the agent id name this X25519 key? (Native nodes check that it does.)
function namesKey (id) {
  const named = noise().agentKey(id.agent)
  return !!named && named.equals(id.publicKey)
}

// Our identity for a node: the key file's, or a fresh one for this run.
function nodeIdentity (file) {
  if (file == null) {
    const id = noise().generateKeypair()
    return { file: null, format: 'fresh identity for this run', agent: id.agent, publicKey: id.publicKey, privateKey: id.privateKey }
  }
  const id = loadIdentity(file)
  if (!id.privateKey) throw new UsageError(`${file}: a public key only; a node needs the private key too`)
  if (!namesKey(id)) {
    throw new UsageError(`${file}: its agent id ${id.agent} does not name its X25519 key (only an Ed25519 key gives a MyCHIPs agent id)`)
  }
  return id
}

function agentOf (text, what) {
  const key = AGENT_RE.test(text) ? noise().agentKey(text) : null
  if (!key) throw new UsageError(`${what}: ${text} is not an agent id (base64url of an Ed25519 public key, 43 characters)`)
  return key
}

// AGENT@HOST:PORT; HOST may be [IPv6].
function parseAddress (text) {
  const m = /^([A-Za-z0-9_-]+)@(\[[^\]]+\]|[^:@[\]]+):(\d{1,5})$/.exec(String(text || ''))
  if (!m) throw new UsageError(`the address must be AGENT@HOST:PORT, not ${JSON.stringify(text)}`)
  const port = Number(m[3])
  if (port < 1 || port > 65535) throw new UsageError(`port ${port} is out of range`)
  const key = agentOf(m[1], 'the address')
  return { agent: m[1], host: m[2].replace(/^\[|\]$/g, ''), port, key }
}

function checkInt (value, name, min, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}`)
  }
  return value
}

// ---------------------------------------------------------------------------
// keygen

function keygen (argv) {
  const file = path.resolve(argv.out)
  if (!argv.force && fs.existsSync(file)) throw new UsageError(`${argv.out} exists; --force overwrites it`)
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519')
  const pub = publicKey.export({ format: 'jwk' })
  const priv = privateKey.export({ format: 'jwk' })
  const pair = {
    publicKey: { kty: 'OKP', crv: 'Ed25519', x: pub.x },
    privateKey: { kty: 'OKP', crv: 'Ed25519', x: priv.x, d: priv.d }
  }
  // The package's own conversion: the agent id it derives must be x.
  const id = noise().keypairFromJwk(pair)
  if (id.agent !== pair.publicKey.x) throw new Failure('ERR_INTERNAL', 'the derived agent id is not the public key')
  const data = JSON.stringify(pair, null, 2) + '\n'
  // Written with mode 0600 from the start: a fresh file (never an existing one,
  // unless --force, then by renaming a fresh file over it).
  const target = argv.force ? `${file}.${process.pid}.tmp` : file
  let fd
  try {
    fd = fs.openSync(target, 'wx', 0o600)
    fs.fchmodSync(fd, 0o600)
    fs.writeFileSync(fd, data)
    fs.fsyncSync(fd)
  } catch (err) {
    if (fd != null) { fs.closeSync(fd); fd = null; try { fs.unlinkSync(target) } catch (_) {} }
    if (err.code === 'EEXIST') throw new UsageError(`${argv.out} exists; --force overwrites it`)
    throw new UsageError(`cannot write ${argv.out}: ${err.code || err.message}`)
  } finally {
    if (fd != null) fs.closeSync(fd)
  }
  if (target !== file) fs.renameSync(target, file)
  if (argv.json) {
    out.json({ agent: id.agent, file: argv.out, mode: '0600', x25519: { hex: id.publicKey.toString('hex'), base64url: id.publicKey.toString('base64url') } })
  } else {
    out.line(`agent   ${pc.bold(id.agent)}`)
    out.line(`wrote   ${argv.out} (Ed25519 JWK pair, mode 0600)`)
  }
  return EXIT_OK
}

// ---------------------------------------------------------------------------
// key

function key (argv) {
  const id = loadIdentity(argv.file)
  const named = namesKey(id)
  const x = { hex: id.publicKey.toString('hex'), base64url: id.publicKey.toString('base64url') }
  if (argv.json) {
    out.json({ file: argv.file, format: id.format, agent: id.agent, private: !!id.privateKey, x25519: x, agentNamesKey: named })
  } else {
    out.line(`agent         ${pc.bold(id.agent)}`)
    out.line(`x25519 hex    ${x.hex}`)
    out.line(`x25519 b64u   ${x.base64url}`)
    out.line(`format        ${id.format}${id.privateKey ? ', private key present' : ''}`)
    if (!named) out.err(pc.yellow('warning: this agent id does not name this X25519 key (only an Ed25519 key gives a MyCHIPs agent id); nodes that check ids refuse it'))
  }
  return EXIT_OK
}

// ---------------------------------------------------------------------------
// listen

function listen (argv) {
  const { NoisePeer, agentKey } = noise()
  const id = nodeIdentity(argv.key)
  const port = checkInt(argv.port, 'port', 0, 65535)
  const partners = new Map()
  for (const a of [].concat(argv.partner || [])) partners.set(a, agentOf(a, '--partner'))
  const tickets = new Set([].concat(argv['accept-ticket'] || []).map(String))
  const database = argv.database == null ? undefined : (argv.database === '' ? true : argv.database)
  if (database === true && !process.env.DATABASE_URL) throw new UsageError('--database without a URL needs DATABASE_URL in the environment')

  const options = {
    agent: id.agent,
    keys: { publicKey: id.publicKey, privateKey: id.privateKey },
    host: argv.host,
    port,
    referee: !!argv.referee,
    legacy: !!argv.legacy
  }
  if (database !== undefined) options.database = database
  // --partner answers KK itself (beside --database too: a callback answers its own question).
  if (partners.size) options.peerKey = (agent) => partners.has(agent) ? agentKey(agent) : null
  // --accept-ticket: one use each, matched on the ticket's `token` (or the ticket itself, if text).
  if (tickets.size) {
    options.checkTicket = (ticket) => {
      const token = ticket && typeof ticket === 'object' ? ticket.token : ticket
      if (token == null || !tickets.has(String(token))) return false
      tickets.delete(String(token))
      return true
    }
  }

  let peer
  try { peer = new NoisePeer(options) } catch (err) { throw new UsageError(`${err.code ? err.code + ': ' : ''}${err.message}`) }
  const started = Date.now()
  const count = { opened: 0, closed: 0, refused: 0, errors: 0, messages: 0, pongs: 0, reasons: {} }
  const json = !!argv.json
  const who = (agent) => agent || pc.dim('anonymous')
  const dir = (initiator) => initiator ? 'out' : 'in '

  const status = () => {
    const open = safeLinks().length
    out.setStatus(`${open} link${open === 1 ? '' : 's'} open · ${count.messages} messages · ${count.refused} refused · up ${Math.round((Date.now() - started) / 1000)} s   (s: stats, q: quit)`)
  }
  const safeLinks = () => { try { return peer.links() } catch (_) { return [] } }

  peer.onEvent((e) => {
    const suppressed = e.suppressed ? ` (+${e.suppressed} more not shown)` : ''
    if (e.type === 'open') count.opened++
    else if (e.type === 'close') count.closed++
    else {
      count[e.type === 'refused' ? 'refused' : 'errors'] += 1 + (e.suppressed || 0)
      if (e.reason) count.reasons[e.reason] = (count.reasons[e.reason] || 0) + 1 + (e.suppressed || 0)
    }
    if (json) {
      out.json({ time: new Date().toISOString(), ...e })
    } else {
      const where = e.host ? hostPort(e.host, e.port) : ''
      const pattern = (e.pattern || '--').padEnd(2)
      const head = `${pc.dim(clock())} ${e.type.padEnd(8)} #${e.link} ${pattern} ${dir(e.initiator)} ${who(e.agent)} ${where}`
      if (e.type === 'open') out.line(pc.green(head))
      else if (e.type === 'close') out.line(`${head} ${e.reason || ''} ${e.clean ? 'clean' : pc.red('not clean')}, ${e.written} written${e.message && !e.clean ? `: ${e.message}` : ''}`)
      else if (e.type === 'refused') out.line(pc.yellow(`${head} ${e.reason}: ${e.message || ''}${suppressed}`))
      else out.line(pc.red(`${head} ${e.reason}: ${e.message || ''}${suppressed}`))
    }
    status()
  })

  peer.onMessage((from, message) => {
    count.messages++
    const isPing = message && Object.prototype.hasOwnProperty.call(message, 'ping')
    if (json) out.json({ time: new Date().toISOString(), type: 'message', link: from.link, agent: from.agent, pattern: from.pattern, native: from.native, early: !!from.early, message })
    else out.line(`${pc.dim(clock())} ${pc.cyan('message ')} #${from.link} ${from.pattern} ${dir(from.initiator)} ${who(from.agent)} ${shortJson(message)}${isPing ? pc.dim(' → pong') : ''}`)
    if (isPing) {
      // Answer on the link it came on: `link` alone also reaches an anonymous referee query.
      const to = from.agent ? { agent: from.agent, link: from.link } : { link: from.link }
      peer.send(to, { pong: message.ping }).then(() => { count.pongs++ }, (err) => {
        if (json) out.json({ time: new Date().toISOString(), type: 'reply-failed', link: from.link, code: err.code, message: err.message })
        else out.line(pc.red(`${pc.dim(clock())} reply    #${from.link} failed: ${err.code}: ${err.message}`))
      })
    }
    status()
  })

  // peer.stats() as it comes (its fields grow with the addon): one line per
  // top-level figure, nested objects flattened; one line per partner in `peers`.
  const flat = (v, prefix = '') => {
    if (v === null || typeof v !== 'object') return [`${prefix} ${typeof v === 'boolean' ? (v ? 'yes' : 'no') : v}`]
    if (Array.isArray(v)) return [`${prefix} ${JSON.stringify(v)}`]
    return Object.entries(v).flatMap(([k, x]) => flat(x, prefix ? `${prefix}.${k}` : k))
  }
  const printStats = () => {
    const links = safeLinks()
    let stats = null
    try { stats = peer.stats() } catch (_) {}
    const up = round((Date.now() - started) / 1000)
    if (json) {
      out.json({ time: new Date().toISOString(), type: 'stats', uptime: up, seen: count, stats, links })
      return
    }
    const reasons = Object.entries(count.reasons).map(([r, n]) => `${r} ${n}`).join(', ')
    out.line(pc.bold(`${'stats'.padEnd(11)} up ${up} s; ${links.length} link${links.length === 1 ? '' : 's'} open; seen: opened ${count.opened}, closed ${count.closed}, refused ${count.refused}, errors ${count.errors}${reasons ? ` (${reasons})` : ''}; messages ${count.messages}, pongs ${count.pongs}`))
    for (const [name, value] of Object.entries(stats || {})) {
      if (name === 'peers' && Array.isArray(value)) {
        for (const p of value) {
          const { agent, ...rest } = p || {}
          out.line(`${'peer'.padEnd(11)} ${who(agent)} ${flat(rest).map((s) => s.trim()).join(', ')}`)
        }
      } else {
        out.line(`${name.padEnd(11)} ${flat(value).map((s) => s.trim()).join(', ')}`)
      }
    }
    for (const l of links) out.line(`${'link'.padEnd(11)} #${l.link} ${l.pattern} ${dir(l.initiator)} ${who(l.agent)} ${hostPort(l.host, l.port)} ${l.native ? 'native' : 'JavaScript'}`)
  }

  let address
  try { address = peer.listenNow() } catch (err) {
    peer.close().catch(() => {})
    throw new Failure(err.code || 'ERR_IO', `cannot listen on ${hostPort(argv.host, port)}: ${err.message}`)
  }
  const me = `${id.agent}@${hostPort(address.host, address.port)}`
  if (json) {
    out.json({ type: 'listening', agent: id.agent, host: address.host, port: address.port, address: me, referee: !!argv.referee, partners: partners.size, tickets: tickets.size, database: database !== undefined, legacy: !!argv.legacy })
  } else {
    out.line(`listening ${pc.bold(me)}`)
    out.line(pc.dim(`          key ${id.file || id.format}; referee ${argv.referee ? 'on' : 'off'}; partners ${partners.size}${database !== undefined ? ' + database' : ''}; tickets ${tickets.size}${database !== undefined ? ' + database' : ''}; legacy ${argv.legacy ? 'on' : 'off'}`))
  }
  status()
  const ticker = tty ? setInterval(status, 1000) : null

  return new Promise((resolve) => {
    let closing = false
    const shutdown = (why) => {
      if (closing) return
      closing = true
      if (ticker) clearInterval(ticker)
      if (process.stdin.isTTY && process.stdin.setRawMode) { try { process.stdin.setRawMode(false) } catch (_) {} process.stdin.pause() }
      out.endStatus()
      if (!json) out.line(pc.dim(`${clock()} ${why}: closing`))
      const force = setTimeout(() => { out.err('close took too long; exiting'); resolve(EXIT_FAILED) }, 5000)
      peer.close().then(() => {
        clearTimeout(force)
        if (json) out.json({ type: 'closed', signal: why })
        else out.line(pc.dim(`${clock()} closed`))
        resolve(EXIT_OK)
      }, (err) => {
        clearTimeout(force)
        out.err(`close failed: ${err.code}: ${err.message}`)
        resolve(EXIT_FAILED)
      })
    }
    process.on('SIGINT', () => shutdown('SIGINT'))
    process.on('SIGTERM', () => shutdown('SIGTERM'))
    process.on('SIGUSR1', printStats)
    if (process.stdin.isTTY && process.stdin.setRawMode) {
      process.stdin.setRawMode(true)
      process.stdin.setEncoding('utf8')
      process.stdin.on('data', (k) => {
        if (k === 's' || k === 'S') printStats()
        else if (k === 'q' || k === 'Q' || k === '\u0003' || k === '\u0004') shutdown(k === '\u0003' ? 'SIGINT' : 'quit')
      })
      process.stdin.resume()
    }
  })
}

// ---------------------------------------------------------------------------
// ping

function readTicket (text) {
  try { return JSON.parse(text) } catch (_) {}
  let data
  try { data = fs.readFileSync(text, 'utf8') } catch (err) {
    throw new UsageError(`--ticket is neither JSON text nor a readable file (${err.code || err.message})`)
  }
  try { return JSON.parse(data) } catch (err) { throw new UsageError(`--ticket file ${text} is not JSON (${err.message})`) }
}

// Resolves with what `promise` gives, or rejects with `failure` after `after` ms.
function within (promise, after, failure) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(failure), after) })
  ]).finally(() => clearTimeout(timer))
}

const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t))

async function ping (argv) {
  const { NoisePeer } = noise()
  const extra = argv._.slice(1)
  if (argv.address != null && extra.length) throw new UsageError(`one address only (also got ${extra.join(' ')})`)
  if (argv.address == null && extra.length !== 1) throw new UsageError('name the node: ping [options] AGENT@HOST:PORT')
  const target = parseAddress(argv.address != null ? argv.address : extra[0])
  const countN = checkInt(argv.count, 'count', 0)
  const interval = checkInt(argv.interval, 'interval', 0)
  const timeout = checkInt(argv.timeout, 'timeout', 1)
  const ticket = argv.ticket != null ? readTicket(argv.ticket) : null
  const sendOptions = ticket != null ? { ticket } : argv.referee ? { referee: true } : undefined
  const want = ticket != null ? 'IK' : argv.referee ? 'NK' : 'KK'
  const id = nodeIdentity(argv.key)
  const json = !!argv.json
  const addr = `${target.agent}@${hostPort(target.host, target.port)}`

  const peer = new NoisePeer({
    agent: id.agent,
    keys: { publicKey: id.publicKey, privateKey: id.privateKey },
    host: '127.0.0.1',
    handshakeTimeout: timeout
  })
  let link = null
  let closed = null // why our link closed, once it has
  const waiting = new Map() // seq -> resolve(time)
  peer.onMessage((from, message) => {
    if (!link || from.link !== link.link || !message) return
    const w = waiting.get(message.pong)
    if (w) { waiting.delete(message.pong); w(process.hrtime.bigint()) }
  })
  peer.onEvent((e) => {
    if (link && e.link === link.link && e.type !== 'open') {
      closed = new Failure(e.reason || 'ERR_CONNECTION_CLOSED', `the link closed${e.message ? `: ${e.message}` : ''}`)
      for (const [seq, w] of waiting) { waiting.delete(seq); w(null) }
    }
  })

  const finish = async (code) => {
    out.endStatus()
    await within(peer.close(), 3000, null).catch(() => {})
    return code
  }
  const fail = async (err) => {
    const code = err.code || 'ERR_INTERNAL'
    if (json) out.json({ type: 'error', code, message: err.message, exit: err.exit || EXIT_FAILED })
    out.err(`${pc.red('ping failed:')} ${code}: ${err.message}`)
    return finish(err.exit || EXIT_FAILED)
  }

  if (!json) out.line(`PING ${addr} ${want} from ${id.agent}${id.file ? '' : ' (a fresh identity)'}`)
  out.setStatus(`handshake with ${hostPort(target.host, target.port)}…`)
  const t0 = process.hrtime.bigint()
  try {
    link = await within(
      peer.connect({ agent: target.agent, host: target.host, port: target.port, key: target.key }, sendOptions),
      timeout + 1000, new Failure('ERR_HANDSHAKE_TIMEOUT', `no link within ${timeout} ms`))
  } catch (err) {
    return fail(err)
  }
  const handshake = ms(t0)
  const keyHex = target.key.toString('hex')
  const keyB64 = target.key.toString('base64url')
  if (json) {
    out.json({ type: 'handshake', agent: target.agent, host: target.host, port: target.port, link: link.link, pattern: link.pattern, key: keyHex, keyBase64url: keyB64, native: link.native, ms: round(handshake) })
  } else {
    out.line(`  pattern    ${pc.bold(link.pattern)}`)
    out.line(`  key        ${keyHex} (X25519; ${link.pattern === 'NK' ? 'the key dialled, which NK makes the node prove' : 'named by the agent id, proven in the handshake'})`)
    out.line(`  peer       ${link.native ? 'native (mychips-noise)' : 'JavaScript (MyCHIPs Noise module)'}`)
    out.line(`  handshake  ${round(handshake)} ms`)
  }

  const rtts = []
  let lastError = null
  for (let seq = 1; seq <= countN; seq++) {
    if (closed) return fail(closed)
    out.setStatus(`ping ${seq}/${countN}…`)
    const begun = Date.now()
    const pong = new Promise((resolve) => waiting.set(seq, resolve))
    const sent = process.hrtime.bigint()
    try {
      await peer.send({ agent: target.agent, link: link.link }, { ping: seq })
    } catch (err) {
      waiting.delete(seq)
      return fail(err)
    }
    let at = null
    try {
      at = await within(pong, timeout, 'late')
    } catch (_) {
      waiting.delete(seq)
    }
    if (closed) return fail(closed)
    if (at == null) {
      lastError = new Failure('ERR_PING_TIMEOUT', `no pong within ${timeout} ms`, EXIT_NO_PONG)
      if (json) out.json({ type: 'timeout', seq, ms: timeout })
      else out.line(pc.yellow(`no pong ${seq} within ${timeout} ms`))
    } else {
      const rtt = Number(at - sent) / 1e6
      rtts.push(rtt)
      if (json) out.json({ type: 'pong', seq, ms: round(rtt) })
      else out.line(`pong ${seq}: ${round(rtt)} ms`)
    }
    if (seq < countN) await sleep(Math.max(0, interval - (Date.now() - begun)))
  }
  const lost = countN - rtts.length
  const summary = {
    type: 'summary',
    agent: target.agent,
    pattern: link.pattern,
    native: link.native,
    handshake: round(handshake),
    sent: countN,
    received: rtts.length,
    lost,
    min: rtts.length ? round(Math.min(...rtts)) : null,
    avg: rtts.length ? round(rtts.reduce((a, b) => a + b, 0) / rtts.length) : null,
    max: rtts.length ? round(Math.max(...rtts)) : null,
    ok: countN === 0 || rtts.length > 0
  }
  if (json) out.json(summary)
  else {
    const figures = rtts.length ? `, round trip min/avg/max ${summary.min}/${summary.avg}/${summary.max} ms` : ''
    out.line(pc.bold(`${countN} sent, ${rtts.length} received, ${countN ? Math.round(100 * lost / countN) : 0}% lost${figures}`))
  }
  if (!summary.ok) return fail(lastError)
  return finish(EXIT_OK)
}

// ---------------------------------------------------------------------------
// bench: bench/run.js, as `npm run bench` runs it, arguments passed through.

function bench (args) {
  const script = process.env.MYCHIPS_NOISE_BENCH_SCRIPT || path.join(root, 'bench', 'run.js')
  if (!fs.existsSync(script)) {
    out.err(`bench: ${script} is not here (the benchmark ships with the repository, not the package)`)
    return Promise.resolve(EXIT_USAGE)
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', script, ...args], { stdio: 'inherit' })
    const forward = (sig) => () => { try { child.kill(sig) } catch (_) {} }
    // A terminal's Ctrl-C reaches the child by itself (same process group); a kill of ours is passed on.
    process.on('SIGINT', () => {})
    process.on('SIGTERM', forward('SIGTERM'))
    child.on('error', (err) => { out.err(`bench: ${err.message}`); resolve(EXIT_FAILED) })
    child.on('exit', (code, signal) => resolve(code != null ? code : 128 + (require('os').constants.signals[signal] || 0)))
  })
}

// ---------------------------------------------------------------------------
// Arguments.

// Agent ids may start with '-', which an argument parser takes for an option:
// `--partner -abc…` becomes `--partner=-abc…`, and a lone `-abc…@host:port`
// goes after `--`, where it is read as the address.
function protectAgentIds (args) {
  const looksLikeAgent = /^-[A-Za-z0-9_-]{42}(@\S*)?$/
  const kept = []
  const moved = []
  const valued = new Set(['--partner', '--key', '--out', '--ticket', '--host', '--database', '--accept-ticket'])
  let rest = false
  for (const a of args) {
    if (rest || a === '--') { rest = true; moved.push(a); continue }
    if (looksLikeAgent.test(a)) {
      if (kept.length && valued.has(kept[kept.length - 1])) kept.push(`${kept.pop()}=${a}`)
      else moved.push(a)
    } else kept.push(a)
  }
  if (!moved.length) return kept
  return [...kept, ...(moved[0] === '--' ? moved : ['--', ...moved.filter((a) => a !== '--')])]
}

function run (fn) {
  return (argv) => {
    Promise.resolve().then(() => fn(argv)).then((code) => exit(code), (err) => {
      out.endStatus()
      if (err instanceof UsageError) {
        out.err(`mychips-noise ${argv._[0]}: ${err.message}`)
        exit(EXIT_USAGE)
      } else if (err instanceof Failure || (err && typeof err.code === 'string' && err.code.startsWith('ERR_'))) {
        out.err(`mychips-noise ${argv._[0]}: ${err.code}: ${err.message}`)
        exit(err.exit || EXIT_FAILED)
      } else {
        out.err(`mychips-noise ${argv._[0]}: ${err && err.stack ? err.stack : err}`)
        exit(EXIT_FAILED)
      }
    })
  }
}

// Exit once stdout has taken everything (a pipe may still hold it).
function exit (code) {
  process.exitCode = code
  process.stdout.write('', () => process.exit(code))
}

function main (args) {
  if (args[0] === 'bench') return bench(args.slice(1)).then(exit)
  const yargs = require('yargs/yargs')
  const json = { type: 'boolean', describe: 'one JSON object per line' }
  const cli = yargs(protectAgentIds(args))
    .scriptName('mychips-noise')
    .usage('$0 <command> [options]\n\nThe operator\'s tool for mychips-noise nodes (encrypted MyCHIPs peer links).')
    .command('keygen', 'write a fresh identity (MyCHIPs Ed25519 JWK pair, mode 0600) and print its agent id', (y) => y
      .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'the key file to write', requiresArg: true })
      .option('force', { type: 'boolean', describe: 'overwrite an existing file' })
      .option('json', json), run(keygen))
    .command('key <file>', 'print the agent id and X25519 public key of a key file', (y) => y
      .positional('file', { type: 'string', describe: 'a JWK pair (JSON) or a raw Ed25519 seed / libsodium secret key' })
      .option('json', json), run(key))
    .command('listen', 'run a node: print links, refusals and messages; answer {"ping": n} with {"pong": n}', (y) => y
      .option('key', { alias: 'k', type: 'string', requiresArg: true, describe: 'our key file (default: a fresh identity for this run)' })
      .option('host', { type: 'string', default: '127.0.0.1', requiresArg: true, describe: 'listen address' })
      .option('port', { alias: 'p', type: 'number', default: 0, requiresArg: true, describe: 'listen port (0: a free one)' })
      .option('referee', { type: 'boolean', describe: 'answer anonymous referee queries (NK)' })
      .option('partner', { type: 'string', requiresArg: true, describe: 'admit this agent by key (KK); repeatable' })
      .option('accept-ticket', { type: 'string', requiresArg: true, describe: 'admit one first contact (IK) with this ticket token; repeatable' })
      .option('database', { type: 'string', describe: 'partners, keys and tickets from PostgreSQL (URL; empty: DATABASE_URL)' })
      .option('legacy', { type: 'boolean', describe: 'accept JavaScript (legacy) initiators' })
      .option('json', json), run(listen))
    .command('ping [address]', 'open a link to AGENT@HOST:PORT, time the handshake and ping/pong round trips', (y) => y
      .positional('address', { type: 'string', describe: 'AGENT@HOST:PORT (host may be [IPv6])' })
      .option('key', { alias: 'k', type: 'string', requiresArg: true, describe: 'our key file (default: a fresh identity)' })
      .option('ticket', { alias: 't', type: 'string', requiresArg: true, describe: 'first contact (IK) with this ticket: JSON text or a file' })
      .option('referee', { type: 'boolean', describe: 'an anonymous referee query (NK)' })
      .option('count', { alias: 'c', type: 'number', default: 3, requiresArg: true, describe: 'round trips (0: the handshake only)' })
      .option('interval', { alias: 'i', type: 'number', default: 1000, requiresArg: true, describe: 'ms between pings' })
      .option('timeout', { alias: 'w', type: 'number', default: 5000, requiresArg: true, describe: 'ms to wait for the handshake, and for each pong' })
      .option('json', json)
      .conflicts('ticket', 'referee'), run(ping))
    .command('bench [args..]', 'run the benchmark: node --expose-gc bench/run.js args... (from a repository checkout)', () => {}, () => {})
    .epilog('Exit codes: 0 ok; 1 the link failed (refused, unreachable, timed out, closed); 2 usage or a bad key/ticket file; 3 ping: linked, but no pong.\nAn agent id that starts with "-" may be given as it is, or as --partner=ID.')
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version(pkg.version)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) throw err
      process.stderr.write(`mychips-noise: ${msg}\nTry: mychips-noise --help\n`)
      process.exit(EXIT_USAGE)
    })
  cli.parse()
}

main(process.argv.slice(2))

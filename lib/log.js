'use strict'
// Link events as lines for a wyclif-style logger (error/warn/info/debug/trace),
// the kind MyCHIPs passes in `config.log`. Opened and closed links are debug
// lines, refusals warnings (with the reason code), other failures errors.

const silent = Object.freeze({ error () {}, warn () {}, info () {}, debug () {}, trace () {} })

// A logger with every level: missing methods fall back to the nearest one
// present, or do nothing. (MyCHIPs' wyclif logger has all of them.)
function logger (log) {
  if (!log) return silent
  const pick = (...names) => {
    for (const n of names) if (typeof log[n] === 'function') return log[n].bind(log)
    return () => {}
  }
  return {
    error: pick('error'),
    warn: pick('warn', 'error'),
    info: pick('info', 'warn'),
    debug: pick('debug', 'verbose', 'info'),
    trace: pick('trace', 'silly', 'debug'),
    // Kept, so that lines for a level that is off are never formatted.
    isLevelEnabled: typeof log.isLevelEnabled === 'function' ? log.isLevelEnabled.bind(log) : undefined
  }
}

// Is `level` on? Asks the logger when it can tell (winston, which wyclif is
// built on, has isLevelEnabled); otherwise assumes it is.
function enabled (log, level) {
  if (typeof log.isLevelEnabled === 'function') {
    try { return log.isLevelEnabled(level) !== false } catch (_) { return true }
  }
  return true
}

// Repeated refusals and failures from one address are logged once per
// window; the next line from it says how many were held back. Remembers at
// most this many addresses (the oldest is forgotten first).
const WINDOW_MS = 10000
const MAX_ADDRESSES = 1024

// One structured line per link event: `who: what key=value ...`, at debug
// for opens and orderly closes, warn for refusals, timeouts and unclean
// closes, error for other failures. Nothing is formatted when the level is
// off. `now` is injectable for tests.
class EventLog {
  constructor (log, who, now = Date.now) {
    this.log = log
    this.who = who
    this.now = now
    this.recent = new Map() // address -> { until, held }
    // Levels asked once: a logger's level rarely changes, and asking on
    // every event would cost more than the line.
    this.on = {}
    for (const level of ['error', 'warn', 'info', 'debug', 'trace']) this.on[level] = !!log && log !== silent && enabled(log, level)
  }

  event (e) {
    const level = levelOf(e)
    if (!this.on[level]) return
    let held = 0
    if (e.type === 'refused' || e.type === 'error') {
      const gate = this._gate(e.host || 'unknown')
      if (gate === null) return
      held = gate
    }
    this.log[level](this._line(e, held))
  }

  // null: hold this line back; otherwise the count held back before it.
  _gate (address) {
    const t = this.now()
    const r = this.recent.get(address)
    if (r && t < r.until) {
      r.held++
      return null
    }
    const held = r ? r.held : 0
    this.recent.delete(address) // re-inserted last: the map keeps the newest at the end
    if (this.recent.size >= MAX_ADDRESSES) this.recent.delete(this.recent.keys().next().value)
    this.recent.set(address, { until: t + WINDOW_MS, held: 0 })
    return held
  }

  _line (e, held) {
    const whom = e.agent || (e.host ? `${e.host}:${e.port}` : 'unknown peer')
    let what
    switch (e.type) {
      case 'open': what = `link ${e.link} open with ${whom}`; break
      case 'close': what = e.reason === 'IDLE_TIMEOUT' ? `link ${e.link} with ${whom} closed: timed out (IDLE_TIMEOUT)` : `link ${e.link} with ${whom} closed: ${e.reason}`; break
      case 'refused': what = `handshake with ${whom} refused: ${e.reason}`; break
      default: what = /TIMEOUT/.test(e.reason || '') ? `connection with ${whom} timed out: ${e.reason}` : `connection with ${whom} failed: ${e.reason}`
    }
    const fields = [
      ['link', e.link],
      ['agent', e.agent],
      ['host', e.host],
      ['port', e.port],
      ['pattern', e.pattern],
      ['dir', e.initiator ? 'out' : 'in'],
      ['reason', e.reason],
      ['clean', e.type === 'close' ? e.clean : undefined],
      ['written', e.type === 'close' ? e.written : undefined],
      ['suppressed', e.suppressed || undefined],
      ['held', held || undefined],
      ['message', e.type !== 'open' && !(e.type === 'close' && e.clean) ? e.message : undefined]
    ]
    const kv = fields.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k}=${quote(v)}`).join(' ')
    return `${this.who}: ${what} ${kv}`
  }
}

function levelOf (e) {
  switch (e.type) {
    case 'open': return 'debug'
    case 'close': return e.clean ? 'debug' : 'warn'
    case 'refused': return 'warn'
    default: return /TIMEOUT/.test(e.reason || '') ? 'warn' : 'error'
  }
}

// A value as a logfmt-style token: quoted when it has spaces or quotes.
function quote (v) {
  const s = String(v)
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s
}

module.exports = { logger, EventLog, silent }

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
    trace: pick('trace', 'silly', 'debug')
  }
}

// One line per link event, from `who` (e.g. 'peernoise').
function logEvent (log, who, e) {
  const whom = e.agent || (e.host ? `${e.host}:${e.port}` : 'unknown peer')
  switch (e.type) {
    case 'open':
      log.debug(`${who}: link ${e.link} open with ${whom} (${e.pattern}, ${e.initiator ? 'we dialled' : 'it dialled'})`)
      break
    case 'close':
      log.debug(`${who}: link ${e.link} with ${whom} closed: ${e.reason}${e.clean ? '' : ` (${e.message})`}`)
      break
    case 'refused':
      log.warn(`${who}: handshake with ${whom} refused: ${e.reason}: ${e.message}`)
      break
    default:
      log.error(`${who}: connection with ${whom} failed: ${e.reason}: ${e.message}`)
  }
}

module.exports = { logger, logEvent, silent }

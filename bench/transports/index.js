'use strict'
// The four transports the bench compares, behind one small interface, so the
// scenarios (scenarios.js) are written once and know nothing of any of them.
//
// A transport module exports { key, label, identity(), create(identity) }:
//   identity()          a fresh identity (agent id, and keys where the transport has any)
//   create(identity)    a node of that identity, not listening yet
// A node:
//   agent                       our agent id
//   listen()                    -> Promise<{ agent, host, port }>, the address others send to
//   send(to, message)           -> Promise, settled by the transport's own flow control:
//                                  opens a link to `to` ({ agent, host, port }) when there is none
//   onMessage(fn)               fn(from, message) for every message; from.agent is the sender
//   reply(from, message)        -> Promise: answer on the link the message came on
//   end(agent)                  close our links to agent
//   linkCount(agent?)           links open now (to agent, when given)
//   onLinkClosed(fn)            fn() whenever a link closes (wakes those who wait for none)
//   trim()                      drop whatever the transport logs for tests (JsPeer's frame logs)
//   close()                     -> Promise: every link and the listener closed
//
// Every node is set up the same way for the bench: idle timeouts off (the memory
// figure holds thousands of links open for minutes) and, for NoisePeer, the caps
// meant for strangers lifted (every caller here is 127.0.0.1).

const TRANSPORTS = {
  plain: require('./plain'),
  js: require('./js-noise'),
  raw: require('./noise-peer').raw,
  enc: require('./noise-peer').encrypted
}

// Column order everywhere: the two JavaScript baselines first, then NoisePeer.
const ORDER = ['plain', 'js', 'raw', 'enc']

function transport (key) {
  const t = TRANSPORTS[key]
  if (!t) throw new Error(`bench: no transport "${key}" (have ${ORDER.join(', ')})`)
  return t
}

module.exports = { transport, ORDER, TRANSPORTS }

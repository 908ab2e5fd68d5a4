'use strict'
// A NoisePeer whose application is slow (readMs per message), in a process of
// its own, for __test__/soak.spec.js (the drain-timeout case). Argument: JSON
// { partner: { agent, key (hex) }, readMs, options }. IPC:
//   -> { ready, agent, publicKey (hex), port }
//   <- { send: n }       sends n small messages to the partner (on the open link)
//   <- { end: true }     ends the links to the partner
//   <- { report: true }  -> { delivered, events }
// Exits on disconnect, and by itself after 60 s.
const { NoisePeer, generateKeypair } = require('../..')

const { partner, readMs, options = {} } = JSON.parse(process.argv[2])
const key = Buffer.from(partner.key, 'hex')
const id = generateKeypair()
const peer = new NoisePeer({ agent: id.agent, keys: id, host: '127.0.0.1', ...options, peerKey: async (a) => (a === partner.agent ? key : null) })
setTimeout(() => process.exit(2), 60000).unref()
process.on('disconnect', () => process.exit(0))

let delivered = 0
const events = []
peer.onMessage(() => {
  delivered++
  const until = Date.now() + readMs
  while (Date.now() < until); // a slow application
})
peer.onEvent((e) => events.push({ type: e.type, reason: e.reason, clean: e.clean, written: e.written }))
process.on('message', (m) => {
  if (m.send) {
    for (let i = 0; i < m.send; i++) peer.send({ agent: partner.agent }, { back: i }).catch(() => {})
  }
  if (m.end) peer.end(partner.agent)
  if (m.report) process.send({ delivered, events })
})
peer.listen().then(({ port }) => process.send({ ready: true, agent: id.agent, publicKey: id.publicKey.toString('hex'), port }))

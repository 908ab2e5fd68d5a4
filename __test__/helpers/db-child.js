'use strict'
// A second Node process that serves the same node (same agent, same keys,
// same database) as the test's own, driven over IPC: it listens, records
// what it receives and refuses, and reports on request.
const { NoisePeer } = require('../..')

let peer = null
const received = []
const refused = []

process.on('message', async (m) => {
  if (m.url) {
    const privateKey = Buffer.from(m.identity.privateKey, 'base64')
    peer = new NoisePeer({ agent: m.identity.agent, keys: { privateKey }, handshakeTimeout: 2000, database: { connectionString: m.url } })
    peer.onMessage((from, message) => received.push(message.n))
    peer.onEvent((e) => { if (e.type === 'refused') refused.push(e.reason) })
    const { port } = await peer.listen()
    process.send({ port })
  } else if (m.report) {
    process.send({ refused, received, stats: peer.stats() })
  } else if (m.close) {
    if (peer) await peer.close()
    process.disconnect()
  }
})

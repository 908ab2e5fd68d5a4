'use strict'
// A second process for the two-process test: greets the parent's peer, echoes
// what it receives, and on {quit} closes and lets the process end by itself.
const { NoisePeer, generateKeypair } = require('../..')

const id = generateKeypair()
const keys = new Map()
const peer = new NoisePeer({ agent: id.agent, keys: id, peerKey: async (agent) => keys.get(agent) || null })
peer.onMessage((from, message) => {
  peer.send({ agent: from.agent }, { echo: message }).catch((err) => console.error('echo failed', err.code))
})

process.on('message', async (msg) => {
  if (msg.peer) {
    keys.set(msg.peer.agent, Buffer.from(msg.peer.publicKey, 'base64'))
    await peer.send({ agent: msg.peer.agent, host: msg.peer.host, port: msg.peer.port }, { hello: 'from child' })
  }
  if (msg.quit) {
    await peer.close()
    process.disconnect() // the IPC channel is the last handle we own
  }
})

peer.listen().then(() => process.send({ agent: id.agent, publicKey: id.publicKey.toString('base64') }))

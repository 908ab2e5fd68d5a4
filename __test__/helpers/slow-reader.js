'use strict'
// A node whose application takes `ms` milliseconds per message, in its own
// process so its memory can be measured apart from the sender's. Forked by a
// test with (partnerAgent, partnerKeyHex, count, ms, maxBacklog); reports
// { ready, agent, publicKey, port }, then { done, seen, base, peak } (bytes of
// resident memory) once it has taken `count` messages. Exits by itself after
// 30 s whatever happens. Run with --expose-gc.
const { NoisePeer, generateKeypair } = require('../..')

const [agent, keyHex, count, ms, maxBacklog] = process.argv.slice(2)
const partnerKey = Buffer.from(keyHex, 'hex')
const id = generateKeypair()
const peer = new NoisePeer({ agent: id.agent, keys: id, host: '127.0.0.1', maxBacklog: Number(maxBacklog), peerKey: async (a) => (a === agent ? partnerKey : null) })
const deadline = setTimeout(() => process.exit(2), 30000)
let seen = 0
let base = 0
let peak = 0
peer.onMessage(() => {
  seen++
  // Garbage the application made is not what we measure: collect it first.
  if (seen % 16 === 0) { global.gc(); peak = Math.max(peak, process.memoryUsage.rss()) }
  const until = Date.now() + Number(ms)
  while (Date.now() < until); // a slow application
  if (seen === Number(count)) {
    process.send({ done: true, seen, base, peak }, () => {
      clearTimeout(deadline)
      peer.close().then(() => process.exit(0))
    })
  }
})
peer.listen().then(({ port }) => {
  global.gc()
  base = process.memoryUsage.rss()
  process.send({ ready: true, agent: id.agent, publicKey: id.publicKey.toString('hex'), port })
})

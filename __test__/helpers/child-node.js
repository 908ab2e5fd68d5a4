'use strict'
// A NoisePeer in its own process, so a test can measure its memory apart from
// everything else the test process holds. Forked with --expose-gc and one
// JSON argument: { partner: { agent, key (hex) }, options, readMs }, where
// readMs makes its application take that long per message.
// Talks over IPC:
//   -> { ready, agent, publicKey (hex), port, rss }
//   <- { send: { agent, count, size } }   -> { sent: { outcome: count }, rss } at once (outcomes settled so far),
//                                          then { settled: { outcome: count } } when every send has
//   <- { rss: true }                      -> { rss } (resident bytes after a full collection)
//   -> { seen, peak } every 16 messages received (peak: resident bytes after a collection)
// Exits on disconnect, and by itself after 30 s whatever happens.
const { NoisePeer, generateKeypair } = require('../..')

const { partner, options = {}, readMs = 0 } = JSON.parse(process.argv[2])
const partnerKey = Buffer.from(partner.key, 'hex')
const id = generateKeypair()
const peer = new NoisePeer({ agent: id.agent, keys: id, host: '127.0.0.1', ...options, peerKey: async (a) => (a === partner.agent ? partnerKey : null) })
const deadline = setTimeout(() => process.exit(2), 30000)
const rss = () => { global.gc(); return process.memoryUsage.rss() }
const tally = (list) => list.reduce((m, o) => ({ ...m, [o]: (m[o] || 0) + 1 }), {})

let seen = 0
let peak = 0
peer.onMessage(() => {
  seen++
  const until = Date.now() + readMs
  while (Date.now() < until); // a slow application
  if (seen % 16 === 0) {
    peak = Math.max(peak, rss())
    process.send({ seen, peak })
  }
})

process.on('message', async (m) => {
  if (m.rss) process.send({ rss: rss() })
  if (m.send) {
    const { agent, count, size } = m.send
    const outcomes = []
    const sends = []
    for (let i = 0; i < count; i++) {
      // A fresh object each time, as an application would build it.
      sends.push(peer.send({ agent }, { i, pad: 'x'.repeat(size) }).then(() => outcomes.push('ok'), (e) => outcomes.push(e.code)))
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
    process.send({ sent: tally(outcomes), rss: rss() })
    await Promise.all(sends)
    process.send({ settled: tally(outcomes) })
  }
})
process.on('disconnect', () => { clearTimeout(deadline); peer.close().then(() => process.exit(0)) })

peer.listen().then(({ port }) => {
  process.send({ ready: true, agent: id.agent, publicKey: id.publicKey.toString('hex'), port, rss: rss() })
})

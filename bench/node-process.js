'use strict'
// A bench child process: holds the nodes of one measurement and runs what the
// parent (harness.js) asks, over IPC:
//   <- { id, op, args }   ->  { id, result } | { id, error }
// It says { ready } once loaded. It exits when the parent goes away (no
// orphans), and by itself after the lifetime given as argv[2] (ms), whatever
// happens.

const { ops } = require('./scenarios')

const lifetime = Number(process.argv[2]) || 15 * 60 * 1000
setTimeout(() => {
  console.error(`bench child ${process.pid}: lifetime of ${lifetime} ms over, exiting`)
  process.exit(3)
}, lifetime).unref()

process.on('disconnect', () => process.exit(0))

process.on('message', async ({ id, op, args }) => {
  try {
    if (!Object.hasOwn(ops, op)) throw new Error(`bench child: unknown operation ${op}`)
    const result = await ops[op](args || {})
    process.send({ id, result })
  } catch (err) {
    process.send({ id, error: err && err.message ? err.message : String(err) })
  }
})

process.send({ ready: true })

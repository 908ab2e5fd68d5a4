'use strict'
// `npm run soak`: nodes in processes of their own exchange messages for a
// bounded time while the controller kills, resets, cuts and restarts; then
// the books are checked. Exits 1 when an invariant fails.
//
//   npm run soak                                # loopback, 10 minutes
//   npm run soak -- --duration 30s              # 30s, 5m, 1h, 500ms
//   npm run soak -- --variant netns             # in network namespaces, over a lossy network
//   npm run soak -- --variant db                # PostgreSQL store, stopped and restarted
//   npm run soak -- --variant all               # the three, one after the other
//   options: --nodes N (default 4, at least 3), --raw (no encryption),
//            --fault-every 2s, --json FILE (the full result as JSON)

const { parseArgs } = require('util')
const fs = require('fs')
const { Soak } = require('./controller')
const { format } = require('./report')

const OPTIONS = {
  duration: { type: 'string', default: '10m' },
  variant: { type: 'string', default: 'loopback' },
  nodes: { type: 'string', default: '4' },
  raw: { type: 'boolean', default: false },
  'fault-every': { type: 'string' },
  json: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false }
}
let values
try {
  values = parseArgs({ options: OPTIONS }).values
} catch (err) {
  console.error(`soak: ${err.message} (--help says what it takes)`)
  process.exit(2)
}

if (values.help) {
  const text = fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 13).map((l) => l.replace(/^\/\/ ?/, ''))
  console.log(text.join('\n'))
  process.exit(0)
}

const variants = values.variant === 'all' ? ['loopback', 'netns', 'db'] : values.variant.split(',')
let current = null

// No child, namespace or database outlives us, whatever ends the run.
process.on('exit', () => { if (current) current.killAll() })
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`soak: ${sig}, cleaning up`)
    const s = current
    current = null
    const done = () => process.exit(130)
    if (!s) return done()
    const t = setTimeout(() => { s.killAll(); done() }, 10000)
    s.cleanup().then(done, done).finally(() => clearTimeout(t))
  })
}

async function main () {
  const results = []
  let ok = true
  for (const variant of variants) {
    current = new Soak({
      variant,
      duration: values.duration,
      nodes: Number(values.nodes),
      raw: values.raw,
      faultEvery: values['fault-every'],
      log: (line) => console.log(line)
    })
    const result = await current.run()
    current = null
    result.variant = result.variant || variant
    results.push(result)
    console.log(format(result).join('\n'))
    if (!result.skipped && !result.ok) ok = false
  }
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(results, null, 2))
  process.exit(ok ? 0 : 1)
}

main().catch((err) => {
  console.error('soak:', err && err.stack ? err.stack : err)
  const s = current
  current = null
  const done = () => process.exit(1)
  if (!s) done()
  else s.cleanup().then(done, done)
})

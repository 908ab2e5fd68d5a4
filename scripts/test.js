'use strict'
// `npm test`: the Rust suite (cargo test) and the JavaScript suite (mocha), then
// one closing line with the totals of both: "N passed, N failed".
const { spawnSync } = require('child_process')
const { readFileSync, rmSync } = require('fs')
const { join } = require('path')
const os = require('os')

const root = join(__dirname, '..')
let passed = 0
let failed = 0
let status = 0

const cargo = spawnSync('cargo', ['test', '--release', '--lib'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 })
process.stdout.write(cargo.stdout || '')
if (cargo.status !== 0) status = 1
for (const m of (cargo.stdout || '').matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
  passed += Number(m[1])
  failed += Number(m[2])
}
if (cargo.status !== 0 && failed === 0) failed = 1 // it did not even build

const summary = join(os.tmpdir(), `mocha-summary-${process.pid}.json`)
const mocha = spawnSync(process.execPath, [require.resolve('mocha/bin/mocha.js'), ...process.argv.slice(2)], {
  cwd: root, stdio: 'inherit', env: { ...process.env, MOCHA_SUMMARY_FILE: summary }
})
if (mocha.status !== 0) status = 1
try {
  const s = JSON.parse(readFileSync(summary, 'utf8'))
  passed += s.passes
  failed += s.failures
  rmSync(summary)
} catch (_) {
  failed += 1 // mocha died before it could report
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(status || (failed ? 1 : 0))

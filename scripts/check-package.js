'use strict'
// CI check: the package installs into another project. `npm pack`, then
// `npm install <tarball>` in a fresh directory (no dev tools there: the
// install script builds the addon from source with cargo), then a smoke test
// in that project: PeerNoise, PeerSocket and NoisePeer on loopback.
// CARGO_TARGET_DIR is shared with this checkout's build, so only the crate
// itself compiles again. Exits non-zero on any failure; removes what it made.

const { execFileSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')

const root = path.join(__dirname, '..')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mychips-noise-pack-'))
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', ...opts })

const SMOKE = `'use strict'
const assert = require('assert')
const { PeerNoise, PeerSocket, NoisePeer, generateKeypair, peerModule } = require('mychips-noise')
const net = require('net')
const freePort = () => new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) }) })
;(async () => {
  const [pa, pb, ps1, ps2] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const a = generateKeypair(), b = generateKeypair()
  const got = []
  const A = new (peerModule())({ agent: a.agent, keys: a, host: '127.0.0.1', bind: '127.0.0.1', port: pa }, () => {})
  const B = new PeerNoise({ agent: b.agent, keys: b, host: '127.0.0.1', bind: '127.0.0.1', port: pb }, (c, m) => got.push(m))
  await new Promise((resolve, reject) => A.send({ to: { agent: b.agent, host: '127.0.0.1', port: pb }, n: 1 }, resolve, reject))
  const S1 = new PeerSocket({ port: ps1, bind: '127.0.0.1' }, (peer, m) => got.push(m))
  const S2 = new PeerSocket({ port: ps2, bind: '127.0.0.1' }, () => {})
  await new Promise((resolve, reject) => S2.send('127.0.0.1:' + ps1, { n: 2 }, resolve, reject))
  for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10))
  assert.deepStrictEqual(got.map((m) => m.n).sort(), [1, 2])
  assert.strictEqual(typeof NoisePeer, 'function')
  await Promise.all([A.close(), B.close(), S1.close(), S2.close()])
  console.log('the installed package works: PeerNoise, PeerSocket, NoisePeer')
})().catch((err) => { console.error(err); process.exit(1) })
`

try {
  const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop()
  console.log(`packed ${tgz} (${(fs.statSync(path.join(dir, tgz)).size / 1024).toFixed(0)} KiB)`)
  const project = path.join(dir, 'project')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'pack-check', version: '1.0.0', private: true }))
  const env = { ...process.env, CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target') }
  run('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', path.join(dir, tgz)], { cwd: project, env })
  fs.writeFileSync(path.join(project, 'smoke.js'), SMOKE)
  run(process.execPath, ['smoke.js'], { cwd: project, timeout: 60000 })
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

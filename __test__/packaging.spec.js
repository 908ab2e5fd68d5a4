'use strict'
// The package layout napi-rs uses for prebuilt binaries: the main package
// loads its own build when there is one, else the per-platform package
// (npm/<platform>/), so publishing prebuilt binaries needs no redesign.

const assert = require('assert')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawnSync } = require('child_process')
const native = require('../lib/native')

const root = path.join(__dirname, '..')

// A copy of the package's JavaScript (no addon of its own) in a fresh directory.
function bareCopy () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mychips-noise-pkg-'))
  const pkg = path.join(dir, 'pkg')
  fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true })
  fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'))
  return { dir, pkg }
}

const load = (pkg) => spawnSync(process.execPath, ['-e', `const n = require(${JSON.stringify(path.join(pkg, 'lib', 'native.js'))}); console.log(n.errorCodes().length)`], { encoding: 'utf8' })

describe('packaging (napi-rs per-platform layout)', () => {
  const dirs = []
  after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })

  it('has a per-platform package for each napi target, naming the file the loader looks for', () => {
    const { napi } = require('../package.json')
    for (const target of napi.targets) {
      const dir = path.join(root, 'npm', target.replace(/^x86_64-unknown-linux-gnu$/, 'linux-x64-gnu'))
      const p = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
      assert.strictEqual(p.name, native.platformPackage)
      assert.strictEqual(p.main, native.binaryName())
    }
  })

  it('loads the per-platform package when there is no build of its own', () => {
    const { dir, pkg } = bareCopy()
    dirs.push(dir)
    const platform = path.join(pkg, 'node_modules', native.platformPackage)
    fs.mkdirSync(platform, { recursive: true })
    fs.copyFileSync(path.join(root, 'npm', 'linux-x64-gnu', 'package.json'), path.join(platform, 'package.json'))
    fs.copyFileSync(path.join(root, native.binaryName()), path.join(platform, native.binaryName()))
    const r = load(pkg)
    assert.strictEqual(r.status, 0, r.stderr)
    assert.strictEqual(Number(r.stdout.trim()), native.errorCodes().length)
  })

  it('says what is missing when there is neither', () => {
    const { dir, pkg } = bareCopy()
    dirs.push(dir)
    const r = load(pkg)
    assert.notStrictEqual(r.status, 0)
    assert.match(r.stderr, /no native addon for this platform: neither .* \(run `npm install`, which builds it with cargo\) nor the package mychips-noise-linux-x64-gnu/)
  })
})

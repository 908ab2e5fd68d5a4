'use strict'
// The TypeScript declarations: they compile against a use of the API, and
// every error code the addon can report is in the ErrorCode type.

const assert = require('assert')
const fs = require('fs')
const path = require('path')
const { spawnSync } = require('child_process')
const native = require('../lib/native')

const root = path.join(__dirname, '..')
const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')

const union = (name) => {
  const m = dts.match(new RegExp(`export type ${name} =([^;]*?)(?:\\n\\n|$)`, 's'))
  assert.ok(m, `index.d.ts declares ${name}`)
  return [...m[1].matchAll(/'([A-Z_]+)'/g)].map((x) => x[1])
}

describe('TypeScript declarations', () => {
  it('list every error code the addon reports, and no other, in ErrorCode', () => {
    assert.deepStrictEqual(union('ErrorCode'), native.errorCodes())
  })

  it('document every error code in the README', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
    assert.deepStrictEqual(native.errorCodes().filter((c) => !readme.includes(`\`${c}\``)), [])
  })

  it('compile against an application that uses them (tsc --strict)', function () {
    this.timeout(60000)
    const tsc = require.resolve('typescript/bin/tsc')
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2020', '--module', 'node16', '--moduleResolution', 'node16', '--types', 'node', '--skipLibCheck', 'false', path.join(__dirname, 'fixtures', 'types-use.ts')], { cwd: root, encoding: 'utf8' })
    assert.strictEqual(r.status, 0, r.stdout + r.stderr)
  })
})

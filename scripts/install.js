'use strict'
// Builds the native addon from source. Runs on `npm install` and before `npm test`.
// - In a development checkout (@napi-rs/cli present): `napi build`, which lets cargo
//   decide what is stale, so a changed Rust file never leaves an old addon behind.
// - Installed as a dependency (no devDependencies): plain `cargo build --release`,
//   then copy the library to the name lib/native.js loads.
const { execFileSync } = require('child_process')
const { copyFileSync, existsSync } = require('fs')
const { join } = require('path')

const root = join(__dirname, '..')
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' })

const binaryName = require('../lib/binary-name')

let cli = null
try { cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] }) } catch (_) {}

if (cli) {
  run(process.execPath, [join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'),
    'build', '--platform', '--release', '--no-js', '--dts', 'binding.d.ts'])
} else if (existsSync(join(root, binaryName())) && !existsSync(join(root, 'src'))) {
  // A packaged prebuilt and no sources: nothing to do.
} else {
  run('cargo', ['build', '--release', '--lib'])
  const ext = process.platform === 'win32' ? 'dll' : process.platform === 'darwin' ? 'dylib' : 'so'
  const prefix = process.platform === 'win32' ? '' : 'lib'
  // Where cargo put it: CARGO_TARGET_DIR or a cargo config may move target/.
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: root, encoding: 'utf8' }))
  copyFileSync(join(meta.target_directory, 'release', `${prefix}mychips_noise.${ext}`), join(root, binaryName()))
}

'use strict'
// Loads the compiled addon, from the first of:
// 1. mychips-noise.<platform>-<arch>[-<abi>].node next to package.json, which
//    `npm install` builds from source (scripts/install.js);
// 2. the per-platform package napi-rs's layout names for it
//    (mychips-noise-<platform>-<arch>[-<abi>], see npm/), for installs from
//    prebuilt binaries once those are published.
const { join } = require('path')
const { existsSync } = require('fs')

const binaryName = require('./binary-name')

const file = join(__dirname, '..', binaryName())
// mychips-noise.linux-x64-gnu.node -> mychips-noise-linux-x64-gnu
const platformPackage = binaryName().replace(/\.node$/, '').replace('.', '-')

function load () {
  if (existsSync(file)) return require(file)
  try {
    return require(platformPackage)
  } catch (err) {
    if (err && err.code !== 'MODULE_NOT_FOUND') throw err
  }
  throw new Error(`mychips-noise: no native addon for this platform: neither ${file} (run \`npm install\`, which builds it with cargo) nor the package ${platformPackage}`)
}

module.exports = load()
module.exports.binaryName = binaryName
module.exports.platformPackage = platformPackage

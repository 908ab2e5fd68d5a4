'use strict'
// Loads the compiled addon. `npm install` builds it from source (scripts/install.js)
// as mychips-noise.<platform>-<arch>[-<abi>].node next to package.json.
const { join } = require('path')
const { existsSync } = require('fs')

function binaryName () {
  const { platform, arch } = process
  let abi = ''
  if (platform === 'linux') {
    const glibc = process.report && process.report.getReport().header.glibcVersionRuntime
    abi = glibc ? '-gnu' : '-musl'
  } else if (platform === 'win32') {
    abi = '-msvc'
  }
  return `mychips-noise.${platform}-${arch}${abi}.node`
}

const file = join(__dirname, '..', binaryName())
if (!existsSync(file)) {
  throw new Error(`mychips-noise: the native addon ${file} is missing; run \`npm install\` (it builds the addon with cargo)`)
}
module.exports = require(file)
module.exports.binaryName = binaryName

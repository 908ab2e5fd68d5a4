'use strict'
// Loads the compiled addon. `npm install` builds it from source (scripts/install.js)
// as mychips-noise.<platform>-<arch>[-<abi>].node next to package.json.
const { join } = require('path')
const { existsSync } = require('fs')

const binaryName = require('./binary-name')

const file = join(__dirname, '..', binaryName())
if (!existsSync(file)) {
  throw new Error(`mychips-noise: the native addon ${file} is missing; run \`npm install\` (it builds the addon with cargo)`)
}
module.exports = require(file)
module.exports.binaryName = binaryName

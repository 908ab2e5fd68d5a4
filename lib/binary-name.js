'use strict'
// The file name of the compiled addon for this platform, shared by the loader
// (lib/native.js) and the build step (scripts/install.js).
module.exports = function binaryName () {
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

'use strict'
// Which build of the addon the figures are of: its file, when it was built,
// its size and whether it carries debug info (a debug build, or a release
// build kept with symbols for profiling: the name alone does not tell). The
// addon may be rebuilt while the bench runs; the report says so when it was.

const fs = require('fs')
const path = require('path')
const binaryName = require('../lib/binary-name')

const file = path.join(__dirname, '..', binaryName())

// True when the ELF file has a .debug_info section (64-bit little-endian ELF
// only; null when it cannot tell).
function hasDebugInfo (buf) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return null
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  const shstrndx = buf.readUInt16LE(0x3e)
  if (shoff + shnum * shentsize > buf.length || shstrndx >= shnum) return null
  const strtab = Number(buf.readBigUInt64LE(shoff + shstrndx * shentsize + 0x18))
  for (let i = 0; i < shnum; i++) {
    const nameAt = strtab + buf.readUInt32LE(shoff + i * shentsize)
    const end = buf.indexOf(0, nameAt)
    if (buf.toString('latin1', nameAt, end) === '.debug_info') return true
  }
  return false
}

function addonInfo () {
  try {
    const st = fs.statSync(file)
    return { file: path.basename(file), built: st.mtime.toISOString(), bytes: st.size, debug: hasDebugInfo(fs.readFileSync(file)) }
  } catch (err) {
    return { file: path.basename(file), error: err.message }
  }
}

module.exports = { addonInfo }

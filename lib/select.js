'use strict'
// peerModule: the one switch between this package and MyCHIPs' own
// JavaScript peer module. MyCHIPs' lib/peernoise.js (or lib/peercomm.js)
// becomes:
//
//   module.exports = require('mychips-noise').peerModule({ fallback: () => require('./peernoise-js') })
//
// and constructing it gives this package's PeerNoise (or PeerSocket), unless
// the flag says otherwise. The fallback, MyCHIPs' old module, is required
// only when it is chosen.

const { PeerNoise } = require('./peer-noise')
const { PeerSocket } = require('./peer-socket')
const { invalid } = require('./errors')

// MYCHIPS_PEER_NATIVE=0 (or false, no, off) picks the fallback.
function envFlag () {
  const v = process.env.MYCHIPS_PEER_NATIVE
  if (v == null || v === '') return undefined
  return !/^(0|false|no|off)$/i.test(v.trim())
}

/**
 * A constructor with the interface of MyCHIPs' peer module of `kind`
 * ('noise': PeerNoise, 'socket': PeerSocket). Which implementation it builds
 * is decided per construction by, in order: `native` (a boolean, or a
 * function of the config), the config's own `peerNative`, the environment's
 * MYCHIPS_PEER_NATIVE, else native.
 */
function peerModule ({ kind = 'noise', native, fallback } = {}) {
  const Native = { noise: PeerNoise, socket: PeerSocket }[kind]
  if (!Native) throw invalid(`peerModule: kind must be 'noise' or 'socket', not ${kind}`)
  if (fallback != null && typeof fallback !== 'function') throw invalid('peerModule: fallback must be a function that requires the old module')
  const choose = (config) => {
    const flags = [typeof native === 'function' ? native(config) : native, config && config.peerNative, envFlag()]
    return flags.find((f) => f != null) ?? true
  }
  function PeerModule (config, messageCB) {
    if (choose(config)) return new Native(config, messageCB)
    if (!fallback) throw invalid('peerModule: the native module is switched off and there is no fallback')
    const Old = fallback()
    return new Old(config, messageCB)
  }
  PeerModule.native = Native
  return PeerModule
}

module.exports = { peerModule }

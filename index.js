'use strict'
// The public entry.
// - NoisePeer: the peer link itself (lib/noise-peer.js, over the native addon).
// - PeerNoise, PeerSocket: the interfaces of MyCHIPs' socket modules, over
//   NoisePeer (lib/peer-noise.js, lib/peer-socket.js); peerModule selects
//   between them and MyCHIPs' own modules by one flag (lib/select.js).
// - Identities: generateKeypair, keypairFromSeed, keypairFromJwk, agentKey.

const noisePeer = require('./lib/noise-peer')
const { PeerNoise } = require('./lib/peer-noise')
const { PeerSocket } = require('./lib/peer-socket')
const { peerModule } = require('./lib/select')

module.exports = { ...noisePeer, PeerNoise, PeerSocket, peerModule }

// MyCHIPs lib/peercomm.js, replaced: PeerSocket (raw, same interface), or
// MyCHIPs' own module (renamed lib/peercomm-js.js) when the flag says so.
module.exports = require('mychips-noise').peerModule({ kind: 'socket', fallback: () => require('./peercomm-js') })

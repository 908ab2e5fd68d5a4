// MyCHIPs lib/peernoise.js, replaced: the native peer link, or MyCHIPs' own
// JavaScript module (renamed lib/peernoise-js.js) when the flag says so.
module.exports = require('mychips-noise').peerModule({ kind: 'noise', fallback: () => require('./peernoise-js') })

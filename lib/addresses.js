'use strict'
// Addresses as MyCHIPs' socket modules write them.

const os = require('os')

// Where a server that should listen on every interface binds: dual-stack
// '::' where the machine has IPv6 (IPv4 callers then appear as ::ffff:a.b.c.d,
// as they do to MyCHIPs' own modules), else '0.0.0.0'.
function anyAddress () {
  const ifaces = Object.values(os.networkInterfaces()).flat()
  return ifaces.some((i) => i && i.family === 'IPv6') ? '::' : '0.0.0.0'
}

// An IP address in canonical IPv6 text (RFC 5952: lower case, the longest run
// of zeros shortened, an IPv4 address mapped as ::ffff:hhhh:hhhh), the form
// MyCHIPs' PeerNoise gives for `connection.peerAddress()`. The URL parser
// writes IPv6 hosts in exactly that form.
function ipv6Form (ip) {
  const v6 = ip.includes(':') ? ip : `::ffff:${ip}`
  return new URL(`http://[${v6}]/`).hostname.slice(1, -1)
}

// MyCHIPs' peer string for a host and port: host:port, or [ipv6]:port.
function peerString (host, port) {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

// The inverse: { host, port } of a peer string, or null.
function parsePeer (peer) {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(peer) || /^([^:[\]]+):(\d+)$/.exec(peer)
  if (!m) return null
  const port = Number(m[2])
  return port > 0 && port < 65536 ? { host: m[1], port } : null
}

module.exports = { anyAddress, ipv6Form, peerString, parsePeer }

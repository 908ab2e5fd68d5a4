'use strict'
// The key shapes MyCHIPs code hands a peer module, turned into one identity:
// { agent, privateKey (X25519) | null, publicKey (X25519) | null }.
//
// - An Ed25519 JWK pair (MyCHIPs' agent keys): { publicKey: {kty, crv, x},
//   privateKey: {kty, crv, x, d} }. The agent id is x; the X25519 pair is
//   derived in Rust. An X25519 JWK pair is used as it is.
// - noise-protocol's keygen(): { publicKey, secretKey }, X25519.
// - { publicKey, privateKey } of raw bytes: X25519 (32-byte private key), or
//   a libsodium Ed25519 secret key (64 bytes: seed, then public key).
// A pair with no private part means raw mode (no encryption).

const native = require('./native')
const { invalid } = require('./errors')

function bytes (v) {
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (typeof v === 'string') return Buffer.from(v, 'base64url')
  return null
}

const isJwk = (k) => k && typeof k === 'object' && !Buffer.isBuffer(k) && !(k instanceof Uint8Array) && typeof k.kty === 'string'

// `agent`: the configured agent id, if any; `keys`: one of the shapes above.
function identityFrom (agent, keys) {
  keys = keys || {}
  const pub = keys.publicKey
  const priv = keys.privateKey || keys.secretKey
  const call = (fn) => { try { return fn() } catch (err) { throw invalid(err.message.replace(/^ERR_[A-Z_]+: /, '')) } }
  if (isJwk(pub) || isJwk(priv)) {
    const jwk = isJwk(priv) ? priv : pub
    if (jwk.kty !== 'OKP' || !['Ed25519', 'X25519'].includes(jwk.crv)) throw invalid('keys: a JWK must be an OKP Ed25519 or X25519 key')
    const x = (isJwk(pub) && pub.x) || jwk.x
    if (isJwk(priv) && priv.d) {
      const id = call(() => native.keypairFromJwk(jwk.crv, x, priv.d))
      return { agent: agent || id.agent, privateKey: id.privateKey, publicKey: id.publicKey }
    }
    return { agent: agent || x, privateKey: null, publicKey: null }
  }
  const privBytes = priv == null ? null : bytes(priv)
  if (priv != null && !privBytes) throw invalid('keys: the private key must be a Buffer, Uint8Array or base64url text')
  if (privBytes && privBytes.length === 64) { // libsodium Ed25519 secret key
    const id = call(() => native.keypairFromSeed(privBytes))
    return { agent: agent || id.agent, privateKey: id.privateKey, publicKey: id.publicKey }
  }
  if (privBytes && privBytes.length !== 32) throw invalid('keys: an X25519 private key is 32 bytes (an Ed25519 secret key 64)')
  if (!agent && pub == null) throw invalid('an agent id, or keys.publicKey to derive it from, is required')
  return {
    // What MyCHIPs' JavaScript module does: the public key's bytes (a string's UTF-8), base64url.
    agent: agent || Buffer.from(pub).toString('base64url'),
    privateKey: privBytes,
    publicKey: privBytes ? bytes(pub) : null
  }
}

module.exports = { identityFrom, bytes }

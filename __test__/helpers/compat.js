'use strict'
// The MyCHIPs-facing classes behind one shape, so one suite runs against
// each: PeerNoise encrypted, PeerNoise raw, PeerSocket. Loopback only; ports
// come from the OS (a free one is found first, as MyCHIPs' configs name a
// fixed port).
const net = require('net')
const { PeerNoise, PeerSocket, generateKeypair } = require('../..')

const HOST = '127.0.0.1'

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, HOST, () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// A logger that records lines by level (wyclif's shape).
function recordingLog () {
  const lines = []
  const log = {}
  for (const level of ['error', 'warn', 'info', 'verbose', 'debug', 'trace']) {
    log[level] = (...args) => lines.push({ level, text: args.join(' ') })
  }
  log.lines = lines
  return log
}

// One node of `kind`, recording what reaches its messageCB. `opts.config`
// is merged into the module's config; `opts.reply(node, from, message)`
// runs for each message.
async function makeNode (kind, opts = {}) {
  const port = await freePort()
  const log = recordingLog()
  const node = { kind, port, log, got: [], closed: false }
  const onMessage = (from, message) => {
    node.got.push({ from, message })
    if (opts.reply) opts.reply(node, from, message)
  }
  if (kind === 'socket') {
    node.impl = new PeerSocket({ port, bind: HOST, log, ...opts.config }, onMessage)
    node.address = `${HOST}:${port}`
    node.send = (to, message) => new Promise((resolve, reject) => node.impl.send(to.address, message, resolve, reject))
    node.answer = (from, message) => new Promise((resolve, reject) => node.impl.send(from, message, resolve, reject))
    node.sender = (from) => from // the peer string
    node.end = (to) => node.impl.end(to.address)
    node.links = () => node.impl._peer.links().length
  } else {
    const id = generateKeypair()
    const keys = kind === 'raw' ? { publicKey: id.publicKey } : { publicKey: id.publicKey, privateKey: id.privateKey }
    node.agent = id.agent
    node.impl = new PeerNoise({ agent: id.agent, host: HOST, bind: HOST, port, keys, log, ...opts.config }, onMessage)
    node.address = { agent: id.agent, host: HOST, port }
    node.send = (to, message, extra) => new Promise((resolve, reject) => node.impl.send({ ...message, ...extra, to: to.address }, resolve, reject))
    node.answer = (from, message) => new Promise((resolve, reject) => from.send(message, resolve, reject))
    node.sender = (from) => (typeof from === 'string' ? from : from.peerAgent)
    node.end = (to) => node.impl.end(to.address.agent)
    node.links = () => node.impl.connections.size()
  }
  await node.impl.listening
  node.close = async () => {
    if (!node.closed) await node.impl.close()
    node.closed = true
  }
  return node
}

const KINDS = [
  { kind: 'encrypted', title: 'PeerNoise (encrypted)' },
  { kind: 'raw', title: 'PeerNoise (raw: a key pair without its private half)' },
  { kind: 'socket', title: 'PeerSocket' }
]

module.exports = { makeNode, recordingLog, freePort, KINDS, HOST }

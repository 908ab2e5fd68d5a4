'use strict'
// The command line (bin/mychips-noise.js), run as a child process the way an
// operator runs it: keygen, key, listen, ping (KK, IK, NK, refused,
// unreachable, no pong, --json), bench's pass-through, usage errors.
// Loopback only; every child is killed by its pid after each test; every wait is bounded.
const assert = require('assert')
const { spawn } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')
const { NoisePeer, generateKeypair, agentKey, keypairFromJwk, keypairFromSeed } = require('..')
const { waitFor } = require('./helpers/wait')

const BIN = path.join(__dirname, '..', 'bin', 'mychips-noise.js')
const AGENT_ADDRESS = /^listening (\S+@127\.0\.0\.1:\d+)$/m

describe('command line (bin/mychips-noise.js)', function () {
  this.timeout(15000)
  let dir
  const children = new Set()
  const peers = new Set()

  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mychips-noise-cli-')) })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))
  afterEach(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL')
    children.clear()
    await Promise.all([...peers].map((p) => p.close()))
    peers.clear()
  })

  // Start the CLI; `done` resolves with { code, signal, stdout, stderr } once it
  // exits, and the child is killed if it has not exited within `ms`.
  function start (args, { env = {}, ms = 10000 } = {}) {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', ...env }
    })
    children.add(child)
    const run = { child, stdout: '', stderr: '' }
    child.stdout.setEncoding('utf8').on('data', (d) => { run.stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d) => { run.stderr += d })
    run.done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        process.kill(child.pid, 'SIGKILL')
        reject(new Error(`mychips-noise ${args.join(' ')} did not exit within ${ms} ms\nstdout: ${run.stdout}\nstderr: ${run.stderr}`))
      }, ms)
      child.on('error', (err) => { clearTimeout(timer); reject(err) })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal, stdout: run.stdout, stderr: run.stderr })
      })
    })
    return run
  }
  const cli = (args, opts) => start(args, opts).done

  // `listen` as a child: resolves once it printed its address.
  async function listen (args) {
    const run = start(['listen', ...args], { ms: 14000 })
    run.done.catch(() => {}) // judged by the test that ends it
    await waitFor(() => run.stdout.includes('\n') || run.child.exitCode !== null, 'listen to print its address', 5000)
    const first = run.stdout.split('\n')[0]
    // Plain: "listening AGENT@HOST:PORT"; --json: {"type":"listening","address":...}.
    const m = first.startsWith('{') ? [null, JSON.parse(first).address] : AGENT_ADDRESS.exec(first)
    assert.ok(m && m[1], `listen printed no address: ${run.stdout} ${run.stderr}`)
    run.address = m[1]
    return run
  }

  let keyCount = 0
  async function keyFile () {
    const file = path.join(dir, `key${++keyCount}.json`)
    const r = await cli(['keygen', '--out', file])
    assert.strictEqual(r.code, 0, r.stderr)
    const pair = JSON.parse(fs.readFileSync(file, 'utf8'))
    return { file, agent: pair.publicKey.x }
  }

  // A NoisePeer in this process; `pong` answers pings on the link they came on.
  async function node ({ partner, pong = true, referee = false } = {}) {
    const id = generateKeypair()
    const peer = new NoisePeer({
      agent: id.agent, keys: id, host: '127.0.0.1', referee,
      peerKey: (a) => (a === partner ? agentKey(a) : null)
    })
    peers.add(peer)
    const events = []
    peer.onEvent((e) => events.push(e))
    if (pong) peer.onMessage((from, m) => { if ('ping' in m) peer.send({ agent: from.agent || undefined, link: from.link }, { pong: m.ping }).catch(() => {}) })
    const { port } = await peer.listen()
    return { peer, events, agent: id.agent, key: id.publicKey, address: `${id.agent}@127.0.0.1:${port}` }
  }

  it('keygen writes a MyCHIPs Ed25519 JWK pair, mode 0600, prints its agent id, and will not overwrite it', async () => {
    const file = path.join(dir, 'fresh.json')
    const r = await cli(['keygen', '--out', file])
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600)
    const pair = JSON.parse(fs.readFileSync(file, 'utf8'))
    assert.deepStrictEqual(Object.keys(pair).sort(), ['privateKey', 'publicKey'])
    assert.deepStrictEqual(Object.keys(pair.publicKey).sort(), ['crv', 'kty', 'x'])
    assert.deepStrictEqual(Object.keys(pair.privateKey).sort(), ['crv', 'd', 'kty', 'x'])
    assert.strictEqual(pair.publicKey.kty, 'OKP')
    assert.strictEqual(pair.publicKey.crv, 'Ed25519')
    assert.strictEqual(pair.privateKey.x, pair.publicKey.x)
    assert.strictEqual(Buffer.from(pair.privateKey.d, 'base64url').length, 32)
    const id = keypairFromJwk(pair)
    assert.strictEqual(id.agent, pair.publicKey.x)
    assert.match(r.stdout, new RegExp(`^agent +${id.agent}$`, 'm'))

    const again = await cli(['keygen', '--out', file])
    assert.strictEqual(again.code, 2)
    assert.match(again.stderr, /exists; --force overwrites it/)
    assert.strictEqual(JSON.parse(fs.readFileSync(file, 'utf8')).publicKey.x, id.agent, 'the file is unchanged')

    const forced = await cli(['keygen', '--out', file, '--force', '--json'])
    assert.strictEqual(forced.code, 0, forced.stderr)
    const out = JSON.parse(forced.stdout)
    assert.notStrictEqual(out.agent, id.agent)
    assert.strictEqual(JSON.parse(fs.readFileSync(file, 'utf8')).publicKey.x, out.agent)
    assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600)
  })

  it('key prints the agent id and X25519 key of a JWK pair and of a raw seed', async () => {
    const { file, agent } = await keyFile()
    const x = agentKey(agent)
    const r = await cli(['key', file])
    assert.strictEqual(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^agent +${agent}$`, 'm'))
    assert.match(r.stdout, new RegExp(`^x25519 hex +${x.toString('hex')}$`, 'm'))
    assert.match(r.stdout, new RegExp(`^x25519 b64u +${x.toString('base64url')}$`, 'm'))

    const seed = Buffer.alloc(32, 9)
    const seedFile = path.join(dir, 'seed.hex')
    fs.writeFileSync(seedFile, seed.toString('hex') + '\n')
    const j = await cli(['key', seedFile, '--json'])
    assert.strictEqual(j.code, 0, j.stderr)
    const info = JSON.parse(j.stdout)
    const id = keypairFromSeed(seed)
    assert.strictEqual(info.agent, id.agent)
    assert.strictEqual(info.x25519.hex, id.publicKey.toString('hex'))
    assert.strictEqual(info.private, true)
  })

  it('key refuses a file that holds no key: exit 2 and a one-line reason', async () => {
    const files = {
      'junk.txt': 'hello world\n',
      'empty.json': '{"a": 1}',
      'broken.json': '{"publicKey": ',
      'ec.json': JSON.stringify({ publicKey: { kty: 'EC', crv: 'P-256', x: 'AA' }, privateKey: { kty: 'EC', crv: 'P-256', x: 'AA', d: 'AA' } })
    }
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
    for (const name of [...Object.keys(files), 'missing.json']) {
      const r = await cli(['key', path.join(dir, name)])
      assert.strictEqual(r.code, 2, `${name}: ${r.stdout} ${r.stderr}`)
      assert.strictEqual(r.stdout, '')
      assert.strictEqual(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.match(r.stderr, new RegExp(`^mychips-noise key: .*${name.replace('.', '\\.')}`))
    }
  })

  it('ping opens a KK link to a node and times its pongs', async () => {
    const me = await keyFile()
    const n = await node({ partner: me.agent })
    const r = await cli(['ping', '--key', me.file, '--count', '3', '--interval', '10', n.address])
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^ {2}pattern +KK$/m)
    assert.match(r.stdout, new RegExp(`^ {2}key +${n.key.toString('hex')} `, 'm'))
    assert.match(r.stdout, /^ {2}peer +native/m)
    assert.match(r.stdout, /^ {2}handshake +[\d.]+ ms$/m)
    for (const seq of [1, 2, 3]) assert.match(r.stdout, new RegExp(`^pong ${seq}: [\\d.]+ ms$`, 'm'))
    assert.match(r.stdout, /^3 sent, 3 received, 0% lost, round trip min\/avg\/max [\d.]+\/[\d.]+\/[\d.]+ ms$/m)
    assert.strictEqual(r.stderr, '')
  })

  it('ping --json prints one JSON object per line: the handshake, each round trip, a summary', async () => {
    const me = await keyFile()
    const n = await node({ partner: me.agent })
    const r = await cli(['ping', '--key', me.file, '--count', '2', '--interval', '0', '--json', n.address])
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
    assert.deepStrictEqual(lines.map((l) => l.type), ['handshake', 'pong', 'pong', 'summary'])
    const [hs, p1, p2, sum] = lines
    assert.strictEqual(hs.pattern, 'KK')
    assert.strictEqual(hs.native, true)
    assert.strictEqual(hs.agent, n.agent)
    assert.strictEqual(hs.key, n.key.toString('hex'))
    assert.ok(hs.ms > 0)
    assert.deepStrictEqual([p1.seq, p2.seq], [1, 2])
    assert.ok(p1.ms > 0 && p2.ms > 0)
    assert.strictEqual(sum.sent, 2)
    assert.strictEqual(sum.received, 2)
    assert.strictEqual(sum.lost, 0)
    assert.strictEqual(sum.ok, true)
    assert.ok(sum.min <= sum.avg && sum.avg <= sum.max)
  })

  it('ping exits 3 when the link opens but no pong comes back', async () => {
    const me = await keyFile()
    const n = await node({ partner: me.agent, pong: false })
    const r = await cli(['ping', '--key', me.file, '--count', '1', '--timeout', '300', '--json', n.address])
    assert.strictEqual(r.code, 3, r.stdout + r.stderr)
    const types = r.stdout.trim().split('\n').map((l) => JSON.parse(l).type)
    assert.deepStrictEqual(types, ['handshake', 'timeout', 'summary', 'error'])
    assert.match(r.stderr, /^ping failed: ERR_PING_TIMEOUT: no pong within 300 ms$/m)
  })

  it('ping is refused by a node that does not take it as a partner', async () => {
    const n = await node({ partner: null })
    const me = await keyFile()
    const r = await cli(['ping', '--key', me.file, '--count', '1', n.address])
    assert.strictEqual(r.code, 1, r.stdout + r.stderr)
    assert.strictEqual(r.stderr.trim().split('\n').length, 1)
    assert.match(r.stderr, /^ping failed: ERR_HANDSHAKE_REJECTED: /)
    await waitFor(() => n.events.some((e) => e.type === 'refused'), 'the refusal event', 3000)
    assert.strictEqual(n.events.find((e) => e.type === 'refused').reason, 'ERR_UNKNOWN_PEER')
    assert.strictEqual(n.events.find((e) => e.type === 'refused').agent, me.agent)
  })

  it('ping reports an unreachable node (nothing listens on the port)', async () => {
    const port = await new Promise((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
    })
    const r = await cli(['ping', '--count', '1', '--json', `${generateKeypair().agent}@127.0.0.1:${port}`])
    assert.strictEqual(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stderr, /^ping failed: ERR_CONNECT_FAILED: /)
    const line = JSON.parse(r.stdout.trim())
    assert.strictEqual(line.type, 'error')
    assert.strictEqual(line.code, 'ERR_CONNECT_FAILED')
    assert.strictEqual(line.exit, 1)
  })

  it('listen and ping end to end: a partner (KK), stats on SIGUSR1, a clean close on SIGTERM', async () => {
    const server = await keyFile()
    const client = await keyFile()
    const l = await listen(['--key', server.file, '--port', '0', `--partner=${client.agent}`])
    assert.ok(l.address.startsWith(`${server.agent}@127.0.0.1:`))

    const r = await cli(['ping', '--key', client.file, '--count', '2', '--interval', '10', l.address])
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^ {2}pattern +KK$/m)
    assert.match(r.stdout, /^2 sent, 2 received, 0% lost/m)
    await waitFor(() => / close +#\d+ KK in +\S+ \S+ PEER_CLOSED clean, 2 written$/m.test(l.stdout), 'the link to close in listen\'s output', 3000)
    assert.match(l.stdout, new RegExp(` open +#\\d+ KK in +${client.agent} 127\\.0\\.0\\.1:\\d+$`, 'm'))
    assert.match(l.stdout, new RegExp(` message +#\\d+ KK in +${client.agent} \\{"ping":1\\} → pong$`, 'm'))
    assert.match(l.stdout, / message +#\d+ KK in +\S+ \{"ping":2\} → pong$/m)

    // Someone else: refused, with the reason code in listen's output.
    const stranger = await cli(['ping', '--count', '1', l.address])
    assert.strictEqual(stranger.code, 1)
    await waitFor(() => / refused .* ERR_UNKNOWN_PEER: /.test(l.stdout), 'the refusal in listen\'s output', 3000)

    // A link held open from here (as the client), to be listed with the stats.
    const id = keypairFromJwk(JSON.parse(fs.readFileSync(client.file, 'utf8')))
    const held = new NoisePeer({ agent: id.agent, keys: id, host: '127.0.0.1' })
    peers.add(held)
    const [host, port] = l.address.split('@')[1].split(':')
    await held.connect({ agent: server.agent, host, port: Number(port) })
    await waitFor(() => (l.stdout.match(/ open +#\d+ KK in /g) || []).length === 2, 'the held link\'s open in listen\'s output', 3000)

    process.kill(l.child.pid, 'SIGUSR1')
    await waitFor(() => /^stats .*messages 2, pongs 2$/m.test(l.stdout), 'stats after SIGUSR1', 3000)
    assert.match(l.stdout, new RegExp(`^stats +up [\\d.]+ s; 1 link open;`, 'm'))
    assert.match(l.stdout, new RegExp(`^link +#\\d+ KK in +${client.agent} 127\\.0\\.0\\.1:\\d+ native$`, 'm'))
    assert.match(l.stdout, /^stats .*refused 1, errors 0 \(ERR_UNKNOWN_PEER 1\)/m)
    assert.match(l.stdout, /^store +.*lookups \d+/m) // peer.stats(), as the addon gives it

    process.kill(l.child.pid, 'SIGTERM')
    const end = await l.done
    assert.strictEqual(end.code, 0, end.stderr)
    assert.match(end.stdout, /SIGTERM: closing\n.* close +#\d+ KK in .* LOCAL_CLOSE clean, 0 written\n.* closed\n$/)
  })

  it('a referee query (NK) to listen --referee, anonymous, answered on its link', async () => {
    const l = await listen(['--referee', '--json'])
    const r = await cli(['ping', '--referee', '--count', '2', '--interval', '0', l.address])
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^ {2}pattern +NK$/m)
    assert.match(r.stdout, /the key dialled/)
    assert.match(r.stdout, /^2 sent, 2 received/m)
    await waitFor(() => l.stdout.split('\n').filter((s) => s.includes('"type":"message"')).length === 2, 'two messages in listen\'s output', 3000)
    const lines = l.stdout.trim().split('\n').map((s) => JSON.parse(s))
    assert.strictEqual(lines[0].type, 'listening')
    assert.strictEqual(lines[0].referee, true)
    const messages = lines.filter((x) => x.type === 'message')
    assert.deepStrictEqual(messages.map((m) => [m.pattern, m.agent, m.message.ping]), [['NK', null, 1], ['NK', null, 2]])

    // A node that is no referee says so.
    const n = await node()
    const refused = await cli(['ping', '--referee', '--count', '1', n.address])
    assert.strictEqual(refused.code, 1)
    assert.match(refused.stderr, /^ping failed: ERR_REFEREE_DISABLED: /)
  })

  it('a first contact (IK) with a ticket to listen --accept-ticket, which takes the ticket once', async () => {
    const l = await listen(['--accept-ticket', 'tok-1'])
    const ticketFile = path.join(dir, 'ticket.json')
    fs.writeFileSync(ticketFile, JSON.stringify({ token: 'tok-1', url: 'example' }))
    const r = await cli(['ping', '--ticket', ticketFile, '--count', '1', l.address])
    assert.strictEqual(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^ {2}pattern +IK$/m)
    assert.match(r.stdout, /^1 sent, 1 received/m)
    const again = await cli(['ping', '--ticket', '{"token":"tok-1"}', '--count', '1', l.address])
    assert.strictEqual(again.code, 1)
    assert.match(again.stderr, /^ping failed: ERR_TICKET_REFUSED: /)
    await waitFor(() => / refused .* ERR_TICKET_REFUSED: /.test(l.stdout), 'the refusal in listen\'s output', 3000)
  })

  it('usage errors exit 2 with a reason', async () => {
    const agent = generateKeypair().agent
    const cases = [
      [['ping'], /name the node/],
      [['ping', 'nobody@127.0.0.1:1'], /is not an agent id/],
      [['ping', `${agent}@127.0.0.1`], /AGENT@HOST:PORT/],
      [['ping', '--count', '-1', `${agent}@127.0.0.1:1`], /--count must be an integer/],
      [['ping', '--ticket', '{}', '--referee', `${agent}@127.0.0.1:1`], /mutually exclusive/],
      [['ping', '--ticket', path.join(dir, 'no-such-ticket'), `${agent}@127.0.0.1:1`], /--ticket is neither JSON text nor a readable file/],
      [['listen', '--partner', 'nobody'], /is not an agent id/],
      [['listen', '--key', path.join(dir, 'missing.json')], /cannot read key file/],
      [['ping', '--bogus', `${agent}@127.0.0.1:1`], /Unknown argument: bogus/],
      [['keygen'], /Missing required argument: out/],
      [[], /name a command/]
    ]
    for (const [args, reason] of cases) {
      const r = await cli(args)
      assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stdout} ${r.stderr}`)
      assert.match(r.stderr, reason, args.join(' '))
    }
  })

  it('bench runs node --expose-gc bench/run.js with its arguments, and exits with its code', async () => {
    // A stand-in script, so the test does not run the benchmark itself.
    const script = path.join(dir, 'fake-bench.js')
    fs.writeFileSync(script, 'console.log(JSON.stringify({ args: process.argv.slice(2), gc: typeof global.gc })); process.exit(7)\n')
    const r = await cli(['bench', '--quick', '--only', 'rtt', '--json'], { env: { MYCHIPS_NOISE_BENCH_SCRIPT: script } })
    assert.strictEqual(r.code, 7, r.stderr)
    assert.deepStrictEqual(JSON.parse(r.stdout), { args: ['--quick', '--only', 'rtt', '--json'], gc: 'function' })
  })
})

'use strict'
// Replay sweep (issue 11, "prove it under attack"): a relay records a whole
// session between two native nodes — a first contact by ticket (IK), messages
// both ways, a close, then a reconnection by key (N + KK), messages both ways
// again — and an attacker replays what it recorded: every handshake message
// and every transport frame alone (the down-stream ones too), and the
// up-stream of each connection in sequence (every prefix of it, up to the
// whole), both at once and paced as a real initiator would (message 1, the
// node's answer, then the rest). Each replay goes on a fresh connection:
//   - to the same responder, which remembers the newest handshake timestamp
//     it accepted from that key (docs/PROTOCOL.md §5);
//   - to the responder restarted (a new NoisePeer, same keys, same port)
//     before every replay, so that each one meets an empty replay table: its
//     tickets still spent (they live in the database in MyCHIPs), and again
//     with a ticket store that takes any ticket (the worst case: only §5a's
//     key confirmation is left).
// For each replay the outcome the protocol implies is predicted (below, in
// expected()), and the test asserts it exactly: the node's event (type and
// reason code) for the attacker's connection, what the attacker received (at
// most one A, which it cannot read), no `open` event for it, nothing
// delivered, and, whenever the node accepted a replayed message 1, that a
// message the node then sends to the partner reaches the partner itself
// (§5a: a replayed message 1 never becomes a route). Each genuine message is
// delivered exactly once. Every loop is bounded in count, every wait in time.
const assert = require('assert')
const { generateKeypair } = require('..')
const { listeningPeer } = require('./helpers/fixture')
const { Relay } = require('./helpers/wire-tap')
const { rawClient, parseFrames, prefix } = require('./helpers/hostile')
const { waitFor, sleep } = require('./helpers/wait')

const HOST = '127.0.0.1'
const HS_TIMEOUT = 600 // the responder's handshakeTimeout: bounds a replay it accepted
const LOOKUP_MS = 20 // how long the responder's key and ticket lookups take, as from a database
const MAX_FRAME = 1024 // the responder's maxFrame: a 1.5 KB message travels as F + T
const PACE_MS = 400 // paced replays: how long the attacker waits for the node's answer to message 1

function figure (what, value) {
  console.log(`      figure: ${what}: ${value}`)
}

const tally = (list) => list.reduce((m, k) => { m[k] = (m[k] || 0) + 1; return m }, {})
const wire = (f) => Buffer.concat([prefix(f.length), f.body]) // a recorded frame, as bytes again
const REFUSALS = ['ERR_REPLAY', 'ERR_TICKET_REFUSED', 'ERR_KEY_MISMATCH', 'ERR_UNKNOWN_PEER']

describe('replay sweep: a recorded IK + KK session, replayed frame by frame and in sequence, to the live and to a restarted responder', function () {
  this.timeout(60000)

  const known = new Map() // agent -> X25519 key: every node's partners
  const tickets = new Set() // the one-time tickets (in MyCHIPs, a table in the database)
  let A // the initiator, and the partner the responder must keep reaching
  let B // the responder, live
  let bId // the responder's identity (a restart keeps it)
  let bPort // and its port
  let tap
  let rec // the recording: { up: [frames of conn 0, conn 1], down: [...] }
  const sent = { toB: [], toA: [] } // genuine messages, in order
  const results = []
  let probes = 0

  async function node (id, opts = {}, { ticketsForgotten = false } = {}) {
    known.set(id.agent, id.publicKey)
    return listeningPeer(id, {
      keys: id,
      host: HOST,
      peerKey: async (a) => { await sleep(LOOKUP_MS); return known.get(a) || null },
      checkTicket: async (t) => { await sleep(LOOKUP_MS); return ticketsForgotten ? true : tickets.delete(t) },
      eventRate: 1000000,
      ...opts
    })
  }

  const responderOpts = (port = 0) => ({ port, handshakeTimeout: HS_TIMEOUT, maxFrame: MAX_FRAME })

  before(async function () {
    A = await node(generateKeypair(), { maxFrame: MAX_FRAME }) // so its replies travel as F + T too
    // The partner is answered on the link it used (in both directions of each link).
    bId = generateKeypair()
    B = await node(bId, responderOpts())
    bPort = B.addr.port
    tap = new Relay(bPort, HOST)
    await tap.listen()
    const via = { ...B.addr, port: tap.port }
    const big = 'x'.repeat(1500)
    const conversation = async (n, ticket) => {
      const mine = [{ a: n }, { a: n + 1, big }]
      for (const m of mine) await A.send(via, m, ticket ? { ticket } : {})
      sent.toB.push(...mine)
      await waitFor(() => B.received.length === sent.toB.length, 'the messages to B', 5000)
      await waitFor(() => B.events.some((e) => e.type === 'open' && e.link === B.received[B.received.length - 1].from.link), 'B\'s open event', 5000)
      const back = [{ b: n }, { b: n + 1, big }]
      for (const m of back) await B.send({ agent: A.id.agent }, m)
      sent.toA.push(...back)
      await waitFor(() => A.received.length === sent.toA.length, 'the replies to A', 5000)
      A.end(B.id.agent)
      await waitFor(() => A.links().length === 0 && B.links().length === 0, 'the link to close', 5000)
    }
    tickets.add('tk-first-contact')
    await conversation(1, 'tk-first-contact') // IK
    await conversation(3) // N + KK
    assert.strictEqual(tap.conns.length, 2, 'two connections went through the relay')
    rec = { up: [0, 1].map((i) => tap.frames(i, 'up')), down: [0, 1].map((i) => tap.frames(i, 'down')) }
  })

  after(async function () {
    if (results.length) {
      const accepted = results.filter((r) => r.expect.accepted)
      const texts = [...B.received, ...A.received].map((g) => JSON.stringify(g.message))
      figure('replay sweep', `${results.length} replays (${results.reduce((n, r) => n + r.frames, 0)} frames) to ${JSON.stringify(tally(results.map((r) => r.target)))}; ` +
        `the node's events ${JSON.stringify(tally(results.map((r) => `${r.type}:${r.reason}`)))}; attacker's connections closed ${results.filter((r) => r.closed).length}; ` +
        `replayed message 1 taken ${accepted.length} (each closed unconfirmed: ${JSON.stringify(tally(accepted.map((r) => r.reason)))}); ` +
        `frames sent to the replayer ${JSON.stringify(tally(results.flatMap((r) => r.letters)))}; open events for it ${results.filter((r) => r.opened).length}; ` +
        `messages delivered twice ${texts.length - new Set(texts).size}; sends to the partner that reached it ${A.received.filter((g) => g.message.probe !== undefined).length} of ${probes}`)
    }
    await Promise.all([A && A.close(), B && !B.closed && B.close(), tap && tap.close()])
  })

  // The responder restarted: a new NoisePeer with its keys, on its port (on
  // another if something took that one meanwhile: the address does not
  // matter to the attacker, who replays to wherever the node listens).
  let movedPorts = 0
  async function restart (how) {
    try {
      return await node(bId, responderOpts(bPort), how)
    } catch (e) {
      movedPorts++
      return node(bId, responderOpts(0), how)
    }
  }

  // --- the replays ----------------------------------------------------------------

  // Every replay, in a fixed order: [name, frames, paced]. A paced replay
  // writes message 1 (I, or N + K), waits for the node's answer, then the rest.
  function replays () {
    const list = []
    const names = [['IK', 0], ['KK', 1]]
    for (const [p, i] of names) rec.up[i].forEach((f, j) => list.push([`${p} up frame ${j} (${f.letter}) alone`, [f], false]))
    for (const [p, i] of names) rec.down[i].forEach((f, j) => list.push([`${p} down frame ${j} (${f.letter}) alone`, [f], false]))
    for (const [p, i] of names) {
      const up = rec.up[i]
      for (let k = 2; k <= up.length; k++) list.push([`${p} up frames 0..${k - 1} at once${k === up.length ? ' (the whole connection)' : ''}`, up.slice(0, k), false])
      const hello = p === 'IK' ? 1 : 2
      for (let k = hello + 1; k <= up.length; k++) list.push([`${p} up frames 0..${k - 1} paced${k === up.length ? ' (the whole connection)' : ''}`, up.slice(0, k), true])
    }
    return list
  }

  // What the protocol implies for one replay. `target.fresh`: a restarted
  // node (its replay table empty, the captured timestamps newer than its start
  // less a minute, docs/NATIVE.md); `target.ticketsForgotten`: its ticket store
  // takes the spent ticket again. Returns { type, reason, reply (the A the
  // node sends, if any), accepted (message 1 taken: a link waits, unconfirmed) }.
  function expected (target, frames, paced) {
    const letters = frames.map((f) => f.letter).join('')
    const err = (reason, more = {}) => ({ type: REFUSALS.includes(reason) ? 'refused' : 'error', reason, reply: false, accepted: false, ...more })
    // A frame longer than the responder takes (none here: both nodes fragment to 1 KiB).
    if (frames[0].length > MAX_FRAME) return err('ERR_FRAME_TOO_LARGE')
    // Not a message 1, or a K without its N: out of place on a fresh connection.
    if (!['I', 'N'].includes(letters[0]) || letters === 'K') return err('ERR_UNEXPECTED_LETTER')
    // An N alone is held until its K, which never comes.
    if (letters === 'N') return err('ERR_HANDSHAKE_TIMEOUT')
    const hello = letters[0] === 'I' ? 1 : 2
    // The live node refuses a timestamp not newer than the newest it took
    // from that key: I at once, before any lookup; K once it has the key.
    // Frames after K that arrive with it come while the key is looked up: out
    // of place. (Paced, the node has refused before they are sent.)
    const rest = letters.length > hello
    if (!target.fresh) return rest && hello === 2 && !paced ? err('ERR_UNEXPECTED_LETTER') : err('ERR_REPLAY')
    // A restarted node: frames sent together with message 1 arrive while it
    // looks the key or the ticket up: out of place.
    if (rest && !paced) return err('ERR_UNEXPECTED_LETTER')
    // An I with a spent ticket: refused, and a native caller is told so in an A.
    if (hello === 1 && !target.ticketsForgotten) return err('ERR_TICKET_REFUSED', { reply: true })
    // Message 1 taken: an A goes out and the link waits, unconfirmed, for a
    // transport frame that only the keys' holder can make (§5a). The recorded
    // C was sealed for another session: it fails to decrypt. Without it the
    // handshake timer closes the link.
    return err(rest ? 'ERR_DECRYPT' : 'ERR_HANDSHAKE_TIMEOUT', { reply: true, accepted: true })
  }

  // A message from the target to the partner reaches the partner itself,
  // never the attacker's connection (bounded).
  async function probe (target) {
    const n = ++probes
    await target.send({ agent: A.id.agent, host: HOST, port: A.addr.port }, { probe: n })
    await waitFor(() => A.received.some((g) => g.message.probe === n), `probe ${n} at the partner`, 5000)
    return n
  }

  // One replay on a fresh connection to `target`; returns what happened.
  async function replay (target, name, frames, paced) {
    const expect = expected(target, frames, paced)
    const mark = target.events.length
    const c = await rawClient(target.addr.port, { ms: HS_TIMEOUT + 3000 })
    const hello = frames[0].letter === 'I' ? 1 : frames[0].letter === 'N' && frames[1] && frames[1].letter === 'K' ? 2 : frames.length
    c.sock.write(Buffer.concat((paced ? frames.slice(0, hello) : frames).map(wire)))
    let probed = null
    if (expect.accepted || paced) {
      // Wait for the node's answer to message 1 (an A, or the close).
      const end = Date.now() + PACE_MS
      let data = Buffer.alloc(0)
      const onData = (d) => { data = Buffer.concat([data, d]) }
      c.sock.on('data', onData)
      while (!parseFrames(data).frames.length && !c.sock.destroyed && !c.sock.readableEnded && Date.now() < end) await sleep(5)
      c.sock.off('data', onData)
      // While the replayed handshake waits, unconfirmed, the node sends to
      // the partner. (Paced, the rest of the recording goes first, so that
      // it meets the link before the handshake timer does.)
      if (expect.accepted && !paced) probed = await probe(target)
      if (paced && !c.sock.destroyed && !c.sock.readableEnded) c.sock.write(Buffer.concat(frames.slice(hello).map(wire)))
      if (expect.accepted && paced) probed = await probe(target)
    }
    const seen = await c.closed
    await waitFor(() => target.events.slice(mark).some((e) => e.port === c.localPort && e.type !== 'open'), `the event for ${name}`, 3000).catch(() => {})
    const evs = target.events.slice(mark).filter((e) => e.port === c.localPort)
    const ev = evs.find((e) => e.type !== 'open')
    const r = {
      target: target.label,
      name,
      frames: frames.length,
      closed: seen.closed,
      ms: seen.ms,
      type: ev ? ev.type : 'none',
      reason: ev ? ev.reason : 'NO_EVENT',
      events: evs.filter((e) => e.type !== 'open').length,
      opened: evs.some((e) => e.type === 'open'),
      letters: parseFrames(seen.data).frames.map((f) => f.letter),
      probed,
      expect
    }
    results.push(r)
    return r
  }

  // Compares what happened with what was expected, for a list of results.
  function check (list) {
    const wrong = list.filter((r) => !r.closed || r.opened || r.events !== 1 || r.type !== r.expect.type || r.reason !== r.expect.reason ||
      JSON.stringify(r.letters) !== JSON.stringify(r.expect.reply ? ['A'] : []) ||
      (r.reason === 'ERR_HANDSHAKE_TIMEOUT' && r.ms < HS_TIMEOUT - 50))
    assert.deepStrictEqual(wrong.map((r) => ({ target: r.target, name: r.name, got: { type: r.type, reason: r.reason, letters: r.letters, opened: r.opened, events: r.events, closed: r.closed, ms: r.ms }, expect: r.expect })), [])
    const codes = (l) => Object.keys(tally(l)).sort()
    assert.deepStrictEqual(codes(list.map((r) => r.reason)), codes(list.map((r) => r.expect.reason)), 'the codes reported are the codes expected')
  }

  // Each genuine message delivered exactly once, in order, and nothing else.
  function assertDeliveredOnce () {
    assert.deepStrictEqual(B.received.map((g) => g.message), sent.toB, 'the responder saw each genuine message once')
    assert.deepStrictEqual(A.received.map((g) => g.message).filter((m) => m.probe === undefined), sent.toA, 'the initiator saw each genuine reply once')
    assert.deepStrictEqual(A.received.map((g) => g.message.probe).filter((p) => p !== undefined), [...Array(probes).keys()].map((i) => i + 1), 'each send to the partner reached it once')
  }

  // --- the tests --------------------------------------------------------------------

  it('records a whole session: IK by ticket then N + KK, messages both ways on both links, each delivered once', function () {
    const letters = (frames) => frames.map((f) => f.letter).join(' ')
    assert.deepStrictEqual([letters(rec.up[0]), letters(rec.down[0])], ['I C T F T', 'A T F T'], 'the IK link: I, C, a message, a message in F + T; back A and the same')
    assert.deepStrictEqual([letters(rec.up[1]), letters(rec.down[1])], ['N K C T F T', 'A T F T'], 'the KK link')
    assert.deepStrictEqual(B.received.map((g) => g.from.pattern), ['IK', 'IK', 'KK', 'KK'])
    assertDeliveredOnce()
  })

  it('replays each frame alone and every prefix of each up-stream to the live responder: each refused or closed, nothing opened, delivered or routed', async function () {
    B.label = 'live'
    const t0 = Date.now()
    for (const [name, frames, paced] of replays()) await replay(B, name, frames, paced)
    const mine = results.filter((r) => r.target === 'live')
    // After the replays, a message to the partner reaches the partner.
    await probe(B)
    figure('replays to the live responder', `${mine.length} in ${Date.now() - t0} ms: ${JSON.stringify(tally(mine.map((r) => `${r.type}:${r.reason}`)))}`)
    check(mine)
    assert.ok(mine.some((r) => r.reason === 'ERR_REPLAY'), 'the replay table refused the captured message 1s')
    assertDeliveredOnce()
  })

  for (const ticketsForgotten of [false, true]) {
    const label = ticketsForgotten ? 'restarted, tickets forgotten' : 'restarted'
    it(`replays each of them to the responder restarted before every replay${ticketsForgotten ? ', its ticket store taking the spent ticket again' : ' (its tickets still spent)'}: no replayed handshake opens or becomes a route`, async function () {
      if (B && !B.closed) { await B.close(); B.closed = true }
      const t0 = Date.now()
      let restarts = 0
      for (const [name, frames, paced] of replays()) {
        // The same keys on the same port, with an empty replay table.
        const fresh = await restart({ ticketsForgotten })
        restarts++
        Object.assign(fresh, { label, fresh: true, ticketsForgotten })
        try {
          await replay(fresh, name, frames, paced)
          assert.deepStrictEqual(fresh.received, [], `${name}: the restarted node delivered nothing`)
        } finally {
          await fresh.close()
        }
      }
      const mine = results.filter((r) => r.target === label)
      figure(`replays to the responder ${label}`, `${mine.length} (${restarts} restarts${movedPorts ? `, ${movedPorts} on another port` : ''}) in ${Date.now() - t0} ms: ${JSON.stringify(tally(mine.map((r) => `${r.type}:${r.reason}`)))}; ` +
        `message 1 accepted ${mine.filter((r) => r.expect.accepted).length}, each then closed unconfirmed, its partner reached directly (${mine.filter((r) => r.probed).length} sends)`)
      check(mine)
      assert.ok(mine.filter((r) => r.probed).length === mine.filter((r) => r.expect.accepted).length)
      assertDeliveredOnce()
    })
  }

  it('replays one captured message 1 on 8 connections at once to a restarted responder: exactly one is taken (and closes unconfirmed), the others are refused as replays', async function () {
    if (B && !B.closed) { await B.close(); B.closed = true }
    const label = 'restarted, 8 at once'
    for (const [what, frames] of [['IK message 1 (I)', rec.up[0].slice(0, 1)], ['KK message 1 (N + K)', rec.up[1].slice(0, 2)]]) {
      const fresh = await restart({ ticketsForgotten: true })
      Object.assign(fresh, { label, fresh: true, ticketsForgotten: true })
      try {
        const mark = fresh.events.length
        const conns = await Promise.all(Array.from({ length: 8 }, () => rawClient(fresh.addr.port, { ms: HS_TIMEOUT + 3000 })))
        for (const c of conns) c.sock.write(Buffer.concat(frames.map(wire)))
        // While one of them waits, unconfirmed, a send to the partner reaches the partner.
        await waitFor(() => fresh.events.slice(mark).filter((e) => e.reason === 'ERR_REPLAY').length === 7, 'seven refusals', 3000)
        const n = await probe(fresh)
        const seen = await Promise.all(conns.map((c) => c.closed))
        await waitFor(() => fresh.events.slice(mark).filter((e) => e.type !== 'open').length >= 8, 'an event for each', 3000)
        const outcome = conns.map((c, i) => {
          const evs = fresh.events.slice(mark).filter((e) => e.port === c.localPort)
          const ev = evs.find((e) => e.type !== 'open')
          const r = {
            target: label, name: `${what}, connection ${i}`, frames: frames.length, closed: seen[i].closed, ms: seen[i].ms,
            type: ev ? ev.type : 'none', reason: ev ? ev.reason : 'NO_EVENT', events: evs.filter((e) => e.type !== 'open').length,
            opened: evs.some((e) => e.type === 'open'), letters: parseFrames(seen[i].data).frames.map((f) => f.letter), probed: null
          }
          const taken = r.letters.length > 0
          r.expect = taken
            ? { type: 'error', reason: 'ERR_HANDSHAKE_TIMEOUT', reply: true, accepted: true }
            : { type: 'refused', reason: 'ERR_REPLAY', reply: false, accepted: false }
          if (taken) r.probed = n
          results.push(r)
          return r
        })
        assert.strictEqual(outcome.filter((r) => r.expect.accepted).length, 1, `${what}: exactly one connection got an A`)
        check(outcome)
        assert.deepStrictEqual(fresh.received, [], 'the restarted node delivered nothing')
      } finally {
        await fresh.close()
      }
    }
    const mine = results.filter((r) => r.target === label)
    figure('one message 1 replayed on 8 connections at once to a restarted responder', `${JSON.stringify(tally(mine.map((r) => `${r.type}:${r.reason}`)))} (I, then N + K)`)
    assertDeliveredOnce()
  })
})

'use strict'
// The interfaces of MyCHIPs' socket modules, one suite run against each
// implementation: PeerNoise encrypted, PeerNoise raw, PeerSocket (raw).
// Callbacks keep MyCHIPs' meaning: successCB once written, failureCB(err)
// with a coded Error, exactly one of them per send.
const assert = require('assert')
const { makeNode, KINDS, HOST } = require('./helpers/compat')
const { waitFor, sleep } = require('./helpers/wait')

for (const { kind, title } of KINDS) {
  describe(`MyCHIPs interface: ${title}`, function () {
    this.timeout(15000)
    let nodes = []
    const node = async (opts) => { const n = await makeNode(kind, opts); nodes.push(n); return n }
    afterEach(async () => { await Promise.all(nodes.map((n) => n.close())); nodes = [] })

    it('sends both ways; the receiver names the sender so that an answer reaches it', async () => {
      const a = await node()
      const b = await node()
      await a.send(b, { target: 'chit', n: 1 })
      await waitFor(() => b.got.length === 1, 'the message at b')
      assert.strictEqual(b.got[0].message.n, 1)
      await b.answer(b.got[0].from, { target: 'chit', n: 2 })
      await waitFor(() => a.got.length === 1, 'the answer at a')
      assert.strictEqual(a.got[0].message.n, 2)
      if (kind !== 'socket') {
        assert.strictEqual(b.sender(b.got[0].from), a.agent, 'connection.peerAgent is the sender')
        assert.deepStrictEqual(b.got[0].message.from, { agent: a.agent, host: HOST, port: a.port }, 'from carries our CHIP address')
      } else {
        assert.strictEqual(b.got[0].from, `${HOST}:${a.port}`, 'the sender by its listening port')
      }
    })

    it('reuses the link: messages both ways and answers travel on one connection', async () => {
      const a = await node({ reply: (n, from, m) => { if (m.ping) n.answer(from, { pong: m.ping }) } })
      const b = await node({ reply: (n, from, m) => { if (m.ping) n.answer(from, { pong: m.ping }) } })
      for (let i = 1; i <= 3; i++) await a.send(b, { ping: i })
      // b sends once it has heard from a (as an application does): by then
      // the link a opened is confirmed and b routes to it (docs/PROTOCOL.md §5a).
      await waitFor(() => b.got.length === 3, 'the pings')
      await b.send(a, { ping: 9 })
      await waitFor(() => a.got.length === 4 && b.got.length === 4, 'pings and pongs')
      assert.strictEqual(a.links(), 1)
      assert.strictEqual(b.links(), 1)
      assert.deepStrictEqual(a.got.filter((g) => g.message.pong).map((g) => g.message.pong), [1, 2, 3])
      assert.deepStrictEqual(b.got.filter((g) => g.message.pong).map((g) => g.message.pong), [9])
    })

    it('delivers a message to our own address locally, on a later tick, then calls successCB', async () => {
      const a = await node()
      let sync = true
      const sent = a.send(a, { self: 1 }).then(() => a.got.length)
      sync = false
      const seenAtSuccess = await sent
      assert.strictEqual(sync, false)
      await waitFor(() => a.got.length === 1, 'the local message')
      assert.strictEqual(a.got[0].message.self, 1)
      if (kind !== 'socket') {
        assert.strictEqual(seenAtSuccess, 1, 'messageCB runs before successCB')
        assert.strictEqual(a.got[0].from, a.agent, 'local delivery names our own agent')
        assert.strictEqual(a.links(), 0, 'no socket for local traffic')
      }
    })

    it('calls failureCB with a coded Error for an address it cannot use, and never successCB', async () => {
      const a = await node()
      const bad = kind === 'socket'
        ? [null, 'no-port', 'host:notaport']
        : [{ agent: 'bad_agent' }, { agent: 'x', host: HOST }, { host: HOST, port: 1 }]
      for (const to of bad) {
        let ok = 0
        const err = await new Promise((resolve) => {
          if (kind === 'socket') a.impl.send(to, { n: 1 }, () => ok++, resolve)
          else a.impl.send({ to, n: 1 }, () => ok++, resolve)
        })
        assert.ok(err instanceof Error, `${JSON.stringify(to)}: an Error`)
        assert.strictEqual(err.code, 'ERR_INVALID_ARGUMENT')
        assert.strictEqual(ok, 0)
      }
      // A well-formed address where nothing listens.
      const dead = await makeNode(kind)
      await dead.close()
      const err = await a.send(dead, { n: 1 }).then(() => null, (e) => e)
      assert.ok(err && ['ERR_CONNECT_FAILED', 'ERR_CONNECTION_RESET'].includes(err.code), String(err && err.code))
    })

    it('closes a link with end() and opens a new one for the next send', async () => {
      const a = await node()
      const b = await node()
      await a.send(b, { n: 1 })
      await waitFor(() => b.got.length === 1, 'the first message')
      a.end(b)
      await waitFor(() => a.links() === 0 && b.links() === 0, 'the link to close on both sides')
      await sleep(25)
      await a.send(b, { n: 2 })
      await waitFor(() => b.got.length === 2, 'the message after reopening')
      assert.deepStrictEqual(b.got.map((g) => g.message.n), [1, 2])
      assert.strictEqual(a.links(), 1)
    })

    it('closes an idle link at the responder\'s timeout and reopens it on the next send', async () => {
      const a = await node()
      const b = await node({ config: { timeout: 300 } })
      await a.send(b, { n: 1 })
      await waitFor(() => a.links() === 1, 'the link')
      await waitFor(() => a.links() === 0 && b.links() === 0, 'the idle close', 3000)
      await a.send(b, { n: 2 })
      await waitFor(() => b.got.length === 2, 'the message after reopening')
      if (kind !== 'socket') assert.ok(b.log.lines.some((l) => /IDLE_TIMEOUT/.test(l.text)), 'the close is logged')
    })

    it('delivers 1,000 messages in order, each once', async () => {
      const a = await node()
      const b = await node()
      const sends = []
      for (let i = 0; i < 1000; i++) sends.push(a.send(b, { i }))
      await Promise.all(sends)
      await waitFor(() => b.got.length === 1000, '1,000 messages')
      assert.deepStrictEqual(b.got.map((g) => g.message.i), Array.from({ length: 1000 }, (_, i) => i))
    })

    if (kind !== 'socket') {
      it('asks queryCB about a first contact\'s ticket and honours cb(false): the send fails, nothing is delivered', async () => {
        const asked = []
        const b = await node({ config: { queryCB: (req, data, cb) => { asked.push([req, data]); if (req === 'ticket') cb(data.token === 'good') } } })
        const a = await node()
        const refused = await a.send(b, { target: 'tally', action: 'ticket', ticket: { token: 'bad' } }).then(() => null, (e) => e)
        assert.ok(refused, 'the send fails')
        if (kind === 'encrypted') assert.strictEqual(refused.code, 'ERR_TICKET_REFUSED')
        assert.strictEqual(b.got.length, 0)
        await waitFor(() => b.log.lines.some((l) => l.level === 'warn' && /ERR_TICKET_REFUSED/.test(l.text)), 'the refusal in the log')
        await a.send(b, { target: 'tally', action: 'ticket', ticket: { token: 'good' } })
        await waitFor(() => b.got.length === 1, 'the first contact')
        assert.deepStrictEqual(asked.filter(([req]) => req === 'ticket').map(([, d]) => d.token), ['bad', 'good'])
        assert.strictEqual(b.got[0].message.action, 'ticket')
      })

      it('logs links opened and closed through config.log', async () => {
        const a = await node()
        const b = await node()
        await a.send(b, { n: 1 })
        a.end(b)
        await waitFor(() => b.log.lines.some((l) => /closed/.test(l.text)), 'the close line')
        assert.ok(a.log.lines.some((l) => l.level === 'debug' && /open with/.test(l.text)), JSON.stringify(a.log.lines))
      })
    }
  })
}

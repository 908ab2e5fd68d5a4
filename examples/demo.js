'use strict'
// npm run demo: two MyCHIPs-style nodes on loopback. Bob gives Alice a one-time
// ticket; Alice makes first contact with it (IK), they become partners, and the
// rest of the conversation runs on the tally relation (N+KK), both ways, on one link.
const { NoisePeer, generateKeypair } = require('..')

async function main () {
  const alice = generateKeypair()
  const bob = generateKeypair()
  const partners = new Map() // agent -> X25519 key: the "tally relations"
  const tickets = new Set(['t-7f3a'])

  const node = (id, name) => {
    const peer = new NoisePeer({
      agent: id.agent,
      keys: id,
      peerKey: async (agent) => partners.get(agent) || null,
      checkTicket: async (ticket, from) => {
        const ok = tickets.delete(ticket) // one-time
        console.log(`${name}: ticket ${JSON.stringify(ticket)} from ${from.agent.slice(0, 8)}… ${ok ? 'accepted' : 'refused'}`)
        return ok
      }
    })
    peer.onEvent((e) => console.log(`${name}: ${e.type} ${e.pattern || ''} ${e.reason || ''}`.trim()))
    return peer
  }
  const a = node(alice, 'alice')
  const b = node(bob, 'bob')
  const bAddr = { agent: bob.agent, ...(await b.listen()) }
  await a.listen()

  const done = new Promise((resolve) => {
    b.onMessage((from, msg) => {
      console.log(`bob <- ${from.pattern}: ${JSON.stringify(msg)}`)
      if (msg.action === 'offer') b.send({ agent: from.agent }, { target: 'tally', action: 'accept' })
    })
    a.onMessage((from, msg) => {
      console.log(`alice <- ${from.pattern}: ${JSON.stringify(msg)}`)
      resolve()
    })
  })
  await a.send(bAddr, { target: 'tally', action: 'offer', units: 0 }, { ticket: 't-7f3a' })
  await done
  const replay = await a.send(bAddr, { hi: 1 }, { ticket: 't-7f3a' }).then(() => 'sent on the open link (no new handshake)', (e) => e.code)
  console.log(`alice: a second send with the spent ticket: ${replay}`)
  partners.set(alice.agent, alice.publicKey) // now partners: later links use KK
  partners.set(bob.agent, bob.publicKey)
  a.end(bob.agent)
  await new Promise((resolve) => setTimeout(resolve, 100))
  await a.send(bAddr, { target: 'chit', action: 'pay', units: 1200 })
  await new Promise((resolve) => setTimeout(resolve, 100))
  await Promise.all([a.close(), b.close()])
}

main().catch((err) => { console.error(err); process.exitCode = 1 })

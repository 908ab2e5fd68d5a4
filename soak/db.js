'use strict'
// The database of the soak's PostgreSQL variant: the embedded server of
// scripts/embedded-db.js (a throwaway PostgreSQL in a temporary directory,
// removed afterwards), one database with the fixture's MyCHIPs tables, every
// node an agent with a user, and an `open` tally from each node to each other
// node, so each node's store admits the others by key (KK) and nobody else.

const { TestServer } = require('../scripts/embedded-db')

async function startDb (nodes) {
  if (process.env.DATABASE_URL) {
    throw new Error('the database variant stops and restarts its server, so it needs the embedded one: unset DATABASE_URL')
  }
  const server = await TestServer.start()
  try {
    const url = await server.createDatabase(`soak_${process.pid}`)
    let seq = 0
    for (const n of nodes) {
      await server.sql(url, 'insert into mychips.agents (agent, agent_host, agent_port) values ($1, $2, $3)', [n.agent, n.host, n.port])
      await server.sql(url, 'insert into mychips.users (user_ent, peer_cid, peer_agent) values ($1, $1, $2)', [`u${n.index}`, n.agent])
    }
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue
        await server.sql(url, `insert into mychips.tallies (tally_ent, tally_seq, status, hold_agent, part_agent)
          values ($1, $2, 'open', $3, $4)`, [`u${a.index}`, ++seq, a.agent, b.agent])
      }
    }
    return { server, url }
  } catch (err) {
    await server.close()
    throw err
  }
}

module.exports = { startDb }

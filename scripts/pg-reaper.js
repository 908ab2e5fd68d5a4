'use strict'
// The embedded PostgreSQL's watchdog (scripts/embedded-db.js starts one per
// server): `node pg-reaper.js DIR`. It waits for its standard input to close,
// which happens when the process that started the server exits, however it
// exits (SIGKILL included). If that process had not said `done` first, the
// server it left behind is shut down (fast shutdown, then SIGKILL after 10 s)
// and DIR, the server's temporary directory, is removed. It signals no
// process but the postmaster named in DIR/data/postmaster.pid, and only when
// that process's command line names DIR: a recycled process id is left alone.

const fs = require('fs')
const path = require('path')

const dir = process.argv[2]
if (!dir || !path.isAbsolute(dir)) {
  console.error('usage: node pg-reaper.js ABSOLUTE_DIR')
  process.exit(2)
}

// A Ctrl-C meant for the parent does not stop the cleaning up.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => {})

let told = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => { told += chunk })
process.stdin.on('error', () => {})
process.stdin.on('close', () => {
  if (/^done$/m.test(told)) process.exit(0)
  reap().finally(() => process.exit(0))
})

// The postmaster's id, if it runs from DIR.
function postmaster () {
  let pid
  try {
    pid = Number(fs.readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    return null
  }
  if (!Number.isInteger(pid) || pid <= 1) return null
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return cmdline.includes(dir) ? pid : null
  } catch {
    return null
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function reap () {
  const pid = postmaster()
  if (pid) {
    try { process.kill(pid, 'SIGINT') } catch {} // fast shutdown
    const deadline = Date.now() + 10000
    while (postmaster() === pid && Date.now() < deadline) await sleep(100)
    if (postmaster() === pid) {
      try { process.kill(pid, 'SIGKILL') } catch {}
      await sleep(200)
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
}

'use strict'
// One round of each figure, run from the parent in fresh child processes.
// arrangement 'two': the two nodes in a process each (as MyCHIPs deploys
// them); 'one': both nodes in one process. CPU time is the user + system time
// of every process involved (all their threads: Node's and tokio's), over the
// measured interval only.

const { withChildren } = require('./harness')

const LIFETIME = 10 * 60 * 1000 // a child's own bound: no round takes longer

// Children for a two-node measurement: [sender side, receiver side], one
// process each, or the same process twice.
function pair (arrangement, tk, fn) {
  const labels = arrangement === 'two' ? [`${tk} sender`, `${tk} receiver`] : [`${tk} node pair`]
  return withChildren(labels, LIFETIME, (children) => fn(children[0], children[children.length - 1], children))
}

const cpuOf = (children) => Promise.all(children.map((c) => c.call('cpu')))
// Microseconds of CPU (user + system) the children used between two readings.
const cpuSpent = (before, after) => after.reduce((sum, a, i) => sum + (a.user - before[i].user) + (a.system - before[i].system), 0)

// Two nodes a -> b, both listening (as deployed), and b's address.
async function twoNodes (a, b, tk) {
  await a.call('create', { name: 'a', transport: tk })
  await b.call('create', { name: 'b', transport: tk })
  await a.call('listen', { name: 'a' })
  return b.call('listen', { name: 'b' })
}

// Messages of `size` bytes a -> b over one link, at most `window` sends (and
// `maxBytes` of messages) unsettled; the clock runs from the first send to b
// seeing the last message.
function throughput ({ arrangement, tk, size, count, window, maxBytes, ms }) {
  return pair(arrangement, tk, async (a, b, children) => {
    const to = await twoNodes(a, b, tk)
    const bytes = await a.call('messageSize', { size })
    // Warm-up: open the link with one message, then a few more, so the link is
    // open and the code paths warm before the clock starts. (One message first:
    // it is the steady state that is measured, not a burst queued on a link
    // still in its handshake.)
    const warm = 1 + Math.min(100, count)
    await b.call('arm', { name: 'b', target: 1 })
    await a.call('blast', { name: 'a', to, count: 1, size, window, maxBytes, ms }, ms + 5000)
    await b.call('reached', { name: 'b', ms }, ms + 5000)
    await b.call('arm', { name: 'b', target: warm })
    await a.call('blast', { name: 'a', to, count: warm - 1, size, window, maxBytes, ms }, ms + 5000)
    await b.call('reached', { name: 'b', ms }, ms + 5000)
    await b.call('arm', { name: 'b', target: warm + count })
    const cpu0 = await cpuOf(children)
    const [{ t0 }, { t }] = await Promise.all([
      a.call('blast', { name: 'a', to, count, size, window, maxBytes, ms }, ms + 5000),
      b.call('reached', { name: 'b', ms }, ms + 5000)
    ])
    const cpu1 = await cpuOf(children)
    const seconds = Number(BigInt(t) - BigInt(t0)) / 1e9
    return {
      rate: count / seconds,
      mbps: count * bytes / seconds / 1e6,
      cpuUs: cpuSpent(cpu0, cpu1) / count,
      bytes
    }
  })
}

// Round trips a -> b -> a, one at a time, after `warmup` of them.
function rtt ({ arrangement, tk, size, count, warmup, ms }) {
  return pair(arrangement, tk, async (a, b, children) => {
    const to = await twoNodes(a, b, tk)
    await b.call('echo', { name: 'b' })
    await a.call('rtt', { name: 'a', to, count: 1, warmup: 0, size, ms }, ms + 5000) // opens the link
    const cpu0 = await cpuOf(children)
    const r = await a.call('rtt', { name: 'a', to, count, warmup, size, ms }, ms + 5000)
    const cpu1 = await cpuOf(children)
    return { p50: r.p50, p99: r.p99, cpuUs: cpuSpent(cpu0, cpu1) / (count + warmup) }
  })
}

// New links per second in one process: `callers` nodes, each opening,
// using and closing `perCaller` links to one server node, in parallel.
// Also measures this process's x25519 rate for the handshake ceiling first,
// while nothing else runs in it.
function links ({ tk, callers, perCaller, size, ms, dhMs }) {
  return withChildren([`${tk} links`], LIFETIME, async ([c]) => {
    const dh = dhMs ? await c.call('dhRate', { ms: dhMs }) : null
    await c.call('create', { name: 's', transport: tk })
    const to = await c.call('listen', { name: 's' })
    await c.call('create', { name: 'c', transport: tk, count: callers })
    // Warm-up: one link per caller.
    await c.call('churn', { server: 's', prefix: 'c', callers, to, perCaller: 1, size, ms }, ms + 5000)
    const cpu0 = await cpuOf([c])
    const r = await c.call('churn', { server: 's', prefix: 'c', callers, to, perCaller, size, ms }, ms + 5000)
    const cpu1 = await cpuOf([c])
    return { rate: r.links / (Number(r.ns) / 1e9), cpuUs: cpuSpent(cpu0, cpu1) / r.links, dh }
  })
}

// Resident memory per idle link: a server node in one process holding links
// from callers in two others (a process's 20,000 descriptors would not hold
// both ends of 10,000 links, and a JS Noise process runs out of memory maps
// somewhere past 6,000 link ends: sodium-native puts every key in guarded
// pages of its own, a few maps each, and vm.max_map_count is 65530). Caller g lives in caller
// process g % 2. Every caller exists before the baseline, so only the links
// are measured; one reading at each of `counts` (ascending), in KiB per link,
// both ends counted as one pair.
const CALLER_PROCS = 2

function maxMapCount () {
  try { return Number(require('fs').readFileSync('/proc/sys/vm/max_map_count', 'utf8')) } catch (_) { return 'unknown' }
}

// `readings` (filled as they are taken) keeps the counts reached when a later one fails.
function memory ({ tk, counts, batch, size, ms, onStep, readings = {} }) {
  const labels = [`${tk} idle server`, ...Array.from({ length: CALLER_PROCS }, (_, k) => `${tk} idle callers ${k}`)]
  return withChildren(labels, LIFETIME, async ([srv, ...cal]) => {
    const max = counts[counts.length - 1]
    // Caller process k's share of the global range [a, b): its local indices.
    const local = (k, a, b) => [Math.ceil((a - k) / CALLER_PROCS), Math.ceil((b - k) / CALLER_PROCS)]
    await srv.call('create', { name: 's', transport: tk })
    const address = await srv.call('listen', { name: 's' })
    await Promise.all(cal.map((c, k) => c.call('create', { name: 'c', transport: tk, count: local(k, 0, max)[1] }, ms)))
    let serverMaps = null // the server's memory maps at the last reading
    const rssAll = async () => {
      const r = await Promise.all([srv, ...cal].map((c) => c.call('rss', {})))
      serverMaps = r[0].maps
      return r.map((x) => x.rss)
    }
    const base = await rssAll()
    let open = 0
    for (const n of counts) {
      while (open < n) {
        const upto = Math.min(n, open + batch)
        if (onStep) onStep(upto, max)
        await srv.call('arm', { name: 's', target: upto })
        try {
          await Promise.all([
            ...cal.map((c, k) => {
              const [from, to] = local(k, open, upto)
              return c.call('open', { prefix: 'c', from, to, address, size, ms }, ms + 5000)
            }),
            srv.call('reached', { name: 's', ms }, ms + 5000)
          ])
        } catch (err) {
          const maps = serverMaps == null ? '' : `; the server had ${serverMaps} memory maps at the last reading, vm.max_map_count is ${maxMapCount()}`
          throw new Error(`${err.message} (opening links ${open + 1} to ${upto}; ${open} were open${maps})`)
        }
        open = upto
      }
      const held = await srv.call('linkCount', { name: 's' })
      if (held < n) throw new Error(`the server holds ${held} links, expected ${n}`)
      const now = await rssAll()
      const server = (now[0] - base[0]) / n / 1024
      const callers = now.slice(1).reduce((sum, r, k) => sum + r - base[k + 1], 0) / n / 1024
      readings[n] = { pair: server + callers, server, callers }
    }
    return readings
  })
}

// Inputs of the bounds (bounds.js), in a fresh process with nothing else
// running: the JSON rates of the messages, and the crossing's latency.
function floors ({ sizes, ms, crossings }) {
  return withChildren(['floors'], LIFETIME, async ([c]) => ({
    json: await c.call('jsonRate', { sizes, ms }, sizes.length * 2 * ms + 10000),
    crossing: await c.call('crossing', { count: crossings, warmup: Math.ceil(crossings / 10) }, 60000)
  }))
}

module.exports = { throughput, rtt, links, memory, floors }

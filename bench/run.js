'use strict'
// npm run bench: four transports side by side on loopback, in one run:
//   plain JS             JSON over frame-stream on net sockets, no crypto (MyCHIPs before Noise)
//   JS Noise             noise-protocol + sodium-native + frame-stream (MyCHIPs now; the
//                        reference peer of __test__/helpers/js-peer.js)
//   NoisePeer raw        this package, encrypt: false
//   NoisePeer encrypted  this package
// in two arrangements: each node in a Node process of its own (as deployed), and
// both nodes in one process; every round in fresh child processes. Machines are
// shared and noisy, so what counts are the ratios between figures of one run.
//
//   node --expose-gc bench/run.js [--quick] [--only throughput,rtt,links,memory,store]
//                                 [--store] [--rounds N] [--json]
//   BENCH_SCALE=0.5   scales every count (messages, round trips, links, idle links)
//   BENCH_ROUNDS=5    rounds per figure (default 3; --quick: 1)
//
// Progress goes to stderr, the report to stdout (--json: one JSON document).

const os = require('os')
const { ORDER, TRANSPORTS } = require('./transports')
const measure = require('./measure')
const { progress } = require('./progress')
const { median } = require('./util')
const report = require('./report')
const { SIZE_LABEL } = report
const bounds = require('./bounds')
const { addonInfo } = require('./addon')

const SECTIONS = ['throughput', 'rtt', 'links', 'memory', 'store']
const DEFAULT_SECTIONS = ['throughput', 'rtt', 'links', 'memory']
const ARRANGEMENTS = { two: 'Two processes (each node in a Node process of its own)', one: 'One process (both nodes in one Node process)' }

function usage (msg) {
  if (msg) console.error(`bench: ${msg}`)
  console.error('usage: node --expose-gc bench/run.js [--quick] [--only ' + SECTIONS.join(',') + '] [--store] [--rounds N] [--json]')
  process.exit(2)
}

function parseArgs (argv) {
  const o = { quick: false, json: false, sections: null, store: false, rounds: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i] }
    if (a === '--quick') o.quick = true
    else if (a === '--json') o.json = true
    else if (a === '--store') o.store = true
    else if (a === '--only') o.sections = value().split(',').map((s) => s.trim()).filter(Boolean)
    else if (a === '--rounds') o.rounds = Number(value())
    else if (a === '--help' || a === '-h') usage()
    else usage(`unknown option ${a}`)
  }
  for (const s of o.sections || []) if (!SECTIONS.includes(s)) usage(`no section "${s}"`)
  if (o.rounds != null && !(Number.isInteger(o.rounds) && o.rounds >= 1 && o.rounds <= 20)) usage('--rounds takes 1..20')
  return o
}

function settings (o) {
  const scale = Number(process.env.BENCH_SCALE || 1)
  if (!(scale > 0 && scale <= 10)) usage('BENCH_SCALE must be in (0, 10]')
  const n = (full, quick) => Math.max(1, Math.round((o.quick ? quick : full) * scale))
  const rounds = o.rounds || Number(process.env.BENCH_ROUNDS) || (o.quick ? 1 : 3)
  const sections = o.sections || [...DEFAULT_SECTIONS, ...(o.store ? ['store'] : [])]
  return {
    quick: o.quick,
    scale,
    rounds,
    sections,
    sizes: [100, 1024, 16384],
    messages: { 100: n(50000, 5000), 1024: n(30000, 3000), 16384: n(5000, 500) },
    // Unsettled sends at most, and bytes of them: 1000 sends, but no more
    // than half of NoisePeer's default maxQueuedBytes (8 MiB), past which it
    // refuses sends (ERR_BACKPRESSURE) instead of queueing them.
    window: 1000,
    windowBytes: 4 * 1024 * 1024,
    rtt: { count: n(5000, 500), warmup: n(500, 50), size: 100 },
    links: { sequential: n(500, 50), parallel: 32, perCaller: n(32, 3), size: 100 },
    memory: { counts: o.quick ? [n(100, 100), n(1000, 1000)] : [n(1000, 1000), n(10000, 10000)], batch: 200, size: 100 },
    store: { links: n(200, 30) },
    deadline: 120000, // one round of one figure, ms
    memoryDeadline: 30000 // one batch of idle links opened, ms
  }
}

// --- the figures: rounds in, medians out ------------------------------------------------

class Figures {
  constructor () {
    this.cells = new Map() // `${group}|${source}|${tk}` -> { rounds: [], errors: [] }
    this.errors = []
  }

  cell (group, source, tk) {
    const k = `${group}|${source}|${tk}`
    if (!this.cells.has(k)) this.cells.set(k, { rounds: [], errors: [] })
    return this.cells.get(k)
  }

  // Run one round of one figure; a failure is recorded, and the run goes on.
  async round (group, source, tk, what, fn) {
    const c = this.cell(group, source, tk)
    try {
      c.rounds.push(await fn())
    } catch (err) {
      c.errors.push(err.message)
      this.errors.push({ what, error: err.message })
      progress.clear()
      process.stderr.write(`bench: ${what} failed: ${err.message}\n`)
    }
  }

  // A table row: the median over rounds of row.value (and row.cpu) per transport.
  row (group, spec) {
    const cells = {}
    for (const tk of ORDER) {
      const c = this.cell(group, spec.source, tk)
      const values = c.rounds.map(spec.value).filter((x) => x != null)
      const cell = { value: median(values), rounds: values }
      if (spec.cpu) cell.cpuUs = median(c.rounds.map(spec.cpu).filter((x) => x != null))
      if (cell.value == null && c.errors.length) cell.error = c.errors[0]
      cells[tk] = cell
    }
    return { ...spec, cells }
  }
}

function arrangementRows (figures, arr, cfg) {
  const specs = []
  if (cfg.sections.includes('throughput')) {
    for (const size of cfg.sizes) {
      specs.push({ id: `msgs${size}`, label: `messages/s, ${SIZE_LABEL[size]}`, unit: 'msg/s', source: `throughput${size}`, value: (r) => r.rate, cpu: (r) => r.cpuUs })
    }
    specs.push({ id: 'mbps16384', label: 'MB/s, 16 KiB', unit: 'MB/s', source: 'throughput16384', value: (r) => r.mbps })
  }
  if (cfg.sections.includes('rtt')) {
    specs.push({ id: 'rttP50', label: 'round trip p50, 100 B', unit: 'µs', source: 'rtt', value: (r) => r.p50, cpu: (r) => r.cpuUs })
    specs.push({ id: 'rttP99', label: 'round trip p99, 100 B', unit: 'µs', source: 'rtt', value: (r) => r.p99 })
  }
  if (arr === 'one' && cfg.sections.includes('links')) {
    specs.push({ id: 'linksSeq', label: 'new links/s, one at a time', unit: 'links/s', source: 'linksSeq', value: (r) => r.rate, cpu: (r) => r.cpuUs })
    specs.push({ id: 'linksPar', label: `new links/s, ${cfg.links.parallel} at a time`, unit: 'links/s', source: 'linksPar', value: (r) => r.rate, cpu: (r) => r.cpuUs })
  }
  return specs.map((s) => figures.row(arr, s))
}

function memoryRows (figures, cfg) {
  const rows = []
  for (const n of cfg.memory.counts) {
    const at = (part) => (r) => r[n] ? r[n][part] : null
    const label = n.toLocaleString('en-US')
    rows.push(figures.row('memory', { id: `pair${n}`, label: `KiB per pair, ${label} links`, unit: 'KiB', source: 'memory', value: at('pair') }))
    rows.push(figures.row('memory', { id: `server${n}`, label: '  server side', unit: 'KiB', source: 'memory', value: at('server'), ratios: false }))
    rows.push(figures.row('memory', { id: `callers${n}`, label: '  caller side', unit: 'KiB', source: 'memory', value: at('callers'), ratios: false }))
  }
  return rows
}

// The handshake ceiling: x25519 operations a second on one core (measured in
// the links children) × cores ÷ operations one link costs, both ends.
function ceilingOf (figures) {
  const dh = ORDER.flatMap((tk) => figures.cell('one', 'linksSeq', tk).rounds.map((r) => r.dh)).filter(Boolean)
  if (dh.length === 0) return null
  const perSecond = median(dh.map((d) => d[0]))
  const perLink = dh[0][1]
  const cores = os.cpus().length
  // Key generations are fixed-base multiplications, cheaper than the rest:
  // the target counts them whole; what they really cost is printed beside.
  const keygens = dh.filter((d) => d.length >= 4)
  const exact = keygens.length === 0
    ? null
    : (() => {
        const keygenPerSecond = median(keygens.map((d) => d[2]))
        const k = keygens[0][3]
        const secondsPerLink = (perLink - k) / perSecond + k / keygenPerSecond
        return { keygenPerSecond, keygensPerLink: k, linksPerSecondOneCore: 1 / secondsPerLink }
      })()
  return { x25519PerSecondOneCore: perSecond, x25519PerLink: perLink, cores, linksPerSecond: perSecond * cores / perLink, exact }
}

// The ceiling for a figure: links one at a time use one core at a time (each
// step of a handshake waits on the one before, on the other side), so their
// ceiling is one core's; links opened in parallel may use every core.
function ceilingFor (ceiling, id) {
  return id === 'linksSeq' ? ceiling.x25519PerSecondOneCore / ceiling.x25519PerLink : ceiling.linksPerSecond
}

// --- targets ---------------------------------------------------------------------------

function targetsOf (tables, memory, ceiling, cfg, floors) {
  const out = []
  const value = (rows, id, tk, field = 'value') => { const r = rows.find((x) => x.id === id); return r && r.cells[tk] ? r.cells[tk][field] : null }
  const unitOf = (rows, id) => { const r = rows.find((x) => x.id === id); return r ? r.unit : '' }
  // What this design allows figure `id` of `tk` at best (bounds.js), and
  // whether the target's `need` is beyond it.
  const bound = (arr, rows, id, tk, op, need) => {
    const limit = arr && bounds.limitOf({ arr, id, tk, value: (i, t, f) => value(rows, i, t, f), floors, ceiling, cores: os.cpus().length })
    if (!limit || need == null) return null
    return { need, best: limit.value, unit: unitOf(rows, id), why: limit.why, beyond: bounds.beyond(op, need, limit) }
  }
  // NoisePeer `tk` against `base` on figure `id`: ratio op threshold.
  const vs = (group, rows, id, tk, base, op, threshold, text, arr) => {
    const v = value(rows, id, tk)
    const b = value(rows, id, base)
    const unit = unitOf(rows, id)
    const ratio = v != null && b ? v / b : null
    out.push({
      group, text, op, threshold, unit: '×', ratio,
      measured: v != null && b != null ? `${report.fmt(unit, v)} vs ${report.fmt(unit, b)}` : 'n/a',
      met: ratio == null ? null : op === '≥' ? ratio >= threshold : op === '≤' ? ratio <= threshold : ratio < threshold,
      bound: b == null ? null : bound(arr, rows, id, tk, op, threshold * b)
    })
  }
  for (const [arr, rows] of Object.entries(tables)) {
    const g = arr === 'two' ? 'two processes' : 'one process'
    if (cfg.sections.includes('rtt')) {
      for (const [id, p] of [['rttP50', 'p50'], ['rttP99', 'p99']]) {
        vs(g, rows, id, 'enc', 'plain', '≤', 1, `round trip ${p} 100 B, encrypted vs plain JS`, arr)
        vs(g, rows, id, 'raw', 'plain', '≤', 1, `round trip ${p} 100 B, raw vs plain JS`, arr)
      }
    }
    if (cfg.sections.includes('throughput')) {
      for (const size of [100, 1024]) {
        vs(g, rows, `msgs${size}`, 'enc', 'js', '≥', 5, `messages/s ${SIZE_LABEL[size]}, encrypted vs JS Noise`, arr)
        vs(g, rows, `msgs${size}`, 'enc', 'plain', '≥', 1.5, `messages/s ${SIZE_LABEL[size]}, encrypted vs plain JS`, arr)
      }
      vs(g, rows, 'mbps16384', 'enc', 'js', '≥', 3, 'MB/s 16 KiB, encrypted vs JS Noise', arr)
      for (const size of cfg.sizes) vs(g, rows, `msgs${size}`, 'raw', 'plain', '≥', 2, `messages/s ${SIZE_LABEL[size]}, raw vs plain JS`, arr)
    }
    if (arr === 'one' && cfg.sections.includes('links')) {
      for (const [id, how] of [['linksSeq', 'one at a time'], ['linksPar', `${cfg.links.parallel} at a time`]]) {
        vs(g, rows, id, 'enc', 'js', '≥', 5, `new encrypted links/s ${how}, vs JS Noise`, arr)
        const v = value(rows, id, 'enc')
        const limit = ceiling && ceilingFor(ceiling, id)
        const ratio = v != null && limit ? v / limit : null
        out.push({
          group: g, text: `new encrypted links/s ${how}, share of the ceiling`, op: '≥', threshold: 0.7, unit: '×', ratio,
          measured: limit && v != null ? `${report.fmt('links/s', v)} of ${report.fmt('links/s', limit)}` : 'n/a',
          met: ratio == null ? null : ratio >= 0.7,
          bound: limit ? bound(arr, rows, id, 'enc', '≥', 0.7 * limit) : null
        })
      }
    }
  }
  if (memory) {
    const g = 'memory (server in one process, callers in two others)'
    const n = cfg.memory.counts[cfg.memory.counts.length - 1]
    const label = n.toLocaleString('en-US')
    const v = value(memory, `pair${n}`, 'enc')
    out.push({ group: g, text: `KiB per pair, ${label} idle encrypted links`, op: '≤', threshold: 24, unit: 'KiB', ratio: v, measured: v == null ? 'n/a' : report.fmt('KiB', v), met: v == null ? null : v <= 24 })
    vs(g, memory, `pair${n}`, 'enc', 'plain', '<', 1, `KiB per pair, ${label} idle links, encrypted vs plain JS`)
    const first = cfg.memory.counts[0]
    vs(g, memory, `pair${first}`, 'enc', 'plain', '<', 1, `KiB per pair, ${first.toLocaleString('en-US')} idle links, encrypted vs plain JS`)
  }
  return out
}

// --- the run ---------------------------------------------------------------------------

async function run (cfg) {
  const started = Date.now()
  const figures = new Figures()
  const { rounds } = cfg
  const step = (text) => progress(`[${((Date.now() - started) / 60000).toFixed(1)} min] ${text}`)
  const label = (tk) => TRANSPORTS[tk].label
  const has = (s) => cfg.sections.includes(s)

  for (const arr of ['two', 'one']) {
    const where = arr === 'two' ? 'two processes' : 'one process'
    for (let r = 1; r <= rounds; r++) {
      const of = `round ${r}/${rounds}`
      if (has('throughput')) {
        for (const size of cfg.sizes) {
          for (const tk of ORDER) { // interleaved, so drift hits every transport alike
            const what = `${where} · ${SIZE_LABEL[size]} messages · ${label(tk)} · ${of}`
            step(what)
            await figures.round(arr, `throughput${size}`, tk, what, () => measure.throughput({ arrangement: arr, tk, size, count: cfg.messages[size], window: cfg.window, maxBytes: cfg.windowBytes, ms: cfg.deadline }))
          }
        }
      }
      if (has('rtt')) {
        for (const tk of ORDER) {
          const what = `${where} · round trips · ${label(tk)} · ${of}`
          step(what)
          await figures.round(arr, 'rtt', tk, what, () => measure.rtt({ arrangement: arr, tk, ...cfg.rtt, ms: cfg.deadline }))
        }
      }
      if (arr === 'one' && has('links')) {
        for (const tk of ORDER) {
          const seq = `one process · new links, one at a time · ${label(tk)} · ${of}`
          step(seq)
          await figures.round('one', 'linksSeq', tk, seq, () => measure.links({ tk, callers: 1, perCaller: cfg.links.sequential, size: cfg.links.size, ms: cfg.deadline, dhMs: tk === 'enc' ? 500 : 0 }))
          const par = `one process · new links, ${cfg.links.parallel} at a time · ${label(tk)} · ${of}`
          step(par)
          await figures.round('one', 'linksPar', tk, par, () => measure.links({ tk, callers: cfg.links.parallel, perCaller: cfg.links.perCaller, size: cfg.links.size, ms: cfg.deadline }))
        }
      }
    }
  }

  // The bounds' inputs, a round each in a fresh process (bounds.js).
  const floorRounds = []
  if (has('throughput') || has('rtt') || has('links')) {
    for (let r = 1; r <= rounds; r++) {
      const what = `bounds · JSON rates and the JavaScript -> tokio crossing · round ${r}/${rounds}`
      step(what)
      try {
        floorRounds.push(await measure.floors({ sizes: cfg.sizes, ms: cfg.quick ? 100 : 300, crossings: cfg.quick ? 500 : 3000 }))
      } catch (err) {
        figures.errors.push({ what, error: err.message })
      }
    }
  }

  if (has('memory')) {
    // A transport that could not hold a count once will not next time either
    // (the JS Noise server runs out of memory maps): later rounds stop below it.
    const limit = {}
    for (let r = 1; r <= rounds; r++) {
      for (const tk of ORDER) {
        const counts = cfg.memory.counts.filter((n) => !(limit[tk] <= n))
        if (counts.length === 0) continue
        const what = `memory · idle links · ${label(tk)} · round ${r}/${rounds}`
        const c = figures.cell('memory', 'memory', tk)
        const readings = {} // filled as they are taken: a count held still counts if a later one fails
        const failures = c.errors.length
        await figures.round('memory', 'memory', tk, what, async () => {
          try {
            return await measure.memory({ ...cfg.memory, tk, counts, ms: cfg.memoryDeadline, readings, onStep: (open, max) => step(`${what} · ${open.toLocaleString('en-US')} of ${max.toLocaleString('en-US')} open`) })
          } catch (err) {
            if (Object.keys(readings).length) c.rounds.push(readings)
            throw err
          }
        })
        if (c.errors.length > failures) limit[tk] = counts.find((n) => !readings[n])
      }
    }
  }

  let store = null
  if (has('store')) {
    try {
      store = await require('./store').storeHandshakes({ rounds, links: cfg.store.links, ms: cfg.deadline, progress: step })
    } catch (err) {
      figures.errors.push({ what: 'store', error: err.message })
    }
  }
  progress.clear()
  return { figures, store, floors: floorsOf(floorRounds), seconds: (Date.now() - started) / 1000 }
}

// The medians of the bounds' inputs over rounds, or null.
function floorsOf (rounds) {
  if (rounds.length === 0) return null
  const at = (f) => median(rounds.map(f).filter((x) => x != null))
  const json = {}
  for (const size of Object.keys(rounds[0].json)) {
    json[size] = { bytes: rounds[0].json[size].bytes, stringify: at((r) => r.json[size].stringify), parse: at((r) => r.json[size].parse) }
  }
  const crossing = rounds.some((r) => r.crossing) ? { p50: at((r) => r.crossing && r.crossing.p50), p99: at((r) => r.crossing && r.crossing.p99) } : null
  return { json, crossing }
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const cfg = settings(opts)
  const addon = addonInfo()
  const { figures, store, floors, seconds } = await run(cfg)
  const addonAfter = addonInfo()
  // The addon may be rebuilt under a running bench (it is a shared checkout).
  const warnings = []
  if (addon.built !== addonAfter.built || addon.bytes !== addonAfter.bytes) warnings.push(`the addon was rebuilt during the run (${addon.built} -> ${addonAfter.built}): rounds started after that used the new build`)
  const tables = {}
  for (const arr of ['two', 'one']) {
    const rows = arrangementRows(figures, arr, cfg)
    if (rows.length) tables[arr] = rows
  }
  const memory = cfg.sections.includes('memory') ? memoryRows(figures, cfg) : null
  const ceiling = ceilingOf(figures)
  const targets = targetsOf(tables, memory, ceiling, cfg, floors)
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0] && os.cpus()[0].model,
    seconds: Math.round(seconds),
    addon,
    warnings,
    settings: cfg
  }

  if (opts.json) {
    const cellsOf = (rows) => Object.fromEntries(rows.map((r) => [r.id, { label: r.label, unit: r.unit, ...Object.fromEntries(ORDER.map((tk) => [tk, r.cells[tk]])) }]))
    const doc = {
      bench: 'mychips-noise',
      ...meta,
      transports: Object.fromEntries(ORDER.map((tk) => [tk, TRANSPORTS[tk].label])),
      twoProcesses: tables.two ? cellsOf(tables.two) : null,
      oneProcess: tables.one ? cellsOf(tables.one) : null,
      memory: memory ? cellsOf(memory) : null,
      ceiling,
      floors,
      store,
      targets,
      errors: figures.errors
    }
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  } else {
    const out = []
    out.push(`mychips-noise bench, ${meta.date.slice(0, 10)}: ${meta.cpus} cores (${meta.cpuModel}), Node ${meta.node}, median of ${cfg.rounds} round${cfg.rounds > 1 ? 's' : ''}, ${meta.seconds} s${cfg.quick ? ' (--quick: small counts, not for comparison)' : ''}`)
    out.push(addon.error ? `Addon: ${addon.file}: ${addon.error}` : `Addon: ${addon.file}, built ${addon.built}, ${(addon.bytes / 1048576).toFixed(1)} MiB${addon.debug ? ', with debug info' : ''}`)
    for (const w of warnings) out.push(`WARNING: ${w}`)
    const has = (x) => cfg.sections.includes(x)
    const m = cfg.messages
    if (has('throughput')) out.push(`Messages: ${m[100]} of 100 B, ${m[1024]} of 1 KiB, ${m[16384]} of 16 KiB per round on one link, at most ${cfg.window} sends (and ${cfg.windowBytes / 1048576} MiB) unsettled.`)
    if (has('rtt')) out.push(`Round trips: ${cfg.rtt.count} after ${cfg.rtt.warmup} of warm-up, one at a time.`)
    if (has('links')) out.push(`New links (open, deliver 100 B, close; both ends in one process): ${cfg.links.sequential} one at a time, ${cfg.links.parallel} callers × ${cfg.links.perCaller} at a time.`)
    if (tables.two || tables.one) {
      out.push('"cpu": CPU time (user + system of every process involved, all threads) per message, round trip or link.')
      out.push('Under each NoisePeer cell: its ratio to plain JS and to JS Noise on the same figure (for µs and KiB, lower is better).')
    }
    for (const arr of ['two', 'one']) {
      if (!tables[arr]) continue
      out.push('')
      out.push(report.table(ARRANGEMENTS[arr], tables[arr]))
    }
    if (cfg.sections.includes('links')) {
      out.push('')
      if (ceiling) {
        const share = (id) => {
          const row = tables.one && tables.one.find((r) => r.id === id)
          const v = row && row.cells.enc.value
          return v == null ? 'n/a' : `${(v / ceilingFor(ceiling, id) * 100).toFixed(0)}%`
        }
        out.push(`Handshake ceiling: ${report.fmt('links/s', ceiling.x25519PerSecondOneCore).replace('/s', '')} x25519 operations/s on one core × ${ceiling.cores} cores ÷ ${ceiling.x25519PerLink} per link (both ends) = ${report.fmt('links/s', ceiling.linksPerSecond)}`)
        out.push(`  (one at a time, each step of a handshake waits on the one before: one core's worth, ${report.fmt('links/s', ceilingFor(ceiling, 'linksSeq'))})`)
        const x = ceiling.exact
        if (x) {
          out.push(`  (${x.keygensPerLink} of the ${ceiling.x25519PerLink} are ephemeral key generations, fixed-base: ${report.fmt('links/s', x.keygenPerSecond).replace('/s', '')}/s on one core, counted whole above`)
          out.push(`  as the target defines it; at their own cost the ceiling is ${report.fmt('links/s', x.linksPerSecondOneCore * ceiling.cores)}, one core's ${report.fmt('links/s', x.linksPerSecondOneCore)})`)
        }
        out.push(`  new encrypted links/s as a share of it: one at a time ${share('linksSeq')} of one core's, ${cfg.links.parallel} at a time ${share('linksPar')}`)
      } else {
        out.push('Handshake ceiling: n/a (this build of the addon has no __dhRate)')
      }
    }
    if (memory) {
      out.push('')
      out.push(report.table('Memory: resident set growth per idle link, a server node in one process, one caller per link in two others; KiB, both ends counted as one pair', memory))
    }
    if (store) {
      out.push('')
      out.push(report.storeText(store, cfg.rounds, cfg.store.links))
    }
    if (floors) {
      out.push('')
      out.push(report.floorsText(floors, ceiling && bounds.handshakeX25519(ceiling)))
    }
    if (targets.length) {
      out.push('')
      out.push(report.targetsText(targets))
    }
    if (figures.errors.length) {
      out.push('')
      out.push('Failures (the figures above leave these rounds out)')
      for (const e of figures.errors) out.push(`  ${e.what}: ${e.error}`)
    }
    process.stdout.write(out.join('\n') + '\n')
  }
  // A target that could not be evaluated means a figure is missing: fail the run.
  if (targets.some((t) => t.met == null)) process.exitCode = 1
}

main().catch((err) => {
  progress.clear()
  console.error(err && err.stack ? err.stack : err)
  process.exitCode = 1
})

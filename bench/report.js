'use strict'
// Turning the figures into text: the tables (rows = figures, columns = the four
// transports, NoisePeer cells with their ratios to the two JavaScript
// baselines), the targets with their outcomes, and the store section.

const { ORDER, TRANSPORTS } = require('./transports')

const COLS = { label: 28, plain: 21, js: 21, raw: 31, enc: 31 }
const SIZE_LABEL = { 100: '100 B', 1024: '1 KiB', 16384: '16 KiB' }

// 71.2k, 655, 1.34M
function count (x) {
  if (x >= 1e6) return (x / 1e6).toFixed(2) + 'M'
  if (x >= 1e5) return (x / 1e3).toFixed(0) + 'k'
  if (x >= 1e4) return (x / 1e3).toFixed(1) + 'k'
  if (x >= 1e3) return (x / 1e3).toFixed(2) + 'k'
  return x.toFixed(0)
}
const sig = (x) => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
const ratio = (x) => x == null || !Number.isFinite(x) ? 'n/a' : (x >= 10 ? x.toFixed(0) : x.toFixed(2)) + '×'
const unitFormat = {
  'msg/s': (x) => count(x) + '/s',
  'links/s': (x) => count(x) + '/s',
  rate: count, // in a table cell, where the row's label gives the unit
  'MB/s': (x) => sig(x) + ' MB/s',
  µs: (x) => sig(x) + ' µs',
  KiB: (x) => sig(x) + ' KiB'
}
const fmt = (unit, x) => x == null ? 'n/a' : unitFormat[unit](x)

const pad = (s, n) => s.length >= n ? s + ' ' : s.padEnd(n)

function cellText (row, cell) {
  if (!cell || cell.value == null) return cell && cell.error ? 'failed' : 'n/a'
  let s = fmt(row.unit.endsWith('/s') && row.unit !== 'MB/s' ? 'rate' : row.unit, cell.value)
  if (cell.cpuUs != null) s += `, cpu ${sig(cell.cpuUs)} µs`
  return s
}

// "(0.78× plain, 1.7× JS Noise)" for a NoisePeer cell.
function ratioText (row, tk) {
  const v = row.cells[tk] && row.cells[tk].value
  if (v == null) return ''
  const of = (base) => {
    const b = row.cells[base] && row.cells[base].value
    return b ? ratio(v / b) : 'n/a'
  }
  return `(${of('plain')} plain, ${of('js')} JS Noise)`
}

function table (title, rows) {
  const out = [title]
  out.push(pad('', COLS.label) + ORDER.map((tk) => pad(TRANSPORTS[tk].label, COLS[tk])).join('').trimEnd())
  for (const row of rows) {
    out.push((pad(row.label, COLS.label) + ORDER.map((tk) => pad(cellText(row, row.cells[tk]), COLS[tk])).join('')).trimEnd())
    if (row.ratios !== false) {
      const line = pad('', COLS.label) + pad('', COLS.plain) + pad('', COLS.js) + pad(ratioText(row, 'raw'), COLS.raw) + ratioText(row, 'enc')
      if (line.trim()) out.push(line.trimEnd())
    }
  }
  return out.join('\n')
}

// "met", and how far: for ≥, the share of the target reached; for ≤ and <, how far under or over.
function outcome (t) {
  if (t.met == null) return 'n/a'
  const far = t.op === '≥'
    ? `${(t.ratio / t.threshold * 100).toFixed(0)}% of the target`
    : t.ratio <= t.threshold ? `${((1 - t.ratio / t.threshold) * 100).toFixed(0)}% under the limit` : `${((t.ratio / t.threshold - 1) * 100).toFixed(0)}% over the limit`
  return `${t.met ? 'met' : 'NOT MET'} (${far})`
}

function targetsText (targets) {
  const out = ['Targets (ratios of figures measured in this run)']
  let group = null
  for (const t of targets) {
    if (t.group !== group) {
      group = t.group
      out.push(`  ${group}`)
    }
    const want = `${t.op} ${t.unit === '×' ? ratio(t.threshold) : t.threshold + ' ' + t.unit}`
    const got = t.ratio == null ? 'n/a' : t.unit === '×' ? ratio(t.ratio) : `${sig(t.ratio)} ${t.unit}`
    out.push(`    ${pad(t.text, 58)}${pad(t.measured || '', 28)}${pad(`${got} (want ${want})`, 28)}${outcome(t)}`.trimEnd())
    const b = t.bound
    if (b && b.beyond && t.met === false) {
      out.push(`      beyond this design here: wants ${fmt(b.unit, b.need)}, at best ${fmt(b.unit, b.best)} (${b.why})`)
    }
  }
  const met = targets.filter((t) => t.met === true).length
  const unknown = targets.filter((t) => t.met == null).length
  const beyond = targets.filter((t) => t.met === false && t.bound && t.bound.beyond).length
  const notMet = targets.filter((t) => t.met === false).length
  out.push(`  ${met} of ${targets.length} met${unknown ? `, ${unknown} not measured` : ''}${notMet ? `; ${beyond} of the ${notMet} not met ask for more than the bounds allow` : ''}`)
  return out.join('\n')
}

// The bounds' inputs (bounds.js), as measured.
function floorsText (floors, x25519Seconds) {
  const out = ['Bounds (bench/bounds.js): what every message and link costs here at least, measured in this run in a fresh process']
  const sizes = Object.keys(floors.json)
  const label = (size) => SIZE_LABEL[size] || `${size} B`
  for (const [what, key] of [['JSON.stringify alone', 'stringify'], ['JSON.parse alone', 'parse']]) {
    const cells = sizes.map((s) => {
      const j = floors.json[s]
      return `${label(s)} ${fmt('msg/s', j[key])} (${fmt('MB/s', j[key] * j.bytes / 1e6)})`
    })
    out.push(`  ${pad(what + ', one core', 34)}${cells.join(', ')}`)
  }
  // Not a bound (see bounds.js): what a received message's hop from the
  // tokio thread to the JavaScript thread costs, there and back.
  if (floors.crossing) out.push(`  ${pad('JavaScript -> tokio -> JavaScript', 34)}p50 ${fmt('µs', floors.crossing.p50)}, p99 ${fmt('µs', floors.crossing.p99)} (a call answered from a tokio thread; every message received makes the second half; not a bound)`)
  if (x25519Seconds != null) out.push(`  ${pad('X25519 of one link, both ends', 34)}${fmt('µs', x25519Seconds * 1e6)} in series on one core`)
  return out.join('\n')
}

function storeText (store, rounds, links) {
  const out = [`KK handshakes per second against a node whose partners are in PostgreSQL (${links} in a row, median of ${rounds})`]
  const base = store.callback && store.callback.value
  for (const [name, v] of Object.entries(store)) {
    const detail = v.stats ? `   (${v.stats.lookups} database lookups, ${v.stats.cacheHits} cache hits in the last round)` : ''
    const r = name !== 'callback' && base ? `  ${ratio(v.value / base)} the callback store` : ''
    out.push(`  ${pad(name, 26)}${pad(fmt('links/s', v.value), 10)}${r}${detail}`)
  }
  return out.join('\n')
}

module.exports = { table, targetsText, floorsText, storeText, fmt, ratio, sig, SIZE_LABEL }

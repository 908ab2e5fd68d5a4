'use strict'
// The soak's figures as plain lines.

const MiB = 1024 * 1024
const mib = (b) => (b == null ? '-' : (b / MiB).toFixed(1))
const byCode = (o) => Object.entries(o || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'

function format (r) {
  if (r.skipped) return [`soak ${r.variant || ''}: SKIPPED: ${r.skipped}`]
  const f = r.figures
  const L = []
  L.push(`soak ${r.variant} (${r.mode}, ${r.nodes} nodes): ${Math.round(r.duration / 1000)} s of traffic, ${Math.round(r.elapsed / 1000)} s in all`)
  L.push(`  faults: ${byCode(r.faults)}; SIGKILLs ${r.kills}; simultaneous opens ${r.races.count} (both links formed in ${r.races.crossed}, no link before in ${r.races.clean})`)
  L.push(`  sent ${f.sent} (${mib(f.bytes)} MiB): resolved ${f.resolved}, rejected ${f.rejected}, outcome unknown (sender killed) ${f.unknown}, never settled ${f.unsettled}`)
  L.push(`  rejected by code: ${byCode(f.rejectedBy)}`)
  L.push(`  delivered ${f.delivered} (of which sent by a killed sender that could not record the send: ${f.deliveredUnrecorded}); duplicated ${f.duplicated}; reordered within a link ${f.reorderedInLink} (across links, for information: ${f.reorderedAcrossLinks})`)
  L.push(`  resolved but never delivered: lost to a killed receiver ${f.lostKilledReceiver}, to a killed sender ${f.lostKilledSender} (windows: ${r.windows.D} ms before the send, ${r.windows.W} ms after the resolution), on a link whose sender saw it fail (clean: false) ${f.lostBrokenLink}; unexplained ${f.lostUnexplained} (on a link closed cleanly ${f.lostCleanLink}, of them closed by the other side ${f.lostCleanPeerClosed}; on no link ${f.lostNoLink})`)
  L.push(`  messages written by the close events' count ${f.writtenByCloses}, sends resolved ${f.resolvedOfSurvivors} (senders never killed)`)
  L.push(`  delivered though rejected ${f.deliveredRejected}; delivered but never sent ${f.phantom}; wrong agent / corrupt / misrouted ${f.badAgent} / ${f.corrupt} / ${f.misrouted}`)
  const lat = Object.entries(f.latency).map(([k, v]) => `${k} ${v.n}: ${v.min}/${v.mean}/${v.max}`).join('; ')
  L.push(`  settle time ms (min/mean/max): ${lat}`)
  L.push(`  links: opened ${r.links.open}, closed in order ${r.links.closeClean}, closed abnormally ${r.links.closeUnclean} (${byCode(r.links.closeUncleanBy)}; messages written on them ${r.links.writtenOnUnclean})`)
  L.push(`  refused: ${byCode(r.links.refusedBy)}; failed handshakes: ${byCode(r.links.errorBy)}`)
  if (r.variant === 'db') {
    for (const o of r.outages) {
      L.push(`  database down ${o.restart - o.stopped} ms (stores noticed after ${o.noticed - o.stopped} ms, back ${o.recovered - o.restarted} ms after the restart): links opened while down ${o.opensWhileDown}, refusals ${o.refusedWhileDown}, pairs talking again ${o.pairsBack} (last after ${o.pairsBackMax} ms)`)
    }
  }
  if (r.variant === 'netns') {
    const n = r.net
    L.push(`  handshake timeouts: ${n.handshakeTimeouts} sends rejected${n.handshakeTimeoutMs ? ` after ${n.handshakeTimeoutMs.min}..${n.handshakeTimeoutMs.max} ms` : ''}, ${n.responderTimeouts} on responders; after a network fault, pairs whose dials failed got through again after ${n.retryMedianMs} ms (median of ${n.retries}), ${n.retryMaxMs} ms at most; longest wait for a pair's next delivery (TCP retransmission back-off included) ${n.recoveryMaxMs} ms`)
    if (r.impair) L.push(`  network (impair.py): ${byCode(r.impair)}`)
  }
  L.push('  RSS MiB per node (start / after warm-up / end, growth): ' + r.rss.map((x) => `#${x.node}${x.incarnations > 1 ? ` (${x.incarnations} processes)` : ''} ${mib(x.start)} / ${mib(x.warm)} / ${mib(x.end)}${x.growth != null ? `, ${x.growth >= 0 ? '+' : ''}${mib(x.growth)}` : ''}`).join('; '))
  for (const c of r.checks) L.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`)
  for (const x of r.failures) L.push(`  FAIL ${x}`)
  for (const [k, v] of Object.entries(r.examples)) if (v.length) L.push(`  examples of ${k}: ${JSON.stringify(v)}`)
  if (r.notes.length) L.push(`  notes: ${r.notes.slice(0, 10).join('; ')}${r.notes.length > 10 ? ` (+${r.notes.length - 10})` : ''}`)
  L.push(`  => ${r.ok ? 'PASS' : 'FAIL'}`)
  return L
}

module.exports = { format }

'use strict'
// The soak's books: every send, its outcome and its deliveries, from the
// records the nodes stream (see soak/node.js), and the faults the controller
// caused. `analyze()` turns them into the figures and the invariants.
//
// Definitions (what the figures mean):
// - A message is one `send` call: (sender node s, sender incarnation inc,
//   receiver node r, seq), seq counting 1, 2, ... per (s, inc, r). Its id is
//   independent of links and of receiver restarts.
// - resolved: its promise resolved, which README ("Delivery guarantees")
//   defines as "its frames were handed to the socket" (written to the kernel),
//   not "read by the other side". rejected: its promise rejected, by code.
//   unknown: the sender was SIGKILLed before it reported an outcome.
// - delivered: an `onMessage` call for it in some incarnation of r.
//   duplicated: a second delivery of the same message (in any incarnation).
// - reordered (within a link): on one link of one receiver incarnation, a
//   message from a sender incarnation whose seq is below one already
//   delivered on that link from that sender incarnation. For messages from
//   one sender incarnation on one link, delivery order must equal send
//   order. Reordering across links (a message on a newer link overtaking one
//   still being read on the older) is counted apart, for information.
// - resolved but never delivered, split by cause:
//   - lost to a killed receiver: r was SIGKILLed between (send call - D) and
//     (resolution + W): the bytes were in a socket, kernel buffer or node
//     that died (or on a link whose other end was already dead).
//   - lost to a killed sender: s was SIGKILLed within W after the
//     resolution: a killed process's socket is reset when it has unread
//     input, and what its kernel still held for the peer is thrown away.
//   - lost on a link that failed: the sender's `close` event for the link
//     it was written on says `clean: false` (README: "if a link dies
//     abnormally, messages written shortly before may not have been read.
//     The close event then has clean: false"). The link a message was
//     written on is the sender's link to r that was open when the send
//     resolved (from its `open` and `close` events, +-TOLERANCE ms; while
//     one link retires and the next takes over both count, and the message
//     counts as on a failed link if either failed).
//   - lost on a link its sender saw close cleanly, receiver alive: must be 0.
//   - lost with no link of the sender's open at the time: must be 0.
//   The last two are "lost, unexplained".
const kMaxExamples = 5
const TOLERANCE = 500

class Ledger {
  constructor () {
    this.streams = new Map() // `${s}:${inc}:${r}` -> stream
    this.perLink = new Map() // `${r}:${rInc}:${link}:${s}:${sInc}` -> highest seq delivered
    this.perRecv = new Map() // `${r}:${rInc}:${s}:${sInc}` -> highest seq delivered on any link
    this.pairDeliveries = new Map() // `${s}>${r}` -> [t] of deliveries
    this.events = [] // [node, inc, type, peer, link, t, reason, clean, written, initiator]
    this.listening = [] // [node, inc, t, listening]
    this.faults = [] // { type, nodes, a, b, ... }
    this.counts = { reorderedInLink: 0, reorderedAcrossLinks: 0, duplicated: 0, badAgent: 0, corrupt: 0, misrouted: 0, deliveries: 0 }
    this.examples = { reorderedInLink: [], duplicated: [], badAgent: [], corrupt: [], misrouted: [] }
  }

  _stream (s, inc, r) {
    const key = `${s}:${inc}:${r}`
    let st = this.streams.get(key)
    if (!st) {
      st = { s, inc, r, tCall: [], bytes: [], tSet: [], out: [], code: [], del: [], tDel: [], rInc: [] }
      this.streams.set(key, st)
    }
    return st
  }

  _example (what, ex) {
    if (this.examples[what].length < kMaxExamples) this.examples[what].push(ex)
  }

  // Records from one node incarnation, in the order it made them.
  ingest (node, inc, records) {
    for (const x of records) {
      switch (x[0]) {
        case 0: { const st = this._stream(node, inc, x[1]); st.tCall[x[2] - 1] = x[3]; st.bytes[x[2] - 1] = x[4]; break }
        case 1: { const st = this._stream(node, inc, x[1]); st.tSet[x[2] - 1] = x[3]; st.out[x[2] - 1] = 1; break }
        case 2: { const st = this._stream(node, inc, x[1]); st.tSet[x[2] - 1] = x[3]; st.out[x[2] - 1] = 2; st.code[x[2] - 1] = x[4]; break }
        case 3: this._delivered(node, inc, x); break
        case 4: this.events.push([node, inc, x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8]]); break
        case 5: this.listening.push([node, inc, x[1], x[2]]); break
      }
    }
  }

  _delivered (r, rInc, [, s, sInc, seq, link, t, flags]) {
    this.counts.deliveries++
    const where = { from: `${s}#${sInc}`, to: `${r}#${rInc}`, seq, link }
    if (flags & 1) { this.counts.badAgent++; this._example('badAgent', where) }
    if (flags & 2) { this.counts.corrupt++; this._example('corrupt', where) }
    if (flags & 4) { this.counts.misrouted++; this._example('misrouted', where) }
    const st = this._stream(s, sInc, r)
    const i = seq - 1
    st.del[i] = (st.del[i] || 0) + 1
    if (st.del[i] > 1) { this.counts.duplicated++; this._example('duplicated', where) } else { st.tDel[i] = t; st.rInc[i] = rInc }
    const lk = `${r}:${rInc}:${link}:${s}:${sInc}`
    const last = this.perLink.get(lk) || 0
    if (seq <= last) {
      if (st.del[i] === 1) { this.counts.reorderedInLink++; this._example('reorderedInLink', { ...where, after: last }) }
    } else this.perLink.set(lk, seq)
    const rk = `${r}:${rInc}:${s}:${sInc}`
    const lastAny = this.perRecv.get(rk) || 0
    if (seq < lastAny && st.del[i] === 1 && seq > last) this.counts.reorderedAcrossLinks++
    if (seq > lastAny) this.perRecv.set(rk, seq)
    const pk = `${s}>${r}`
    let list = this.pairDeliveries.get(pk)
    if (!list) this.pairDeliveries.set(pk, (list = []))
    list.push(t)
    list.sorted = false
  }

  fault (f) {
    this.faults.push(f)
    return f
  }

  // The first delivery from s to r at or after time t (ms), or null.
  firstDeliveryAfter (s, r, t) {
    const list = this.pairDeliveries.get(`${s}>${r}`)
    if (!list) return null
    if (!list.sorted) { list.sort((a, b) => a - b); list.sorted = true }
    let lo = 0
    let hi = list.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (list[mid] < t) lo = mid + 1
      else hi = mid
    }
    return lo < list.length ? list[lo] : null
  }

  // Sends from s to r (any incarnation of s): how many were rejected with
  // one of `codes` between a and b, and the first one called at or after t
  // that resolved ({ tCall, tSet } or null).
  sendsBetween (s, r, codes, a, b, t) {
    let rejected = 0
    let first = null
    for (const st of this.streams.values()) {
      if (st.s !== s || st.r !== r) continue
      for (let i = 0; i < st.tCall.length; i++) {
        const tc = st.tCall[i]
        if (tc == null) continue
        if (st.out[i] === 2 && st.tSet[i] >= a && st.tSet[i] <= b && codes.includes(st.code[i])) rejected++
        if (st.out[i] === 1 && tc >= t && (!first || tc < first.tCall)) first = { tCall: tc, tSet: st.tSet[i] }
      }
    }
    return { rejected, first }
  }

  /**
   * The figures. `incs`: Map `${node}:${inc}` -> { killedAt, diedAt, closed }.
   * `opts`: { D, W, settleBound }.
   */
  analyze (incs, { D, W, settleBound }) {
    const f = {
      sent: 0, resolved: 0, rejected: 0, rejectedBy: {}, unknown: 0, unsettled: 0,
      delivered: 0, duplicated: this.counts.duplicated, reorderedInLink: this.counts.reorderedInLink,
      reorderedAcrossLinks: this.counts.reorderedAcrossLinks, deliveredRejected: 0, deliveredUnrecorded: 0,
      phantom: 0, badAgent: this.counts.badAgent, corrupt: this.counts.corrupt, misrouted: this.counts.misrouted,
      lostKilledReceiver: 0, lostKilledSender: 0, lostBrokenLink: 0, lostCleanLink: 0, lostCleanPeerClosed: 0, lostNoLink: 0, lostUnexplained: 0,
      undeliveredUnknown: 0, stuck: 0, settleMax: 0, latency: {}, bytes: 0
    }
    const examples = { ...this.examples, lostUnexplained: [], lostOther: [], unsettled: [], deliveredRejected: [], phantom: [], stuck: [] }
    const ex = (what, e) => { if (examples[what].length < kMaxExamples) examples[what].push(e) }
    const kills = new Map() // node -> [t] of SIGKILLs
    for (const [key, v] of incs) {
      if (v.killedAt == null) continue
      const node = Number(key.split(':')[0])
      if (!kills.has(node)) kills.set(node, [])
      kills.get(node).push(v.killedAt)
    }
    // Each sender incarnation's links to each peer, from its events.
    const linksOf = new Map() // `${s}:${inc}:${r}` -> [{ link, open, close, clean }]
    const byLink = new Map()
    for (const e of this.events) {
      const [node, inc, type, peer, link, t, reason, clean, written] = e
      if (type !== 'open' && type !== 'close') continue
      const key = `${node}:${inc}:${link}`
      let l = byLink.get(key)
      if (!l) {
        l = { link, open: null, close: null, clean: null, written: 0 }
        byLink.set(key, l)
        const k = `${node}:${inc}:${peer}`
        if (!linksOf.has(k)) linksOf.set(k, [])
        linksOf.get(k).push(l)
      }
      if (type === 'open') l.open = t
      else { l.close = t; l.clean = clean; l.written = written; l.reason = reason }
    }
    // The links a message resolved at `t` may have been written on.
    const candidates = (s, inc, r, t) => (linksOf.get(`${s}:${inc}:${r}`) || []).filter((l) =>
      l.open != null && l.open - TOLERANCE <= t && (l.close == null || t <= l.close + TOLERANCE))
    const lat = (code, ms) => {
      const l = f.latency[code] || (f.latency[code] = { n: 0, min: Infinity, max: 0, sum: 0 })
      l.n++; l.sum += ms; l.min = Math.min(l.min, ms); l.max = Math.max(l.max, ms)
    }

    for (const st of this.streams.values()) {
      const sender = incs.get(`${st.s}:${st.inc}`) || {}
      const n = Math.max(st.tCall.length, st.del.length, st.out.length)
      for (let i = 0; i < n; i++) {
        const called = st.tCall[i] != null
        const del = st.del[i] || 0
        if (del > 0) f.delivered++
        if (!called) {
          if (del > 0) {
            // The send record went down with a killed sender, or never existed.
            if (sender.killedAt != null) f.deliveredUnrecorded++
            else { f.phantom++; ex('phantom', { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1 }) }
          }
          continue
        }
        f.sent++
        f.bytes += st.bytes[i] || 0
        const out = st.out[i]
        if (out === 1) {
          f.resolved++
          const ms = st.tSet[i] - st.tCall[i]
          lat('resolved', ms)
          f.settleMax = Math.max(f.settleMax, ms)
          if (ms > settleBound) { f.stuck++; ex('stuck', { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1, ms }) }
          if (del === 0) {
            const lo = st.tCall[i] - D
            const hi = st.tSet[i] + W
            const tag = { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1, called: st.tCall[i], resolved: st.tSet[i] }
            if ((kills.get(st.r) || []).some((t) => t >= lo && t <= hi)) f.lostKilledReceiver++
            else if (sender.killedAt != null && sender.killedAt <= hi) f.lostKilledSender++
            else {
              const on = candidates(st.s, st.inc, st.r, st.tSet[i])
              if (on.some((l) => l.close != null && !l.clean)) f.lostBrokenLink++
              else {
                if (on.length) f.lostCleanLink++
                else f.lostNoLink++
                // Closed by the other side (the sender saw its end first): see README "### Soak".
                if (on.some((l) => l.reason === 'PEER_CLOSED')) f.lostCleanPeerClosed++
                else ex('lostOther', { ...tag, links: on })
                f.lostUnexplained++
                // When the sender died, if it did: how far past the window.
                ex('lostUnexplained', { ...tag, links: on, senderKilledAt: sender.killedAt })
              }
            }
          }
        } else if (out === 2) {
          f.rejected++
          const code = st.code[i]
          f.rejectedBy[code] = (f.rejectedBy[code] || 0) + 1
          const ms = st.tSet[i] - st.tCall[i]
          lat(code, ms)
          f.settleMax = Math.max(f.settleMax, ms)
          if (ms > settleBound) { f.stuck++; ex('stuck', { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1, ms, code }) }
          if (del > 0) { f.deliveredRejected++; ex('deliveredRejected', { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1, code }) }
        } else if (sender.killedAt != null) {
          f.unknown++
          if (del === 0) f.undeliveredUnknown++
          if (sender.killedAt - st.tCall[i] > settleBound) { f.stuck++; ex('stuck', { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1, pendingAtKill: sender.killedAt - st.tCall[i] }) }
        } else {
          f.unsettled++
          ex('unsettled', { from: `${st.s}#${st.inc}`, to: st.r, seq: i + 1, called: st.tCall[i] })
        }
      }
    }
    // For information: messages the close events say were written, against
    // the resolved sends, for sender incarnations that lived to the end.
    f.writtenByCloses = 0
    f.resolvedOfSurvivors = 0
    for (const [k, list] of linksOf) {
      const [s, inc] = k.split(':')
      if ((incs.get(`${s}:${inc}`) || {}).killedAt != null) continue
      for (const l of list) f.writtenByCloses += l.written
    }
    for (const st of this.streams.values()) {
      if ((incs.get(`${st.s}:${st.inc}`) || {}).killedAt != null) continue
      for (const o of st.out) if (o === 1) f.resolvedOfSurvivors++
    }
    for (const l of Object.values(f.latency)) { l.mean = Math.round(l.sum / l.n); delete l.sum }

    // Links: opened, closed in order or not (by reason), refused, failed.
    const links = { open: 0, closeClean: 0, closeUnclean: 0, closeUncleanBy: {}, refusedBy: {}, errorBy: {}, writtenOnUnclean: 0 }
    for (const e of this.events) {
      const [, , type, , , , reason, clean, written] = e
      if (type === 'open') links.open++
      else if (type === 'close') {
        if (clean) links.closeClean++
        else { links.closeUnclean++; links.closeUncleanBy[reason] = (links.closeUncleanBy[reason] || 0) + 1; links.writtenOnUnclean += written }
      } else if (type === 'refused') links.refusedBy[reason] = (links.refusedBy[reason] || 0) + 1
      else if (type === 'error') links.errorBy[reason] = (links.errorBy[reason] || 0) + 1
    }
    return { figures: f, links, examples }
  }
}

module.exports = { Ledger }

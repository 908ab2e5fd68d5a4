'use strict'
// Small helpers shared by the parent and the child processes.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Monotonic nanoseconds. process.hrtime is CLOCK_MONOTONIC on Linux, one clock
// for every process of the machine, so a sender's start and a receiver's end
// taken in two processes can be subtracted.
const hrnow = () => process.hrtime.bigint()

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return null
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

// Nearest-rank percentile of an ascending array.
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]

// Resolves with `promise`, or rejects with a message naming `what` after `ms`.
function withDeadline (promise, ms, what) {
  let timer
  const expired = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${what} did not finish within ${(ms / 1000).toFixed(0)} s`)), ms)
  })
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}

module.exports = { sleep, hrnow, median, percentile, withDeadline }

'use strict'
// Bounded waiting, shared by every suite: nothing here waits forever.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Poll until `predicate()` is truthy; fail with `what` after `ms`.
async function waitFor (predicate, what = 'condition', ms = 5000) {
  const end = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

// Resolves with the error a promise rejects with; fails if it resolves, or
// if it neither resolves nor rejects within `ms`.
async function rejection (promise, ms = 8000) {
  let timer
  const late = new Error('neither resolved nor rejected in time')
  const timeout = new Promise((resolve, reject) => { timer = setTimeout(() => reject(late), ms) })
  try {
    await Promise.race([promise, timeout])
  } catch (err) {
    if (err === late) throw err
    return err
  } finally { clearTimeout(timer) }
  throw new Error('expected a rejection, but it resolved')
}

module.exports = { sleep, waitFor, rejection }

'use strict'
// Mocha's spec reporter, plus the totals that scripts/test.js adds to cargo's.
const Mocha = require('mocha')
const { writeFileSync } = require('fs')
const { EVENT_RUN_END } = Mocha.Runner.constants

class SpecWithTotals extends Mocha.reporters.Spec {
  constructor (runner, options) {
    super(runner, options)
    runner.once(EVENT_RUN_END, () => {
      const { passes, failures, pending } = runner.stats
      if (process.env.MOCHA_SUMMARY_FILE) {
        writeFileSync(process.env.MOCHA_SUMMARY_FILE, JSON.stringify({ passes, failures, pending }))
      } else {
        console.log(`${passes} passed, ${failures} failed` + (pending ? `, ${pending} skipped` : ''))
      }
    })
  }
}
module.exports = SpecWithTotals

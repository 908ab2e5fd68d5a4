'use strict'
// One progress line on stderr: rewritten in place on a terminal, plain lines
// otherwise (a log file then reads as a list of what was measured, in order).

const tty = process.stderr.isTTY
let shown = false

function progress (text) {
  if (tty) {
    const width = (process.stderr.columns || 100) - 1
    process.stderr.write('\r' + text.slice(0, width) + '\x1b[K')
    shown = true
  } else {
    process.stderr.write(text + '\n')
  }
}

// Clear the line before anything else goes to the terminal.
progress.clear = () => {
  if (tty && shown) process.stderr.write('\r\x1b[K')
  shown = false
}

module.exports = { progress }

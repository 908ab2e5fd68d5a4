'use strict'
// Errors as JavaScript sees them: every code comes from Rust (src/error.rs),
// moved from the front of a native error's message into `err.code`.

const native = require('./native')

// Error codes come from Rust (src/error.rs); this layer reports a few of them
// itself. Looking them up here makes a misspelt or unlisted code fail at load.
const CODES = new Set(native.errorCodes())
function code (name) {
  if (!CODES.has(name)) throw new Error(`mychips-noise: ${name} is not an error code of the addon`)
  return name
}
const ERR_INVALID_ARGUMENT = code('ERR_INVALID_ARGUMENT')
const ERR_INTERNAL = code('ERR_INTERNAL')
const ERR_LISTENER = code('ERR_LISTENER')
const ERR_NO_LISTENER = code('ERR_NO_LISTENER')

// napi's own argument checks (a string where a number belongs, say) throw
// with these statuses: to the caller they are invalid arguments like any other.
const NAPI_ARGUMENT_STATUSES = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected',
  'FunctionExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected'])

// Native errors carry their stable code at the front of the message ("ERR_X: text");
// move it into err.code, the way Node's own errors carry theirs.
function fromNative (err) {
  const m = err && /^(ERR_[A-Z_]+): ([\s\S]*)$/.exec(err.message)
  if (m) {
    err.code = m[1]
    err.message = m[2]
  } else if (err && NAPI_ARGUMENT_STATUSES.has(err.code)) {
    err.code = ERR_INVALID_ARGUMENT
  } else if (err && err.code === 'GenericFailure') {
    err.code = ERR_INTERNAL // a Rust panic, caught at the binding
  }
  return err
}

// Run a synchronous native call, with its error mapped.
function call (fn) {
  try { return fn() } catch (err) { throw fromNative(err) }
}

function invalid (message) {
  const err = new TypeError(message)
  err.code = ERR_INVALID_ARGUMENT
  return err
}


// An Error with a stable code, for what this layer reports itself.
function coded (codeName, message, Ctor = Error) {
  const err = new Ctor(message)
  err.code = code(codeName)
  return err
}

module.exports = { CODES, code, coded, invalid, fromNative, call, ERR_INVALID_ARGUMENT, ERR_INTERNAL, ERR_LISTENER, ERR_NO_LISTENER }

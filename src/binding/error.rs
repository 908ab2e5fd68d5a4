//! The one place where crate errors become JavaScript errors.
//!
//! napi's async methods only reject with its own status codes, so the stable
//! code travels at the front of the message, `ERR_*: text`, and index.js
//! (`fromNative`) moves it into `err.code`. Every export maps through here,
//! so the format is the same for sync and async calls.

use crate::error::Error;

pub type Result<T> = napi::Result<T>;

pub fn to_js(err: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{}: {err}", err.code()))
}

//! The protocol core: every rule of PROTOCOL.md, and no I/O.
//!
//! Nothing here touches sockets, tasks, the clock (time is an argument),
//! randomness (handshake ephemerals come from snow, timestamps and identities
//! from the caller), the database or napi. The driver moves bytes; this
//! module decides what they mean.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod conn;
pub mod frame;
pub mod keys;
pub mod payload;
pub mod replay;
pub mod suite;
pub mod transport;

#[cfg(test)]
mod tests;

pub use conn::{Answer, Config, Connection, Dial, DialSpec, Event, Need, PeerInfo};
pub use keys::{Identity, Key};
pub use payload::Address;
pub use suite::Pattern;

//! The protocol core: every rule of docs/PROTOCOL.md, and no I/O.
//!
//! Nothing here touches sockets, tasks, the clock (time is an argument),
//! randomness (handshake ephemerals come from snow, timestamps and identities
//! from the caller), the database or napi. The driver moves bytes; this
//! module decides what they mean.
//!
//! - `conn`: one connection's inputs and outputs; `state`, `initiator` and
//!   `responder`: its state machine, one transition at a time;
//! - `policy`: who a peer is (which key each side must prove, when to ask);
//! - `config`: settings, defaults and their valid ranges;
//! - `frame`, `payload`, `suite`, `transport`, `replay`, `keys`: the wire;
//!   `x25519`: the handshakes' Diffie-Hellman.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod conn;
pub mod dial;
pub mod event;
pub mod frame;
mod initiator;
pub mod keys;
pub mod payload;
pub mod policy;
pub mod replay;
mod responder;
mod state;
pub mod suite;
pub mod transport;
pub mod x25519;

#[cfg(test)]
mod tests;

pub use config::Config;
pub use conn::Connection;
pub use dial::{Dial, DialSpec};
pub use event::{Answer, Event, Need, PeerInfo};
pub use keys::{Identity, Key};
pub use payload::Address;
pub use suite::Pattern;

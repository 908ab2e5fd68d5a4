//! MyCHIPs peer link: the Noise protocol over TCP, as a Node.js native addon.
//!
//! Layers, with dependencies pointing one way (`binding -> driver -> proto`):
//! - [`proto`]: the protocol core, no I/O (frames and events in and out);
//! - [`driver`]: tokio tasks that own sockets, timers and the agent -> link map;
//! - `binding`: the napi translation layer (the only module that uses napi).

pub mod driver;
pub mod error;
pub mod proto;

#[cfg(not(test))]
mod binding;

pub use error::{Error, Result};

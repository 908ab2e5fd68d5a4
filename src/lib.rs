//! MyCHIPs peer link: the Noise protocol over TCP, as a Node.js native addon.
//!
//! Layers, with dependencies pointing one way (`binding -> driver -> {store, proto}`):
//! - [`proto`]: the protocol core, no I/O (frames and events in and out);
//! - [`store`]: decisions about peers (keys, partners, tickets): PostgreSQL
//!   with a cache kept true by LISTEN/NOTIFY, or the application's callbacks;
//! - [`driver`]: tokio tasks that own sockets, timers and the agent -> link map;
//! - `binding`: the napi translation layer (the only module that uses napi).

pub mod bounded;
pub mod driver;
pub mod error;
pub mod proto;
mod sendq;
pub mod store;

#[cfg(all(feature = "addon", not(test)))]
mod binding;

pub use error::{Error, Result};

//! Fuzz targets for the protocol core (`mychips_noise::proto`), and what
//! they share: the input format of the connection targets (`script`) and the
//! harness that runs a fuzzed connection against a genuine peer (`session`).
//!
//! The targets are in `fuzz_targets/`; `scripts/fuzz.sh` runs them, and
//! `examples/seeds.rs` writes the seed corpus from real sessions.

pub mod script;
pub mod session;

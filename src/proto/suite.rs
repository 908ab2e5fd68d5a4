//! The Noise cipher suite and a thin wrapper over snow's handshake state that
//! also runs in raw mode (docs/PROTOCOL.md §3, §7).

use snow::params::NoiseParams;

use super::keys::{key_from_slice, Key};
use super::transport::Transport;
use crate::error::{Error, Result};

/// Noise message 1 patterns a connection can open with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// First contact with a ticket (`I`).
    IK,
    /// Partners that know each other's keys (`N` + `K`).
    KK,
    /// Anonymous referee query (`Q`).
    NK,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Self::IK => "IK",
            Self::KK => "KK",
            Self::NK => "NK",
        }
    }
}

/// `Noise_<pattern>_25519_ChaChaPoly_BLAKE2b`: what noise-protocol 3.x names
/// its suite, and what snow supports with its default features.
pub fn params(pattern: &str) -> NoiseParams {
    let name = format!("Noise_{pattern}_25519_ChaChaPoly_BLAKE2b");
    // CANNOT FAIL: the patterns passed here are the literals IK, KK, NK and N,
    // all of which snow knows; the unit test `suite_names_parse` checks each.
    #[allow(clippy::expect_used)]
    name.parse().expect("a known Noise pattern")
}

/// A handshake in progress: snow's state, or nothing in raw mode.
pub struct Handshake {
    noise: Option<Box<snow::HandshakeState>>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.noise.is_some() { "Handshake(noise)" } else { "Handshake(raw)" })
    }
}

fn build(pattern: &str, local: Option<&Key>, remote: Option<&Key>, initiator: bool) -> Result<Handshake> {
    let internal = |e: snow::Error| Error::Internal(format!("noise setup: {e}"));
    let mut builder = snow::Builder::with_resolver(params(pattern), super::x25519::resolver());
    if let Some(k) = local {
        builder = builder.local_private_key(k).map_err(internal)?;
    }
    if let Some(k) = remote {
        builder = builder.remote_public_key(k).map_err(internal)?;
    }
    let state = if initiator { builder.build_initiator() } else { builder.build_responder() };
    Ok(Handshake { noise: Some(Box::new(state.map_err(internal)?)) })
}

impl Handshake {
    pub fn raw() -> Self {
        Self { noise: None }
    }

    pub fn initiator(pattern: &str, local: Option<&Key>, remote: Option<&Key>) -> Result<Self> {
        build(pattern, local, remote, true)
    }

    pub fn responder(pattern: &str, local: Option<&Key>, remote: Option<&Key>) -> Result<Self> {
        build(pattern, local, remote, false)
    }

    /// Write the next handshake message around `payload`.
    pub fn write(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        let Some(hs) = self.noise.as_mut() else { return Ok(payload.to_vec()) };
        let mut out = vec![0u8; payload.len() + 256];
        let n = hs.write_message(payload, &mut out).map_err(|e| Error::Internal(format!("noise write: {e}")))?;
        out.truncate(n);
        Ok(out)
    }

    /// Read the next handshake message and return its payload. Any failure is
    /// `Decrypt`: we say nothing more about why (snow's advice).
    pub fn read(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        let Some(hs) = self.noise.as_mut() else { return Ok(message.to_vec()) };
        let mut out = vec![0u8; message.len()];
        let n = hs.read_message(message, &mut out).map_err(|_| Error::Decrypt)?;
        out.truncate(n);
        Ok(out)
    }

    /// The remote static key that the handshake has proven so far.
    pub fn remote_static(&self) -> Option<Key> {
        self.noise.as_ref()?.get_remote_static().and_then(key_from_slice)
    }

    pub fn is_raw(&self) -> bool {
        self.noise.is_none()
    }

    /// Finish the handshake. `wrote_last` says whether this side wrote the
    /// last handshake message: noise-protocol gives that side the first
    /// Split() key, and so must we (docs/PROTOCOL.md §3).
    pub fn into_transport(self, wrote_last: bool) -> Result<Transport> {
        let Some(mut hs) = self.noise else { return Ok(Transport::raw()) };
        if !hs.is_handshake_finished() {
            return Err(Error::Internal("handshake not finished".into()));
        }
        let (k1, k2) = hs.dangerously_get_raw_split();
        if wrote_last {
            Transport::new(&k1, &k2)
        } else {
            Transport::new(&k2, &k1)
        }
    }
}

/// X25519 operations one link costs, both ends together (N, then KK):
/// each side's ephemeral key, and every `es`, `ss`, `ee`, `se` of both
/// patterns. What the handshake-rate ceiling divides by.
pub const DH_PER_LINK: u32 = 13;

/// Of those, the ephemeral key generations (one in N, two in KK): a
/// fixed-base multiplication, cheaper than the others.
pub const KEYGEN_PER_LINK: u32 = 3;

/// How many ephemeral X25519 key pairs this thread makes per second (a
/// fixed-base multiplication each, as the handshakes make them): runs for
/// about `for_how_long`.
pub fn keygen_rate(for_how_long: std::time::Duration) -> f64 {
    let resolver = super::x25519::resolver();
    let (Some(mut a), Some(mut rng)) =
        (resolver.resolve_dh(&snow::params::DHChoice::Curve25519), resolver.resolve_rng())
    else {
        return 0.0;
    };
    per_second(for_how_long, || a.generate(rng.as_mut()).is_ok())
}

/// How many X25519 scalar multiplications this thread does per second with
/// the primitives the handshakes use (for the benchmark's ceiling): runs
/// for about `for_how_long`.
pub fn dh_rate(for_how_long: std::time::Duration) -> f64 {
    let resolver = super::x25519::resolver();
    let (Some(mut a), Some(mut b), Some(mut rng)) = (
        resolver.resolve_dh(&snow::params::DHChoice::Curve25519),
        resolver.resolve_dh(&snow::params::DHChoice::Curve25519),
        resolver.resolve_rng(),
    ) else {
        return 0.0;
    };
    if a.generate(rng.as_mut()).is_err() || b.generate(rng.as_mut()).is_err() {
        return 0.0;
    }
    let peer = b.pubkey().to_vec();
    let mut out = [0u8; 32];
    per_second(for_how_long, || a.dh(&peer, &mut out).is_ok())
}

/// How many times a second `op` runs on this thread, over about
/// `for_how_long`; 0 if it ever fails.
fn per_second(for_how_long: std::time::Duration, mut op: impl FnMut() -> bool) -> f64 {
    let start = std::time::Instant::now();
    let mut done = 0u64;
    while start.elapsed() < for_how_long {
        for _ in 0..64 {
            if !op() {
                return 0.0;
            }
        }
        done += 64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_parse() {
        for p in ["IK", "KK", "NK", "N"] {
            assert_eq!(params(p).name, format!("Noise_{p}_25519_ChaChaPoly_BLAKE2b"));
        }
    }
}

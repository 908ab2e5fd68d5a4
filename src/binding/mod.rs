//! The napi binding: JavaScript <-> Rust conversion, error codes and callback
//! lifetimes. No protocol logic lives here; each export converts its
//! arguments, calls the driver and maps the result.

mod callbacks;
mod error;
mod options;
mod peer;

#[allow(unused_imports)]
pub use peer::NativePeer;

use napi_derive::napi;

use crate::proto::keys;
use error::{to_js, Result};
use options::Keypair;

/// The runtime every node of this process shares. Its worker count comes
/// from `MYCHIPS_NOISE_WORKERS` when set (1..=64), else tokio's default (one
/// per core).
#[napi_derive::module_init]
fn init() {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("MYCHIPS_NOISE_WORKERS").ok().and_then(|v| v.parse::<usize>().ok()) {
        b.worker_threads(n.clamp(1, 64));
    }
    // If it cannot be built, napi's own default runtime is used instead.
    if let Ok(rt) = b.thread_name("mychips-noise").enable_all().build() {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// Make a fresh identity: a random Ed25519 key pair, its agent id, and the
/// X25519 pair derived from it (the node's Noise static keys).
#[napi(catch_unwind)]
pub fn generate_keypair() -> Result<Keypair> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| to_js(crate::Error::Internal(format!("no randomness: {e}"))))?;
    Ok(Keypair::from(keys::Identity::from_seed(&seed)))
}

/// The identity for an Ed25519 key: a 32-byte seed, or a 64-byte libsodium
/// secret key (the seed, then the public key), for nodes that already have one.
#[napi(catch_unwind)]
pub fn keypair_from_seed(seed: napi::bindgen_prelude::Buffer) -> Result<Keypair> {
    let invalid = |why: &str| to_js(crate::Error::InvalidArgument(why.to_owned()));
    let id = match seed.len() {
        32 => {
            let seed: [u8; 32] = seed.as_ref().try_into().map_err(|_| invalid("a seed is 32 bytes"))?;
            keys::Identity::from_seed(&seed)
        }
        64 => keys::Identity::from_libsodium_secret(&seed).map_err(invalid)?,
        _ => return Err(invalid("an Ed25519 seed is 32 bytes (or a libsodium secret key, 64)")),
    };
    Ok(Keypair::from(id))
}

/// The identity of a JWK key pair: `crv` `Ed25519` (MyCHIPs' agent keys; the
/// agent id is `x`, the X25519 pair is derived) or `X25519` (used as it is;
/// the agent id is `x`). `d` is the private half, base64url.
#[napi(catch_unwind)]
pub fn keypair_from_jwk(crv: String, x: String, d: String) -> Result<Keypair> {
    let bad = |why: &str| to_js(crate::Error::InvalidArgument(format!("JWK key pair: {why}")));
    let id = match crv.as_str() {
        "Ed25519" => keys::Identity::from_ed25519_jwk(&x, &d).map_err(bad)?,
        "X25519" => {
            let private =
                keys::decode(&d).and_then(|b| keys::key_from_slice(&b)).ok_or_else(|| bad("d is not 32 bytes"))?;
            let id = keys::Identity::from_x25519(private, x.clone());
            if keys::decode(&x).as_deref() != Some(&id.public[..]) {
                return Err(bad("x is not the public key of d"));
            }
            id
        }
        other => return Err(bad(&format!("unsupported curve {other}"))),
    };
    Ok(Keypair::from(id))
}

/// The X25519 public key an agent id names, or null when the id is not the
/// base64url text of an Ed25519 public key.
#[napi(catch_unwind)]
pub fn agent_key(agent: String) -> Option<napi::bindgen_prelude::Buffer> {
    keys::agent_key(&agent).map(|k| k.to_vec().into())
}

/// The defaults of every `NoisePeer` option that has one.
#[napi(catch_unwind)]
pub fn defaults() -> options::PeerDefaults {
    peer::defaults()
}

/// X25519 operations a second on one core with the handshake's primitives,
/// measured for about `ms` milliseconds on the calling thread, and how many
/// one link costs (both ends): the benchmark's handshake ceiling. Then the
/// rate of ephemeral key generations (fixed-base, measured for `ms` too) and
/// how many of the operations per link are those.
#[napi(catch_unwind, js_name = "__dhRate")]
pub fn dh_rate(ms: u32) -> Vec<f64> {
    use crate::proto::suite;
    let each = std::time::Duration::from_millis(u64::from(ms.min(10_000)));
    vec![
        suite::dh_rate(each),
        f64::from(suite::DH_PER_LINK),
        suite::keygen_rate(each),
        f64::from(suite::KEYGEN_PER_LINK),
    ]
}

/// Resolves at once from a task on the runtime: a call from JavaScript to a
/// tokio thread and back, which is the crossing every received message makes
/// (a tokio thread reads it, the JavaScript thread handles it). The benchmark
/// times it and prints it beside the round trips.
#[napi(js_name = "__echo")]
pub async fn echo() {}

/// Every error code the addon can report (`err.code`, event `reason`).
#[napi(catch_unwind)]
pub fn error_codes() -> Vec<&'static str> {
    crate::error::CODES.to_vec()
}

/// Test hook: panic in Rust, synchronously (`"sync"`) or inside a promise
/// (`"async"`), to prove a panic becomes a JavaScript error instead of
/// aborting Node. Inert unless MYCHIPS_NOISE_TEST_HOOKS=1.
#[napi(catch_unwind, js_name = "__panicForTest", ts_return_type = "Promise<void> | void")]
pub fn panic_for_test(env: &napi::Env, kind: String) -> Result<Option<napi::bindgen_prelude::PromiseRaw<'_, ()>>> {
    if std::env::var("MYCHIPS_NOISE_TEST_HOOKS").as_deref() != Ok("1") {
        return Err(to_js(crate::Error::InvalidArgument("test hooks are off".into())));
    }
    match kind.as_str() {
        "sync" => panic!("deliberate panic for a test"),
        _ => env
            .spawn_future(async move {
                if kind == "async" {
                    panic!("deliberate panic in a future for a test");
                }
                Ok(())
            })
            .map(Some),
    }
}

//! Agent ids and keys (`proto::keys`): one spelling per key, no key of
//! small order behind an id, and the parsers of key material agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychips_noise::proto::keys::{self, Identity};

fn check_id(text: &str) {
    let checked = keys::check_agent_id(text);
    let key = keys::agent_key(text);
    if text.is_empty() {
        assert!(checked.is_err());
    }
    if let Some(bytes) = keys::decode(text) {
        assert_eq!(keys::encode(&bytes), text, "one spelling per byte string");
        if let Ok(ed) = <[u8; 32]>::try_from(bytes.as_slice()) {
            assert_eq!(key, keys::ed25519_to_x25519(&ed));
        }
    } else {
        assert_eq!(key, None, "a key only behind a canonical spelling");
    }
    if let Some(k) = key {
        assert_eq!(checked, Ok(()), "an id that names a key is a valid id");
        assert!(!keys::is_weak(&k), "no id names a key of small order");
    }
}

// The first byte picks a check, so the costly ones (a scalar multiplication
// each) do not slow the cheap ones down.
fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else { return };
    let key32 = <[u8; 32]>::try_from(data.get(..32).unwrap_or_default()).ok();
    match which % 5 {
        0 => {
            if let Ok(text) = std::str::from_utf8(data) {
                check_id(text);
            }
        }
        1 => {
            if let Some(ed) = key32 {
                let id = keys::encode(&ed);
                check_id(&id);
                if let Some(k) = keys::ed25519_to_x25519(&ed) {
                    assert!(!keys::is_weak(&k), "no Ed25519 key that passes maps to a weak X25519 key");
                    assert_eq!(keys::agent_key(&id), Some(k));
                }
            }
        }
        2 => {
            if let Some(private) = key32 {
                // An X25519 private key: its public half and a plain identity agree.
                let id = Identity::from_x25519(private, "plain".into());
                assert_eq!(keys::public_from_private(&private), id.public);
                assert!(!keys::is_weak(&id.public), "a clamped private key never gives a weak public key");
            }
        }
        3 => {
            if let Some((x, d)) = std::str::from_utf8(data).ok().and_then(|t| t.split_once(' ')) {
                if let Ok(id) = Identity::from_ed25519_jwk(x, d) {
                    assert_eq!(id.agent, x);
                    assert_eq!(keys::agent_key(x), Some(id.public), "the JWK's id names its key");
                    assert_eq!(keys::public_from_private(&id.private), id.public);
                }
            }
        }
        _ => {
            if let Ok(id) = Identity::from_libsodium_secret(data) {
                assert_eq!(data.len(), 64);
                assert_eq!(keys::decode(&id.agent).as_deref(), Some(&data[32..]));
                assert_eq!(keys::agent_key(&id.agent), Some(id.public));
            }
            if let Some(k) = key32 {
                let _ = keys::is_weak(&k);
            }
        }
    }
});

//! Agent ids and Noise static keys (docs/PROTOCOL.md §1).
//!
//! An agent id is the base64url (unpadded) text of an Ed25519 public key. The
//! node's Noise static pair is the X25519 pair that the standard birational map
//! derives from its Ed25519 pair, so an agent id alone names its Noise key.
//!
//! One key must answer to one agent string, and no key may be one whose
//! Diffie-Hellman results are all zero (docs/PROTOCOL.md §5b): ids are read
//! only in their canonical spelling (no padding, zero trailing bits), name a
//! key only when they encode a canonical Ed25519 point that is not of small
//! order, and small-order X25519 keys are refused wherever a key enters.

use base64::alphabet::URL_SAFE as URL_SAFE_ALPHABET;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::MontgomeryPoint;
use ed25519_dalek::SigningKey;

/// An X25519 key (public or private): 32 bytes.
pub type Key = [u8; 32];

/// Length of a Noise X25519 key.
pub const KEY_LEN: usize = 32;

/// A node identity: its agent id and the X25519 pair derived from its Ed25519 pair.
#[derive(Clone)]
pub struct Identity {
    pub agent: String,
    pub public: Key,
    pub private: Key,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("agent", &self.agent).field("private", &"<redacted>").finish()
    }
}

impl Identity {
    /// Derive an identity from a 32-byte Ed25519 seed. The caller supplies the
    /// randomness; this module has none of its own.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let mut private = signing.to_scalar_bytes();
        // libsodium's crypto_sign_ed25519_sk_to_curve25519 returns the clamped
        // scalar; clamp too, so both produce the same private key bytes.
        private[0] &= 248;
        private[31] &= 127;
        private[31] |= 64;
        Self {
            agent: encode(signing.verifying_key().as_bytes()),
            public: signing.verifying_key().to_montgomery().to_bytes(),
            private,
        }
    }
}

impl Identity {
    /// From an Ed25519 key pair as a JWK holds it (MyCHIPs' agent keys):
    /// `x` the public key and `d` the 32-byte seed, both base64url. The agent
    /// id is `x`; `d` must be its private half.
    pub fn from_ed25519_jwk(x: &str, d: &str) -> Result<Self, &'static str> {
        let seed: [u8; 32] = decode(d).and_then(|b| b.try_into().ok()).ok_or("d is not 32 bytes of base64url")?;
        let id = Self::from_seed(&seed);
        match decode(x) {
            Some(public) if encode(&public) == id.agent => Ok(id),
            _ => Err("x is not the public key of d"),
        }
    }

    /// From a libsodium Ed25519 secret key: the 32-byte seed, then the
    /// 32-byte public key, which must match.
    pub fn from_libsodium_secret(secret: &[u8]) -> Result<Self, &'static str> {
        let (seed, public) = secret.split_at_checked(32).ok_or("a libsodium secret key is 64 bytes")?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| "a libsodium secret key is 64 bytes")?;
        let id = Self::from_seed(&seed);
        if encode(public) != id.agent {
            return Err("the second half is not the public key of the first");
        }
        Ok(id)
    }

    /// From a plain X25519 private key (an X25519 JWK's `d`, or
    /// noise-protocol's `secretKey`), named `agent`.
    pub fn from_x25519(private: Key, agent: String) -> Self {
        Self { agent, public: public_from_private(&private), private }
    }
}

/// The X25519 public key named by an agent id, when the id is the canonical
/// base64url text of a canonical Ed25519 point that is not of small order.
/// `None` for anything else (for example the ids of nodes that run with plain
/// X25519 keys, whose keys come from the store).
pub fn agent_key(agent: &str) -> Option<Key> {
    ed25519_to_x25519(&decode(agent)?.try_into().ok()?)
}

/// The X25519 key of an Ed25519 public key (the birational map libsodium
/// calls `crypto_sign_ed25519_pk_to_curve25519`); `None` when the bytes are
/// not the canonical encoding of a point, or the point is of small order.
pub fn ed25519_to_x25519(ed: &[u8; 32]) -> Option<Key> {
    match classified(ed) {
        EdKey::Key(key) => Some(key),
        _ => None,
    }
}

/// What 32 bytes are as an Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdKey {
    /// Not a point: the id of a plain X25519 key, or nothing.
    NotAPoint,
    NotCanonical,
    SmallOrder,
    /// A usable key, and its X25519 form.
    Key(Key),
}

fn classify(ed: &[u8; 32]) -> EdKey {
    let compressed = CompressedEdwardsY(*ed);
    match compressed.decompress() {
        None => EdKey::NotAPoint,
        Some(p) if p.compress() != compressed => EdKey::NotCanonical,
        Some(p) if p.is_small_order() => EdKey::SmallOrder,
        Some(p) => EdKey::Key(p.to_montgomery().to_bytes()),
    }
}

/// `classify`, remembered for the last few thousand keys: decompressing a
/// point costs a square root (about 10 µs), and each new link asked it up to
/// three times for the same partner (the id check, the key lookup, and the
/// application's own `agentKey`). A pure function, so the memo changes no
/// answer; bounded, so ids from strangers only push older ones out.
fn classified(ed: &[u8; 32]) -> EdKey {
    static MEMO: once_cell::sync::Lazy<std::sync::Mutex<lru::LruCache<[u8; 32], EdKey>>> =
        once_cell::sync::Lazy::new(|| std::sync::Mutex::new(lru::LruCache::new(MEMO_SIZE)));
    // A poisoned memo is still a correct memo (entries are inserted whole).
    if let Some(known) = MEMO.lock().unwrap_or_else(|p| p.into_inner()).get(ed) {
        return *known;
    }
    let answer = classify(ed);
    MEMO.lock().unwrap_or_else(|p| p.into_inner()).put(*ed, answer);
    answer
}

const MEMO_SIZE: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(4096) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

/// True for an X25519 key of small order: every Diffie-Hellman result with
/// it is zero, so a handshake with it proves nothing. A clamped scalar is a
/// multiple of the cofactor 8, so exactly the keys with [8]P = 0 give zero:
/// four ladder steps (the bits of 8) instead of a full scalar multiplication,
/// which cost a handshake about as much as one of its Diffie-Hellmans.
pub fn is_weak(key: &Key) -> bool {
    MontgomeryPoint(*key).mul_bits_be([true, false, false, false].into_iter()).to_bytes() == [0u8; 32]
}

/// Why an agent id is refused, if it is: another spelling of a key's bytes
/// (padding, trailing bits), or an Ed25519 id that is not canonical or is of
/// small order. Other strings are opaque names (raw mode, plain-key nodes).
pub fn check_agent_id(agent: &str) -> Result<(), &'static str> {
    if agent.is_empty() {
        return Err("an agent id cannot be empty");
    }
    let lenient = GeneralPurpose::new(
        &URL_SAFE_ALPHABET,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let Ok(bytes) = lenient.decode(agent) else { return Ok(()) };
    let Ok(ed) = <[u8; 32]>::try_from(bytes) else { return Ok(()) };
    if decode(agent).is_none() {
        return Err("not the canonical spelling of its 32 bytes (no padding, zero trailing bits)");
    }
    match classified(&ed) {
        EdKey::NotAPoint | EdKey::Key(_) => Ok(()), // not a point: the id of a plain X25519 key
        EdKey::NotCanonical => Err("not the canonical encoding of its Ed25519 point"),
        EdKey::SmallOrder => Err("an Ed25519 point of small order"),
    }
}

/// base64url without padding, the form of `mychips.agents.agent`.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode canonical base64url: no padding, zero trailing bits, so each byte
/// string has exactly one spelling.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Check that a key given by the caller has the length of an X25519 key.
pub fn key_from_slice(bytes: &[u8]) -> Option<Key> {
    bytes.try_into().ok()
}

/// The X25519 public key of a private key (the scalar is clamped first, as
/// X25519 always does), for nodes that hold only their private key.
pub fn public_from_private(private: &Key) -> Key {
    MontgomeryPoint::mul_base_clamped(*private).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_names_the_derived_key() {
        let id = Identity::from_seed(&[7u8; 32]);
        assert_eq!(agent_key(&id.agent), Some(id.public));
        assert_eq!(id.agent.len(), 43, "32 bytes of unpadded base64url");
    }

    #[test]
    fn derived_private_key_matches_derived_public_key() {
        // X25519(private, basepoint) must give the public key derived from the
        // Ed25519 point, or handshakes with other implementations fail.
        let id = Identity::from_seed(&[42u8; 32]);
        // An IK initiator also needs the remote key; an NK responder needs only ours.
        let kp = snow::Builder::new(crate::proto::suite::params("NK"))
            .local_private_key(&id.private)
            .and_then(|b| b.build_responder());
        assert!(kp.is_ok());
        let hs = snow::resolvers::DefaultResolver;
        let mut dh = snow::resolvers::CryptoResolver::resolve_dh(&hs, &snow::params::DHChoice::Curve25519)
            .expect("snow has curve25519");
        dh.set(&id.private);
        assert_eq!(dh.pubkey(), id.public);
        assert_eq!(public_from_private(&id.private), id.public, "our derivation agrees with snow's DH");
    }

    #[test]
    fn libsodium_vector() {
        // Known answer computed with libsodium (sodium-native 4):
        // crypto_sign_seed_keypair(seed = 0x42 * 32), then
        // crypto_sign_ed25519_{pk,sk}_to_curve25519.
        let id = Identity::from_seed(&[0x42; 32]);
        assert_eq!(id.agent, "IVL40Zt5HSRFMkLhXy6rbLfP-ntqXtMAl5YOBpiB2xI");
        let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(&id.public), "cc4f2cdb695dd766f34118eb67b98652fed1d8bc49c330b119bbfa8a64989378");
        assert_eq!(hex(&id.private), "90e7595fc89e52fdfddce9c6a43d74dbf6047025ee0462d2d172e8b6a2841d6e");
    }

    #[test]
    fn jwk_and_libsodium_pairs_give_the_seed_identity() {
        let id = Identity::from_seed(&[0x42; 32]);
        let d = encode(&[0x42; 32]);
        let jwk = Identity::from_ed25519_jwk(&id.agent, &d).unwrap();
        assert_eq!((jwk.agent.as_str(), jwk.public, jwk.private), (id.agent.as_str(), id.public, id.private));
        assert!(Identity::from_ed25519_jwk(&encode(&[1; 32]), &d).is_err(), "x of another key");
        assert!(Identity::from_ed25519_jwk(&id.agent, "short").is_err());
        let mut secret = [0x42u8; 64];
        secret[32..].copy_from_slice(&decode(&id.agent).unwrap());
        assert_eq!(Identity::from_libsodium_secret(&secret).unwrap().private, id.private);
        secret[40] ^= 1;
        assert!(Identity::from_libsodium_secret(&secret).is_err());
        assert!(Identity::from_libsodium_secret(&[0; 32]).is_err());
        let plain = Identity::from_x25519(id.private, "plain".into());
        assert_eq!(plain.public, id.public);
    }

    /// The short check agrees with its definition (a clamped multiplication
    /// gives zero) on every point of small order, in every spelling that fits
    /// in 255 bits, with and without the ignored top bit, and on keys of the
    /// curve and of its twist.
    #[test]
    fn weak_is_exactly_a_zero_clamped_product() {
        let by_definition = |k: &Key| MontgomeryPoint(*k).mul_clamped([0x5a; 32]).to_bytes() == [0u8; 32];
        let mut keys: Vec<Key> =
            curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.to_montgomery().to_bytes()).collect();
        // 1, and p - 1, p, p + 1 (p = 2^255 - 19, little-endian 0xed ff .. 7f):
        // the order-2 point and the other spellings of 0 and 1.
        let near_p = |low: u8| {
            let mut k = [0xffu8; 32];
            k[31] = 0x7f;
            k[0] = low;
            k
        };
        let mut one = [0u8; 32];
        one[0] = 1;
        keys.extend([one, near_p(0xec), near_p(0xed), near_p(0xee)]);
        for high in keys.clone() {
            let mut k = high;
            k[31] |= 0x80;
            keys.push(k);
        }
        let weak = keys.iter().filter(|k| is_weak(k)).count();
        assert!(weak >= 12, "the torsion points and 1, p - 1, p, p + 1 are weak ({weak} found)");
        // Arbitrary bytes (xorshift, fixed seed): about half lie on the twist.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..64 {
            let mut k = [0u8; 32];
            for b in &mut k {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            keys.push(k);
        }
        keys.push(Identity::from_seed(&[9u8; 32]).public);
        for k in &keys {
            assert_eq!(is_weak(k), by_definition(k), "key {k:02x?}");
        }
    }

    #[test]
    fn weak_keys_and_aliased_ids_are_refused() {
        // The Edwards identity point: its X25519 key is 0, every DH with it is 0.
        let identity = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(agent_key(identity), None);
        assert_eq!(check_agent_id(identity), Err("an Ed25519 point of small order"));
        assert!(
            is_weak(&[0u8; 32])
                && is_weak(&{
                    let mut k = [0u8; 32];
                    k[0] = 1;
                    k
                })
        );
        let id = Identity::from_seed(&[7u8; 32]);
        assert!(!is_weak(&id.public));
        assert_eq!(check_agent_id(&id.agent), Ok(()));
        // Padded, and with non-zero trailing bits: other spellings of the same bytes.
        assert!(check_agent_id(&format!("{}=", id.agent)).is_err());
        let mut chars: Vec<char> = id.agent.chars().collect();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.find(chars[42]).unwrap();
        chars[42] = alphabet.chars().nth(pos ^ 1).unwrap(); // flips a trailing (padding) bit
        let alias: String = chars.into_iter().collect();
        assert!(decode(&alias).is_none(), "a non-canonical spelling does not decode");
        assert!(check_agent_id(&alias).is_err());
        assert_eq!(agent_key(&alias), None);
        // A non-canonical point encoding: y = p + 1 = 2^255 - 18 (little-endian
        // 0xee, 0xff .. 0xff, 0x7f), which is y = 1 spelled above the field prime.
        let mut y = [0xffu8; 32];
        y[0] = 0xee;
        y[31] = 0x7f;
        assert_eq!(ed25519_to_x25519(&y), None, "y above the field prime is not canonical");
        assert!(check_agent_id(&encode(&y)).is_err());
        // Opaque names are not ids of keys, and pass.
        assert_eq!(check_agent_id("raw-child"), Ok(()));
        assert_eq!(check_agent_id("UDY1NDM0"), Ok(()));
        assert!(check_agent_id("").is_err());
    }

    #[test]
    fn rejects_ids_that_are_not_ed25519_points() {
        assert_eq!(agent_key("not base64!"), None);
        assert_eq!(agent_key(&encode(&[1u8; 31])), None);
    }

    #[test]
    fn the_memo_answers_as_the_computation_does() {
        // Keys, points of small order, non-canonical y, and bytes that are no
        // point, each asked twice (the second answer comes from the memo).
        let mut inputs: Vec<[u8; 32]> =
            (0..64u8).map(|i| decode(&Identity::from_seed(&[i; 32]).agent).unwrap().try_into().unwrap()).collect();
        inputs.extend(curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()));
        let mut y = [0xffu8; 32];
        y[31] = 0x7f; // y = 2^255 - 1, above the field prime
        inputs.push(y);
        inputs.extend((0..64u8).map(|i| [i.wrapping_mul(37); 32]));
        let kinds: std::collections::HashSet<_> =
            inputs.iter().map(|ed| std::mem::discriminant(&classify(ed))).collect();
        assert_eq!(kinds.len(), 4, "every kind of answer is covered");
        for _ in 0..2 {
            for ed in &inputs {
                assert_eq!(classified(ed), classify(ed));
            }
        }
    }
}

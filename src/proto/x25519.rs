//! The handshakes' X25519, on aws-lc instead of snow's portable default.
//!
//! A new link costs both ends 13 X25519 operations (`suite::DH_PER_LINK`),
//! and they were most of its CPU: snow's default (curve25519-dalek's serial
//! Montgomery ladder) takes about 61 µs an operation on the benchmark
//! machine, aws-lc's (s2n-bignum's verified assembly, chosen at run time for
//! the CPU) about 28 µs. It is the same function (RFC 7748, the scalar
//! clamped and the top bit of `u` ignored), so the wire does not change.
//!
//! One difference, on purpose: a Diffie-Hellman whose result is all zero (the
//! other side's key is of small order) is an error here, where the default
//! returns the zeros and carries on. Static keys of small order are refused
//! before any handshake (docs/PROTOCOL.md §5b); this refuses ephemeral ones
//! too, as MyCHIPs' JavaScript nodes (libsodium) already do. A handshake
//! message with such a key fails to read like any other bad message.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use snow::params::DHChoice;
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};

const LEN: usize = 32;

/// snow's `Dh` for Curve25519 over aws-lc. Holds one key pair: a static
/// key set by the builder, or an ephemeral one made for a handshake.
#[derive(Default)]
pub struct AwsLcX25519 {
    key: Option<PrivateKey>,
    /// The private key's bytes, for `privkey()` (snow reads them back only
    /// when it makes a key pair for a caller); wiped on drop.
    private: [u8; LEN],
    public: [u8; LEN],
}

impl Drop for AwsLcX25519 {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private);
    }
}

impl AwsLcX25519 {
    /// Load `private` and derive its public key. `false` if aws-lc refused
    /// (it takes any 32 bytes, so only on an internal failure): the pair is
    /// then empty, and every `dh` with it fails.
    fn load(&mut self, private: [u8; LEN]) -> bool {
        self.private = private;
        self.key = None;
        self.public = [0; LEN];
        let Ok(key) = PrivateKey::from_private_key(&X25519, &private) else { return false };
        let Ok(public) = key.compute_public_key() else { return false };
        let Ok(public) = <[u8; LEN]>::try_from(public.as_ref()) else { return false };
        self.public = public;
        self.key = Some(key);
        true
    }
}

impl Dh for AwsLcX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        LEN
    }

    fn priv_len(&self) -> usize {
        LEN
    }

    /// snow's trait gives this no way to fail; a key aws-lc refused leaves
    /// the pair empty, so the handshake fails at its first `dh` instead.
    fn set(&mut self, privkey: &[u8]) {
        let mut private = [0u8; LEN];
        let n = privkey.len().min(LEN);
        private[..n].copy_from_slice(&privkey[..n]);
        self.load(private);
        zeroize::Zeroize::zeroize(&mut private);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = [0u8; LEN];
        rng.try_fill_bytes(&mut private)?;
        let loaded = self.load(private);
        zeroize::Zeroize::zeroize(&mut private);
        if loaded {
            Ok(())
        } else {
            Err(snow::Error::Dh)
        }
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let (Some(key), Some(peer), Some(out)) = (&self.key, pubkey.get(..LEN), out.get_mut(..LEN)) else {
            return Err(snow::Error::Dh);
        };
        // aws-lc fails an all-zero result (a peer key of small order).
        agreement::agree(key, UnparsedPublicKey::new(&X25519, peer), snow::Error::Dh, |shared| {
            out.copy_from_slice(shared.get(..LEN).ok_or(snow::Error::Dh)?);
            Ok(())
        })
    }
}

/// Curve25519 from aws-lc; the hash, cipher and randomness from snow's default.
struct Resolver;

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::<AwsLcX25519>::default()),
            _ => None,
        }
    }

    fn resolve_hash(&self, _: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        None
    }

    fn resolve_cipher(&self, _: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

/// What every handshake is built with.
pub fn resolver() -> BoxedCryptoResolver {
    Box::new(FallbackResolver::new(Box::new(Resolver), Box::new(DefaultResolver)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::suite::Handshake;
    use curve25519_dalek::MontgomeryPoint;

    fn ours(private: &[u8; 32]) -> AwsLcX25519 {
        let mut dh = AwsLcX25519::default();
        dh.set(private);
        dh
    }

    fn shared(dh: &AwsLcX25519, public: &[u8; 32]) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        dh.dh(public, &mut out).ok().map(|()| out)
    }

    fn hex(s: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    /// Arbitrary but repeatable bytes (splitmix64).
    fn bytes(seed: u64) -> [u8; 32] {
        let mut x = seed;
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out
    }

    #[test]
    fn rfc7748_public_keys() {
        // RFC 7748 §6.1: Alice's and Bob's key pairs.
        let alice = ours(&hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        let bob = ours(&hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
        assert_eq!(alice.pubkey(), hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
        assert_eq!(bob.pubkey(), hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
        let a = shared(&alice, &bob.public).unwrap();
        assert_eq!(Some(a), shared(&bob, &alice.public));
        assert_eq!(a, MontgomeryPoint(bob.public).mul_clamped(alice.private).to_bytes());
    }

    #[test]
    fn agrees_with_the_portable_implementation() {
        // The same function as snow's default, on keys of the curve, on
        // points of its twist (any 32 bytes are a u-coordinate of one or the
        // other), with the ignored top bit set, and with u at or above p.
        for i in 0..128u64 {
            let private = bytes(i);
            let dh = ours(&private);
            assert_eq!(dh.pubkey(), MontgomeryPoint::mul_base_clamped(private).to_bytes(), "public key {i}");
            assert_eq!(dh.privkey(), private);
            let mut u = bytes(1000 + i);
            match i % 4 {
                0 => u = ours(&u).public,
                1 => u[31] |= 0x80,
                2 => u = hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
                _ => {}
            }
            if i % 4 == 2 {
                u[0] = u[0].wrapping_add((i % 19) as u8); // p + k: the same point as k
            }
            let want = MontgomeryPoint(u).mul_clamped(private).to_bytes();
            let got = shared(&dh, &u);
            if want == [0; 32] {
                assert_eq!(got, None, "a zero result is refused ({i})");
            } else {
                assert_eq!(got, Some(want), "shared secret {i}");
            }
        }
    }

    #[test]
    fn refuses_keys_of_small_order() {
        let mut weak: Vec<[u8; 32]> =
            curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.to_montgomery().to_bytes()).collect();
        // 0 and 1 spelled as p and p + 1, and with the ignored top bit set.
        weak.push(hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"));
        weak.push(hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"));
        weak.push(hex("0100000000000000000000000000000000000000000000000000000000000080"));
        for (i, u) in weak.iter().enumerate() {
            assert!(crate::proto::keys::is_weak(u), "key {i} is of small order");
            for s in 0..4 {
                assert_eq!(shared(&ours(&bytes(s)), u), None, "key {i}, private key {s}");
            }
        }
    }

    #[test]
    fn empty_pair_fails_every_dh() {
        let dh = AwsLcX25519::default();
        assert_eq!(shared(&dh, &ours(&bytes(1)).public), None);
        let short = ours(&bytes(2));
        assert!(short.dh(&[9u8; 31], &mut [0u8; 32]).is_err(), "a short key");
    }

    /// A first message whose ephemeral key is of small order: what an
    /// attacker can send without the key. (Its own side of each DH with that
    /// key would be zero, which is what this Dh answers.)
    struct SmallOrderEphemeral;
    impl Dh for SmallOrderEphemeral {
        fn name(&self) -> &'static str {
            "25519"
        }
        fn pub_len(&self) -> usize {
            32
        }
        fn priv_len(&self) -> usize {
            32
        }
        fn set(&mut self, _: &[u8]) {}
        fn generate(&mut self, _: &mut dyn Random) -> Result<(), snow::Error> {
            Ok(())
        }
        fn pubkey(&self) -> &[u8] {
            &[0u8; 32]
        }
        fn privkey(&self) -> &[u8] {
            &[0u8; 32]
        }
        fn dh(&self, _: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
            out[..32].fill(0);
            Ok(())
        }
    }
    struct Attacker;
    impl CryptoResolver for Attacker {
        fn resolve_rng(&self) -> Option<Box<dyn Random>> {
            None
        }
        fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
            Some(Box::new(SmallOrderEphemeral))
        }
        fn resolve_hash(&self, _: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
            None
        }
        fn resolve_cipher(&self, _: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
            None
        }
    }

    #[test]
    fn a_small_order_ephemeral_key_fails_the_read() {
        // NK: the responder's only DH on message 1 is es = s · re.
        let server = bytes(7);
        let server_public = ours(&server).public;
        let resolver = Box::new(FallbackResolver::new(Box::new(Attacker), Box::new(DefaultResolver)));
        let mut attacker = snow::Builder::with_resolver(crate::proto::suite::params("NK"), resolver)
            .remote_public_key(&server_public)
            .and_then(|b| b.build_initiator())
            .unwrap();
        let mut m1 = vec![0u8; 200];
        let n = attacker.write_message(b"{}", &mut m1).unwrap();
        assert_eq!(&m1[..32], &[0u8; 32], "the ephemeral key on the wire is the zero point");
        let mut responder = Handshake::responder("NK", Some(&server), None).unwrap();
        assert!(matches!(responder.read(&m1[..n]), Err(crate::error::Error::Decrypt)));
    }

    #[test]
    fn interoperates_with_the_portable_implementation() {
        // KK between a default snow initiator and our responder, and back.
        let (a, b) = (bytes(11), bytes(12));
        let (a_pub, b_pub) = (ours(&a).public, ours(&b).public);
        for ours_initiates in [false, true] {
            let params = crate::proto::suite::params("KK");
            let builder = |r: bool| {
                if r {
                    snow::Builder::with_resolver(params.clone(), resolver())
                } else {
                    snow::Builder::new(params.clone())
                }
            };
            let mut i = builder(ours_initiates)
                .local_private_key(&a)
                .unwrap()
                .remote_public_key(&b_pub)
                .unwrap()
                .build_initiator()
                .unwrap();
            let mut r = builder(!ours_initiates)
                .local_private_key(&b)
                .unwrap()
                .remote_public_key(&a_pub)
                .unwrap()
                .build_responder()
                .unwrap();
            let (mut m, mut p) = (vec![0u8; 200], vec![0u8; 200]);
            let n = i.write_message(b"one", &mut m).unwrap();
            let k = r.read_message(&m[..n], &mut p).unwrap();
            assert_eq!(&p[..k], b"one");
            let n = r.write_message(b"two", &mut m).unwrap();
            let k = i.read_message(&m[..n], &mut p).unwrap();
            assert_eq!(&p[..k], b"two");
            assert_eq!(i.dangerously_get_raw_split(), r.dangerously_get_raw_split());
        }
    }
}

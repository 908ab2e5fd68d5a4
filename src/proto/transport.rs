//! Transport messages after the handshake: ChaChaPoly with Noise's implicit
//! nonces, fragmentation into `F`…`T`, and reassembly (docs/PROTOCOL.md §3, §5).
//!
//! We run the transport ciphers ourselves (with aws-lc's ChaCha20-Poly1305)
//! instead of snow's `TransportState`, because snow gives the first Split()
//! key to the initiator, and MyCHIPs' JavaScript nodes give it to the side
//! that wrote the last handshake message. aws-lc, because its assembly is an
//! order of magnitude faster on the short messages MyCHIPs sends than the
//! portable implementation (about 0.2 against 1.9 µs for 100 bytes here).
//!
//! Between two native nodes every transport message authenticates its header
//! letter and a protocol version label as associated data, so a `T` cannot
//! be passed off as an `F` or a `C`, and a later version cannot be confused
//! with this one. JavaScript nodes use no associated data. (The label cannot
//! go in the Noise prologue: an initiator does not know, when it writes
//! message 1, whether the other side is native.)

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

use bytes::{BufMut, BytesMut};

use super::frame::{Letter, MAX_NOISE_MESSAGE, PREFIX, TAG_LEN};
use crate::error::{Error, Result};

/// One direction's cipher and its nonce counter.
struct CipherState {
    aead: LessSafeKey,
    nonce: u64,
}

impl CipherState {
    fn new(key: &[u8; 32]) -> Result<Self> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| Error::Internal("a cipher key".into()))?;
        Ok(Self { aead: LessSafeKey::new(key), nonce: 0 })
    }

    /// Noise's ChaChaPoly nonce: 4 zero bytes, then the counter little-endian.
    /// The counter value 2^64-1 is reserved by the Noise spec. Each value is
    /// used once: the counter only goes up.
    fn next_nonce(&mut self) -> Result<Nonce> {
        if self.nonce == u64::MAX {
            return Err(Error::Internal("transport nonces exhausted".into()));
        }
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.nonce.to_le_bytes());
        self.nonce += 1;
        Ok(Nonce::assume_unique_for_key(n))
    }
}

/// Associated data of a native transport message: this label, then the letter.
pub const AD_LABEL: &[u8] = b"MyCHIPs-noise/1 ";
const AD_LEN: usize = 17;

/// The two transport ciphers of an open connection, or none in raw mode.
pub struct Transport {
    ciphers: Option<(CipherState, CipherState)>,
    /// Both ends are native: letters are authenticated.
    native: bool,
}

/// What the other end accepts (docs/PROTOCOL.md §6): we fragment to its
/// frame size and refuse, before writing, a message it would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message: usize,
    pub max_frame: usize,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.ciphers.is_some() { "Transport(<keys redacted>)" } else { "Transport(raw)" })
    }
}

impl Transport {
    pub fn new(send: &[u8; 32], recv: &[u8; 32]) -> Result<Self> {
        Ok(Self { ciphers: Some((CipherState::new(send)?, CipherState::new(recv)?)), native: false })
    }

    pub fn raw() -> Self {
        Self { ciphers: None, native: false }
    }

    /// Both ends are native: authenticate letters from here on.
    pub fn set_native(&mut self) {
        self.native = true;
    }

    /// The associated data for `letter`: the label and the letter between
    /// native nodes, nothing with a JavaScript one (use `&ad[..len]`).
    fn ad(&self, letter: Letter) -> ([u8; AD_LEN], usize) {
        let mut ad = [0u8; AD_LEN];
        if !self.native {
            return (ad, 0);
        }
        ad[..AD_LABEL.len()].copy_from_slice(AD_LABEL);
        ad[AD_LABEL.len()] = letter.byte();
        (ad, AD_LEN)
    }

    /// The most plaintext that fits in one Noise message.
    pub fn max_piece(&self) -> usize {
        if self.ciphers.is_some() {
            MAX_NOISE_MESSAGE - TAG_LEN
        } else {
            MAX_NOISE_MESSAGE
        }
    }

    /// Encrypt one piece into a frame body that starts with `letter`.
    pub fn seal(&mut self, letter: Letter, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut framed = BytesMut::new();
        self.seal_framed(letter, plaintext, &mut framed)?;
        Ok(framed.split_off(PREFIX).to_vec())
    }

    /// `seal`, appended to `out` as a whole frame (length prefix and body),
    /// encrypted where it lies: the message path's one copy. On an error
    /// `out` is as it was.
    fn seal_framed(&mut self, letter: Letter, plaintext: &[u8], out: &mut BytesMut) -> Result<()> {
        let (ad, ad_len) = self.ad(letter);
        let tag_len = if self.ciphers.is_some() { TAG_LEN } else { 0 };
        let body_len = 1 + plaintext.len() + tag_len;
        let start = out.len();
        out.reserve(PREFIX + body_len);
        super::frame::put_prefix(out, body_len);
        out.put_u8(letter.byte());
        out.extend_from_slice(plaintext);
        if let Some((send, _)) = self.ciphers.as_mut() {
            let sealed = send.next_nonce().and_then(|nonce| {
                send.aead
                    .seal_in_place_separate_tag(nonce, Aad::from(&ad[..ad_len]), &mut out[start + PREFIX + 1..])
                    .map_err(|_| Error::Internal("encryption failed".into()))
            });
            match sealed {
                Ok(tag) => out.extend_from_slice(tag.as_ref()),
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Decrypt one transport message (the frame body after its `letter`).
    pub fn open(&mut self, letter: Letter, message: &[u8]) -> Result<Vec<u8>> {
        let (ad, ad_len) = self.ad(letter);
        let Some((_, recv)) = self.ciphers.as_mut() else { return Ok(message.to_vec()) };
        let Some(plain_len) = message.len().checked_sub(TAG_LEN) else { return Err(Error::Decrypt) };
        let mut buf = message.to_vec();
        let nonce = recv.next_nonce()?;
        recv.aead.open_in_place(nonce, Aad::from(&ad[..ad_len]), &mut buf).map_err(|_| Error::Decrypt)?;
        buf.truncate(plain_len);
        Ok(buf)
    }

    /// Turn one application message into frame bodies. To a native peer a long
    /// message goes as `F` pieces and a final `T`, each within the peer's
    /// frame limit; a message beyond its message limit is refused here,
    /// before anything is written. A JavaScript peer cannot parse `F`, and its
    /// Noise library takes an oversized message, so it gets one `T` of any
    /// size (docs/PROTOCOL.md §9).
    ///
    /// The frames (length prefix and body each) are appended to `out`; on an
    /// error nothing is.
    pub fn seal_message(&mut self, message: &[u8], native_peer: Option<Limits>, out: &mut BytesMut) -> Result<()> {
        let Some(limits) = native_peer else { return self.seal_framed(Letter::T, message, out) };
        if message.len() > limits.max_message {
            return Err(Error::MessageTooLarge { max: limits.max_message });
        }
        let overhead = 1 + if self.ciphers.is_some() { TAG_LEN } else { 0 };
        let piece = self.max_piece().min(limits.max_frame.saturating_sub(overhead)).max(1);
        if message.len() <= piece {
            return self.seal_framed(Letter::T, message, out);
        }
        let start = out.len();
        let mut pieces = message.chunks(piece).peekable();
        while let Some(p) = pieces.next() {
            let letter = if pieces.peek().is_none() { Letter::T } else { Letter::F };
            if let Err(e) = self.seal_framed(letter, p, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `seal_message`, as frame bodies (without their length prefixes).
    pub fn seal_message_bodies(&mut self, message: &[u8], native_peer: Option<Limits>) -> Result<Vec<Vec<u8>>> {
        let mut framed = BytesMut::new();
        self.seal_message(message, native_peer, &mut framed)?;
        Ok(super::frame::bodies(framed))
    }
}

/// Collects `F` pieces until the `T` that ends a message, within a size limit.
#[derive(Debug, Default)]
pub struct Reassembler {
    buf: Vec<u8>,
}

impl Reassembler {
    /// True between messages (no piece of an unfinished message held).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty()
    }

    /// Add a piece; returns the whole message when `last`.
    pub fn push(&mut self, piece: Vec<u8>, last: bool, max: usize) -> Result<Option<Vec<u8>>> {
        if self.buf.len() + piece.len() > max {
            self.buf = Vec::new();
            return Err(Error::MessageTooLarge { max });
        }
        if self.buf.is_empty() && last {
            return Ok(Some(piece));
        }
        self.buf.extend_from_slice(&piece);
        Ok(last.then(|| std::mem::take(&mut self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Transport, Transport) {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        (Transport::new(&a, &b).expect("keys"), Transport::new(&b, &a).expect("keys"))
    }

    #[test]
    fn seal_and_open_in_order() {
        let (mut x, mut y) = pair();
        for i in 0..3 {
            let msg = format!("{{\"n\":{i}}}");
            let body = x.seal(Letter::T, msg.as_bytes()).unwrap();
            assert_eq!(body.len(), 1 + msg.len() + TAG_LEN);
            assert_eq!(y.open(Letter::T, &body[1..]).unwrap(), msg.as_bytes());
        }
    }

    #[test]
    fn replayed_or_reordered_messages_fail() {
        let (mut x, mut y) = pair();
        let first = x.seal(Letter::T, b"{}").unwrap();
        let second = x.seal(Letter::T, b"{}").unwrap();
        assert!(y.open(Letter::T, &second[1..]).is_err(), "reordered");
        let (mut x, mut y) = pair();
        let first2 = x.seal(Letter::T, b"{}").unwrap();
        assert_eq!(first, first2, "same keys, same nonce, same bytes");
        y.open(Letter::T, &first2[1..]).unwrap();
        assert_eq!(y.open(Letter::T, &first2[1..]), Err(Error::Decrypt), "replayed");
        assert_eq!(y.open(Letter::T, &[0u8; 5]), Err(Error::Decrypt), "shorter than a tag");
    }

    #[test]
    fn nonce_layout_is_noise_chachapoly() {
        // Counter 1 must sit little-endian after four zero bytes, as the Noise
        // spec says: snow's own ChaChaPoly (another implementation) must
        // produce our second message.
        use snow::resolvers::{CryptoResolver, DefaultResolver};
        let key = [9u8; 32];
        let mut t = Transport::new(&key, &key).expect("keys");
        let _ = t.seal(Letter::T, b"x").unwrap();
        let ours = t.seal(Letter::T, b"hello").unwrap();
        let mut cipher = DefaultResolver.resolve_cipher(&snow::params::CipherChoice::ChaChaPoly).expect("ChaChaPoly");
        cipher.set(&key);
        let mut theirs = [0u8; 5 + TAG_LEN];
        let n = cipher.encrypt(1, b"", b"hello", &mut theirs);
        assert_eq!(&ours[1..], &theirs[..n]);
    }

    const DEFAULTS: Limits = Limits { max_message: 1 << 20, max_frame: MAX_NOISE_MESSAGE + 1 };

    fn native_pair() -> (Transport, Transport) {
        let (mut x, mut y) = pair();
        x.set_native();
        y.set_native();
        (x, y)
    }

    #[test]
    fn a_message_that_fails_midway_leaves_the_write_buffer_as_it_was() {
        // The nonce runs out after the first of three pieces: the frames
        // already queued stay, and no piece of the failed message follows.
        let (mut x, _) = native_pair();
        let mut out = BytesMut::new();
        x.seal_message(b"before", Some(DEFAULTS), &mut out).unwrap();
        let before = out.clone();
        x.ciphers.as_mut().unwrap().0.nonce = u64::MAX - 1;
        let err = x.seal_message(&vec![b'a'; 150_000], Some(DEFAULTS), &mut out);
        assert_eq!(err, Err(Error::Internal("transport nonces exhausted".into())));
        assert_eq!(out, before);
    }

    #[test]
    fn long_messages_fragment_for_native_peers_only() {
        let (mut x, mut y) = native_pair();
        let msg = vec![b'a'; 150_000];
        let frames = x.seal_message_bodies(&msg, Some(DEFAULTS)).unwrap();
        let letters: Vec<u8> = frames.iter().map(|f| f[0]).collect();
        assert_eq!(letters, b"FFT");
        assert!(frames.iter().all(|f| f.len() <= MAX_NOISE_MESSAGE + 1));
        let mut r = Reassembler::default();
        let mut whole = None;
        for f in &frames {
            let letter = Letter::from_byte(f[0]).unwrap();
            whole = r.push(y.open(letter, &f[1..]).unwrap(), letter == Letter::T, 1 << 20).unwrap();
        }
        assert_eq!(whole.unwrap(), msg);
        let legacy = pair().0.seal_message_bodies(&msg, None).unwrap();
        assert_eq!(legacy.len(), 1, "a JavaScript node gets one oversized T");
    }

    #[test]
    fn fragments_fit_the_peers_frame_limit_and_its_message_limit_is_kept_here() {
        let (mut x, _) = native_pair();
        let small = Limits { max_message: 10_000, max_frame: 1024 };
        let frames = x.seal_message_bodies(&vec![b'a'; 5000], Some(small)).unwrap();
        assert!(frames.iter().all(|f| f.len() <= 1024), "{:?}", frames.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!(frames.len(), 5);
        assert_eq!(
            x.seal_message_bodies(&vec![b'a'; 10_001], Some(small)),
            Err(Error::MessageTooLarge { max: 10_000 })
        );
    }

    #[test]
    fn native_links_authenticate_the_letter() {
        let (mut x, mut y) = native_pair();
        let body = x.seal(Letter::T, b"{}").unwrap();
        assert_eq!(y.open(Letter::F, &body[1..]), Err(Error::Decrypt), "a T relabelled as F");
        let (mut x, mut y) = native_pair();
        let body = x.seal(Letter::C, b"{}").unwrap();
        assert!(y.open(Letter::C, &body[1..]).is_ok());
        // A legacy pair uses no associated data: the JavaScript module's way.
        let (mut x, mut y) = pair();
        let body = x.seal(Letter::T, b"{}").unwrap();
        assert!(y.open(Letter::F, &body[1..]).is_ok());
    }

    #[test]
    fn reassembly_is_bounded() {
        let mut r = Reassembler::default();
        assert!(r.push(vec![0; 60], false, 100).unwrap().is_none());
        assert_eq!(r.push(vec![0; 60], true, 100), Err(Error::MessageTooLarge { max: 100 }));
        assert_eq!(r.push(vec![1; 10], true, 100).unwrap(), Some(vec![1; 10]), "reset after refusal");
    }
}

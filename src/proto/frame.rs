//! Frames and header letters (docs/PROTOCOL.md §2, §3).
//!
//! On the wire a frame is a 4-byte big-endian length, then the body
//! (`frame-stream`'s default framing). The decoder here is ours rather than
//! `tokio_util`'s `LengthDelimitedCodec` because that codec reserves room for
//! the length a frame *declares* before any of it arrives: four bytes from a
//! stranger would cost us the whole limit. Ours holds only what arrived, and
//! takes its limit per call, so the limit can follow the connection's state
//! (docs/PROTOCOL.md §6: before a link is open, never more than `max_frame`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Largest Noise message (snow's and the Noise spec's MAXMSGLEN).
pub const MAX_NOISE_MESSAGE: usize = 65_535;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Default largest frame body: one letter plus one Noise message (docs/PROTOCOL.md §6).
pub const DEFAULT_MAX_FRAME: usize = MAX_NOISE_MESSAGE + 1;
/// Default largest reassembled application message (docs/PROTOCOL.md §6).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// The header letter that opens every frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Letter {
    /// IK message 1 (first contact, with a ticket).
    I,
    /// One-way N message that names the KK initiator.
    N,
    /// KK message 1.
    K,
    /// NK message 1 (anonymous referee query).
    Q,
    /// Message 2 of IK, KK or NK.
    A,
    /// A transport message: one whole application message, or its last piece.
    T,
    /// A transport message holding a non-final piece of a long message (native only).
    F,
    /// The native initiator's key confirmation: its first transport message (docs/PROTOCOL.md §5a).
    C,
}

impl Letter {
    pub const ALL: [Letter; 8] = [Self::I, Self::N, Self::K, Self::Q, Self::A, Self::T, Self::F, Self::C];

    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'I' => Self::I,
            b'N' => Self::N,
            b'K' => Self::K,
            b'Q' => Self::Q,
            b'A' => Self::A,
            b'T' => Self::T,
            b'F' => Self::F,
            b'C' => Self::C,
            _ => return None,
        })
    }

    pub fn byte(self) -> u8 {
        match self {
            Self::I => b'I',
            Self::N => b'N',
            Self::K => b'K',
            Self::Q => b'Q',
            Self::A => b'A',
            Self::T => b'T',
            Self::F => b'F',
            Self::C => b'C',
        }
    }
}

/// Build a frame body: the letter, then the Noise message (or plaintext).
pub fn body(letter: Letter, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 1);
    out.push(letter.byte());
    out.extend_from_slice(message);
    out
}

/// Split a received body into its letter byte and message, refusing empty frames.
pub fn split(body: &[u8]) -> Result<(u8, &[u8])> {
    match body.split_first() {
        Some((letter, rest)) => Ok((*letter, rest)),
        None => Err(Error::EmptyFrame),
    }
}

/// The length prefix's size.
pub const PREFIX: usize = 4;

/// Take one whole frame body off the front of `buf`, if one has arrived.
/// A declared length beyond `limit` is an error at once, before any of its
/// body is buffered; nothing is reserved for a length that is only declared.
pub fn decode(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>> {
    let Some(prefix) = buf.get(..PREFIX) else { return Ok(None) };
    let mut len = [0u8; PREFIX];
    len.copy_from_slice(prefix);
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(Error::FrameTooLarge { max: limit });
    }
    if buf.len() < PREFIX + len {
        return Ok(None);
    }
    buf.advance(PREFIX);
    Ok(Some(buf.split_to(len).freeze()))
}

/// The bodies of whole frames laid end to end (what we framed ourselves).
pub fn bodies(mut framed: BytesMut) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // No limit, so no error: a frame cut short ends the list.
    while let Ok(Some(body)) = decode(&mut framed, usize::MAX) {
        out.push(body.to_vec());
    }
    out
}

/// How many more bytes the frame at the front of `buf` needs (at least 1,
/// for the prefix), so a reader asks for no more than the frame it reads.
pub fn wanted(buf: &[u8]) -> usize {
    match buf.get(..PREFIX) {
        None => PREFIX - buf.len(),
        Some(p) => {
            let mut len = [0u8; PREFIX];
            len.copy_from_slice(p);
            (PREFIX + u32::from_be_bytes(len) as usize).saturating_sub(buf.len()).max(1)
        }
    }
}

/// Whether `buf` starts with a whole frame (prefix and body).
pub fn is_complete(buf: &[u8]) -> bool {
    match buf.get(..PREFIX) {
        None => false,
        Some(p) => {
            let mut len = [0u8; PREFIX];
            len.copy_from_slice(p);
            buf.len() >= PREFIX + u32::from_be_bytes(len) as usize
        }
    }
}

/// Append one frame (length prefix, then `body`) to `out`.
pub fn encode_into(out: &mut BytesMut, body: &[u8]) {
    out.reserve(PREFIX + body.len());
    put_prefix(out, body.len());
    out.extend_from_slice(body);
}

/// Append the length prefix of a body of `len` bytes (the body follows).
pub fn put_prefix(out: &mut BytesMut, len: usize) {
    // A body never exceeds u32::MAX: the largest we build is the configured
    // maximum message size (at most u32::MAX - 1 - TAG_LEN) plus a letter and a tag.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

/// Encode a body with its length prefix (for tests and tools that write raw bytes).
pub fn encode(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_into(&mut out, body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip() {
        for l in Letter::ALL {
            assert_eq!(Letter::from_byte(l.byte()), Some(l));
        }
        assert_eq!(Letter::from_byte(b'X'), None);
        assert_eq!(Letter::from_byte(b't'), None, "letters are upper case");
    }

    #[test]
    fn decoder_reads_frame_stream_framing_byte_by_byte() {
        let wire = [encode(b"Thello"), encode(b"Tworld")].concat();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Ok(Some(frame)) = decode(&mut buf, DEFAULT_MAX_FRAME) {
                got.push(frame.to_vec());
            }
        }
        assert_eq!(got, vec![b"Thello".to_vec(), b"Tworld".to_vec()]);
        assert!(buf.is_empty());
        assert_eq!(&encode(b"Tx")[..], &[0, 0, 0, 2, b'T', b'x'], "4-byte big-endian length");
    }

    #[test]
    fn decoder_refuses_an_oversized_length_before_buffering_and_reserves_nothing() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 101][..]);
        assert_eq!(decode(&mut buf, 100), Err(Error::FrameTooLarge { max: 100 }));
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(decode(&mut buf, DEFAULT_MAX_FRAME).is_err());
        // A declared megabyte, four bytes on the wire: nothing grows.
        let mut buf = BytesMut::from(&[0u8, 0x10, 0, 0, b'T'][..]);
        let cap = buf.capacity();
        assert_eq!(decode(&mut buf, 2 << 20), Ok(None));
        assert_eq!(buf.capacity(), cap);
        assert_eq!(wanted(&buf), (1 << 20) + 4 - 5);
        assert_eq!(wanted(&[0, 0]), 2);
    }

    #[test]
    fn a_whole_frame_at_the_front_is_seen_byte_by_byte() {
        let wire = [encode(b"Tab"), encode(b"Tc")].concat();
        let complete: Vec<bool> = (0..=wire.len()).map(|n| is_complete(&wire[..n])).collect();
        // 4 + 3 bytes make the first frame; more bytes after it change nothing.
        assert_eq!(complete.iter().position(|&c| c), Some(7));
        assert!(complete[7..].iter().all(|&c| c));
        assert!(is_complete(&encode(b"")), "an empty frame is whole (the core refuses it)");
    }

    #[test]
    fn an_empty_frame_decodes_and_the_core_refuses_it() {
        let mut buf = encode(b"");
        assert_eq!(decode(&mut buf, 10).unwrap().map(|b| b.len()), Some(0));
    }

    #[test]
    fn empty_body_is_an_error() {
        assert_eq!(split(b""), Err(Error::EmptyFrame));
        assert_eq!(split(b"T{}"), Ok((b'T', &b"{}"[..])));
    }
}

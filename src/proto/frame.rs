//! Frames and header letters (docs/PROTOCOL.md §2, §3).
//!
//! On the wire a frame is a 4-byte big-endian length, then the body. The length
//! prefix is `frame-stream`'s default framing, which `tokio_util`'s
//! `LengthDelimitedCodec` speaks natively, so we use that codec rather than
//! parsing lengths by hand. This module owns what is ours: the header letter
//! that opens every body, and the limits.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::LengthDelimitedCodec;

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
}

impl Letter {
    pub const ALL: [Letter; 7] = [Self::I, Self::N, Self::K, Self::Q, Self::A, Self::T, Self::F];

    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'I' => Self::I,
            b'N' => Self::N,
            b'K' => Self::K,
            b'Q' => Self::Q,
            b'A' => Self::A,
            b'T' => Self::T,
            b'F' => Self::F,
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

/// The codec for a connection: 4-byte big-endian length, bodies up to `max_body`.
/// A length beyond `max_body` makes the decoder fail before it buffers the body.
pub fn codec(max_body: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(4).big_endian().max_frame_length(max_body).new_codec()
}

/// Encode a body with its length prefix (for tests and tools that write raw bytes).
pub fn encode(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(body.len() + 4);
    // A body never exceeds u32::MAX: the largest we build is the configured
    // maximum message size plus a letter and a tag.
    out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn letters_round_trip() {
        for l in Letter::ALL {
            assert_eq!(Letter::from_byte(l.byte()), Some(l));
        }
        assert_eq!(Letter::from_byte(b'X'), None);
        assert_eq!(Letter::from_byte(b't'), None, "letters are upper case");
    }

    #[test]
    fn codec_reads_frame_stream_framing_byte_by_byte() {
        let mut codec = codec(DEFAULT_MAX_FRAME);
        let wire = [encode(b"Thello"), encode(b"Tworld")].concat();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                got.push(frame.to_vec());
            }
        }
        assert_eq!(got, vec![b"Thello".to_vec(), b"Tworld".to_vec()]);
        assert_eq!(&encode(b"Tx")[..], &[0, 0, 0, 2, b'T', b'x'], "4-byte big-endian length");
    }

    #[test]
    fn codec_refuses_an_oversized_length_before_buffering() {
        let mut small = codec(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 101][..]);
        assert!(small.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(codec(DEFAULT_MAX_FRAME).decode(&mut buf).is_err());
    }

    #[test]
    fn empty_body_is_an_error() {
        assert_eq!(split(b""), Err(Error::EmptyFrame));
        assert_eq!(split(b"T{}"), Ok((b'T', &b"{}"[..])));
    }
}

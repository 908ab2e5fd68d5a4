//! The frame decoder (`proto::frame`), fed a byte stream cut at arbitrary points.
//!
//! Input: two bytes of limit, a count and that many chunk sizes, then the
//! stream. Whatever the cuts, the decoder must find exactly the frames (and
//! the refusal) that a one-pass reading of the whole stream finds; each
//! frame re-encodes to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mychips_noise::proto::frame::{self, Letter, PREFIX};
use mychips_noise::Error;

/// The whole stream at once: its frames, and whether a declared length passed the limit.
fn reference(wire: &[u8], limit: usize) -> (Vec<&[u8]>, usize, bool) {
    let (mut frames, mut pos) = (Vec::new(), 0);
    while wire.len() - pos >= PREFIX {
        let len = u32::from_be_bytes([wire[pos], wire[pos + 1], wire[pos + 2], wire[pos + 3]]) as usize;
        if len > limit {
            return (frames, pos, true);
        }
        if wire.len() - pos - PREFIX < len {
            break;
        }
        frames.push(&wire[pos + PREFIX..pos + PREFIX + len]);
        pos += PREFIX + len;
    }
    (frames, pos, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limit = 1 + usize::from(u16::from_le_bytes([data[0], data[1]]));
    let cuts = usize::from(data[2] % 16).min(data.len() - 3);
    let sizes: Vec<usize> = data[3..3 + cuts].iter().map(|&b| usize::from(b).max(1)).collect();
    let wire = &data[3 + cuts..];

    let mut buf = BytesMut::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut refused = false;
    let (mut pos, mut i) = (0, 0);
    'feed: while pos < wire.len() {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(wire.len()).min(wire.len() - pos);
        buf.extend_from_slice(&wire[pos..pos + n]);
        pos += n;
        i += 1;
        loop {
            let complete = frame::is_complete(&buf);
            let wanted = frame::wanted(&buf);
            assert!(wanted >= 1, "a reader always asks for at least one byte");
            match frame::decode(&mut buf, limit) {
                Ok(Some(body)) => {
                    assert!(complete, "decoded a frame that was not whole");
                    assert!(body.len() <= limit);
                    got.push(body.to_vec());
                }
                Ok(None) => {
                    assert!(!complete, "a whole frame within the limit was not decoded");
                    if buf.len() >= PREFIX {
                        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                        assert_eq!(wanted, PREFIX + len - buf.len(), "wanted is what the frame still needs");
                    } else {
                        assert_eq!(wanted, PREFIX - buf.len());
                    }
                    break;
                }
                Err(e) => {
                    assert!(matches!(e, Error::FrameTooLarge { max } if max == limit), "{e:?}");
                    refused = true;
                    break 'feed;
                }
            }
        }
    }

    let (frames, end, too_large) = reference(wire, limit);
    assert_eq!(got, frames, "the same frames, whatever the cuts");
    assert_eq!(refused, too_large, "the same refusal, whatever the cuts");
    if !refused {
        assert_eq!(&buf[..], &wire[end..], "what is left is the unfinished frame");
    }
    // Each frame re-encodes to the bytes it was read from.
    let again: Vec<u8> = got.iter().flat_map(|f| frame::encode(f).to_vec()).collect();
    assert_eq!(&again[..], &wire[..end], "each frame re-encodes to the bytes it came from");
    for f in &got {
        match frame::split(f) {
            Ok((letter, rest)) => {
                assert_eq!((letter, rest), (f[0], &f[1..]));
                if let Some(l) = Letter::from_byte(letter) {
                    assert_eq!(l.byte(), letter);
                    assert_eq!(frame::body(l, rest), *f);
                }
            }
            Err(e) => assert!(f.is_empty() && e == Error::EmptyFrame),
        }
    }
});

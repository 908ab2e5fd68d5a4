//! Fragmentation and reassembly (`proto::transport`).
//!
//! First byte even: `Reassembler` against a model (pieces in, whole
//! messages out, a bounded buffer). Odd: a message sealed for a peer's
//! limits and opened again piece by piece comes back whole, each frame
//! within the peer's frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychips_noise::proto::frame::{Letter, TAG_LEN};
use mychips_noise::proto::transport::{Limits, Reassembler, Transport};
use mychips_noise::Error;

fn word(d: &[u8], i: usize) -> usize {
    usize::from(u16::from_le_bytes([d.get(i).copied().unwrap_or(0), d.get(i + 1).copied().unwrap_or(0)]))
}

fn reassembler(data: &[u8]) {
    let max = word(data, 0);
    let mut r = Reassembler::default();
    let mut model: Vec<u8> = Vec::new();
    let mut rest = data.get(2..).unwrap_or_default();
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head >> 1).min(tail.len());
        let last = head & 1 == 1;
        let (piece, tail) = tail.split_at(len);
        rest = tail;
        let got = r.push(piece.to_vec(), last, max);
        if model.len() + piece.len() > max {
            assert_eq!(got, Err(Error::MessageTooLarge { max }));
            model.clear();
        } else {
            model.extend_from_slice(piece);
            if last {
                assert_eq!(got, Ok(Some(std::mem::take(&mut model))));
            } else {
                assert_eq!(got, Ok(None));
            }
        }
        assert_eq!(r.is_idle(), model.is_empty(), "idle exactly between messages");
    }
}

fn round_trip(data: &[u8]) {
    let flags = data.get(1).copied().unwrap_or(0);
    let (encrypted, native) = (flags & 1 == 1, flags & 2 == 2);
    let limits = Limits { max_frame: 1 + word(data, 2), max_message: word(data, 4) * 16 };
    let message = data.get(6..).unwrap_or_default();
    let (k1, k2) = ([7u8; 32], [9u8; 32]);
    let (mut tx, mut rx) = if encrypted {
        (Transport::new(&k1, &k2).expect("keys"), Transport::new(&k2, &k1).expect("keys"))
    } else {
        (Transport::raw(), Transport::raw())
    };
    if native {
        tx.set_native();
        rx.set_native();
    }
    let overhead = 1 + if encrypted { TAG_LEN } else { 0 };
    let frames = match tx.seal_message_bodies(message, native.then_some(limits)) {
        Ok(f) => f,
        Err(e) => {
            assert!(native && message.len() > limits.max_message, "refused only beyond the peer's limit: {e:?}");
            assert_eq!(e, Error::MessageTooLarge { max: limits.max_message });
            return;
        }
    };
    assert!(!native || message.len() <= limits.max_message);
    if !native {
        assert_eq!(frames.len(), 1, "a JavaScript peer gets one T");
    }
    let mut r = Reassembler::default();
    let mut whole = None;
    for (i, f) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        assert_eq!(f[0], if last { b'T' } else { b'F' }, "F pieces, then one T");
        if native {
            assert!(f.len() <= limits.max_frame.max(overhead + 1), "a frame beyond the peer's limit");
        }
        let letter = Letter::from_byte(f[0]).expect("a letter");
        let piece = rx.open(letter, &f[1..]).expect("our own frame opens");
        assert!(whole.is_none());
        whole = r.push(piece, last, message.len().max(1)).expect("within the size");
    }
    assert_eq!(whole.as_deref(), Some(message), "the message comes back whole");
}

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(b) if b & 1 == 0 => reassembler(&data[1..]),
        Some(_) => round_trip(data),
        None => {}
    }
});

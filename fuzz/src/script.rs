//! The input of the `responder` and `initiator` targets: a setup, then a
//! list of steps, in a byte format of our own.
//!
//! `Arbitrary` is implemented by hand rather than derived, so that the
//! format is fixed and has an inverse (`Script::encode`): the seed generator
//! writes real sessions as scripts, and a corpus file reads as
//! "setup bytes, then one tag byte and its fields per step". Every byte
//! string decodes to some script (unknown tags wrap round, missing bytes
//! read as zero), so no input is wasted on a parse error.

use arbitrary::{Arbitrary, Result, Unstructured};

/// The header letters, in the order `Relabel` and `InjectLetter` index them.
pub const LETTERS: &[u8; 8] = b"INKQATFC";

/// At most this many steps run per input (longer inputs are cut).
pub const MAX_STEPS: usize = 96;

/// How the two ends run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Both encrypt, both native.
    Native,
    /// Both in raw mode.
    Raw,
    /// Both encrypt; the genuine peer is a JavaScript (legacy) node.
    Legacy,
    /// The fuzzed side encrypts and the peer runs in raw mode.
    PeerRaw,
    /// The fuzzed side runs in raw mode and the peer encrypts.
    SelfRaw,
}

impl Mode {
    const ALL: [Mode; 5] = [Mode::Native, Mode::Raw, Mode::Legacy, Mode::PeerRaw, Mode::SelfRaw];

    /// The fuzzed side encrypts: forged frames must never get through.
    pub fn self_encrypts(self) -> bool {
        !matches!(self, Mode::Raw | Mode::SelfRaw)
    }

    pub fn peer_encrypts(self) -> bool {
        !matches!(self, Mode::Raw | Mode::PeerRaw)
    }
}

/// Which handshake the initiator opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialKind {
    /// IK with a ticket (`I`).
    Ticket,
    /// N + KK (`N`, `K`).
    Key,
    /// NK referee query (`Q`).
    Referee,
}

impl DialKind {
    const ALL: [DialKind; 3] = [DialKind::Ticket, DialKind::Key, DialKind::Referee];
}

/// Setup flags (one byte).
pub mod flags {
    /// The responder accepts legacy initiators.
    pub const ACCEPT_LEGACY: u8 = 1;
    /// The responder answers referee queries.
    pub const REFEREE: u8 = 2;
    /// The fuzzed side has the smallest limits (frames of 1 KiB, messages of 4 KiB).
    pub const SMALL: u8 = 4;
    /// Both sides send keepalives after 1 s.
    pub const KEEPALIVE: u8 = 8;
    /// The responder's lookups wait for `Answer` steps instead of being answered at once.
    pub const MANUAL: u8 = 16;
    /// Raw responder: admit every agent that calls with `N`.
    pub const ADMIT_ANY: u8 = 32;
    /// The genuine peer has the smallest limits.
    pub const PEER_SMALL: u8 = 64;
    /// Idle timeout 3 s instead of 60 s.
    pub const SHORT_IDLE: u8 = 128;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub mode: Mode,
    pub dial: DialKind,
    pub flags: u8,
}

impl Setup {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// How a lookup (`Event::Need`) is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// What a store that knows the genuine peer says.
    Correct,
    /// No: unknown key, not a partner, ticket refused.
    Deny,
    /// The key of another node.
    WrongKey,
    /// The lookup itself failed.
    Failed,
    /// A key of small order.
    WeakKey,
    /// An answer of another kind than the question (a driver bug).
    WrongVariant,
}

impl AnswerKind {
    const ALL: [AnswerKind; 6] = [
        AnswerKind::Correct,
        AnswerKind::Deny,
        AnswerKind::WrongKey,
        AnswerKind::Failed,
        AnswerKind::WeakKey,
        AnswerKind::WrongVariant,
    ];
}

/// One thing that happens to the fuzzed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Deliver the next genuine frame the peer wrote.
    Deliver,
    /// Lose the next genuine frame.
    Drop,
    /// Swap the next two genuine frames.
    Swap,
    /// Deliver the next genuine frame with one byte changed (`at` wraps round the body).
    Flip { at: u16, mask: u8 },
    /// Deliver the next genuine frame cut to `keep` bytes.
    Truncate { keep: u16 },
    /// Deliver the next genuine frame with bytes added at its end.
    Append { bytes: Vec<u8> },
    /// Deliver the next genuine frame under another header letter.
    Relabel { letter: u8 },
    /// Deliver again a genuine frame that was delivered before.
    Redeliver { index: u8 },
    /// Deliver arbitrary bytes as a frame body.
    Inject { bytes: Vec<u8> },
    /// Deliver a header letter and arbitrary bytes.
    InjectLetter { letter: u8, bytes: Vec<u8> },
    /// The peer sends an application message of about `len` bytes.
    PeerSend { len: u16 },
    /// The fuzzed side sends an application message of about `len` bytes.
    LocalSend { len: u16 },
    /// The clock moves on; due timers fire on both sides.
    Advance { ms: u16 },
    /// The peer's stream ends (TCP FIN) at the fuzzed side.
    Eof,
    /// The fuzzed side's application closes the link.
    Close,
    /// Answer the responder's oldest pending lookup (with `MANUAL`).
    Answer { kind: AnswerKind },
    /// Responder target: a new connection, sharing the node's replay table,
    /// gets every frame the peer wrote so far (a captured session replayed).
    ReplayHello,
}

const STEP_KINDS: u8 = 17;

/// A whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub setup: Setup,
    pub steps: Vec<Step>,
}

fn byte(u: &mut Unstructured<'_>) -> Result<u8> {
    u8::arbitrary(u)
}

/// Little-endian, whatever `arbitrary`'s own integer order is.
fn word(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(u16::from_le_bytes([byte(u)?, byte(u)?]))
}

/// A length word, then that many bytes (or what is left).
fn bytes(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = usize::from(word(u)?).min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

fn pick<T: Copy, const N: usize>(all: &[T; N], b: u8) -> T {
    all[usize::from(b) % N]
}

impl<'a> Arbitrary<'a> for Step {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match byte(u)? % STEP_KINDS {
            0 => Step::Deliver,
            1 => Step::Drop,
            2 => Step::Swap,
            3 => Step::Flip { at: word(u)?, mask: byte(u)? },
            4 => Step::Truncate { keep: word(u)? },
            5 => Step::Append { bytes: bytes(u)? },
            6 => Step::Relabel { letter: byte(u)? },
            7 => Step::Redeliver { index: byte(u)? },
            8 => Step::Inject { bytes: bytes(u)? },
            9 => Step::InjectLetter { letter: byte(u)?, bytes: bytes(u)? },
            10 => Step::PeerSend { len: word(u)? },
            11 => Step::LocalSend { len: word(u)? },
            12 => Step::Advance { ms: word(u)? },
            13 => Step::Eof,
            14 => Step::Close,
            15 => Step::Answer { kind: pick(&AnswerKind::ALL, byte(u)?) },
            _ => Step::ReplayHello,
        })
    }
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let setup = Setup { mode: pick(&Mode::ALL, byte(u)?), dial: pick(&DialKind::ALL, byte(u)?), flags: byte(u)? };
        let mut steps = Vec::new();
        while !u.is_empty() && steps.len() < MAX_STEPS {
            steps.push(Step::arbitrary(u)?);
        }
        Ok(Script { setup, steps })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> Result<Self> {
        Self::arbitrary(&mut u)
    }
}

fn index_of<T: PartialEq, const N: usize>(all: &[T; N], x: &T) -> u8 {
    all.iter().position(|a| a == x).and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

fn put_word(out: &mut Vec<u8>, w: u16) {
    out.extend_from_slice(&w.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
    put_word(out, len);
    out.extend_from_slice(&b[..usize::from(len)]);
}

impl Step {
    fn tag(&self) -> u8 {
        match self {
            Step::Deliver => 0,
            Step::Drop => 1,
            Step::Swap => 2,
            Step::Flip { .. } => 3,
            Step::Truncate { .. } => 4,
            Step::Append { .. } => 5,
            Step::Relabel { .. } => 6,
            Step::Redeliver { .. } => 7,
            Step::Inject { .. } => 8,
            Step::InjectLetter { .. } => 9,
            Step::PeerSend { .. } => 10,
            Step::LocalSend { .. } => 11,
            Step::Advance { .. } => 12,
            Step::Eof => 13,
            Step::Close => 14,
            Step::Answer { .. } => 15,
            Step::ReplayHello => 16,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            Step::Flip { at, mask } => {
                put_word(out, *at);
                out.push(*mask);
            }
            Step::Truncate { keep } => put_word(out, *keep),
            Step::Append { bytes } | Step::Inject { bytes } => put_bytes(out, bytes),
            Step::Relabel { letter } => out.push(*letter),
            Step::Redeliver { index } => out.push(*index),
            Step::InjectLetter { letter, bytes } => {
                out.push(*letter);
                put_bytes(out, bytes);
            }
            Step::PeerSend { len } | Step::LocalSend { len } => put_word(out, *len),
            Step::Advance { ms } => put_word(out, *ms),
            Step::Answer { kind } => out.push(index_of(&AnswerKind::ALL, kind)),
            Step::Deliver | Step::Drop | Step::Swap | Step::Eof | Step::Close | Step::ReplayHello => {}
        }
    }
}

impl Script {
    /// The bytes that decode to this script (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            vec![index_of(&Mode::ALL, &self.setup.mode), index_of(&DialKind::ALL, &self.setup.dial), self.setup.flags];
        for step in self.steps.iter().take(MAX_STEPS) {
            step.encode(&mut out);
        }
        out
    }

    pub fn decode(data: &[u8]) -> Self {
        // Cannot fail: every reader above takes zeros when the data runs out.
        Script::arbitrary_take_rest(Unstructured::new(data))
            .unwrap_or(Script { setup: Setup { mode: Mode::Native, dial: DialKind::Key, flags: 0 }, steps: Vec::new() })
    }
}

/// The letter a `Relabel` or `InjectLetter` byte names: one of the eight,
/// or (for a quarter of the values) the byte itself, so letters that are
/// not letters get tried too.
pub fn letter_of(b: u8) -> u8 {
    if b >= 192 {
        b
    } else {
        LETTERS[usize::from(b) % LETTERS.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_is_the_inverse_of_decode() {
        let script = Script {
            setup: Setup { mode: Mode::Legacy, dial: DialKind::Referee, flags: 0xa5 },
            steps: vec![
                Step::Deliver,
                Step::Flip { at: 513, mask: 7 },
                Step::Append { bytes: vec![1, 2, 3] },
                Step::InjectLetter { letter: 5, bytes: b"Thello".to_vec() },
                Step::Answer { kind: AnswerKind::WeakKey },
                Step::Advance { ms: 60_001 },
                Step::ReplayHello,
                Step::Inject { bytes: Vec::new() },
            ],
        };
        assert_eq!(Script::decode(&script.encode()), script);
    }

    #[test]
    fn any_bytes_decode() {
        for data in [&b""[..], b"\xff", b"\xff\xff\xff\x05\xff\xff", &[9u8; 300]] {
            let s = Script::decode(data);
            assert!(s.steps.len() <= MAX_STEPS);
        }
    }
}

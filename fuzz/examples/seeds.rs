//! Writes the seed corpus, `fuzz/corpus/<target>/seed-*`, from real sessions.
//!
//! Each session runs through the same harness the connection targets use,
//! so it is checked as it is recorded: a clean session must open and carry
//! messages both ways. Its frames then seed the other targets: the wire
//! streams (`frame`), the plaintext payloads of raw-mode sessions
//! (`payload`), the messages (`reassembly`) and the keys (`keys`).
//!
//!     cargo run --release --manifest-path fuzz/Cargo.toml --example seeds
//!
//! Then minimise with `cargo fuzz cmin` (scripts/fuzz.sh --cmin).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use mychips_noise::proto::frame;
use mychips_noise::proto::keys;
use mychips_noise::proto::payload;
use mychips_noise_fuzz::script::{flags, AnswerKind, DialKind, Mode, Script, Setup, Step};
use mychips_noise_fuzz::session::{nodes, run, Outcome, Role};

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
        self.written += 1;
    }
}

/// A whole session: handshake, messages both ways (long ones too), a
/// keepalive's worth of time, an orderly close, the end of the stream.
fn clean(manual: bool) -> Vec<Step> {
    use Step::*;
    let answer = || if manual { vec![Answer { kind: AnswerKind::Correct }] } else { vec![] };
    let mut s = vec![Deliver];
    s.extend(answer());
    s.push(Deliver);
    s.extend(answer());
    s.extend(answer());
    s.extend([
        Deliver,
        Deliver,
        PeerSend { len: 40 },
        Deliver,
        LocalSend { len: 60 },
        PeerSend { len: 3000 },
        Deliver,
        Deliver,
        Deliver,
        Deliver,
        LocalSend { len: 3000 },
        Advance { ms: 1500 },
        Deliver,
        Deliver,
        Close,
        PeerSend { len: 30 },
        Deliver,
        Deliver,
        Eof,
    ]);
    s
}

fn name(role: Role, setup: &Setup) -> String {
    format!("{:?}-{:?}-{:?}-{:02x}", role, setup.mode, setup.dial, setup.flags).to_lowercase()
}

fn target(role: Role) -> &'static str {
    match role {
        Role::Responder => "responder",
        Role::Initiator => "initiator",
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut c = Corpus { root, written: 0 };
    let base = flags::REFEREE | flags::ACCEPT_LEGACY;
    let mut sessions: Vec<(String, Setup, Outcome)> = Vec::new();

    // Clean sessions of every kind; each must open and carry messages both ways.
    for role in [Role::Responder, Role::Initiator] {
        for mode in [Mode::Native, Mode::Raw, Mode::Legacy] {
            for dial in [DialKind::Ticket, DialKind::Key, DialKind::Referee] {
                if mode == Mode::Legacy && dial == DialKind::Referee {
                    continue; // a JavaScript node has no referee query
                }
                for extra in [0, flags::SMALL | flags::PEER_SMALL | flags::KEEPALIVE, flags::MANUAL | flags::SHORT_IDLE]
                {
                    let setup = Setup { mode, dial, flags: base | extra };
                    let script = Script { setup, steps: clean(extra & flags::MANUAL != 0) };
                    let out = run(role, &script);
                    let n = name(role, &setup);
                    assert!(out.opened, "{n}: did not open: {out:?}");
                    assert!(out.delivered >= 2 && out.peer_received >= 2, "{n}: messages lost: {out:?}");
                    assert_eq!(out.error, None, "{n}");
                    c.put(target(role), &n, &script.encode());
                    sessions.push((format!("{}-{n}", target(role)), setup, out));
                }
            }
        }
        // One side raw, the other encrypting: both refuse, with a clear error.
        for mode in [Mode::PeerRaw, Mode::SelfRaw] {
            let setup = Setup { mode, dial: DialKind::Key, flags: base };
            let script = Script { setup, steps: clean(false) };
            let out = run(role, &script);
            assert!(!out.opened && out.error.as_deref().is_some_and(|e| e.contains("ModeMismatch")), "{out:?}");
            c.put(target(role), &name(role, &setup), &script.encode());
        }
    }

    // Attacks on a native session, most of them once it is open. (No frames
    // of other sessions: a captured message 1 is a valid replay, which only
    // `ReplayHello` may make, where the harness expects it.)
    for role in [Role::Responder, Role::Initiator] {
        for dial in [DialKind::Ticket, DialKind::Key] {
            use Step::*;
            let setup = Setup { mode: Mode::Native, dial, flags: base | flags::KEEPALIVE };
            let open = || vec![Deliver, Deliver, Deliver, PeerSend { len: 50 }];
            let attacks: Vec<(&str, Vec<Step>)> = vec![
                ("flip", [open(), vec![Flip { at: 40, mask: 1 }, Deliver]].concat()),
                ("relabel", [open(), vec![Relabel { letter: 6 }, Deliver]].concat()),
                ("truncate", [open(), vec![Truncate { keep: 20 }, Deliver]].concat()),
                ("append", [open(), vec![Append { bytes: vec![0; 16] }, Deliver]].concat()),
                ("drop", [open(), vec![Drop, PeerSend { len: 50 }, Deliver]].concat()),
                ("swap", [open(), vec![PeerSend { len: 70 }, Swap, Deliver, Deliver]].concat()),
                ("redeliver", [open(), vec![Deliver, Redeliver { index: 0 }, Redeliver { index: 3 }]].concat()),
                ("replay-hello", [open(), vec![Deliver, ReplayHello, ReplayHello]].concat()),
                (
                    "idle",
                    [open(), vec![Deliver, Advance { ms: 30_000 }, Advance { ms: 31_000 }, Advance { ms: 3000 }]]
                        .concat(),
                ),
                ("handshake-timeout", vec![Deliver, Advance { ms: 6000 }, Deliver]),
                ("flip-hello", vec![Flip { at: 3, mask: 0x80 }, Deliver, Deliver]),
            ];
            for (what, steps) in attacks {
                let script = Script { setup, steps };
                run(role, &script);
                c.put(target(role), &format!("{}-{what}", name(role, &setup)), &script.encode());
            }
        }
        // Lookups answered every other way.
        for kind in
            [AnswerKind::Deny, AnswerKind::WrongKey, AnswerKind::Failed, AnswerKind::WeakKey, AnswerKind::WrongVariant]
        {
            for dial in [DialKind::Ticket, DialKind::Key] {
                let setup = Setup { mode: Mode::Native, dial, flags: base | flags::MANUAL };
                let steps = vec![
                    Step::Deliver,
                    Step::Answer { kind },
                    Step::Deliver,
                    Step::Answer { kind },
                    Step::Deliver,
                    Step::Deliver,
                ];
                let script = Script { setup, steps };
                let out = run(role, &script);
                assert!(!out.opened && (role == Role::Initiator || out.error.is_some()), "{kind:?} {dial:?}: {out:?}");
                c.put(
                    target(role),
                    &format!("{}-answer-{kind:?}", name(role, &setup)).to_lowercase(),
                    &script.encode(),
                );
            }
        }
    }

    // The wire streams of the captured sessions, both ways, for the frame decoder.
    for (n, _, out) in &sessions {
        for (dir, wire) in [("in", &out.peer_wire), ("out", &out.subject_wire)] {
            let mut bytes = vec![0xff, 0xff, 3, 1, 7, 200]; // limit 65,536; cut into 1, 7, 200 bytes
            for body in wire {
                bytes.extend_from_slice(&frame::encode(body));
            }
            if n.ends_with("-03") || n.ends_with("-4f") {
                c.put("frame", &format!("{n}-{dir}"), &bytes);
            }
        }
    }
    let mut small = vec![100, 0, 0];
    small.extend_from_slice(&frame::encode(&[b'T'; 150]));
    c.put("frame", "over-the-limit", &small);

    // Plaintext payloads of raw sessions, as they crossed the wire.
    let mut payloads = BTreeSet::new();
    for (n, _, out) in &sessions {
        if n.contains("-raw-") {
            for body in out.peer_wire.iter().chain(&out.subject_wire) {
                if body.len() > 1 && body.len() < 200 {
                    payloads.insert(body[1..].to_vec());
                }
            }
        }
    }
    payloads.insert(payload::refuse_reply("ERR_TICKET_REFUSED"));
    payloads
        .insert(br#"{"ticket":{"token":"t-1"},"from":{"agent":"abc","host":"h","port":1},"target":"tally"}"#.to_vec());
    payloads.insert(br#"{"target":"tally","action":"open"}"#.to_vec());
    payloads.insert(b"".to_vec());
    for (i, p) in payloads.iter().enumerate() {
        c.put("payload", &format!("{i:02}"), p);
    }

    // Messages through the reassembler, and sealed for a peer's limits.
    c.put("reassembly", "pieces", &[0, 0x00, 0x10, 5 << 1, 1, 2, 3, 4, 5, (3 << 1) | 1, 6, 7, 8]);
    let msg = mychips_noise_fuzz::session::message(700, 1);
    let mut sealed = vec![1, 3, 100, 0, 64, 0];
    sealed.extend_from_slice(&msg);
    c.put("reassembly", "sealed-native", &sealed);
    sealed[1] = 1;
    c.put("reassembly", "sealed-legacy", &sealed);

    // Keys: agent ids, a JWK pair, a libsodium secret, raw keys, and refused
    // spellings; the first byte picks the check (fuzz_targets/keys.rs).
    let n = nodes();
    let with = |which: u8, bytes: &[u8]| [&[which][..], bytes].concat();
    c.put("keys", "agent-a", &with(0, n.a.agent.as_bytes()));
    c.put("keys", "agent-b", &with(0, n.b.agent.as_bytes()));
    c.put("keys", "padded", &with(0, format!("{}=", n.a.agent).as_bytes()));
    c.put("keys", "small-order", &with(0, b"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    c.put("keys", "ed25519", &with(1, &keys::decode(&n.a.agent).expect("an id decodes")));
    let mut above_p = [0xffu8; 32];
    above_p[0] = 0xee;
    above_p[31] = 0x7f;
    c.put("keys", "not-canonical", &with(1, &above_p));
    c.put("keys", "x25519", &with(2, &n.a.private));
    c.put("keys", "jwk", &with(3, format!("{} {}", n.a.agent, keys::encode(&[1; 32])).as_bytes()));
    let mut secret = vec![1u8; 32];
    secret.extend(keys::decode(&n.a.agent).expect("an id decodes"));
    c.put("keys", "libsodium", &with(4, &secret));

    println!("wrote {} seeds under {}", c.written, c.root.display());
}

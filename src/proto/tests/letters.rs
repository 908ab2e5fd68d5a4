//! Letters per state.

use super::*;

const ALL_BYTES: &[u8] = b"INKQATFX\0";

type Build = fn() -> Result<Connection>;

/// A connection whose initiator-written message 1 has been read (and, with
/// `answers`, that many lookups answered by a store that knows everyone).
fn responder_after(dial: Dial, frames: usize, answers: usize) -> Result<Connection> {
    let (a, b) = (node(1), node(2));
    let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, dial, 1))?;
    let mut resp = fresh_responder(&b);
    for _ in 0..frames {
        let body = init.poll_transmit().ok_or_else(|| Error::Internal("no frame".into()))?;
        resp.handle_frame(t0(), &body)?;
    }
    let mut lookup = knows(&[&a]);
    for _ in 0..answers {
        let need = std::iter::from_fn(|| resp.poll_event())
            .find_map(|e| match e {
                Event::Need(n) => Some(n),
                _ => None,
            })
            .ok_or_else(|| Error::Internal("no Need".into()))?;
        resp.handle_lookup(t0(), lookup(&need))?;
    }
    Ok(resp)
}

fn open_side(initiator: bool) -> Result<Connection> {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    Ok(if initiator { pair.init.conn } else { pair.resp.conn })
}

/// (state, allowed letters, how to get there)
fn states() -> Vec<(&'static str, &'static [u8], Build)> {
    vec![
        ("responder, fresh", b"INQ", || Ok(fresh_responder(&node(2)))),
        ("responder, after N", b"K", || responder_after(Dial::Key, 1, 0)),
        ("responder, after N, key known", b"K", || responder_after(Dial::Key, 1, 1)),
        ("responder, after I, asking for the key", b"", || responder_after(by_ticket(&node(1)), 1, 0)),
        ("responder, after I, asking about the ticket", b"", || responder_after(by_ticket(&node(1)), 1, 1)),
        ("initiator, awaiting A", b"A", || {
            let (a, b) = (node(1), node(2));
            Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, Dial::Key, 1))
        }),
        ("initiator, open", b"TF", || open_side(true)),
        ("responder, open", b"TF", || open_side(false)),
        ("responder, draining", b"TF", || {
            let mut c = open_side(false)?;
            c.close(t0());
            Ok(c)
        }),
        ("closed", b"", || {
            let mut c = open_side(false)?;
            c.handle_eof()?;
            Ok(c)
        }),
    ]
}

#[test]
fn letters_not_allowed_in_a_state_are_refused_and_close_the_connection() -> TestResult {
    let mut checked = 0;
    for (state, allowed, build) in states() {
        for &byte in ALL_BYTES.iter().filter(|b| !allowed.contains(b)) {
            let mut conn = build()?;
            let mut body = vec![byte];
            body.extend_from_slice(&noise(u64::from(byte), 64));
            let r = conn.handle_frame(t0(), &body);
            assert!(
                matches!(r, Err(Error::UnexpectedLetter { letter, .. }) if letter == char::from(byte)),
                "{state}, letter {:?}: {r:?}",
                char::from(byte)
            );
            assert!(conn.is_closed(), "{state}, letter {:?}", char::from(byte));
            assert_eq!(conn.poll_timeout(), None, "{state}: a closed connection has no timer");
            checked += 1;
        }
    }
    assert_eq!(checked, 78, "10 states × 9 letters, less the 12 allowed ones");
    Ok(())
}

#[test]
fn empty_frame_is_refused_in_every_state() -> TestResult {
    for (state, _, build) in states() {
        let mut conn = build()?;
        assert_eq!(conn.handle_frame(t0(), b""), Err(Error::EmptyFrame), "{state}");
        assert!(conn.is_closed(), "{state}");
    }
    Ok(())
}

#[test]
fn frame_over_max_frame_is_refused_before_its_letter_is_read() -> TestResult {
    for (state, _, build) in states() {
        let mut conn = build()?;
        let mut body = vec![b'T'; DEFAULT_MAX_FRAME + 1];
        body[0] = b'I';
        assert_eq!(conn.handle_frame(t0(), &body), Err(Error::FrameTooLarge { max: DEFAULT_MAX_FRAME }), "{state}");
        assert!(conn.is_closed());
        let mut conn = build()?;
        let body = vec![b'T'; DEFAULT_MAX_FRAME + 1];
        assert_eq!(conn.handle_frame(t0(), &body), Err(Error::FrameTooLarge { max: DEFAULT_MAX_FRAME }), "{state}");
    }
    Ok(())
}

#[test]
fn random_bytes_after_an_allowed_letter_are_an_error_never_a_panic() -> TestResult {
    let (a, b) = (node(1), node(2));
    for (state, allowed, build) in states() {
        for &byte in allowed {
            for (i, len) in
                [0usize, 1, 15, 16, 31, 32, 33, 47, 48, 64, 95, 96, 200, 1_000, 65_535].into_iter().enumerate()
            {
                let conn = build()?;
                let mut side = Side::new(conn, knows(&[&a, &b]));
                let mut body = vec![byte];
                body.extend_from_slice(&noise(i as u64 * 31 + u64::from(byte), len));
                side.frame(t0(), &body);
                assert!(side.error.is_some(), "{state}, {:?} + {len} random bytes", char::from(byte));
                assert!(side.conn.is_closed(), "{state}, {:?} + {len}", char::from(byte));
                assert!(
                    !side.events.iter().any(|e| matches!(e, Event::Open(_) | Event::Message { .. })),
                    "{state}: nothing opens or is delivered"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn random_bytes_in_raw_mode_never_panic() -> TestResult {
    let (a, b) = (raw_node(1), raw_node(2));
    let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, Dial::Key, 1))?;
    let n = init.poll_transmit().ok_or("no N")?;
    for len in [0usize, 1, 2, 10, 100, 1_000] {
        for (letter, prefix) in [(b'I', None), (b'N', None), (b'Q', None), (b'K', Some(&n))] {
            let mut side = Side::new(fresh_responder(&b), knows(&[&a]));
            if let Some(n) = prefix {
                side.frame(t0(), n);
            }
            let mut body = vec![letter];
            body.extend_from_slice(&noise(len as u64, len));
            side.frame(t0(), &body);
            assert!(side.error.is_some(), "raw {:?} + {len} random bytes", char::from(letter));
            assert!(!side.events.iter().any(|e| matches!(e, Event::Open(_))));
        }
    }
    Ok(())
}

#[test]
fn truncated_first_messages_are_refused_without_panic() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.referee = true));
    for dial in [by_ticket(&a), Dial::Key, Dial::Referee] {
        let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, dial, 1))?;
        let first = init.poll_transmit().ok_or("no message 1")?;
        for len in 0..first.len() {
            let mut side = Side::new(fresh_responder(&b), knows(&[&a]));
            side.frame(t0(), &first[..len]);
            let what = format!("{:?} cut to {len} bytes: {:?}", char::from(first[0]), side.error);
            match (len, &side.error) {
                (0, Some(Error::EmptyFrame)) | (_, Some(Error::Decrypt)) => assert!(side.wire.is_empty(), "{what}"),
                // The ephemeral key is random: a cut of a byte or two that happen
                // to be ASCII digits parses as JSON, which reads as a raw-mode
                // peer and earns it the plaintext mode-mismatch notice.
                (1..=3, Some(Error::ModeMismatch(_))) => assert_eq!(letters(&side.wire), "A", "{what}"),
                _ => panic!("{what}"),
            }
            assert!(side.needs.is_empty() && side.events.is_empty(), "{what}");
        }
    }
    Ok(())
}

#[test]
fn truncated_reply_and_transport_frames_are_refused_without_panic() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    let reply = pair.resp.wire[0].clone();
    for len in 1..reply.len() {
        let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, by_ticket(&a), 1))?;
        assert!(init.handle_frame(t0(), &reply[..len]).is_err(), "A cut to {len}");
        assert!(init.is_closed());
    }
    let (mut pair, msg) = (open(&a, &b, by_ticket(&a))?, br#"{"x":1}"#);
    pair.init.send(pair.now, msg)?;
    let t = pair.init.take_outbox().pop().ok_or("no T")?;
    for len in 1..t.len() {
        let mut resp = open_side(false)?;
        assert_eq!(resp.handle_frame(t0(), &t[..len]), Err(Error::Decrypt), "T cut to {len}");
    }
    Ok(())
}

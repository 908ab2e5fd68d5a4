//! Legacy (JavaScript) initiators.

use super::*;

/// A legacy IK message 1 as a JavaScript node writes it: its first
/// application message, with ticket, from and target, no `native`, no `ts`.
fn legacy_ticket_payload(from: &Node) -> Vec<u8> {
    json!({ "ticket": ticket(), "from": address(from), "target": "tally", "action": "draft" }).to_string().into_bytes()
}

fn legacy_ik(a: &Node, b: &Node, payload: &[u8]) -> Result<(Handshake, Vec<u8>)> {
    let mut hs = Handshake::initiator("IK", Some(&a.private), Some(&b.public))?;
    let msg = hs.write(payload)?;
    Ok((hs, frame::body(Letter::I, &msg)))
}

#[test]
fn legacy_ik_is_refused_unless_legacy_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let (_, i) = legacy_ik(&a, &b, &legacy_ticket_payload(&a))?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    resp.frame(t0(), &i);
    assert_eq!(resp.error, Some(Error::LegacyRefused));
    assert!(resp.needs.is_empty() && resp.events.is_empty());
    assert!(resp.wire.is_empty(), "a JavaScript node could not read a refusal");
    Ok(())
}

#[test]
fn legacy_ik_accepted_delivers_its_payload_once_as_early_data() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let hello = legacy_ticket_payload(&a);
    let (mut hs, i) = legacy_ik(&a, &b, &hello)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &i);
    assert_eq!(resp.error, None);
    let p = resp.peer().ok_or("no Open")?;
    assert_eq!((p.pattern, p.native, p.key), (Pattern::IK, false, Some(a.public)));
    assert_eq!(resp.messages(), vec![(String::from_utf8(hello)?, true)]);
    // Accepted comes before the early message; the link opens (routes) only
    // once the caller proves it holds the keys with a transport frame.
    assert!(matches!(resp.events[0], Event::Accepted(_)), "Accepted comes before the early message");
    assert!(!resp.opened(), "a replayable message 1 opens nothing");

    // The A carries an empty payload, which a JavaScript application never sees.
    let reply = resp.take_outbox();
    assert_eq!(letters(&reply), "A");
    assert_eq!(hs.read(&reply[0][1..])?, b"");

    // Then ordinary transport both ways.
    let mut t = hs.into_transport(false)?;
    resp.frame(now, &t.seal(Letter::T, br#"{"target":"tally","n":2}"#)?);
    assert!(resp.opened(), "its first T confirms it");
    assert_eq!(resp.messages().len(), 2);
    assert_eq!(resp.messages()[1], (r#"{"target":"tally","n":2}"#.into(), false));
    resp.send(now, br#"{"ok":1}"#)?;
    let back = resp.take_outbox();
    assert_eq!(t.open(Letter::T, &back[0][1..])?, br#"{"ok":1}"#);
    Ok(())
}

#[test]
fn legacy_peer_gets_long_messages_as_one_t_and_may_send_one() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let (mut hs, i) = legacy_ik(&a, &b, &legacy_ticket_payload(&a))?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &i);
    let reply = resp.take_outbox();
    hs.read(&reply[0][1..])?;
    let mut t = hs.into_transport(false)?;

    let big = json_message(100 * 1024);
    resp.send(now, &big)?;
    let out = resp.take_outbox();
    assert_eq!(letters(&out), "T", "no F to a JavaScript node");
    assert!(out[0].len() > DEFAULT_MAX_FRAME);
    assert_eq!(t.open(Letter::T, &out[0][1..])?, big);

    let oversized = t.seal(Letter::T, &big)?;
    assert!(oversized.len() > DEFAULT_MAX_FRAME);
    resp.frame(now, &oversized);
    assert_eq!(resp.error, None, "a legacy T may exceed max_frame up to max_message");
    assert_eq!(resp.messages().last().map(|m| m.0.len()), Some(big.len()));
    Ok(())
}

fn legacy_kk(a: &Node, b: &Node, payload: &[u8]) -> Result<(Handshake, Vec<Vec<u8>>)> {
    let mut n = Handshake::initiator("N", None, Some(&b.public))?;
    let n = frame::body(Letter::N, &n.write(&payload::identity_hello(&a.agent))?);
    let mut hs = Handshake::initiator("KK", Some(&a.private), Some(&b.public))?;
    let k = frame::body(Letter::K, &hs.write(payload)?);
    Ok((hs, vec![n, k]))
}

#[test]
fn legacy_kk_object_payload_is_delivered_as_early_data() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let hello = br#"{"target":"chit","to":"x","from":"y"}"#;
    let (mut hs, frames) = legacy_kk(&a, &b, hello)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    for f in &frames {
        resp.frame(t0(), f);
    }
    assert_eq!(resp.error, None);
    let p = resp.peer().ok_or("no Open")?;
    assert_eq!((p.pattern, p.native), (Pattern::KK, false));
    assert_eq!(resp.messages(), vec![(String::from_utf8(hello.to_vec())?, true)]);
    let reply = resp.take_outbox();
    assert_eq!(hs.read(&reply[0][1..])?, b"", "empty A payload to a legacy initiator");
    Ok(())
}

#[test]
fn legacy_kk_empty_object_delivers_nothing() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    for hello in [&b"{}"[..], b"", b"null"] {
        let (_, frames) = legacy_kk(&a, &b, hello)?;
        let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
        for f in &frames {
            resp.frame(t0(), f);
        }
        assert_eq!(resp.error, None, "{hello:?}");
        assert!(resp.peer().is_some_and(|p| !p.native));
        assert!(resp.messages().is_empty(), "{hello:?} is not handed on");
    }
    Ok(())
}

#[test]
fn legacy_kk_is_refused_unless_legacy_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let (_, frames) = legacy_kk(&a, &b, br#"{"target":"chit"}"#)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    for f in &frames {
        resp.frame(t0(), f);
    }
    assert_eq!(resp.error, Some(Error::LegacyRefused));
    assert!(resp.wire.is_empty() && resp.events.is_empty());
    Ok(())
}

#[test]
fn native_initiator_sees_a_legacy_responder_and_sends_no_fragments() -> TestResult {
    // A JavaScript responder accepts with an empty A: build one by hand.
    let (a, b) = (node(1), node(2));
    let mut init = Side::new(
        Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, by_ticket(&a), 7))?,
        asks_nothing(),
    );
    let i = init.take_outbox().pop().ok_or("no I")?;
    let mut hs = Handshake::responder("IK", Some(&b.private), None)?;
    let hello: Value = serde_json::from_slice(&hs.read(&i[1..])?)?;
    assert!(hello.get("target").is_none(), "a JavaScript application ignores our I");
    init.frame(t0(), &frame::body(Letter::A, &hs.write(b"")?));
    assert_eq!(init.error, None);
    assert!(init.peer().is_some_and(|p| !p.native));
    init.send(t0(), &json_message(100_000))?;
    assert_eq!(letters(&init.take_outbox()), "T");
    Ok(())
}

#[test]
fn a_javascript_peer_never_gets_a_keepalive() -> TestResult {
    // Found by fuzzing (fuzz/, target `responder`): sending a message armed
    // the keepalive timer on a legacy link too, and an empty T followed.
    let keepalive = Duration::from_secs(1);
    let (a, b) = (node(1), node(2).with(|c| (c.accept_legacy, c.keepalive) = (true, Some(keepalive))));
    let (mut hs, i) = legacy_ik(&a, &b, &legacy_ticket_payload(&a))?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &i);
    hs.read(&resp.take_outbox()[0][1..])?;
    let mut t = hs.into_transport(false)?;
    resp.frame(now, &t.seal(Letter::T, br#"{"target":"tally"}"#)?);
    resp.send(now, br#"{"ok":1}"#)?;
    assert_eq!(letters(&resp.take_outbox()), "T");
    let later = now + 2 * keepalive;
    assert!(resp.conn.poll_timeout().is_some_and(|t| t > later), "no timer before the idle one");
    resp.timeout(later);
    assert_eq!(letters(&resp.take_outbox()), "", "no empty T to a JavaScript node");
    Ok(())
}

#[test]
fn an_f_on_a_legacy_link_is_refused() -> TestResult {
    // Found by fuzzing (fuzz/, target `responder`): a JavaScript node's
    // transport messages authenticate no letter, so a T relabelled F on the
    // way decrypted, confirmed the link and was held as a fragment.
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let (mut hs, i) = legacy_ik(&a, &b, &legacy_ticket_payload(&a))?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    resp.frame(t0(), &i);
    hs.read(&resp.take_outbox()[0][1..])?;
    let mut t = hs.into_transport(false)?;
    let mut relabelled = t.seal(Letter::T, br#"{"target":"tally"}"#)?;
    relabelled[0] = b'F';
    resp.frame(t0(), &relabelled);
    assert!(matches!(resp.error, Some(Error::UnexpectedLetter { letter: 'F', .. })), "{:?}", resp.error);
    assert!(!resp.opened(), "a relabelled frame confirms nothing");
    Ok(())
}

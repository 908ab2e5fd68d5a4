//! Split direction.

use super::*;

#[test]
fn responder_sends_with_the_first_split_key() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut snow_init = snow::Builder::new(suite::params("IK"))
        .local_private_key(&a.private)?
        .remote_public_key(&b.public)?
        .build_initiator()?;
    let mut buf = vec![0u8; 65_535];
    let n = snow_init.write_message(&payload::ticket_hello(&ticket(), &address(&a), 3), &mut buf)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &frame::body(Letter::I, &buf[..n]));
    assert!(resp.conn.can_send(), "{:?}", resp.error);
    let reply = resp.take_outbox();
    let n = snow_init.read_message(&reply[0][1..], &mut buf)?;
    assert!(matches!(payload::parse_reply(&buf[..n]), payload::Reply::Native(_)));
    assert!(snow_init.is_handshake_finished());
    let (k1, k2) = snow_init.dangerously_get_raw_split();

    resp.send(now, br#"{"from":"responder"}"#)?;
    let t = resp.take_outbox().pop().ok_or("no T")?;
    // Native links authenticate the letter with a version label.
    let native = |send: &[u8; 32], recv: &[u8; 32]| {
        let mut t = Transport::new(send, recv).expect("keys");
        t.set_native();
        t
    };
    assert_eq!(native(&k2, &k1).open(Letter::T, &t[1..])?, br#"{"from":"responder"}"#, "responder sends with k1");
    assert_eq!(native(&k1, &k2).open(Letter::T, &t[1..]), Err(Error::Decrypt), "not with k2 (the Noise spec's way)");

    let mut ours = native(&k2, &k1);
    resp.frame(now, &ours.seal(Letter::T, br#"{"from":"initiator"}"#)?);
    assert_eq!(resp.messages(), vec![(r#"{"from":"initiator"}"#.into(), false)], "initiator sends with k2");
    Ok(())
}

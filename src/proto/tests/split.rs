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
    assert!(resp.conn.is_open(), "{:?}", resp.error);
    let reply = resp.take_outbox();
    let n = snow_init.read_message(&reply[0][1..], &mut buf)?;
    assert_eq!(payload::parse_reply(&buf[..n]), payload::Reply::Native);
    assert!(snow_init.is_handshake_finished());
    let (k1, k2) = snow_init.dangerously_get_raw_split();

    resp.send(now, br#"{"from":"responder"}"#)?;
    let t = resp.take_outbox().pop().ok_or("no T")?;
    assert_eq!(Transport::new(&k2, &k1).open(&t[1..])?, br#"{"from":"responder"}"#, "responder sends with k1");
    assert_eq!(Transport::new(&k1, &k2).open(&t[1..]), Err(Error::Decrypt), "not with k2 (the Noise spec's way)");

    let mut ours = Transport::new(&k2, &k1);
    resp.frame(now, &ours.seal(Letter::T, br#"{"from":"initiator"}"#)?);
    assert_eq!(resp.messages(), vec![(r#"{"from":"initiator"}"#.into(), false)], "initiator sends with k2");
    Ok(())
}

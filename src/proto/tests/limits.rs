//! Fragmentation and limits.

use super::*;

#[test]
fn one_mib_message_goes_as_fragments_and_arrives_whole() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let msg = json_message(DEFAULT_MAX_MESSAGE);
    serde_json::from_slice::<Value>(&msg)?;
    let now = pair.now;
    pair.init.send(now, &msg)?;
    let frames = pair.init.outbox.clone();
    let shape = letters(&Vec::from(frames.clone()));
    assert!(shape.len() > 16 && shape.ends_with('T') && shape[..shape.len() - 1].chars().all(|c| c == 'F'), "{shape}");
    assert!(frames.iter().all(|f| f.len() <= DEFAULT_MAX_FRAME), "each frame at most 65,536 bytes");
    assert!(frames.iter().all(|f| f.len() - 1 <= MAX_NOISE_MESSAGE));
    pair.drive();
    assert_eq!(pair.resp.error, None);
    let got = pair.resp.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_bytes(), &msg[..]);

    // And the other way, then a short one to show the reassembler reset.
    pair.resp.send(now, &msg)?;
    pair.resp.send(now, br#"{"after":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.messages().len(), 2);
    assert_eq!(pair.init.messages()[1].0, r#"{"after":1}"#);
    Ok(())
}

#[test]
fn message_over_max_message_is_refused_by_send() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let r = pair.init.send(pair.now, &json_message(DEFAULT_MAX_MESSAGE + 1));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert!(pair.init.outbox.is_empty() && pair.init.conn.is_open(), "nothing sent, link intact");
    Ok(())
}

#[test]
fn a_message_over_the_receivers_limit_is_refused_by_the_sender_before_writing() -> TestResult {
    let (a, b) = (node(1).with(|c| c.max_message = 2 * DEFAULT_MAX_MESSAGE), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let before = pair.init.wire.len();
    let r = pair.init.send(pair.now, &json_message(DEFAULT_MAX_MESSAGE + 1_024));
    assert_eq!(r, Err(Error::MessageTooLarge { max: DEFAULT_MAX_MESSAGE }), "b said in A what it takes");
    assert_eq!(pair.init.wire.len(), before, "nothing written");
    assert!(pair.init.conn.is_open(), "the link carries on");
    // The other way: b learned a's limit from its C.
    pair.resp.send(pair.now, &json_message(DEFAULT_MAX_MESSAGE))?;
    pair.drive();
    assert_eq!(pair.init.messages().len(), 1);
    Ok(())
}

#[test]
fn fragments_fit_the_receivers_frame_limit() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.max_frame = 2_000));
    let mut pair = open(&a, &b, Dial::Key)?;
    pair.init.send(pair.now, &json_message(10_000))?;
    pair.drive();
    assert!(pair.init.wire.iter().all(|f| f.len() <= 2_000));
    assert_eq!(pair.resp.messages().len(), 1);
    assert_eq!(pair.resp.error, None);
    Ok(())
}

#[test]
fn reassembled_message_over_receiver_limit_is_refused() -> TestResult {
    // A native initiator that ignores the limit b announced: made by hand.
    let (a, b) = (node(1), node(2).with(|c| c.max_message = 100_000));
    let mut init = snow::Builder::new(suite::params("IK"))
        .local_private_key(&a.private)?
        .remote_public_key(&b.public)?
        .build_initiator()?;
    let mut buf = vec![0u8; 65_535];
    let n = init.write_message(&payload::ticket_hello(&ticket(), &address(&a), 3), &mut buf)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &frame::body(Letter::I, &buf[..n]));
    let reply = resp.take_outbox();
    init.read_message(&reply[0][1..], &mut buf)?;
    let (k1, k2) = init.dangerously_get_raw_split();
    let mut t = Transport::new(&k2, &k1).expect("keys");
    t.set_native();
    let piece = vec![b'a'; 60_000];
    resp.frame(now, &t.seal(Letter::F, &piece)?);
    resp.frame(now, &t.seal(Letter::T, &piece)?);
    assert_eq!(resp.error, Some(Error::MessageTooLarge { max: 100_000 }));
    assert!(resp.conn.is_closed() && resp.messages().is_empty());
    Ok(())
}

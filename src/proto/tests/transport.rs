//! Transport: replay, reorder, bad messages.

use super::*;

#[test]
fn replayed_transport_frame_fails_to_decrypt_and_closes() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.send(now, br#"{"once":true}"#)?;
    let t = pair.init.take_outbox().pop().ok_or("no T")?;
    pair.resp.frame(now, &t);
    pair.resp.frame(now, &t);
    assert_eq!(pair.resp.error, Some(Error::Decrypt));
    assert!(pair.resp.conn.is_closed());
    assert_eq!(pair.resp.messages().len(), 1, "nothing is delivered twice");
    Ok(())
}

#[test]
fn reordered_transport_frames_fail_to_decrypt() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.init.send(now, br#"{"n":2}"#)?;
    let frames = pair.init.take_outbox();
    pair.resp.frame(now, &frames[1]);
    assert_eq!(pair.resp.error, Some(Error::Decrypt));
    assert!(pair.resp.conn.is_closed() && pair.resp.messages().is_empty());
    Ok(())
}

#[test]
fn received_message_that_is_not_an_object_is_bad_message() -> TestResult {
    // The sender refuses to send one, so seal it by hand in raw mode.
    let (a, b) = (raw_node(1), raw_node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    pair.resp.frame(pair.now, b"T[1,2,3]");
    assert_eq!(pair.resp.error, Some(Error::BadMessage));
    assert!(pair.resp.conn.is_closed() && pair.resp.messages().is_empty());
    Ok(())
}

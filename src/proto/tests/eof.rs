//! End of stream.

use super::*;

#[test]
fn eof_while_open_closes_cleanly() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, Dial::Key)?;
    let now = pair.now;
    pair.init.eof(now);
    pair.resp.eof(now);
    assert_eq!((&pair.init.error, &pair.resp.error), (&None, &None));
    assert!(pair.init.conn.is_closed() && pair.resp.conn.is_closed());
    Ok(())
}

#[test]
fn eof_during_handshake_is_a_rejection_for_the_initiator() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.init.eof(pair.now);
    assert_eq!(pair.init.error, Some(Error::HandshakeRejected));
    assert!(pair.init.conn.is_closed());
    Ok(())
}

#[test]
fn eof_in_the_middle_of_a_fragmented_message_is_an_error() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.send(now, &json_message(200_000))?;
    let frames = pair.init.take_outbox();
    pair.resp.frame(now, &frames[0]);
    pair.resp.eof(now);
    assert_eq!(pair.resp.error, Some(Error::ConnectionClosed));
    assert!(pair.resp.messages().is_empty());
    Ok(())
}

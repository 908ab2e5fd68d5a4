//! Local misuse.

use super::*;

#[test]
fn send_before_open_is_connection_closed() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    assert_eq!(pair.init.send(pair.now, br#"{"early":1}"#), Err(Error::ConnectionClosed));
    let mut resp = fresh_responder(&b);
    assert_eq!(resp.send(t0(), b"{}").map(|_| ()), Err(Error::ConnectionClosed));
    Ok(())
}

#[test]
fn non_object_message_is_invalid_argument() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    for bad in [&b"[1]"[..], b"42", b"\"s\"", b"", b"   ", b"null"] {
        let r = pair.init.send(pair.now, bad);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{bad:?}: {r:?}");
    }
    assert!(pair.init.conn.is_open() && pair.init.outbox.is_empty());
    Ok(())
}

#[test]
fn lookup_answer_nobody_asked_for_is_an_internal_error() -> TestResult {
    let (_, b) = (node(1), node(2));
    let mut resp = fresh_responder(&b);
    assert!(matches!(resp.handle_lookup(t0(), Answer::Ticket(true)), Err(Error::Internal(_))));
    assert!(resp.is_closed());
    Ok(())
}

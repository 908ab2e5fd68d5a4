//! Replay of message 1.

use super::*;

#[test]
fn ik_replayed_hello_is_refused_before_any_lookup() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    let captured = pair.init.wire[0].clone();
    let mut fresh = Side::responder(&b, &pair.replay, knows(&[&a]));
    fresh.frame(pair.now, &captured);
    assert_eq!(fresh.error, Some(Error::Replay));
    assert!(fresh.needs.is_empty(), "refused before any lookup");
    assert!(fresh.wire.is_empty() && fresh.events.is_empty(), "no reply, nothing delivered");
    assert!(fresh.conn.is_closed());
    Ok(())
}

#[test]
fn kk_replayed_hello_is_refused() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, Dial::Key)?;
    let mut fresh = Side::responder(&b, &pair.replay, knows(&[&a]));
    for body in &pair.init.wire[..2] {
        fresh.frame(pair.now, body);
    }
    assert_eq!(fresh.error, Some(Error::Replay));
    assert!(fresh.wire.is_empty() && fresh.events.is_empty());
    Ok(())
}

#[test]
fn ik_older_timestamp_is_refused_and_newer_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut first = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_000), replay.clone())?;
    first.drive();
    first.assert_open();

    let mut older = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 999), replay.clone())?;
    older.drive();
    assert_eq!(older.resp.error, Some(Error::Replay));
    assert!(older.resp.needs.is_empty());
    older.init.eof(older.now);
    assert_eq!(older.init.error, Some(Error::HandshakeRejected));

    let mut newer = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_001), replay)?;
    newer.drive();
    newer.assert_open();
    Ok(())
}

#[test]
fn kk_older_timestamp_is_refused_and_newer_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut first = Pair::with(&a, &b, spec(&a, &b, Dial::Key, 50), replay.clone())?;
    first.drive();
    first.assert_open();
    let mut older = Pair::with(&a, &b, spec(&a, &b, Dial::Key, 49), replay.clone())?;
    older.drive();
    assert_eq!(older.resp.error, Some(Error::Replay));
    let mut newer = Pair::with(&a, &b, spec(&a, &b, Dial::Key, 51), replay)?;
    newer.drive();
    newer.assert_open();
    Ok(())
}

#[test]
fn refused_handshake_does_not_advance_the_replay_clock() -> TestResult {
    let (a, b) = (node(1), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut refused = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 5_000), replay.clone())?;
    refused.resp.lookup = store(&[(&a.agent, a.public)], |_| false);
    refused.drive();
    assert_eq!(refused.resp.error, Some(Error::TicketRefused));
    let mut later = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_000), replay)?;
    later.drive();
    later.assert_open();
    Ok(())
}

#[test]
fn timestamps_are_per_initiator_key() -> TestResult {
    let (a, c, b) = (node(1), node(3), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut first = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_000), replay.clone())?;
    first.drive();
    first.assert_open();
    let mut other = Pair::with(&c, &b, spec(&c, &b, by_ticket(&c), 1), replay)?;
    other.drive();
    other.assert_open();
    Ok(())
}

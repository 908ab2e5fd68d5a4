//! Timeouts.

use super::*;

#[test]
fn handshake_not_complete_in_time_times_out_on_both_roles() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.auto_answer = false; // the lookup never comes back
    pair.drive();
    for side in [&mut pair.init, &mut pair.resp] {
        let deadline = side.conn.poll_timeout().ok_or("no handshake timer")?;
        assert_eq!(deadline, t0() + Duration::from_secs(5));
        side.timeout(deadline - Duration::from_millis(1));
        assert_eq!(side.error, None, "not yet");
        side.timeout(deadline);
        assert_eq!(side.error, Some(Error::HandshakeTimeout { ms: 5_000 }));
        assert!(side.conn.is_closed() && side.conn.poll_timeout().is_none());
    }
    Ok(())
}

#[test]
fn idle_responder_closes_in_order_and_drains() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let idle = Duration::from_secs(60);
    assert_eq!(pair.resp.conn.poll_timeout(), Some(pair.now + idle));

    // Traffic pushes the deadline back.
    pair.advance(Duration::from_secs(30));
    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.drive();
    assert_eq!(pair.resp.conn.poll_timeout(), Some(now + idle));

    let deadline = now + idle;
    pair.resp.timeout(deadline - Duration::from_millis(1));
    assert!(pair.resp.conn.is_open() && pair.resp.closings().is_empty());
    pair.now = deadline;
    pair.resp.timeout(deadline);
    assert_eq!(pair.resp.closings(), vec![CloseReason::IdleTimeout]);
    assert!(pair.resp.conn.is_draining() && pair.resp.error.is_none());
    assert_eq!(pair.resp.send(deadline, br#"{"late":1}"#), Err(Error::ConnectionClosed), "stop sending");

    // What was in flight is still read.
    pair.init.send(deadline, br#"{"n":2}"#)?;
    pair.drive();
    assert_eq!(pair.resp.messages().last(), Some(&(r#"{"n":2}"#.into(), false)));

    let drain = pair.resp.conn.poll_timeout().ok_or("no drain timer")?;
    assert_eq!(drain, deadline + Duration::from_secs(2));
    pair.resp.timeout(drain);
    assert!(pair.resp.conn.is_closed() && pair.resp.error.is_none());
    assert_eq!(pair.resp.closings().len(), 1);
    // The other side never ended its stream: nothing says it read what we
    // wrote, so the close is not one that proves delivery.
    assert!(pair.resp.conn.drain_expired(), "the close ended by drainTimeout");
    Ok(())
}

#[test]
fn the_initiator_keeps_an_idle_timer_too() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, Dial::Key)?;
    let idle = a.cfg.idle_timeout.ok_or("an idle timeout")?;
    assert_eq!(pair.init.conn.poll_timeout(), Some(pair.now + idle));
    let now = pair.now + idle;
    pair.init.timeout(now);
    assert_eq!(pair.init.closings(), vec![CloseReason::IdleTimeout], "a peer that went silent is let go");
    Ok(())
}

#[test]
fn no_idle_timeout_when_disabled() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.idle_timeout = None));
    let pair = open(&a, &b, by_ticket(&a))?;
    assert_eq!(pair.resp.conn.poll_timeout(), None);
    Ok(())
}

#[test]
fn local_close_drains_then_eof_closes() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.conn.close(now);
    pair.init.collect();
    assert_eq!(pair.init.closings(), vec![CloseReason::Local]);
    assert_eq!(pair.init.conn.poll_timeout(), Some(now + Duration::from_secs(2)));
    pair.resp.send(now, br#"{"last":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.messages(), vec![(r#"{"last":1}"#.into(), false)]);
    pair.init.eof(now);
    assert!(pair.init.conn.is_closed() && pair.init.error.is_none());
    assert!(!pair.init.conn.drain_expired(), "the other side ended its stream in time");
    Ok(())
}

#[test]
fn frames_still_arriving_push_the_drain_back_but_not_past_its_limit() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let start = pair.now;
    pair.init.conn.close(start);
    pair.init.collect();
    let drain = Duration::from_secs(2);
    // A slow peer still sending: each frame counts the wait again.
    for i in 1..=3u32 {
        pair.now = start + Duration::from_millis(1500) * i;
        let now = pair.now;
        pair.resp.send(now, br#"{"more":1}"#)?;
        pair.drive();
        assert_eq!(pair.init.conn.poll_timeout(), Some(now + drain), "pushed back by frame {i}");
    }
    // Never past eight drain timeouts from the start of the close.
    pair.now = start + Duration::from_secs(15);
    let now = pair.now;
    pair.resp.send(now, br#"{"more":2}"#)?;
    pair.drive();
    assert_eq!(pair.init.conn.poll_timeout(), Some(start + drain * 8));
    pair.init.timeout(start + drain * 8);
    assert!(pair.init.conn.is_closed() && pair.init.conn.drain_expired());
    Ok(())
}

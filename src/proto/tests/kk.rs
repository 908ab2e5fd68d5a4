//! KK: N then K.

use super::*;

#[test]
fn kk_opens_when_store_knows_the_key() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, Dial::Key)?;
    assert_eq!(letters(&pair.init.wire), "NKC");
    assert_eq!(pair.resp.needs, vec![Need::Partner { agent: a.agent.clone() }]);
    let p = pair.resp.peer().ok_or("no Open")?;
    assert_eq!(
        (p.agent.as_deref(), p.pattern, p.native, p.key),
        (Some(a.agent.as_str()), Pattern::KK, true, Some(a.public))
    );
    assert_eq!(pair.init.peer().map(|p| (p.pattern, p.native)), Some((Pattern::KK, true)));
    let now = pair.now;
    pair.init.send(now, br#"{"kk":true}"#)?;
    pair.drive();
    assert_eq!(pair.resp.messages(), vec![(r#"{"kk":true}"#.into(), false)]);
    Ok(())
}

#[test]
fn kk_opens_when_k_arrives_while_the_key_is_looked_up() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.auto_answer = false;
    pair.drive();
    assert_eq!(pair.resp.pending.len(), 1, "N asked for the key; K is held meanwhile");
    assert!(pair.resp.error.is_none() && !pair.resp.conn.is_open());
    let now = pair.now;
    pair.resp.answer(now);
    pair.drive();
    pair.assert_open();
    Ok(())
}

#[test]
fn kk_second_k_while_looking_up_is_refused() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.auto_answer = false;
    pair.drive();
    let k = pair.init.wire[1].clone();
    pair.resp.frame(pair.now, &k);
    assert!(matches!(pair.resp.error, Some(Error::UnexpectedLetter { letter: 'K', .. })), "{:?}", pair.resp.error);
    assert!(pair.resp.conn.is_closed());
    Ok(())
}

#[test]
fn kk_unknown_agent_is_refused_and_initiator_sees_rejection() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.lookup = knows(&[]);
    pair.drive();
    assert!(matches!(&pair.resp.error, Some(Error::UnknownPeer { agent }) if *agent == a.agent));
    assert!(pair.resp.wire.is_empty(), "KK cannot answer before reading K");
    assert_eq!(pair.init.error, None, "the initiator only sees the socket close");
    let now = pair.now;
    pair.init.eof(now);
    assert_eq!(pair.init.error, Some(Error::HandshakeRejected));
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    Ok(())
}

#[test]
fn kk_forged_n_is_key_mismatch() -> TestResult {
    let (a, b, x) = (node(1), node(2), node(3));
    // N names X, but K is made with a's key.
    let mut s = spec(&a, &b, Dial::Key, 1_000);
    s.local_agent = x.agent.clone();
    let mut pair = Pair::with(&a, &b, s, Arc::default())?;
    pair.resp.lookup = knows(&[&a, &x]);
    pair.drive();
    assert!(
        matches!(&pair.resp.error, Some(Error::KeyMismatch { agent }) if *agent == x.agent),
        "{:?}",
        pair.resp.error
    );
    assert!(pair.resp.events.is_empty() && pair.resp.wire.is_empty());
    assert!(pair.replay.lock().map_err(|e| e.to_string())?.is_empty(), "nothing recorded for a forgery");
    Ok(())
}

#[test]
fn kk_failed_lookup_closes_without_reply() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.lookup = Box::new(|_| Answer::Failed(Error::LookupFailed("timeout".into())));
    pair.drive();
    assert!(matches!(&pair.resp.error, Some(Error::LookupFailed(why)) if why.contains("timeout")));
    assert!(pair.resp.wire.is_empty());
    Ok(())
}

#[test]
fn initiator_without_the_responder_key_is_unknown_peer() {
    let (a, b) = (node(1), node(2));
    let mut s = spec(&a, &b, Dial::Key, 1);
    s.remote_key = None;
    let err = Connection::initiator(Arc::new(a.cfg.clone()), t0(), s).err();
    assert!(matches!(err, Some(Error::UnknownPeer { agent }) if agent == b.agent));
}

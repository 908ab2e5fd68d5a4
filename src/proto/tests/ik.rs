//! IK: first contact with a ticket.

use super::*;

#[test]
fn ik_with_good_ticket_opens_and_carries_messages_both_ways() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;

    // A native initiator confirms with C right after A (docs/PROTOCOL.md §5a).
    assert_eq!(letters(&pair.init.wire), "IC");
    assert_eq!(letters(&pair.resp.wire), "A");
    assert!(pair.resp.opened(), "confirmed");
    assert_eq!(
        pair.resp.needs,
        vec![Need::PeerKey { agent: a.agent.clone() }, Need::Ticket { ticket: ticket(), from: address(&a) }]
    );
    let expect = |agent: &Node, initiator| PeerInfo {
        agent: Some(agent.agent.clone()),
        pattern: Pattern::IK,
        native: true,
        key: Some(agent.public),
        initiator,
    };
    assert_eq!(pair.resp.peer(), Some(&expect(&a, false)), "the key the handshake proved");
    assert_eq!(pair.init.peer(), Some(&expect(&b, true)));
    assert_eq!(pair.resp.conn.peer(), pair.resp.peer());

    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.resp.send(now, br#"{"n":2}"#)?;
    pair.init.send(now, br#"{"n":3}"#)?;
    pair.drive();
    assert_eq!(pair.resp.messages(), vec![(r#"{"n":1}"#.into(), false), (r#"{"n":3}"#.into(), false)]);
    assert_eq!(pair.init.messages(), vec![(r#"{"n":2}"#.into(), false)]);
    assert!(pair.init.wire[2..].iter().all(|b| b[0] == b'T'));
    assert!(!pair.init.wire.iter().any(|b| b.windows(7).any(|w| w == br#"{"n":1}"#)), "transport bodies are encrypted");
    Ok(())
}

#[test]
fn ik_ticket_hello_is_never_delivered_as_a_message() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    assert!(matches!(pair.resp.events[..], [Event::Accepted(_), Event::Open(_)]), "{:?}", pair.resp.events);
    assert_eq!(pair.init.events.len(), 1, "only Open: {:?}", pair.init.events);
    Ok(())
}

#[test]
fn ik_refused_ticket_is_reported_to_both_sides() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = store(&[(&a.agent, a.public)], |_| false);
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::TicketRefused));
    assert_eq!(pair.init.error, Some(Error::TicketRefused), "told in an authenticated A");
    assert_eq!(letters(&pair.resp.wire), "A");
    assert!(pair.init.conn.is_closed() && pair.resp.conn.is_closed());
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty(), "nothing opened or delivered");
    Ok(())
}

#[test]
fn ik_from_agent_that_is_not_the_proven_key_is_key_mismatch() -> TestResult {
    let (a, b, c) = (node(1), node(2), node(3));
    // `a` dials with its own key but claims to be `c`.
    let dial = Dial::Ticket { ticket: ticket(), from: address(&c) };
    let mut pair = Pair::new(&a, &b, dial)?;
    pair.resp.lookup = knows(&[&a, &c]);
    pair.drive();
    assert!(
        matches!(&pair.resp.error, Some(Error::KeyMismatch { agent }) if *agent == c.agent),
        "{:?}",
        pair.resp.error
    );
    assert!(
        matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")),
        "{:?}",
        pair.init.error
    );
    assert_eq!(pair.resp.needs, vec![Need::PeerKey { agent: c.agent.clone() }], "the ticket is never checked");
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    Ok(())
}

#[test]
fn ik_first_contact_opens_with_an_empty_store() -> TestResult {
    // The agent id names its key, so a stranger with a good ticket needs no stored key.
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = knows(&[]);
    pair.drive();
    pair.assert_open();
    assert_eq!(pair.resp.peer().and_then(|p| p.key), Some(a.public));
    Ok(())
}

#[test]
fn ik_first_contact_claiming_another_agent_is_key_mismatch() -> TestResult {
    // The store knows neither: only the agent id itself can expose the claim.
    let (a, b, c) = (node(1), node(2), node(3));
    let mut pair = Pair::new(&a, &b, Dial::Ticket { ticket: ticket(), from: address(&c) })?;
    pair.resp.lookup = knows(&[]);
    pair.drive();
    assert!(
        matches!(&pair.resp.error, Some(Error::KeyMismatch { agent }) if *agent == c.agent),
        "{:?}",
        pair.resp.error
    );
    assert!(matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")));
    assert!(pair.resp.events.is_empty());
    Ok(())
}

/// A node with a plain X25519 pair, whose agent id names no key (docs/PROTOCOL.md §1).
fn plain_node(seed: u8, agent: &str) -> Node {
    let mut n = node(seed);
    n.agent = agent.to_owned();
    if let Some(id) = n.cfg.identity.as_mut() {
        id.agent = agent.to_owned();
    }
    n
}

#[test]
fn ik_plain_key_agent_needs_its_key_in_the_store() -> TestResult {
    let (a, b) = (plain_node(1, "sim-node-1"), node(2));
    let known = open(&a, &b, by_ticket(&a))?;
    assert_eq!(known.resp.peer().and_then(|p| p.agent.clone()), Some("sim-node-1".into()));

    let mut unknown = Pair::new(&a, &b, by_ticket(&a))?;
    unknown.resp.lookup = knows(&[]);
    unknown.drive();
    assert!(matches!(&unknown.resp.error, Some(Error::UnknownPeer { agent }) if agent == "sim-node-1"));
    // The caller is not told whether the agent is unknown or its key wrong.
    assert!(matches!(&unknown.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")));
    Ok(())
}

#[test]
fn kk_plain_key_agents_open() -> TestResult {
    let (a, b) = (plain_node(1, "sim-node-1"), plain_node(2, "sim-node-2"));
    let pair = open(&a, &b, Dial::Key)?;
    assert_eq!(pair.resp.peer().and_then(|p| p.key), Some(a.public));
    Ok(())
}

#[test]
fn ik_refused_when_store_holds_another_key_for_the_agent() -> TestResult {
    let (a, b, other) = (node(1), node(2), node(9));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = store(&[(&a.agent, other.public)], |_| true);
    pair.drive();
    assert!(matches!(pair.resp.error, Some(Error::KeyMismatch { .. })), "{:?}", pair.resp.error);
    assert!(matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")));
    assert!(pair.resp.events.is_empty());
    Ok(())
}

#[test]
fn ik_failed_lookup_is_refused_with_its_code() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = Box::new(|_| Answer::Failed(Error::LookupFailed("database down".into())));
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::LookupFailed("database down".into())));
    assert!(matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_LOOKUP_FAILED")));
    Ok(())
}

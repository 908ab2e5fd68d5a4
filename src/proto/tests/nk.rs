//! NK: referee queries.

use super::*;

#[test]
fn nk_referee_query_opens_with_anonymous_caller() -> TestResult {
    let (a, referee) = (node(1), node(2).with(|c| c.referee = true));
    let mut pair = Pair::new(&a, &referee, Dial::Referee)?;
    pair.resp.lookup = asks_nothing();
    pair.drive();
    pair.assert_open();
    assert_eq!(letters(&pair.init.wire), "QC");
    assert!(pair.resp.needs.is_empty(), "the caller's key is not asked for");
    let p = pair.resp.peer().ok_or("no Open")?;
    assert_eq!((&p.agent, p.pattern, p.key, p.native), (&None, Pattern::NK, None, true));
    let p = pair.init.peer().ok_or("no Open")?;
    assert_eq!((p.agent.as_deref(), p.key), (Some(referee.agent.as_str()), Some(referee.public)));
    let now = pair.now;
    pair.init.send(now, br#"{"query":1}"#)?;
    pair.drive();
    pair.resp.send(now, br#"{"answer":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.messages(), vec![(r#"{"answer":1}"#.into(), false)]);
    Ok(())
}

#[test]
fn nk_refused_when_referee_disabled() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Referee)?;
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::RefereeDisabled));
    assert_eq!(pair.init.error, Some(Error::RefereeDisabled));
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    Ok(())
}

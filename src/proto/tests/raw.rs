//! Raw mode.

use super::*;

#[test]
fn raw_mode_opens_every_pattern_and_carries_plaintext() -> TestResult {
    let (a, b) = (raw_node(1), raw_node(2).with(|c| c.referee = true));
    for (dial, pattern) in [(by_ticket(&a), Pattern::IK), (Dial::Key, Pattern::KK), (Dial::Referee, Pattern::NK)] {
        let mut pair = open(&a, &b, dial)?;
        let p = pair.resp.peer().ok_or("no Open")?;
        assert_eq!((p.pattern, p.key), (pattern, None), "raw mode proves no key");
        assert_eq!(pair.init.peer().map(|p| p.key), Some(None), "raw mode proves no key");
        let now = pair.now;
        pair.init.send(now, br#"{"hello":"raw"}"#)?;
        pair.drive();
        assert_eq!(pair.init.wire.last().map(Vec::as_slice), Some(&br#"T{"hello":"raw"}"#[..]));
        assert_eq!(pair.resp.messages(), vec![(r#"{"hello":"raw"}"#.into(), false)]);
        pair.resp.send(now, br#"{"back":1}"#)?;
        pair.drive();
        assert_eq!(pair.init.messages(), vec![(r#"{"back":1}"#.into(), false)], "{pattern:?}");
    }
    Ok(())
}

#[test]
fn raw_initiator_and_encrypting_responder_both_report_mode_mismatch() -> TestResult {
    let (a, b) = (raw_node(1), node(2).with(|c| c.referee = true));
    for dial in [by_ticket(&a), Dial::Key, Dial::Referee] {
        let mut pair = Pair::new(&a, &b, dial.clone())?;
        pair.drive();
        assert!(matches!(pair.resp.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.resp.error);
        assert!(matches!(pair.init.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.init.error);
        assert!(pair.resp.needs.is_empty() && pair.init.events.is_empty() && pair.resp.events.is_empty());
    }
    Ok(())
}

#[test]
fn encrypting_initiator_and_raw_responder_both_report_mode_mismatch() -> TestResult {
    let (a, b) = (node(1), raw_node(2).with(|c| c.referee = true));
    for dial in [by_ticket(&a), Dial::Key, Dial::Referee] {
        let mut pair = Pair::new(&a, &b, dial.clone())?;
        pair.drive();
        assert!(matches!(pair.resp.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.resp.error);
        assert!(matches!(pair.init.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.init.error);
        assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    }
    Ok(())
}

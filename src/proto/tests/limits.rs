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
fn reassembled_message_over_receiver_limit_is_refused() -> TestResult {
    let (a, b) = (node(1).with(|c| c.max_message = 2 * DEFAULT_MAX_MESSAGE), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    pair.init.send(pair.now, &json_message(DEFAULT_MAX_MESSAGE + 1_024))?;
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::MessageTooLarge { max: DEFAULT_MAX_MESSAGE }));
    assert!(pair.resp.conn.is_closed() && pair.resp.messages().is_empty());
    Ok(())
}

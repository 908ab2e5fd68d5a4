//! Handshake and message payload parsing (`proto::payload`): every parser
//! on the same bytes. Whatever a parser accepts, writing it back with the
//! matching builder and parsing again gives the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychips_noise::proto::payload::{self, KeyHello, Reply};
use mychips_noise::Error;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let value = serde_json::from_slice::<Value>(data).ok();
    let object = matches!(value, Some(Value::Object(_)));

    if let Ok(h) = payload::parse_ticket_hello(data) {
        assert!(object, "an I payload is an object");
        assert!(!h.ticket.is_null());
        match h.timestamp {
            Some(ts) => {
                assert_eq!(h.early, None, "a native I carries no early data");
                let again =
                    payload::parse_ticket_hello(&payload::ticket_hello(&h.ticket, &h.from, ts)).expect("our own I");
                assert_eq!((again.ticket, again.from, again.timestamp), (h.ticket, h.from, Some(ts)));
            }
            None => assert_eq!(h.early.as_deref(), Some(data), "a legacy I is early data, as it came"),
        }
    }

    if let Ok(agent) = payload::parse_identity_hello(data) {
        assert!(!agent.is_empty());
        assert_eq!(payload::parse_identity_hello(&payload::identity_hello(&agent)), Ok(agent));
    }

    match payload::parse_key_hello(data) {
        Ok(KeyHello::Native { timestamp }) => {
            assert!(matches!(value, Some(Value::Number(_))));
            assert_eq!(payload::parse_key_hello(&payload::key_hello(timestamp)), Ok(KeyHello::Native { timestamp }));
        }
        Ok(KeyHello::Legacy { early: Some(e) }) => {
            assert_eq!(e, data, "a legacy K is early data, as it came");
            assert!(matches!(&value, Some(Value::Object(m)) if !m.is_empty()));
        }
        Ok(KeyHello::Legacy { early: None }) | Err(_) => {}
    }

    if payload::parse_query_hello(data).is_ok() {
        assert!(object);
    }

    match payload::parse_reply(data) {
        Reply::Native(limits) => {
            assert!(object && limits.max_message > 0 && limits.max_frame > 0, "{limits:?}");
            assert_eq!(payload::parse_reply(&payload::accept_reply(true, limits)), Reply::Native(limits));
            assert_eq!(payload::parse_confirm(&payload::confirm(limits)), Ok(limits));
        }
        Reply::Refused(code) => {
            assert!(object);
            assert_eq!(payload::parse_reply(&payload::refuse_reply(&code)), Reply::Refused(code));
        }
        Reply::Legacy => {}
    }

    if let Ok(limits) = payload::parse_confirm(data) {
        assert!(object && limits.max_message > 0 && limits.max_frame > 0);
        assert_eq!(payload::parse_confirm(&payload::confirm(limits)), Ok(limits));
    }

    match payload::check_message(data) {
        Ok(()) => {
            assert!(
                payload::opens_object(data) && std::str::from_utf8(data).is_ok(),
                "a message is UTF-8 and opens an object"
            );
        }
        Err(e) => {
            assert_eq!(e, Error::BadMessage);
            assert!(!(object && std::str::from_utf8(data).is_ok()), "a JSON object in UTF-8 was refused as a message");
        }
    }
    if payload::looks_like_plaintext(data) {
        assert!(matches!(value, Some(Value::Object(_) | Value::String(_))));
    }
});

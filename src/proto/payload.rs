//! Handshake payloads: what rides inside `I`, `N`, `K`, `Q` and `A`
//! (docs/PROTOCOL.md §3, §5, §9).
//!
//! A native node marks its handshake payloads so that the other side learns,
//! without a round trip, that it may use native-only frames (`F`):
//! - `I`: a JSON object with `ticket`, `from`, a timestamp `ts` and `native`.
//!   It has no `target`, so a JavaScript responder's application ignores it.
//! - `K`: a bare JSON number, the timestamp. A JavaScript responder hands no
//!   bare number to its application, and a JavaScript initiator never sends one
//!   (it puts its first application message there), so a number means native.
//! - `Q`: `{"native": 1}` (JavaScript nodes send no `Q`).
//! - `A`: to a native initiator, an object with `native`, `ok` and our limits
//!   `max` (message) and `frame` (or `refused` and a code); to a JavaScript
//!   initiator, nothing (empty payload), which its application never sees.
//! - `C` (a transport message, docs/PROTOCOL.md §5a): the native initiator's
//!   limits, `{"max": .., "frame": ..}`.
//!
//! Anything else is a legacy payload. A legacy `I` or `K` may carry the
//! initiator's first application message (early, replayable data).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::frame::{DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE};
use super::transport::Limits;
use crate::error::{Error, Result};

/// The native protocol version we speak and announce.
pub const NATIVE_VERSION: u64 = 1;

/// A CHIP address: `{agent, host, port}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The payload of an `I` (IK message 1).
#[derive(Debug, Clone, PartialEq)]
pub struct TicketHello {
    pub ticket: Value,
    pub from: Address,
    /// `Some(ts)` from a native initiator.
    pub timestamp: Option<u64>,
    /// A legacy initiator's application message (the whole payload object).
    pub early: Option<Vec<u8>>,
}

/// The payload of a `K` (KK message 1).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyHello {
    Native {
        timestamp: u64,
    },
    /// `early` holds an application message when the payload was a non-empty object.
    Legacy {
        early: Option<Vec<u8>>,
    },
}

/// The payload of an `A`, as an initiator reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A native responder accepted us, and what it accepts.
    Native(Limits),
    /// A native responder refused us, with the error code it gave.
    Refused(String),
    /// A JavaScript responder (empty or foreign payload): legacy rules apply.
    Legacy,
}

fn json_error(what: &str, err: serde_json::Error) -> Error {
    Error::BadPayload(format!("{what}: {err}"))
}

pub fn ticket_hello(ticket: &Value, from: &Address, timestamp: u64) -> Vec<u8> {
    let v = serde_json::json!({
        "ticket": ticket, "from": from, "ts": timestamp, "native": NATIVE_VERSION,
    });
    v.to_string().into_bytes()
}

pub fn parse_ticket_hello(bytes: &[u8]) -> Result<TicketHello> {
    let obj: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| json_error("I", e))?;
    let from: Address = obj
        .get("from")
        .cloned()
        .ok_or_else(|| Error::BadPayload("I: no `from` address".into()))
        .and_then(|f| serde_json::from_value(f).map_err(|e| json_error("I: from", e)))?;
    let ticket = obj.get("ticket").cloned().unwrap_or(Value::Null);
    if ticket.is_null() {
        return Err(Error::BadPayload("I: no ticket".into()));
    }
    let native = obj.get("native").and_then(Value::as_u64).is_some();
    let timestamp = if native {
        Some(
            obj.get("ts")
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::BadPayload("I: native payload without a timestamp".into()))?,
        )
    } else {
        None
    };
    let early = (!native).then(|| bytes.to_vec());
    Ok(TicketHello { ticket, from, timestamp, early })
}

pub fn identity_hello(agent: &str) -> Vec<u8> {
    Value::String(agent.to_owned()).to_string().into_bytes()
}

pub fn parse_identity_hello(bytes: &[u8]) -> Result<String> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| json_error("N", e))? {
        Value::String(agent) if !agent.is_empty() => Ok(agent),
        _ => Err(Error::BadPayload("N: expected the JSON string of an agent id".into())),
    }
}

pub fn key_hello(timestamp: u64) -> Vec<u8> {
    timestamp.to_string().into_bytes()
}

pub fn parse_key_hello(bytes: &[u8]) -> Result<KeyHello> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(KeyHello::Legacy { early: None });
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| json_error("K", e))?;
    Ok(match v {
        Value::Number(n) => {
            KeyHello::Native { timestamp: n.as_u64().ok_or_else(|| Error::BadPayload("K: bad timestamp".into()))? }
        }
        Value::Object(m) if !m.is_empty() => KeyHello::Legacy { early: Some(bytes.to_vec()) },
        _ => KeyHello::Legacy { early: None },
    })
}

pub fn query_hello() -> Vec<u8> {
    serde_json::json!({ "native": NATIVE_VERSION }).to_string().into_bytes()
}

pub fn parse_query_hello(bytes: &[u8]) -> Result<()> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| json_error("Q", e))? {
        Value::Object(_) => Ok(()),
        _ => Err(Error::BadPayload("Q: expected a JSON object".into())),
    }
}

/// The `A` payload for an initiator we accept: to a native one, our limits.
pub fn accept_reply(native_initiator: bool, ours: Limits) -> Vec<u8> {
    if native_initiator {
        serde_json::json!({ "native": NATIVE_VERSION, "ok": true, "max": ours.max_message, "frame": ours.max_frame })
            .to_string()
            .into_bytes()
    } else {
        Vec::new()
    }
}

/// The `C` payload: a native initiator's limits.
pub fn confirm(ours: Limits) -> Vec<u8> {
    serde_json::json!({ "max": ours.max_message, "frame": ours.max_frame }).to_string().into_bytes()
}

/// Limits named in an `A` or `C` object; a missing or unusable one is taken
/// as the protocol default (a native node that predates the exchange).
pub fn limits_in(m: &Map<String, Value>) -> Limits {
    let get = |key: &str, default: usize| {
        m.get(key).and_then(Value::as_u64).and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0).unwrap_or(default)
    };
    Limits { max_message: get("max", DEFAULT_MAX_MESSAGE), max_frame: get("frame", DEFAULT_MAX_FRAME) }
}

/// Read a `C` payload.
pub fn parse_confirm(bytes: &[u8]) -> Result<Limits> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| json_error("C", e))? {
        Value::Object(m) => Ok(limits_in(&m)),
        _ => Err(Error::BadPayload("C: expected a JSON object".into())),
    }
}

/// The `A` payload that tells a native initiator why we refuse it.
pub fn refuse_reply(code: &str) -> Vec<u8> {
    serde_json::json!({ "native": NATIVE_VERSION, "refused": code }).to_string().into_bytes()
}

pub fn parse_reply(bytes: &[u8]) -> Reply {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) else {
        return Reply::Legacy;
    };
    if m.get("native").and_then(Value::as_u64).is_none() {
        return Reply::Legacy;
    }
    match m.get("refused") {
        Some(code) => Reply::Refused(code.as_str().unwrap_or("ERR_PEER_REFUSED").to_owned()),
        None => Reply::Native(limits_in(&m)),
    }
}

/// Check that a transport message is exactly one JSON object in valid UTF-8
/// (docs/PROTOCOL.md §3). (serde_json skips string contents it need not
/// read, so UTF-8 is checked first: nothing is replaced on the way to the
/// application.)
pub fn check_message(bytes: &[u8]) -> Result<()> {
    if !opens_object(bytes) || std::str::from_utf8(bytes).is_err() {
        return Err(Error::BadMessage);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|_| Error::BadMessage)?;
    Ok(())
}

/// True when the first non-blank byte opens a JSON object: the cheap check
/// for a message we send (the JavaScript layer only hands us objects).
pub fn opens_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// True when bytes that failed to decrypt look like a plaintext handshake
/// payload, i.e. the other side runs in raw mode (docs/PROTOCOL.md §7).
pub fn looks_like_plaintext(bytes: &[u8]) -> bool {
    // A raw message 1 is a JSON object (`I`, `Q`) or string (`N`). Anything
    // looser would take a garbled ciphertext cut to a digit or two for JSON.
    matches!(serde_json::from_slice::<Value>(bytes), Ok(Value::Object(_) | Value::String(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Address {
        Address { agent: "abc".into(), host: Some("127.0.0.1".into()), port: Some(1) }
    }

    #[test]
    fn native_ticket_hello_round_trips_and_carries_no_target() {
        let bytes = ticket_hello(&Value::from("t-1"), &addr(), 42);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v.get("target").is_none(), "a JavaScript application must ignore it");
        let h = parse_ticket_hello(&bytes).unwrap();
        assert_eq!((h.timestamp, h.early, h.from), (Some(42), None, addr()));
    }

    #[test]
    fn legacy_ticket_hello_is_early_data() {
        let legacy = br#"{"ticket":{"token":"x"},"from":{"agent":"abc","host":"h","port":1},"target":"tally"}"#;
        let h = parse_ticket_hello(legacy).unwrap();
        assert_eq!(h.timestamp, None);
        assert_eq!(h.early.as_deref(), Some(&legacy[..]));
    }

    #[test]
    fn ticket_hello_needs_from_and_ticket() {
        assert!(parse_ticket_hello(br#"{"ticket":1}"#).is_err());
        assert!(parse_ticket_hello(br#"{"from":{"agent":"a"}}"#).is_err());
        assert!(parse_ticket_hello(br#"{"ticket":1,"from":{"agent":"a"},"native":1}"#).is_err());
        assert!(parse_ticket_hello(b"\xff\xfe").is_err());
    }

    #[test]
    fn key_hello_kinds() {
        assert_eq!(parse_key_hello(&key_hello(7)).unwrap(), KeyHello::Native { timestamp: 7 });
        assert_eq!(parse_key_hello(b"").unwrap(), KeyHello::Legacy { early: None });
        assert_eq!(parse_key_hello(b"{}").unwrap(), KeyHello::Legacy { early: None });
        assert_eq!(parse_key_hello(b"null").unwrap(), KeyHello::Legacy { early: None });
        assert_eq!(
            parse_key_hello(br#"{"target":"x"}"#).unwrap(),
            KeyHello::Legacy { early: Some(br#"{"target":"x"}"#.to_vec()) }
        );
        assert!(parse_key_hello(b"-1").is_err());
        assert!(parse_key_hello(b"{").is_err());
    }

    #[test]
    fn identity_hello_round_trips() {
        assert_eq!(parse_identity_hello(&identity_hello("ag")).unwrap(), "ag");
        assert!(parse_identity_hello(b"42").is_err());
        assert!(parse_identity_hello(b"\"\"").is_err());
    }

    const LIMITS: Limits = Limits { max_message: 5000, max_frame: 2000 };

    #[test]
    fn replies() {
        assert_eq!(parse_reply(&accept_reply(true, LIMITS)), Reply::Native(LIMITS));
        assert_eq!(parse_reply(&accept_reply(false, LIMITS)), Reply::Legacy);
        let defaults = Limits { max_message: DEFAULT_MAX_MESSAGE, max_frame: DEFAULT_MAX_FRAME };
        assert_eq!(parse_reply(br#"{"native":1,"ok":true}"#), Reply::Native(defaults), "no limits named: the defaults");
        assert_eq!(parse_reply(&refuse_reply("ERR_X")), Reply::Refused("ERR_X".into()));
        assert_eq!(parse_reply(br#"{"target":1}"#), Reply::Legacy);
        // A JavaScript initiator hands on an A payload of at most one key; ours has two.
        let v: Map<String, Value> = serde_json::from_slice(&accept_reply(true, LIMITS)).unwrap();
        assert!(v.len() >= 2);
    }

    #[test]
    fn confirmation_carries_the_initiators_limits() {
        assert_eq!(parse_confirm(&confirm(LIMITS)).unwrap(), LIMITS);
        assert!(parse_confirm(b"[1]").is_err());
        assert_eq!(parse_confirm(br#"{"max":0,"frame":"x"}"#).unwrap().max_frame, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn messages_must_be_objects() {
        assert!(check_message(br#" {"a":[1,2]} "#).is_ok());
        for bad in [&b"[1]"[..], b"1", b"\"s\"", b"{", b"", b"{} {}", b"\xff", b"{\"a\":\"\xff\xfe\"}"] {
            assert_eq!(check_message(bad), Err(Error::BadMessage), "{bad:?}");
        }
    }
}

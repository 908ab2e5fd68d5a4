//! Who a peer is: the rules that decide which key each side must prove, and
//! when the store is asked (docs/PROTOCOL.md §1, §3, §4). Both roles and raw
//! mode decide here, so one rule is never written twice.
//!
//! - An agent id names an X25519 key (the Ed25519 point it encodes, mapped).
//!   The store may know better: nodes that run with plain X25519 keys (as
//!   MyCHIPs' tests do) have ids whose bytes are that key, not an Ed25519
//!   point, and only the store knows which. So a key the store holds wins,
//!   and the id's key is used when it holds none. (The database store
//!   checks its keys against the ids itself: `store::pg`.)
//! - A responder lets a first contact (`I`) in only when the key the
//!   handshake proved is the claimed agent's key.
//! - A responder lets a caller in by key (`N` + `K`) only when the store says
//!   it is a partner, and `K` decrypts with the agent's key.
//! - An initiator dials with the key it was given, else the agent's key.
//! - In raw mode nothing is proven. A node with no key store at all admits
//!   every agent that calls with `N` (simulations); otherwise the store's
//!   "no key" refuses the caller as it would with encryption.

use super::config::Config;
use super::keys::{agent_key, is_weak, Key};
use crate::error::{Error, Result};

/// Responder, IK: check the caller's proven key against the agent it claims.
pub fn check_ticket_caller(agent: &str, proven: Option<Key>, stored: Option<Key>) -> Result<()> {
    if Some(key_of(agent, stored)?) != proven {
        return Err(Error::KeyMismatch { agent: agent.to_owned() });
    }
    Ok(())
}

/// Responder, after `N`: whether to ask the store for the caller's key.
pub fn asks_for_caller(cfg: &Config) -> bool {
    !(cfg.is_raw() && cfg.admit_any_agent)
}

/// Responder, after `N`: the key `K` must decrypt with, from the store's
/// answer. Only a partner gets in. `None` inside `Ok` means raw mode (there
/// is nothing to prove).
pub fn caller_key(cfg: &Config, agent: &str, allowed: bool, stored: Option<Key>) -> Result<Option<Key>> {
    if !allowed {
        return Err(Error::UnknownPeer { agent: agent.to_owned() });
    }
    if cfg.is_raw() {
        return Ok(None);
    }
    key_of(agent, stored).map(Some)
}

/// An agent's key: the one the store holds, else the one its id names. A
/// key of small order proves nothing and is refused (docs/PROTOCOL.md §5b).
fn key_of(agent: &str, stored: Option<Key>) -> Result<Key> {
    let key = stored.or_else(|| agent_key(agent)).ok_or_else(|| Error::UnknownPeer { agent: agent.to_owned() })?;
    if is_weak(&key) {
        return Err(Error::WeakKey(format!("the key of {agent} is of small order")));
    }
    Ok(key)
}

/// Initiator: how the responder's key is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialKey {
    /// Raw mode: no key is needed.
    Raw,
    /// The caller gave it.
    Given(Key),
    /// Ask the store, then fall back on `key_for_dial`.
    Ask,
}

pub fn dial_key(cfg: &Config, given: Option<Key>) -> Result<DialKey> {
    Ok(match given {
        _ if cfg.is_raw() => DialKey::Raw,
        Some(k) if is_weak(&k) => return Err(Error::WeakKey("the key given for the agent is of small order".into())),
        Some(k) => DialKey::Given(k),
        None => DialKey::Ask,
    })
}

/// Initiator: the store's key for `agent`, else the one its id names.
pub fn key_for_dial(agent: &str, stored: Option<Key>) -> Result<Key> {
    key_of(agent, stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::keys::{encode, Identity};

    #[test]
    fn ticket_caller_must_prove_the_key_its_id_names_and_the_stored_one() {
        let a = Identity::from_seed(&[1; 32]);
        let b = Identity::from_seed(&[2; 32]);
        assert!(check_ticket_caller(&a.agent, Some(a.public), None).is_ok());
        assert!(check_ticket_caller(&a.agent, Some(a.public), Some(a.public)).is_ok());
        assert!(matches!(check_ticket_caller(&a.agent, Some(b.public), None), Err(Error::KeyMismatch { .. })));
        assert!(matches!(
            check_ticket_caller(&a.agent, Some(a.public), Some(b.public)),
            Err(Error::KeyMismatch { .. })
        ));
        // An id whose bytes are an X25519 key (noise-protocol's keygen): the store knows.
        let x25519_id = encode(&b.public);
        assert!(check_ticket_caller(&x25519_id, Some(b.public), Some(b.public)).is_ok());
        assert!(matches!(check_ticket_caller("plain-agent", Some(a.public), None), Err(Error::UnknownPeer { .. })));
        assert!(check_ticket_caller("plain-agent", Some(a.public), Some(a.public)).is_ok());
    }

    #[test]
    fn dial_key_order_is_given_then_stored_then_derived() {
        let enc = Config { identity: Some(Identity::from_seed(&[3; 32])), ..Config::default() };
        let a = Identity::from_seed(&[1; 32]);
        assert_eq!(dial_key(&Config::default(), Some(a.public)).ok(), Some(DialKey::Raw));
        assert_eq!(dial_key(&enc, Some(a.public)).ok(), Some(DialKey::Given(a.public)));
        assert_eq!(dial_key(&enc, None).ok(), Some(DialKey::Ask));
        assert!(matches!(dial_key(&enc, Some([0; 32])), Err(Error::WeakKey(_))));
        assert!(matches!(key_for_dial("plain-agent", Some([0; 32])), Err(Error::WeakKey(_))));
        assert!(matches!(caller_key(&enc, "plain-agent", true, Some([0; 32])), Err(Error::WeakKey(_))));
        assert_eq!(key_for_dial("plain-agent", Some([9; 32])).ok(), Some([9; 32]));
        assert_eq!(key_for_dial(&a.agent, Some([9; 32])).ok(), Some([9; 32]), "the store's key wins");
        assert_eq!(key_for_dial(&a.agent, None).ok(), Some(a.public));
        assert!(matches!(key_for_dial("plain-agent", None), Err(Error::UnknownPeer { .. })));
    }

    #[test]
    fn a_kk_caller_must_be_a_partner_with_a_known_key() {
        let enc = Config { identity: Some(Identity::from_seed(&[3; 32])), ..Config::default() };
        let a = Identity::from_seed(&[1; 32]);
        assert_eq!(caller_key(&enc, &a.agent, true, None).ok(), Some(Some(a.public)), "the id names it");
        assert_eq!(caller_key(&enc, &a.agent, true, Some(a.public)).ok(), Some(Some(a.public)));
        assert_eq!(caller_key(&enc, &a.agent, true, Some([9; 32])).ok(), Some(Some([9; 32])), "the store's key wins");
        assert!(matches!(caller_key(&enc, &a.agent, false, Some(a.public)), Err(Error::UnknownPeer { .. })));
        assert!(matches!(caller_key(&enc, "plain", true, None), Err(Error::UnknownPeer { .. })));
        assert_eq!(caller_key(&enc, "plain", true, Some([9; 32])).ok(), Some(Some([9; 32])));
    }

    #[test]
    fn raw_nodes_without_a_store_admit_everyone() {
        let open = Config { admit_any_agent: true, ..Config::default() };
        assert!(!asks_for_caller(&open));
        assert!(asks_for_caller(&Config::default()));
        assert_eq!(caller_key(&Config::default(), "x", true, Some([1; 32])).ok(), Some(None));
        assert!(matches!(caller_key(&Config::default(), "x", false, None), Err(Error::UnknownPeer { .. })));
    }
}

//! `Peer`s on loopback: link reuse, order, refusal, idle reopen, dead ports.

use std::time::Duration;

use serde_json::Value;

use super::{close_all, nodes, nodes_with, wait_for};
use crate::driver::{EventKind, SendOptions, Target};
use crate::error::Error;
use crate::proto::Identity;

#[tokio::test]
async fn both_directions_share_one_link() {
    let n = nodes(2, None).await;
    n[0].peer.send(n[1].target(), br#"{"n":1}"#.to_vec(), SendOptions::default()).await.unwrap();
    // The responder routes to the link once the initiator confirmed it: by
    // the time its message is delivered, it has.
    wait_for("the first message", || n[1].messages().len() == 1).await;
    let back = Target { agent: Some(n[0].id.agent.clone()), ..Target::default() }; // no address: reuse
    n[1].peer.send(back, br#"{"n":2}"#.to_vec(), SendOptions::default()).await.unwrap();
    wait_for("both messages", || n[0].messages().len() == 1 && n[1].messages().len() == 1).await;
    assert_eq!(n[1].messages(), vec![r#"{"n":1}"#]);
    assert_eq!(n[0].messages(), vec![r#"{"n":2}"#]);
    assert_eq!(n[0].peer.links().len(), 1);
    assert_eq!(n[1].events(EventKind::Open).len(), 1);
    close_all(&n).await;
}

#[tokio::test]
async fn sends_keep_their_order_while_the_link_opens() {
    let n = nodes(2, None).await;
    let sends: Vec<_> = (0..500)
        .map(|i| n[0].peer.send(n[1].target(), format!(r#"{{"i":{i}}}"#).into_bytes(), SendOptions::default()))
        .collect();
    for s in sends {
        s.await.unwrap();
    }
    wait_for("500 messages", || n[1].messages().len() == 500).await;
    let expected: Vec<String> = (0..500).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
    assert_eq!(n[1].messages(), expected);
    close_all(&n).await;
}

#[tokio::test]
async fn many_small_messages_written_at_once_are_read_and_delivered_in_batches() {
    let n = nodes(2, None).await;
    n[0].peer.send(n[1].target(), br#"{"i":0}"#.to_vec(), SendOptions::default()).await.unwrap();
    wait_for("the link open on both sides", || n[1].messages().len() == 1).await;
    // A thousand messages of ~40 bytes, corked: the sender hands them to the
    // socket in one write (~70 KB), so they wait in the receiver's socket
    // together. Read a frame at a time, each would be a batch of its own.
    let mut waits = Vec::new();
    let bodies: Vec<String> = (1..=1000).map(|i| format!(r#"{{"i":{i},"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}}"#)).collect();
    let messages = bodies.iter().map(|body| {
        let (done, rx) = crate::driver::queue::Done::oneshot();
        waits.push(rx);
        (body.as_bytes(), done)
    });
    n[0].peer.send_corked(&n[1].target(), messages);
    n[0].peer.uncork();
    for w in waits {
        w.await.expect("settled").expect("written");
    }
    wait_for("1001 messages", || n[1].messages().len() == 1001).await;
    assert_eq!(n[1].messages()[1..], bodies[..], "all, in order");
    let batches = n[1].batches();
    // The first message came alone; the thousand in batches of up to the
    // read burst (64): 16 when every read takes all there is.
    assert!(batches.len() - 1 <= 1000 / 16, "1000 messages came in {} batches: {batches:?}", batches.len() - 1);
    close_all(&n).await;
}

#[tokio::test]
async fn a_refused_ticket_rejects_the_send_and_delivers_nothing() {
    let n = nodes(2, None).await;
    let opts = SendOptions { ticket: Some(Value::from("bad")), referee: false };
    let err = n[0].peer.send(n[1].target(), br#"{"hi":1}"#.to_vec(), opts).await.unwrap_err();
    assert_eq!(err, Error::TicketRefused);
    wait_for("the refused event", || !n[1].events(EventKind::Refused).is_empty()).await;
    assert!(n[1].messages().is_empty());
    close_all(&n).await;
}

#[tokio::test]
async fn the_next_send_reopens_after_an_idle_close() {
    let n = nodes(2, Some(Duration::from_millis(100))).await;
    n[0].peer.send(n[1].target(), br#"{"n":1}"#.to_vec(), SendOptions::default()).await.unwrap();
    wait_for("the idle close on both sides", || {
        n[1].events(EventKind::Close).len() == 1 && n[0].events(EventKind::Close).len() == 1
    })
    .await;
    // Both sides keep an idle timer; whichever fires first closes in order.
    let reasons: Vec<_> = (0..2).map(|i| n[i].events(EventKind::Close)[0].reason.clone()).collect();
    assert!(reasons.iter().any(|r| r.as_deref() == Some("IDLE_TIMEOUT")), "{reasons:?}");
    assert!(n.iter().all(|x| x.events(EventKind::Close)[0].clean), "an idle close is orderly");
    n[0].peer.send(n[1].target(), br#"{"n":2}"#.to_vec(), SendOptions::default()).await.unwrap();
    wait_for("the message after reopening", || n[1].messages().len() == 2).await;
    assert_eq!(n[1].events(EventKind::Open).len(), 2);
    close_all(&n).await;
}

#[tokio::test]
async fn a_send_to_a_dead_port_rejects_with_connect_failed() {
    let n = nodes(1, None).await;
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = spare.local_addr().unwrap().port();
    drop(spare);
    let other = Identity::from_seed(&[9; 32]);
    let target =
        Target { agent: Some(other.agent), host: Some("127.0.0.1".into()), port: Some(port), ..Target::default() };
    let err = n[0].peer.send(target, b"{}".to_vec(), SendOptions::default()).await.unwrap_err();
    assert_eq!(err.code(), "ERR_CONNECT_FAILED");
    n[0].peer.close().await;
    let err = n[0].peer.send(n[0].target(), b"{}".to_vec(), SendOptions::default()).await.unwrap_err();
    assert_eq!(err, Error::Closed);
}

/// More is queued while the link opens than it takes off its queue in one
/// go (`HIGH_WATER`), and the socket takes each go at once: the link must go
/// on by itself, with no further send to wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_longer_than_the_high_water_mark_is_written_out_by_itself() {
    // One message a go, so that the socket surely takes each go whole.
    let n = nodes_with(2, None, |cfg| cfg.high_water = 1).await;
    let pad = "x".repeat(1024);
    let sends: Vec<_> = (0..4_000)
        .map(|i| {
            n[0].peer.send(n[1].target(), format!(r#"{{"i":{i},"pad":"{pad}"}}"#).into_bytes(), SendOptions::default())
        })
        .collect();
    let all = async {
        for s in sends {
            s.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all).await.expect("every send is written");
    wait_for("4,000 messages", || n[1].messages().len() == 4_000).await;
    let order: Vec<u32> = n[1]
        .messages()
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["i"].as_u64().unwrap() as u32)
        .collect();
    assert!(order.windows(2).all(|w| w[0] + 1 == w[1]), "in order");
    close_all(&n).await;
}

/// Sends reported by id (as the JavaScript binding makes them): each id is
/// reported exactly once, by exactly one of the three ways (written before
/// `send_with` returned, by `uncork`, or on the results channel), whether the
/// link was still opening, open and idle, or corked; and order is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_reported_by_id_is_reported_once_whichever_way_it_went() {
    use crate::driver::{Done, Sent};
    let n = nodes(2, None).await;
    let (results, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut now = Vec::new(); // written before send_with returned, or by uncork
    let mut id = 0u64;
    let mut send = |cork: bool, now: &mut Vec<u64>| {
        id += 1;
        let done = Done::queue(id, results.clone());
        let data = format!(r#"{{"i":{id}}}"#).into_bytes();
        if n[0].peer.send_with(n[1].target(), data, SendOptions::default(), done, cork) == Sent::Written {
            now.push(id);
        }
    };
    // While the link opens: queued, reported on the channel.
    for _ in 0..10 {
        send(false, &mut now);
    }
    wait_for("the first ten", || n[1].messages().len() == 10).await;
    // Open and idle: the first of a turn is written at once, the rest corked.
    for _ in 0..20 {
        send(false, &mut now);
        for _ in 0..50 {
            send(true, &mut now);
        }
        now.extend(n[0].peer.uncork());
        tokio::task::yield_now().await;
    }
    drop(results);
    let total = id;
    wait_for("every message", || n[1].messages().len() as u64 == total).await;
    let mut reported = now;
    let collect = async {
        while reported.len() < total as usize {
            match rx.recv().await {
                Some((id, result)) => {
                    assert_eq!(result, Ok(()), "send {id}");
                    reported.push(id);
                }
                None => break,
            }
        }
        reported
    };
    let mut reported = tokio::time::timeout(Duration::from_secs(10), collect).await.expect("every send reported");
    reported.sort_unstable();
    assert_eq!(reported, (1..=total).collect::<Vec<_>>(), "each id once");
    let order: Vec<u64> = n[1]
        .messages()
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["i"].as_u64().unwrap())
        .collect();
    assert_eq!(order, (1..=total).collect::<Vec<_>>(), "in order");
    close_all(&n).await;
}

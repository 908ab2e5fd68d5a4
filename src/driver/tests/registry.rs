//! The registry's routing, ordering and requeue rules, without tasks: a
//! message goes on one link's queue, in call order; a new link is ordered
//! only when none can take it; a retiring link hands its unsent messages on,
//! in order, a bounded number of times. A link's wire sits on a loopback
//! socket that nobody reads or writes; only its queue is looked at.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::driver::queue::{Cmd, Done, Outgoing, SendOptions, Target};
use crate::driver::registry::{DialOrder, LinkLimits, NewLink, Registry, Retire, MAX_ATTEMPTS};
use crate::driver::wire::Wire;
use crate::driver::LinkInfo;
use crate::error::{Error, Result};
use crate::proto::replay::ReplayTable;
use crate::proto::{Connection, Pattern};

const AGENT: &str = "agent-x";

fn registry() -> (Registry, CancellationToken) {
    let shutdown = CancellationToken::new();
    (Registry::new(shutdown.clone(), LinkLimits { per_agent: 8, referee: 8 }), shutdown)
}

fn dialable() -> Target {
    Target { agent: Some(AGENT.into()), host: Some("127.0.0.1".into()), port: Some(1), ..Target::default() }
}

fn by_agent() -> Target {
    Target { agent: Some(AGENT.into()), ..Target::default() }
}

/// A message `n` to `target`, and where to hear how it ended.
fn message(n: u32, target: Target) -> (Outgoing, oneshot::Receiver<Result<()>>) {
    let (done, result) = Done::oneshot();
    let out = Outgoing {
        data: format!(r#"{{"n":{n}}}"#).into_bytes(),
        done,
        target,
        opts: SendOptions::default(),
        attempts: 0,
        cause: None,
    };
    (out, result)
}

fn info(id: u64, pattern: Pattern) -> LinkInfo {
    LinkInfo {
        link: id,
        agent: Some(AGENT.into()),
        remote: SocketAddr::from(([127, 0, 0, 1], 1)),
        pattern,
        native: true,
        initiator: false,
        encrypted: true,
    }
}

/// A link's registration and its wire (with the far end of its socket).
struct Link {
    id: u64,
    cancel: CancellationToken,
    wire: Arc<Wire>,
    _far: std::net::TcpStream,
}

/// A wire over a fresh loopback connection, with a responder core.
fn wire() -> (Arc<Wire>, std::net::TcpStream) {
    static RT: Lazy<tokio::runtime::Runtime> =
        Lazy::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a test runtime"));
    let _in_runtime = RT.enter();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let near = std::net::TcpStream::connect(listener.local_addr().expect("bound")).expect("connected");
    let (far, _) = listener.accept().expect("accepted");
    near.set_nonblocking(true).expect("non-blocking");
    let stream = tokio::net::TcpStream::from_std(near).expect("registered");
    let replay = Arc::new(Mutex::new(ReplayTable::default()));
    let conn = Connection::responder(Arc::default(), replay, std::time::Instant::now());
    (Arc::new(Wire::new(stream, conn)), far)
}

/// An inbound link whose handshake proved `AGENT`.
fn open_inbound(reg: &Registry) -> Link {
    let link = inbound(reg);
    reg.opened(link.id, &info(link.id, Pattern::KK)).expect("under the caps");
    link
}

/// An inbound link, its handshake not done.
fn inbound(reg: &Registry) -> Link {
    let (wire, far) = wire();
    let NewLink { id, cancel } = reg.add_inbound(wire.clone());
    Link { id, cancel, wire, _far: far }
}

/// A link the registry ordered dialled, now with its socket.
fn dialled(reg: &Registry, link: NewLink) -> Link {
    let (wire, far) = wire();
    assert!(reg.install(link.id, &wire));
    Link { id: link.id, cancel: link.cancel, wire, _far: far }
}

/// The messages queued on a link, as (n, attempts), taking them off.
fn queued(link: &Link) -> Vec<(String, u8)> {
    let cmds: Vec<Cmd> = link.wire.lock().cmds.drain(..).collect();
    cmds.into_iter()
        .filter_map(|cmd| match cmd {
            Cmd::Send(o) => Some((String::from_utf8_lossy(&o.data).into_owned(), o.attempts)),
            Cmd::Connect(_) => None,
        })
        .collect()
}

fn result(rx: &mut oneshot::Receiver<Result<()>>) -> Option<Result<()>> {
    rx.try_recv().ok()
}

#[test]
fn the_first_send_orders_one_dial_and_later_sends_queue_on_it_in_order() {
    let (reg, _) = registry();
    let (m1, _) = message(1, dialable());
    let (m2, _) = message(2, dialable());
    let (m3, _) = message(3, by_agent());
    let Some(DialOrder { link, target, .. }) = reg.submit(m1) else { panic!("a dial is ordered") };
    assert_eq!(target.port, Some(1));
    assert!(reg.submit(m2).is_none(), "the link being dialled takes the second");
    assert!(reg.submit(m3).is_none(), "and a send by agent alone");
    let link = dialled(&reg, link);
    let got = queued(&link);
    assert_eq!(got, vec![(r#"{"n":1}"#.into(), 0), (r#"{"n":2}"#.into(), 0), (r#"{"n":3}"#.into(), 0)]);
}

#[test]
fn a_send_with_nowhere_to_go_is_rejected_at_once() {
    let (reg, _) = registry();
    let (m, mut r) = message(1, by_agent());
    assert!(reg.submit(m).is_none());
    assert!(matches!(result(&mut r), Some(Err(Error::InvalidArgument(_)))), "no link and no address");
    let (m, mut r) = message(2, Target::default());
    assert!(reg.submit(m).is_none());
    assert!(matches!(result(&mut r), Some(Err(Error::InvalidArgument(_)))), "no agent");
    let (m, mut r) = message(3, Target { link: Some(99), ..Target::default() });
    assert!(reg.submit(m).is_none());
    assert_eq!(result(&mut r), Some(Err(Error::ConnectionClosed)), "no such link");
}

#[test]
fn an_open_link_is_preferred_to_one_opening_and_the_link_in_use_keeps_the_messages() {
    let (reg, _) = registry();
    let (m, _) = message(1, dialable());
    let dialling = reg.submit(m).map(|o| o.link).expect("a dial");
    let older = open_inbound(&reg);
    let (m, _) = message(2, dialable());
    assert!(reg.submit(m).is_none());
    assert_eq!(queued(&older).len(), 1, "open beats opening");
    // A newer link to the same agent opens (the other side dialled at the
    // same moment): the link in use keeps the messages, so they stay in order.
    let newer = open_inbound(&reg);
    let (m, _) = message(3, dialable());
    assert!(reg.submit(m).is_none());
    assert_eq!(queued(&older).len(), 1, "the link in use");
    assert_eq!(queued(&newer).len(), 0);
    let dialling = dialled(&reg, dialling);
    assert_eq!(queued(&dialling).len(), 1, "only the first message");
    assert_eq!(reg.open_links().len(), 2);
}

#[test]
fn when_the_link_in_use_retires_its_unsent_messages_go_first_to_the_next() {
    let (reg, _) = registry();
    let a = open_inbound(&reg);
    let b = open_inbound(&reg);
    for n in 1..=3 {
        let (m, _) = message(n, by_agent());
        assert!(reg.submit(m).is_none());
    }
    assert!(reg.retire(a.id, Retire::Requeue { cause: None }).is_empty());
    let (m, _) = message(4, by_agent());
    assert!(reg.submit(m).is_none());
    let got: Vec<String> = queued(&b).into_iter().map(|(m, _)| m).collect();
    assert_eq!(got, vec![r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#, r#"{"n":4}"#], "in call order");
}

#[test]
fn open_links_are_capped_per_agent_and_anonymous_referee_links_apart() {
    let reg = Registry::new(CancellationToken::new(), LinkLimits { per_agent: 2, referee: 1 });
    let _a = open_inbound(&reg);
    let _b = open_inbound(&reg);
    let c = inbound(&reg);
    assert!(matches!(reg.opened(c.id, &info(c.id, Pattern::KK)), Err(Error::TooManyLinks(_))));
    let anon = |id| LinkInfo { agent: None, ..info(id, Pattern::NK) };
    let q1 = inbound(&reg);
    assert!(reg.opened(q1.id, &anon(q1.id)).is_ok(), "referee links are counted apart");
    let q2 = inbound(&reg);
    assert!(matches!(reg.opened(q2.id, &anon(q2.id)), Err(Error::TooManyLinks(_))));
    reg.remove(q1.id);
    assert!(reg.opened(q2.id, &anon(q2.id)).is_ok(), "a slot came free");
}

#[test]
fn a_retiring_link_hands_unsent_messages_in_order_to_a_new_dial() {
    let (reg, _) = registry();
    let (m1, _) = message(1, dialable());
    let (m2, _) = message(2, dialable());
    let first = reg.submit(m1).map(|o| o.link).expect("a dial");
    assert!(reg.submit(m2).is_none());
    let first = dialled(&reg, first);
    reg.opened(first.id, &info(first.id, Pattern::KK)).expect("under the caps");
    let dials = reg.retire(first.id, Retire::Requeue { cause: None });
    assert_eq!(dials.len(), 1, "one new link for both");
    let next = dialled(&reg, dials.into_iter().next().map(|o| o.link).expect("a dial"));
    assert_eq!(queued(&next), vec![(r#"{"n":1}"#.into(), 1), (r#"{"n":2}"#.into(), 1)]);
    assert!(reg.open_links().is_empty(), "the retired link routes nothing");
}

#[test]
fn a_retiring_link_hands_unsent_messages_to_another_open_link_without_dialling() {
    let (reg, _) = registry();
    let a = open_inbound(&reg);
    let b = open_inbound(&reg);
    let (m1, _) = message(1, by_agent());
    let (m2, _) = message(2, by_agent());
    assert!(reg.submit(m1).is_none() && reg.submit(m2).is_none());
    // The messages went to the link in use, a; it retires and hands them to b.
    let dials = reg.retire(a.id, Retire::Requeue { cause: None });
    assert!(dials.is_empty());
    assert_eq!(queued(&b), vec![(r#"{"n":1}"#.into(), 1), (r#"{"n":2}"#.into(), 1)]);
}

#[test]
fn a_message_is_rejected_once_it_has_been_handed_to_max_attempts_links() {
    let (reg, _) = registry();
    let (m, mut r) = message(1, dialable());
    let mut link = reg.submit(m).map(|o| o.link).expect("a dial");
    for attempt in 1..MAX_ATTEMPTS {
        let dials = reg.retire(link.id, Retire::Requeue { cause: None });
        link = dials.into_iter().next().map(|o| o.link).unwrap_or_else(|| panic!("requeue {attempt} dials again"));
    }
    let dials = reg.retire(link.id, Retire::Requeue { cause: None });
    assert!(dials.is_empty());
    assert_eq!(result(&mut r), Some(Err(Error::ConnectionClosed)));
}

#[test]
fn messages_for_one_link_are_not_moved_to_another() {
    let (reg, _) = registry();
    let a = open_inbound(&reg);
    let _b = open_inbound(&reg);
    let (m, mut r) = message(1, Target { link: Some(a.id), ..Target::default() });
    assert!(reg.submit(m).is_none());
    assert!(reg.retire(a.id, Retire::Requeue { cause: None }).is_empty());
    assert_eq!(result(&mut r), Some(Err(Error::ConnectionClosed)));
}

#[test]
fn a_message_with_nowhere_to_go_after_its_link_failed_names_that_failure() {
    let (reg, _) = registry();
    let stuck = Error::WriteTimeout { ms: 1500 };
    // Handed back by the failed link, with no address to dial again.
    let a = open_inbound(&reg);
    let (m, mut r) = message(1, by_agent());
    assert!(reg.submit(m).is_none());
    assert!(reg.retire(a.id, Retire::Requeue { cause: Some(stuck.clone()) }).is_empty());
    assert_eq!(result(&mut r), Some(Err(stuck.clone())));
    // Bound to that very link.
    let b = open_inbound(&reg);
    let (m, mut r) = message(2, Target { link: Some(b.id), ..Target::default() });
    assert!(reg.submit(m).is_none());
    assert!(reg.retire(b.id, Retire::Requeue { cause: Some(Error::ConnectionReset) }).is_empty());
    assert_eq!(result(&mut r), Some(Err(Error::ConnectionReset)));
    // Moved on to a link that then closed in order: the latest link's end counts.
    let c = open_inbound(&reg);
    let d = open_inbound(&reg);
    let (m, mut r) = message(3, by_agent());
    assert!(reg.submit(m).is_none());
    assert!(reg.retire(c.id, Retire::Requeue { cause: Some(stuck) }).is_empty());
    assert!(result(&mut r).is_none(), "d took it");
    assert!(reg.retire(d.id, Retire::Requeue { cause: None }).is_empty());
    assert_eq!(result(&mut r), Some(Err(Error::ConnectionClosed)));
}

#[test]
fn a_refusal_rejects_everything_queued_with_its_reason() {
    let (reg, _) = registry();
    let (m, mut r) = message(1, dialable());
    let link = reg.submit(m).map(|o| o.link).expect("a dial");
    let (done, mut connected) = oneshot::channel();
    assert!(reg.connect(dialable(), SendOptions::default(), done).is_none(), "waits on the same link");
    let dials = reg.retire(link.id, Retire::Reject(Error::TicketRefused));
    assert!(dials.is_empty());
    assert_eq!(result(&mut r), Some(Err(Error::TicketRefused)));
    assert!(matches!(connected.try_recv(), Ok(Err(Error::TicketRefused))));
}

#[test]
fn a_link_that_takes_nothing_more_is_passed_over() {
    let (reg, _) = registry();
    let gone = open_inbound(&reg);
    gone.wire.lock().retired = true; // as a link does when it retires
    let (m, _) = message(1, dialable());
    assert!(reg.submit(m).is_some(), "a new dial, not the dead queue");
}

#[test]
fn referee_queries_and_partner_messages_use_separate_links() {
    let (reg, _) = registry();
    let partner = open_inbound(&reg);
    let (mut m, _) = message(1, dialable());
    m.opts.referee = true;
    assert!(reg.submit(m).is_some(), "a referee query dials its own link");
    assert!(queued(&partner).is_empty());
}

#[test]
fn after_shutdown_every_send_is_closed_and_end_agent_cancels_links() {
    let (reg, shutdown) = registry();
    let a = open_inbound(&reg);
    assert_eq!(reg.end_agent(AGENT).0, 1);
    assert!(a.cancel.is_cancelled());
    shutdown.cancel();
    let (m, mut r) = message(1, dialable());
    assert!(reg.submit(m).is_none());
    assert_eq!(result(&mut r), Some(Err(Error::Closed)));
}

#[test]
fn a_message_handed_back_with_nowhere_to_go_fails_as_closed_not_as_a_bad_argument() {
    let (reg, _) = registry();
    let a = open_inbound(&reg);
    let (m, mut r) = message(1, by_agent()); // no host or port: only the open link can take it
    assert!(reg.submit(m).is_none());
    assert!(reg.retire(a.id, Retire::Requeue { cause: None }).is_empty());
    assert_eq!(result(&mut r), Some(Err(Error::ConnectionClosed)));
}

#[test]
fn an_ended_link_hands_its_queue_to_the_next_link_ahead_of_later_sends() {
    let (reg, _) = registry();
    let a = open_inbound(&reg);
    // Two messages wait on the open link (its task has not encrypted them yet).
    let (m1, _) = message(1, dialable());
    let (m2, _) = message(2, dialable());
    assert!(reg.submit(m1).is_none());
    assert!(reg.submit(m2).is_none());
    let (n, mut dials) = reg.end_agent(AGENT);
    assert_eq!(n, 1);
    assert!(a.cancel.is_cancelled());
    assert!(queued(&a).is_empty(), "nothing is left on the ended link");
    let Some(DialOrder { link, .. }) = dials.pop() else { panic!("a dial for what waited") };
    assert!(dials.is_empty());
    // A send after end() goes behind them, on the new link, not on the old one.
    let (m3, _) = message(3, dialable());
    assert!(reg.submit(m3).is_none(), "no second dial");
    let b = dialled(&reg, link);
    let n = |k: u32| format!(r#"{{"n":{k}}}"#);
    assert_eq!(queued(&b), vec![(n(1), 1), (n(2), 1), (n(3), 0)]);
    assert!(a.wire.push(Cmd::Send(Box::new(message(4, dialable()).0))).is_err(), "the ended link takes nothing");
}

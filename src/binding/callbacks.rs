//! JavaScript callbacks as driver sinks and stores.
//!
//! Every callback is a weak ThreadsafeFunction called NonBlocking: it never
//! keeps Node alive and never blocks a tokio worker. Lookups go out as
//! requests with an id; JavaScript awaits the application's async callback
//! and answers with `NativePeer.answer(id, ...)`. A request that JavaScript
//! never answers is bounded by the driver's lookup deadline.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use napi::bindgen_prelude::FnArgs;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use serde_json::Value;
use tokio::sync::oneshot;

use super::options::{EventInfo, FromInfo, LookupRequest, SendFailure};
use crate::driver::{DeliveryPermit, EventKind, LinkInfo, PeerEvent, Sink};
use crate::error::{Error, Result};
use crate::proto::{keys, Address, Answer, Key};
use crate::store::{Partner, Store, StoreStats};

/// A weak JavaScript callback taking one value.
pub type JsCallback<T> = ThreadsafeFunction<T, (), T, Status, false, true>;

/// What the node reports, in order, as the arguments of one callback:
/// `(link, messages, early, from, event)`. A batch of messages from one link
/// is one JSON array text (JavaScript parses it in one call), the indexes
/// of those that rode in a replayable handshake message (if any), and who
/// sent them the first time that link delivers (JavaScript keeps it until
/// the link's end); or else an event.
pub type InputArgs = FnArgs<(f64, Option<String>, Option<Vec<u32>>, Option<FromInfo>, Option<EventInfo>)>;

/// How sends ended, in batches: the ids of those written (as `runs`), and
/// the failures.
pub type SentArgs = FnArgs<(Vec<f64>, Option<Vec<SendFailure>>)>;

/// Ids as runs `[first, count, first, count, ...]` for JavaScript: the
/// sends of a turn have consecutive ids and are mostly written together, so a
/// run or two stands for hundreds of ids (each a JavaScript number to make).
pub fn runs(ids: impl IntoIterator<Item = u64>) -> Vec<f64> {
    crate::driver::id_runs(ids).into_iter().flat_map(|(first, count)| [first as f64, count as f64]).collect()
}

/// Messages and events share one callback, so JavaScript sees them in the
/// order they happened (a link's `open` before its first message).
pub struct JsSink {
    on_input: JsCallback<InputArgs>,
    /// Links whose `from` JavaScript has been given.
    introduced: Mutex<HashSet<u64>>,
}

impl JsSink {
    pub fn new(on_input: JsCallback<InputArgs>) -> Self {
        Self { on_input, introduced: Mutex::default() }
    }

    /// True the first time for each link.
    fn introduce(&self, link: u64) -> bool {
        self.introduced.lock().map(|mut set| set.insert(link)).unwrap_or(true)
    }
}

impl Sink for JsSink {
    fn messages(&self, from: &LinkInfo, batch: Vec<(Vec<u8>, bool)>, permit: Option<DeliveryPermit>) {
        // The core checked that each is one JSON object in valid UTF-8, so
        // joined with commas they are one JSON array; a message that somehow
        // is not valid UTF-8 is left out rather than altered.
        let mut text = String::with_capacity(batch.iter().map(|(d, _)| d.len() + 1).sum::<usize>() + 2);
        let mut early = Vec::new();
        let mut n = 0u32;
        text.push('[');
        for (data, is_early) in &batch {
            let Ok(message) = std::str::from_utf8(data) else { continue };
            if n > 0 {
                text.push(',');
            }
            text.push_str(message);
            if *is_early {
                early.push(n);
            }
            n += 1;
        }
        text.push(']');
        let first = self.introduce(from.link);
        let args = (
            from.link as f64,
            Some(text),
            (!early.is_empty()).then_some(early),
            first.then(|| FromInfo::from(from)),
            None,
        );
        // The permit is given back once JavaScript has run its listeners on
        // the batch: until then it counts against the node's backlog, and
        // links stop reading when the backlog is full.
        let status =
            self.on_input.call_with_return_value(args.into(), ThreadsafeFunctionCallMode::NonBlocking, move |_, _| {
                drop(permit);
                Ok(())
            });
        if status != Status::Ok && first {
            // JavaScript never heard of this link: say who it is next time.
            if let Ok(mut set) = self.introduced.lock() {
                set.remove(&from.link);
            }
        }
    }

    fn event(&self, event: PeerEvent) {
        if event.kind != EventKind::Open {
            if let Ok(mut set) = self.introduced.lock() {
                set.remove(&event.link);
            }
        }
        let args = (event.link as f64, None, None, None, Some(EventInfo::from(event)));
        let _ = self.on_input.call(args.into(), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Most send results handed to JavaScript in one call.
const RESULT_BATCH: usize = 4096;

/// Report send results to JavaScript in batches: one call for everything that
/// finished since the last one. Ends when the peer (every sender) is gone.
pub async fn report_results(
    mut results: tokio::sync::mpsc::UnboundedReceiver<(u64, crate::Result<()>)>,
    on_sent: JsCallback<SentArgs>,
) {
    while let Some(first) = results.recv().await {
        let mut written = Vec::new();
        let mut failed = Vec::new();
        let mut next = Some(first);
        while let Some((id, result)) = next.take() {
            match result {
                Ok(()) => written.push(id),
                Err(e) => failed.push(SendFailure { id: id as f64, code: e.code().to_owned(), message: e.to_string() }),
            }
            if written.len() + failed.len() < RESULT_BATCH {
                next = results.try_recv().ok();
            }
        }
        let failed = (!failed.is_empty()).then_some(failed);
        let _ = on_sent.call((runs(written), failed).into(), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

pub struct JsStore {
    on_request: JsCallback<LookupRequest>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next: AtomicU64,
    lookups: AtomicU64,
    failures: AtomicU64,
}

impl JsStore {
    pub fn new(on_request: JsCallback<LookupRequest>) -> Self {
        Self {
            on_request,
            pending: Mutex::default(),
            next: AtomicU64::new(1),
            lookups: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Deliver the application's answer to request `id` (false: unknown id,
    /// for example one that already timed out).
    pub fn answer(&self, id: u64, reply: Answer) -> bool {
        if matches!(reply, Answer::Failed(_)) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        tx.is_some_and(|tx| tx.send(reply).is_ok())
    }

    fn ask(
        self: &Arc<Self>,
        kind: &str,
        agent: Option<String>,
        ticket: Option<String>,
        from: Option<String>,
    ) -> BoxFuture<'static, Result<Answer>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let req = LookupRequest { id: id as f64, kind: kind.to_owned(), agent, ticket, from };
        let status = self.on_request.call(req, ThreadsafeFunctionCallMode::NonBlocking);
        let me = self.clone();
        Box::pin(async move {
            if status != Status::Ok {
                me.forget(id);
                return Err(Error::LookupFailed(format!("could not call the application ({status})")));
            }
            // Forget the request if the driver gives up waiting (deadline).
            let guard = Forget { store: me.clone(), id };
            let reply = rx.await.map_err(|_| Error::LookupFailed("the application did not answer".into()));
            drop(guard);
            match reply? {
                Answer::Failed(e) => Err(e),
                answer => Ok(answer),
            }
        })
    }

    fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }
}

struct Forget {
    store: Arc<JsStore>,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.store.forget(self.id);
    }
}

/// `Store` over a shared `JsStore` (the trait takes `&self`, lookups need the Arc).
pub struct SharedStore(pub Arc<JsStore>);

fn unexpected(answer: &Answer) -> Error {
    Error::Internal(format!("the application's answer does not fit the question: {answer:?}"))
}

impl Store for SharedStore {
    fn peer_key(&self, agent: String) -> BoxFuture<'static, Result<Option<Key>>> {
        let ask = self.0.ask("peerKey", Some(agent), None, None);
        Box::pin(async move {
            match ask.await? {
                Answer::Key(k) => Ok(k),
                other => Err(unexpected(&other)),
            }
        })
    }

    /// `peerKey` answers both: a key means a partner, `null` means not one.
    fn partner(&self, agent: String) -> BoxFuture<'static, Result<Partner>> {
        let key = self.peer_key(agent);
        Box::pin(async move { key.await.map(|key| Partner { allowed: key.is_some(), key }) })
    }

    fn check_ticket(&self, ticket: Value, from: Address) -> BoxFuture<'static, Result<bool>> {
        let from = serde_json::to_string(&from).ok();
        let ask = self.0.ask("checkTicket", None, Some(ticket.to_string()), from);
        Box::pin(async move {
            match ask.await? {
                Answer::Ticket(ok) => Ok(ok),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            lookups: self.0.lookups.load(Ordering::Relaxed),
            failures: self.0.failures.load(Ordering::Relaxed),
            ..StoreStats::default()
        }
    }
}

/// Read a key the application gave: 32 bytes.
pub fn key_from_js(bytes: &[u8]) -> Option<Key> {
    keys::key_from_slice(bytes)
}

//! The store's notification connection: its own PostgreSQL connection, not
//! a pooled one, that `LISTEN`s on the channels whose notifications say what
//! changed, and drops the matching cache entries.
//!
//! Notifications sent while it is disconnected are lost (PostgreSQL keeps
//! none for an absent listener), so while it is down the cache is not used,
//! and each reconnect starts from an empty cache. It reconnects by itself,
//! backing off up to `MAX_BACKOFF`, and pings the server so a connection that
//! died silently is noticed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::cache::{change_of, Cache};
use super::pg::Counters;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle notification connection proves it is alive.
const PING_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn run(
    pg: tokio_postgres::Config,
    channels: Vec<String>,
    cache: Arc<Mutex<Cache>>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let set_live = |live: bool| cache.lock().unwrap_or_else(|p| p.into_inner()).set_live(live);
    loop {
        let session = listen_once(&pg, &channels, &cache, &counters, &set_live, &shutdown);
        let was_up = tokio::select! {
            up = session => up,
            () = shutdown.cancelled() => return,
        };
        set_live(false);
        if was_up {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, listen, then apply notifications until
/// it fails. Returns whether it got as far as listening.
async fn listen_once(
    pg: &tokio_postgres::Config,
    channels: &[String],
    cache: &Arc<Mutex<Cache>>,
    counters: &Counters,
    set_live: &impl Fn(bool),
    shutdown: &CancellationToken,
) -> bool {
    let Ok((client, mut connection)) = pg.connect(NoTls).await else { return false };
    // The connection must be polled for anything to happen, and polling it
    // is how notifications arrive: forward them from a task of their own.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let driver = tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                if tx.send(n.payload().to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    let listen: String = channels.iter().map(|c| format!("LISTEN {};", quote_ident(c))).collect();
    if client.batch_execute(&listen).await.is_err() {
        driver.abort();
        return false;
    }
    counters.listens.fetch_add(1, Ordering::Relaxed);
    set_live(true);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) => {
                    cache.lock().unwrap_or_else(|p| p.into_inner()).changed(change_of(&payload));
                    counters.invalidations.fetch_add(1, Ordering::Relaxed);
                }
                None => break, // the connection ended
            },
            _ = ping.tick() => {
                if tokio::time::timeout(PING_EVERY, client.simple_query("")).await.map_or(true, |r| r.is_err()) {
                    break;
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    driver.abort();
    true
}

/// A channel name as a quoted SQL identifier (`"` doubled, NUL cut).
fn quote_ident(name: &str) -> String {
    let name = name.split('\0').next().unwrap_or("");
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn channel_names_are_quoted() {
        assert_eq!(quote_ident("mychips_admin"), "\"mychips_admin\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("x\0; drop"), "\"x\"");
    }
}

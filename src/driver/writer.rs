//! The writer task of a link: frames in batches to the socket, and each
//! send's `Done` settled once its frames were flushed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedWrite, LengthDelimitedCodec};

use super::queue::Done;
use crate::error::{Error, Result};

/// Most queued frame batches written before one flush.
const MAX_BATCH: usize = 256;
/// How long the final shutdown (FIN) may wait on a peer that stopped reading.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Frames for the writer, and who to tell once they are flushed.
pub(crate) struct WriteItem {
    pub frames: Vec<Vec<u8>>,
    pub done: Option<Done>,
}

/// Write frames in batches: feed everything queued, flush once, then resolve
/// the sends. Ends (and shuts down the write half, sending FIN) when the link
/// drops its end of the queue.
pub(crate) async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut rx: mpsc::Receiver<WriteItem>,
    written: Arc<AtomicU64>,
) -> Result<()> {
    let mut batch: Vec<WriteItem> = Vec::new();
    while let Some(item) = rx.recv().await {
        batch.push(item);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut result = Ok(());
        'feed: for item in &mut batch {
            for f in item.frames.drain(..) {
                if let Err(e) = sink.feed(Bytes::from(f)).await {
                    result = Err(e);
                    break 'feed;
                }
            }
        }
        if result.is_ok() {
            result = SinkExt::<Bytes>::flush(&mut sink).await;
        }
        match result {
            Ok(()) => {
                for item in batch.drain(..) {
                    if let Some(done) = item.done {
                        written.fetch_add(1, Ordering::Relaxed);
                        done.complete(Ok(()));
                    }
                }
            }
            Err(e) => {
                let err = Error::from_io(&e);
                rx.close();
                for item in batch.drain(..).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                    if let Some(done) = item.done {
                        done.complete(Err(err.clone()));
                    }
                }
                return Err(err);
            }
        }
    }
    // Bounded: a peer that stopped reading must not hold us forever.
    let _ = tokio::time::timeout(CLOSE_GRACE, SinkExt::<Bytes>::close(&mut sink)).await;
    Ok(())
}

//! The owner's link to one forwarding node for one document: the members of that
//! node push their frames into one bounded queue, and one task sends each distinct
//! frame once with the list of its recipients (the fan-out tree: a broadcast to
//! 1,000 readers on a node is one bus message, not 1,000).
//!
//! A broadcast hands every member a clone of the same `Bytes`, so consecutive
//! entries sharing a buffer (pointer and length) are the same frame; the entries
//! hold their clones, so a buffer cannot be freed and reused while queued.

use crate::frames::PushError;
use crate::inbox::{bounded, InboxReceiver, InboxSender, TrySendError};
use crate::wire::Wire;
use bytes::Bytes;
use chorus_cluster::Bus;
use std::sync::Arc;

/// Frames queued for one node before its members count as slow consumers.
const LINK_QUEUE: usize = 16_384;
/// Entries taken per bus message at most.
const LINK_BATCH: usize = 4096;

/// The members' end of a link. Cheap to clone (one per remote member).
#[derive(Clone)]
pub(crate) struct LinkSender(Arc<InboxSender<(u64, Bytes)>>);

impl LinkSender {
    /// Queue `frame` for connection `conn` of the node; never waits.
    pub(crate) fn push(&self, conn: u64, frame: Bytes) -> Result<(), PushError> {
        self.0.try_send((conn, frame)).map_err(|e| match e {
            TrySendError::Full(_) => PushError::Full,
            TrySendError::Closed(_) => PushError::Closed,
        })
    }
}

/// Start the link of document (`app`, `doc`) to `node`; it stops once every
/// sender is gone.
pub(crate) fn start(bus: Bus, node: Arc<str>, app: Arc<str>, doc: Arc<str>) -> LinkSender {
    let (tx, rx) = bounded(LINK_QUEUE, 256);
    tokio::spawn(run(bus, node, app, doc, rx));
    LinkSender(Arc::new(tx))
}

async fn run(
    bus: Bus,
    node: Arc<str>,
    app: Arc<str>,
    doc: Arc<str>,
    mut rx: InboxReceiver<(u64, Bytes)>,
) {
    while let Some(first) = rx.recv().await {
        let mut entries = vec![first];
        while entries.len() < LINK_BATCH {
            match rx.try_recv() {
                Some(e) => entries.push(e),
                None => break,
            }
        }
        let mut entries = entries.into_iter().peekable();
        while let Some((conn, frame)) = entries.next() {
            let mut to = vec![conn];
            while let Some((_, next)) = entries.peek() {
                if next.as_ptr() != frame.as_ptr() || next.len() != frame.len() {
                    break;
                }
                to.extend(entries.next().map(|(c, _)| c));
            }
            let deliver = Wire::Deliver {
                app: app.to_string(),
                doc: doc.to_string(),
                frame: frame.to_vec(),
                to,
            };
            bus.send(&node, deliver.encode());
        }
    }
}

//! A connection's outbound queue: the document actor pushes encoded frames into it
//! without ever waiting, the connection task takes them out and writes them.
//!
//! It replaces a bounded `tokio::sync::mpsc` channel, for the fan-out path where one
//! edit becomes one push into every member's queue: a push here is one uncontended
//! lock and, only when the queue was empty, one wake-up (a connection task drains
//! everything that is queued before it waits again, so a push into a queue that
//! already holds frames needs no wake-up). An idle connection's queue holds no
//! allocation at all; tokio's channel allocates a block of 32 slots up front.
//!
//! It is the document inbox's queue ([`crate::inbox`]) used without waiting. One
//! sender (the member's [`crate::QueuePeer`]) and one receiver (the
//! connection task). The bound is what makes a slow reader visible: a push into a
//! full queue fails, and the room closes that connection (1013 `slow-consumer`).

use crate::inbox::{bounded, InboxReceiver, InboxSender, TrySendError};
use bytes::Bytes;

/// A queue that grew past this many frames (a burst) gives the memory back once
/// it is drained.
const SHRINK_ABOVE: usize = 256;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds `capacity` frames: the reader is not keeping up.
    Full,
    /// The connection task is gone.
    Closed,
}

/// The document actor's end.
pub struct FrameSender(InboxSender<Bytes>);

/// The connection task's end.
pub struct FrameReceiver(InboxReceiver<Bytes>);

/// A queue holding at most `capacity` frames.
pub fn frame_queue(capacity: usize) -> (FrameSender, FrameReceiver) {
    let (tx, rx) = bounded(capacity, SHRINK_ABOVE);
    (FrameSender(tx), FrameReceiver(rx))
}

impl FrameSender {
    /// Queue a frame; never waits.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        self.0.try_send(frame).map_err(|e| match e {
            TrySendError::Full(_) => PushError::Full,
            TrySendError::Closed(_) => PushError::Closed,
        })
    }
}

impl FrameReceiver {
    /// Wait for the next frame; `None` once the queue is empty and the sender is
    /// gone (the document let this connection go).
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.0.recv().await
    }

    /// The next queued frame, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.0.try_recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_come_out_in_order_and_the_bound_holds() {
        let (tx, mut rx) = frame_queue(2);
        tx.push(Bytes::from_static(b"a")).unwrap();
        tx.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(tx.push(Bytes::from_static(b"c")), Err(PushError::Full));
        assert_eq!(rx.try_recv().as_deref(), Some(&b"a"[..]));
        tx.push(Bytes::from_static(b"c")).unwrap();
        assert_eq!(rx.try_recv().as_deref(), Some(&b"b"[..]));
        assert_eq!(rx.try_recv().as_deref(), Some(&b"c"[..]));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn a_push_after_the_receiver_left_fails() {
        let (tx, rx) = frame_queue(4);
        drop(rx);
        assert_eq!(tx.push(Bytes::new()), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_push_and_ends_when_the_sender_leaves() {
        let (tx, mut rx) = frame_queue(4);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = rx.recv().await {
                got.push(frame);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.push(Bytes::from_static(b"x")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.push(Bytes::from_static(b"y")).unwrap();
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the receiver saw the sender leave")
            .unwrap();
        assert_eq!(
            got,
            vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")]
        );
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let (tx, mut rx) = frame_queue(10_000);
        for _ in 0..1000 {
            tx.push(Bytes::new()).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.0.allocated(), 0);
    }
}

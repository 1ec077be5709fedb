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
//!
//! It is bounded twice: in frames, and in bytes. A push fails once the bytes
//! already queued reach the byte bound, so a queue holds at most that bound plus
//! one frame (a document's whole state, however large, still reaches a reader that
//! keeps up). The bytes queued are also what the room reads before it encodes a
//! second full-state answer for the same connection (`Peer::backlog_bytes`).

use crate::inbox::{bounded, InboxReceiver, InboxSender, TrySendError};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A queue that grew past this many frames (a burst) gives the memory back once
/// it is drained.
const SHRINK_ABOVE: usize = 256;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds its bound of frames or bytes: the reader is not keeping up.
    Full,
    /// The connection task is gone.
    Closed,
}

/// The document actor's end.
pub struct FrameSender {
    frames: InboxSender<Bytes>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The connection task's end.
pub struct FrameReceiver {
    frames: InboxReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `max_frames` frames, and taking no frame once it holds
/// `max_bytes` bytes.
pub fn frame_queue(max_frames: usize, max_bytes: usize) -> (FrameSender, FrameReceiver) {
    let (tx, rx) = bounded(max_frames, SHRINK_ABOVE);
    let queued = Arc::new(AtomicUsize::new(0));
    let sender = FrameSender {
        frames: tx,
        queued: queued.clone(),
        max_bytes,
    };
    (sender, FrameReceiver { frames: rx, queued })
}

impl FrameSender {
    /// Queue a frame; never waits.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let len = frame.len();
        // One sender: only the receiver changes the count meanwhile, downwards.
        if self.queued.load(Ordering::Acquire) >= self.max_bytes {
            return Err(PushError::Full);
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        self.frames.try_send(frame).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            match e {
                TrySendError::Full(_) => PushError::Full,
                TrySendError::Closed(_) => PushError::Closed,
            }
        })
    }

    /// Bytes queued and not yet taken by the connection.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl FrameReceiver {
    /// Wait for the next frame; `None` once the queue is empty and the sender is
    /// gone (the document let this connection go).
    pub async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.recv().await;
        self.taken(frame)
    }

    /// The next queued frame, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.try_recv();
        self.taken(frame)
    }

    fn taken(&self, frame: Option<Bytes>) -> Option<Bytes> {
        if let Some(f) = &frame {
            self.queued.fetch_sub(f.len(), Ordering::AcqRel);
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_come_out_in_order_and_the_bound_holds() {
        let (tx, mut rx) = frame_queue(2, usize::MAX);
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
        let (tx, rx) = frame_queue(4, usize::MAX);
        drop(rx);
        assert_eq!(tx.push(Bytes::new()), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_push_and_ends_when_the_sender_leaves() {
        let (tx, mut rx) = frame_queue(4, usize::MAX);
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
        let (tx, mut rx) = frame_queue(10_000, usize::MAX);
        for _ in 0..1000 {
            tx.push(Bytes::new()).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.frames.allocated(), 0);
    }

    #[test]
    fn the_byte_bound_holds_with_one_frame_over_it() {
        let (tx, mut rx) = frame_queue(1000, 100);
        // One frame larger than the bound still goes into an empty queue.
        tx.push(Bytes::from(vec![0; 250])).unwrap();
        assert_eq!(tx.queued_bytes(), 250);
        assert_eq!(tx.push(Bytes::from_static(b"x")), Err(PushError::Full));
        assert_eq!(rx.try_recv().map(|f| f.len()), Some(250));
        assert_eq!(tx.queued_bytes(), 0);
        for _ in 0..2 {
            tx.push(Bytes::from(vec![0; 60])).unwrap();
        }
        assert_eq!(tx.queued_bytes(), 120);
        assert_eq!(tx.push(Bytes::new()), Err(PushError::Full), "at the bound");
        rx.try_recv().unwrap();
        tx.push(Bytes::from(vec![0; 60])).unwrap();
        assert_eq!(tx.queued_bytes(), 120);
    }
}

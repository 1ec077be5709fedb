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
//! One sender (the member's [`crate::registry::QueuePeer`]) and one receiver (the
//! connection task). The bound is what makes a slow reader visible: a push into a
//! full queue fails, and the room closes that connection (1013 `slow-consumer`).

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

/// A queue that grew past this many frames (a burst) gives the memory back once
/// it is drained.
const SHRINK_ABOVE: usize = 256;

struct Shared {
    state: Mutex<State>,
    waker: AtomicWaker,
    capacity: usize,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock holds valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds `capacity` frames: the reader is not keeping up.
    Full,
    /// The connection task is gone.
    Closed,
}

/// The document actor's end.
pub struct OutboxSender(Arc<Shared>);

/// The connection task's end.
pub struct OutboxReceiver(Arc<Shared>);

/// A queue holding at most `capacity` frames.
pub fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        waker: AtomicWaker::new(),
        capacity: capacity.max(1),
    });
    (OutboxSender(shared.clone()), OutboxReceiver(shared))
}

impl OutboxSender {
    /// Queue a frame; never waits.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        {
            let mut state = self.0.lock();
            if state.receiver_gone {
                return Err(PushError::Closed);
            }
            if state.frames.len() >= self.0.capacity {
                return Err(PushError::Full);
            }
            let was_empty = state.frames.is_empty();
            state.frames.push_back(frame);
            if !was_empty {
                return Ok(());
            }
        }
        self.0.waker.wake();
        Ok(())
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.waker.wake();
    }
}

impl OutboxReceiver {
    /// Wait for the next frame; `None` once the queue is empty and the sender is
    /// gone (the document let this connection go).
    pub async fn recv(&mut self) -> Option<Bytes> {
        poll_fn(|cx| {
            let mut state = self.0.lock();
            if let Some(frame) = Self::pop(&mut state) {
                return Poll::Ready(Some(frame));
            }
            if state.sender_gone {
                return Poll::Ready(None);
            }
            // Registered under the lock: a push that finds the queue empty after
            // this point wakes the waker registered here.
            self.0.waker.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The next queued frame, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        Self::pop(&mut self.0.lock())
    }

    fn pop(state: &mut State) -> Option<Bytes> {
        let frame = state.frames.pop_front();
        if state.frames.is_empty() && state.frames.capacity() > SHRINK_ABOVE {
            state.frames = VecDeque::new();
        }
        frame
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver_gone = true;
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_come_out_in_order_and_the_bound_holds() {
        let (tx, mut rx) = outbox(2);
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
        let (tx, rx) = outbox(4);
        drop(rx);
        assert_eq!(tx.push(Bytes::new()), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_push_and_ends_when_the_sender_leaves() {
        let (tx, mut rx) = outbox(4);
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
        let (tx, mut rx) = outbox(10_000);
        for _ in 0..1000 {
            tx.push(Bytes::new()).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.0.lock().frames.capacity(), 0);
    }
}

//! A document actor's inbox: connections, the host API and the sweeper queue
//! commands into it, the actor takes them out in order.
//!
//! It replaces a bounded `tokio::sync::mpsc` channel because every loaded
//! document owns one, so its resting size is memory per document: tokio's channel
//! allocates its first block of 32 slots up front (32 commands of 80 bytes) next
//! to a cache-padded channel header, ~3.1 KB per document even when nothing is
//! queued (measured with heaptrack, 10,000 documents × 1 client). Here an empty
//! inbox holds no allocation beyond its header; the queue grows with what is
//! actually waiting and gives a burst's memory back once drained.
//!
//! Many senders, one receiver. The bound is the back-pressure on a flooding
//! client: `send` waits while the inbox holds `capacity` commands, and is woken
//! when the actor takes one from a full inbox. A push is one short lock, plus a
//! wake-up only when the inbox was empty (the actor drains what is queued before
//! it waits again).
//!
//! The same queue, used only through `try_send`, is each connection's outbound
//! queue ([`crate::frames`]).

use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use tokio::sync::Notify;

/// An inbox that grew past this many commands (a burst) gives the memory back
/// once it is drained.
const SHRINK_ABOVE: usize = 64;

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receiver, waiting for a command.
    receiver: AtomicWaker,
    /// Senders waiting for room in a full inbox.
    space: Notify,
    capacity: usize,
    /// A queue whose allocation grew past this is given back once drained.
    shrink_above: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// The receiver closed the inbox or is gone: nothing more is accepted.
    closed: bool,
    senders: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned lock holds valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why [`InboxSender::try_send`] did not queue a command; the command comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The inbox holds `capacity` commands.
    Full(T),
    /// The receiver closed the inbox or is gone.
    Closed(T),
}

/// A sending end; cloning it adds a sender.
pub struct InboxSender<T>(Arc<Shared<T>>);

/// The actor's end.
pub struct InboxReceiver<T>(Arc<Shared<T>>);

/// An inbox holding at most `capacity` commands.
pub fn inbox<T>(capacity: usize) -> (InboxSender<T>, InboxReceiver<T>) {
    bounded(capacity, SHRINK_ABOVE)
}

/// A queue holding at most `capacity` items, whose allocation is given back once
/// drained if it grew past `shrink_above`.
pub(crate) fn bounded<T>(
    capacity: usize,
    shrink_above: usize,
) -> (InboxSender<T>, InboxReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
            senders: 1,
        }),
        receiver: AtomicWaker::new(),
        space: Notify::new(),
        capacity: capacity.max(1),
        shrink_above,
    });
    (InboxSender(shared.clone()), InboxReceiver(shared))
}

impl<T> InboxSender<T> {
    /// Queue `item` if there is room; never waits.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        {
            let mut state = self.0.lock();
            if state.closed {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= self.0.capacity {
                return Err(TrySendError::Full(item));
            }
            let was_empty = state.items.is_empty();
            state.items.push_back(item);
            if !was_empty {
                return Ok(());
            }
        }
        self.0.receiver.wake();
        Ok(())
    }

    /// Queue `item`, waiting while the inbox is full. `Err` gives it back if the
    /// inbox is closed.
    pub async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            let notified = self.0.space.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the attempt: room made after a failed attempt wakes it.
            notified.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => item = back,
            }
            notified.await;
        }
    }

    /// Whether both ends belong to the same inbox.
    pub fn same_inbox(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(self.0.clone())
    }
}

impl<T> Drop for InboxSender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.0.receiver.wake();
        }
    }
}

impl<T> InboxReceiver<T> {
    /// Wait for the next command; `None` once the inbox is empty and either closed
    /// or without senders. Cancel-safe: a command is taken only when returned.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let mut state = self.0.lock();
            if let Some(item) = self.pop(&mut state) {
                return Poll::Ready(Some(item));
            }
            if state.closed || state.senders == 0 {
                return Poll::Ready(None);
            }
            // Registered under the lock: a push that finds the inbox empty after
            // this point wakes the waker registered here.
            self.0.receiver.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The next queued command, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut state = self.0.lock();
        self.pop(&mut state)
    }

    /// Refuse further commands (senders get them back) while what is queued can
    /// still be taken out.
    pub fn close(&mut self) {
        self.0.lock().closed = true;
        self.0.space.notify_waiters();
    }

    /// Close this inbox and, in the same step, move the queued items `keep` picks
    /// into the inbox `next` gives (asked for only if `keep` picks any), in order
    /// and past its bound (they were admitted once already). A sender refused by
    /// this inbox from then on finds the next one already holding those items, ahead
    /// of anything it sends there: the handover of a document from an actor that
    /// unloads to its successor, where a connection's join and its first messages
    /// must arrive in the order it sent them. The rest is returned.
    pub fn close_into(
        &mut self,
        next: impl FnOnce() -> InboxSender<T>,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Vec<T> {
        let mut dropped = Vec::new();
        {
            let mut state = self.0.lock();
            state.closed = true;
            let mut kept = VecDeque::new();
            for item in state.items.drain(..) {
                if keep(&item) {
                    kept.push_back(item);
                } else {
                    dropped.push(item);
                }
            }
            if !kept.is_empty() {
                let next = next();
                let mut moved = next.0.lock();
                if moved.closed {
                    dropped.extend(kept);
                } else {
                    let was_empty = moved.items.is_empty();
                    moved.items.extend(kept);
                    drop(moved);
                    if was_empty {
                        next.0.receiver.wake();
                    }
                }
            }
        }
        self.0.space.notify_waiters();
        dropped
    }

    /// How many items the queue's allocation holds (tests of the shrinking).
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.0.lock().items.capacity()
    }

    fn pop(&self, state: &mut State<T>) -> Option<T> {
        let was_full = state.items.len() >= self.0.capacity;
        let item = state.items.pop_front()?;
        if state.items.is_empty() && state.items.capacity() > self.0.shrink_above {
            state.items = VecDeque::new();
        }
        if was_full {
            // Rare (a flooding sender): everyone waiting tries again.
            self.0.space.notify_waiters();
        }
        Some(item)
    }
}

impl<T> Drop for InboxReceiver<T> {
    fn drop(&mut self) {
        let left = {
            let mut state = self.0.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        self.0.space.notify_waiters();
        // Dropped outside the lock: a command's drop may answer a waiting caller.
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn close_into_moves_what_it_keeps_ahead_of_later_sends_and_returns_the_rest() {
        let (old_tx, mut old_rx) = inbox(2);
        let (next_tx, mut next_rx) = inbox(1);
        next_tx.try_send(0).unwrap();
        old_tx.try_send(1).unwrap();
        old_tx.try_send(2).unwrap();
        let mut asked = 0;
        let dropped = old_rx.close_into(
            || {
                asked += 1;
                next_tx.clone()
            },
            |n| n % 2 == 1,
        );
        assert_eq!((dropped, asked), (vec![2], 1));
        // A sender the old inbox refuses goes to the next one, behind what moved.
        assert_eq!(old_tx.try_send(3), Err(TrySendError::Closed(3)));
        assert_eq!(next_rx.recv().await, Some(0));
        assert_eq!(next_rx.recv().await, Some(1), "moved past the bound of 1");
        // Nothing kept: the next inbox is never asked for.
        let (_tx, mut rx) = inbox::<u32>(2);
        let dropped = rx.close_into(|| unreachable!("nothing to hand over"), |_| true);
        assert!(dropped.is_empty());
    }

    #[tokio::test]
    async fn commands_come_out_in_order_and_recv_ends_with_the_senders() {
        let (tx, mut rx) = inbox(8);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.send(2).await.unwrap();
        tx.try_send(3).unwrap();
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), None);
        drop(tx);
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one sender is left");
        drop(tx2);
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_full_inbox_refuses_try_send_and_holds_send_until_there_is_room() {
        let (tx, mut rx) = inbox(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.send(3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "the inbox is full");
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(blocked.await.unwrap(), Ok(()));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn the_receiver_wakes_on_a_push_into_an_empty_inbox() {
        let (tx, mut rx) = inbox(4);
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(7).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn close_refuses_new_commands_keeps_queued_ones_and_frees_waiting_senders() {
        let (tx, mut rx) = inbox(1);
        tx.try_send(1).unwrap();
        let tx2 = tx.clone();
        let blocked = tokio::spawn(async move { tx2.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        rx.close();
        assert_eq!(blocked.await.unwrap(), Err(2), "given back, not lost");
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_dropped_receiver_closes_the_inbox() {
        let (tx, rx) = inbox::<u8>(4);
        let other = tx.clone();
        assert!(tx.same_inbox(&other));
        assert!(!tx.same_inbox(&inbox::<u8>(1).0));
        drop(rx);
        assert_eq!(tx.send(1).await, Err(1));
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let (tx, mut rx) = inbox(1024);
        for i in 0..500 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.allocated(), 0);
    }

    /// Ping-pong across threads: every push must wake the receiver, or this hangs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_wakeup_is_lost_between_threads() {
        let (tx, mut rx) = inbox::<u32>(4);
        let (ack_tx, mut ack_rx) = inbox::<u32>(4);
        let echo = tokio::spawn(async move {
            while let Some(v) = rx.recv().await {
                if ack_tx.send(v).await.is_err() {
                    break;
                }
            }
        });
        let run = async {
            for i in 0..50_000u32 {
                tx.send(i).await.unwrap();
                assert_eq!(ack_rx.recv().await, Some(i));
            }
        };
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("a wake-up was lost");
        drop(tx);
        echo.await.unwrap();
    }

    /// Many senders against a small bound: nothing lost, nothing stuck.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_senders_are_all_released() {
        let (tx, mut rx) = inbox::<u64>(2);
        let mut senders = Vec::new();
        for s in 0..8u64 {
            let tx = tx.clone();
            senders.push(tokio::spawn(async move {
                for i in 0..5_000u64 {
                    tx.send(s * 1_000_000 + i).await.unwrap();
                }
            }));
        }
        drop(tx);
        let mut last = [None::<u64>; 8];
        let mut n = 0;
        let all = async {
            while let Some(v) = rx.recv().await {
                let s = (v / 1_000_000) as usize;
                assert!(last[s].is_none_or(|p| p < v), "one sender's order kept");
                last[s] = Some(v);
                n += 1;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("a sender stayed stuck");
        assert_eq!(n, 40_000);
        for s in senders {
            s.await.unwrap();
        }
    }
}

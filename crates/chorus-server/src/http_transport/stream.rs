//! One stream's (or long-poll's) progress through its session's events: what a
//! `GET …/{session}` answers with, chunk by chunk (`events` has the format).

use super::events;
use super::session::{HttpSession, Take};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

/// How long a stream stays open after shutdown began, for the close event.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// One stream's (or poll's) progress through its session's events.
pub(crate) struct StreamReader {
    pub(crate) session: Arc<HttpSession>,
    pub(crate) generation: u64,
    /// The last event id written to this response.
    pub(crate) cursor: u64,
    pub(crate) wake: watch::Receiver<u64>,
    pub(crate) heartbeat: Interval,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Long-polling: when to answer empty.
    pub(crate) poll_until: Option<Instant>,
    pub(crate) shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// After shutdown began: when to end the stream even without its close.
    pub(crate) stop_at: Option<Pin<Box<Sleep>>>,
    /// The `ready` event, before anything else.
    pub(crate) greeting: Option<Bytes>,
    pub(crate) done: bool,
}

impl StreamReader {
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(greeting) = self.greeting.take() {
            return Some(greeting);
        }
        loop {
            self.wake.borrow_and_update();
            match self.session.take(self.generation, self.cursor) {
                Take::Frames(frames, closing) => {
                    if let Some((last, _)) = frames.last() {
                        self.cursor = *last;
                    }
                    self.metrics.http.sent(frames.len());
                    let batch = events::frames(&frames);
                    // A poll answers one batch; the close rides with the last.
                    self.done = self.poll_until.is_some() || closing.is_some();
                    return Some(match closing {
                        None => batch,
                        Some(closing) => [batch, events::close(closing)].concat().into(),
                    });
                }
                Take::Closed(closing) => {
                    self.done = true;
                    return Some(events::close(closing));
                }
                Take::Over => return None,
                Take::Nothing => {}
            }
            let StreamReader {
                wake,
                heartbeat,
                poll_until,
                shutdown,
                stop_at,
                ..
            } = self;
            let stopping = stop_at.is_some();
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = heartbeat.tick(), if poll_until.is_none() => {
                    return Some(Bytes::from_static(events::HEARTBEAT));
                }
                () = tokio::time::sleep_until(poll_until.unwrap_or_else(Instant::now)), if poll_until.is_some() => {
                    return None;
                }
                () = shutdown, if !stopping => {
                    *stop_at = Some(Box::pin(tokio::time::sleep(SHUTDOWN_WAIT)));
                }
                () = async { if let Some(stop) = stop_at.as_mut() { stop.await } }, if stopping => {
                    return None;
                }
            }
        }
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.session.detach();
    }
}

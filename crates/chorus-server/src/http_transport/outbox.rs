//! What the server has written to one HTTP session and the client may not have
//! read yet: the frames in order, each with its event id, kept until the client
//! acknowledges them (or, once a stream took them, until the resume window is
//! full), so a stream that drops resumes where the client stopped, with nothing
//! lost or repeated.
//!
//! A plain data structure: no locks, no time, no I/O (the session holds it under
//! its lock), so every rule here is tested directly.

use bytes::Bytes;
use std::collections::VecDeque;

/// Frames a stream wrote that are kept for a resume, at most (and
/// [`RESUME_BYTES`]): what a cut stream can have lost is what was in flight, a
/// few seconds' worth; a client further behind resumes into a gap (410) and
/// starts a new session, which syncs it from its state vector. Without this
/// bound an idle session kept every frame it was ever sent until its client
/// acknowledged it (38 KB a session with 500 on one document, measured).
pub(crate) const RESUME_FRAMES: usize = 256;
/// Bytes of written frames kept for a resume, at most.
pub(crate) const RESUME_BYTES: usize = 256 << 10;

/// Why a frame could not be kept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

/// Why a resume point cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResumeError {
    /// Frames after it were dropped (the resume window was full): the client
    /// has to start a new session, which syncs it from scratch.
    Gap,
    /// The client claims to have seen an event the server never sent.
    Future,
}

/// The frames of one session after the last one its client acknowledged.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// `(event id, frame)`, ids consecutive and ascending.
    frames: VecDeque<(u64, Bytes)>,
    /// The id the next frame gets (the first is 1; 0 means "nothing seen").
    next_id: u64,
    /// Bytes of `frames`.
    bytes: usize,
    /// The highest id a stream has written out (frames up to it may be dropped
    /// for room, at the cost of their resume).
    written: u64,
    /// The highest id the client said it has.
    acked: u64,
    /// Bytes of the frames up to `written`.
    written_bytes: usize,
    /// Bytes the outbox may hold.
    cap: usize,
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Outbox {
        Outbox {
            frames: VecDeque::new(),
            next_id: 1,
            bytes: 0,
            written: 0,
            acked: 0,
            written_bytes: 0,
            cap,
        }
    }

    /// The id of the last frame pushed (0 before the first).
    pub(crate) fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Keep `frame` as the next event. Past the cap, frames a stream already
    /// wrote go first (oldest first); if the frames no stream has taken yet
    /// still exceed it, the client is not keeping up.
    pub(crate) fn push(&mut self, frame: Bytes) -> Result<u64, Overflow> {
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += frame.len();
        self.frames.push_back((id, frame));
        while self.bytes > self.cap {
            match self.frames.front() {
                Some((front, _)) if *front <= self.written => self.pop_front(),
                _ => return Err(Overflow),
            }
        }
        Ok(id)
    }

    /// The client has every frame up to `id`: they are dropped.
    pub(crate) fn ack(&mut self, id: u64) {
        let id = id.min(self.last_id());
        self.acked = self.acked.max(id);
        self.wrote(self.acked);
        while self.frames.front().is_some_and(|(front, _)| *front <= id) {
            self.pop_front();
        }
        self.shrink();
    }

    /// Frames after `after`, at most `max_bytes` of them (always at least one
    /// when there is one), for a stream resuming or going on from `after`.
    pub(crate) fn after(
        &self,
        after: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, ResumeError> {
        if after > self.last_id() {
            return Err(ResumeError::Future);
        }
        let first_kept = self.frames.front().map_or(self.next_id, |(id, _)| *id);
        if after + 1 < first_kept {
            return Err(ResumeError::Gap);
        }
        let skip = (after + 1 - first_kept) as usize;
        let mut taken = 0;
        let mut out = Vec::new();
        for (id, frame) in self.frames.iter().skip(skip) {
            if !out.is_empty() && taken + frame.len() > max_bytes {
                break;
            }
            taken += frame.len();
            out.push((*id, frame.clone()));
        }
        Ok(out)
    }

    /// A stream wrote every frame up to `id`; past the resume window, the oldest
    /// written frames go.
    pub(crate) fn wrote(&mut self, id: u64) {
        let id = id.min(self.last_id());
        if id > self.written {
            let first = self.frames.front().map_or(self.next_id, |(f, _)| *f);
            let newly = self
                .frames
                .iter()
                .skip(self.written.saturating_add(1).saturating_sub(first) as usize)
                .take_while(|(f, _)| *f <= id);
            self.written_bytes += newly.map(|(_, frame)| frame.len()).sum::<usize>();
            self.written = id;
        }
        while self.written_kept() > RESUME_FRAMES || self.written_bytes > RESUME_BYTES {
            self.pop_front();
        }
        self.shrink();
    }

    /// Frames kept that a stream already wrote.
    fn written_kept(&self) -> usize {
        let first = self.frames.front().map_or(self.next_id, |(f, _)| *f);
        (self.written + 1).saturating_sub(first) as usize
    }

    /// Give back the queue's room after a burst (a `VecDeque` keeps its largest size).
    fn shrink(&mut self) {
        if self.frames.capacity() > 64 && self.frames.len() < self.frames.capacity() / 4 {
            self.frames.shrink_to(self.frames.len() * 2);
        }
    }

    /// Bytes held (for the session's memory figure).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn pop_front(&mut self) {
        if let Some((id, frame)) = self.frames.pop_front() {
            self.bytes -= frame.len();
            if id <= self.written {
                self.written_bytes -= frame.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    fn ids(frames: &[(u64, Bytes)]) -> Vec<u64> {
        frames.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn ids_start_at_one_and_a_resume_gets_exactly_what_follows() {
        let mut out = Outbox::new(1 << 20);
        for n in 0..5 {
            out.push(frame(n, 10)).unwrap();
        }
        assert_eq!(ids(&out.after(0, usize::MAX).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(ids(&out.after(3, usize::MAX).unwrap()), [4, 5]);
        assert!(out.after(5, usize::MAX).unwrap().is_empty());
        assert_eq!(out.after(6, usize::MAX), Err(ResumeError::Future));
        // The bytes are the frames pushed, in order.
        let got = out.after(1, usize::MAX).unwrap();
        assert_eq!(got[0].1, frame(1, 10));
        assert_eq!(got[3].1, frame(4, 10));
    }

    #[test]
    fn acknowledged_frames_go_and_cannot_be_asked_for_again() {
        let mut out = Outbox::new(1 << 20);
        for n in 0..4 {
            out.push(frame(n, 10)).unwrap();
        }
        out.ack(2);
        assert_eq!(out.bytes(), 20);
        assert_eq!(ids(&out.after(2, usize::MAX).unwrap()), [3, 4]);
        assert_eq!(out.after(1, usize::MAX), Err(ResumeError::Gap));
        // An acknowledgement past the end is taken as "everything".
        out.ack(99);
        assert_eq!(out.bytes(), 0);
        assert!(out.after(4, usize::MAX).unwrap().is_empty());
        out.push(frame(9, 1)).unwrap();
        assert_eq!(ids(&out.after(4, usize::MAX).unwrap()), [5]);
    }

    #[test]
    fn past_the_cap_written_frames_make_room_and_unwritten_ones_overflow() {
        let mut out = Outbox::new(100);
        for n in 0..10 {
            out.push(frame(n, 10)).unwrap();
        }
        // Nothing written yet: the eleventh frame is one too many.
        assert_eq!(out.push(frame(10, 10)), Err(Overflow));

        let mut out = Outbox::new(100);
        for n in 0..10 {
            out.push(frame(n, 10)).unwrap();
        }
        out.wrote(4);
        // Room comes from the written frames, oldest first...
        out.push(frame(10, 10)).unwrap();
        out.push(frame(11, 10)).unwrap();
        assert_eq!(out.after(1, usize::MAX), Err(ResumeError::Gap));
        assert_eq!(ids(&out.after(2, usize::MAX).unwrap())[0], 3);
        out.push(frame(12, 10)).unwrap();
        out.push(frame(13, 10)).unwrap();
        // ...and never from what no stream has taken.
        assert_eq!(out.push(frame(14, 10)), Err(Overflow));
    }

    #[test]
    fn written_frames_are_kept_for_a_resume_only_within_the_window() {
        let mut out = Outbox::new(1 << 30);
        let total = RESUME_FRAMES as u64 + 100;
        for n in 0..total {
            out.push(frame(n as u8, 10)).unwrap();
        }
        // Nothing written: everything is kept (the client has seen none of it).
        assert_eq!(out.after(0, usize::MAX).unwrap().len() as u64, total);
        out.wrote(total);
        // Written: only the last RESUME_FRAMES stay for a resume.
        assert_eq!(
            out.after(total - RESUME_FRAMES as u64, usize::MAX)
                .unwrap()
                .len(),
            RESUME_FRAMES
        );
        assert_eq!(
            out.after(total - RESUME_FRAMES as u64 - 1, usize::MAX),
            Err(ResumeError::Gap)
        );
        assert_eq!(out.bytes(), RESUME_FRAMES * 10);
        // And by bytes: a few large written frames.
        let mut out = Outbox::new(1 << 30);
        for n in 0..4 {
            out.push(frame(n, RESUME_BYTES / 3)).unwrap();
        }
        out.wrote(4);
        assert_eq!(out.after(1, usize::MAX).unwrap().len(), 3);
        assert_eq!(out.after(0, usize::MAX), Err(ResumeError::Gap));
        // A later push keeps the window too.
        out.push(frame(9, RESUME_BYTES / 3)).unwrap();
        out.wrote(5);
        assert_eq!(out.after(1, usize::MAX), Err(ResumeError::Gap));
        assert_eq!(out.after(2, usize::MAX).unwrap().len(), 3);
    }

    #[test]
    fn a_batch_is_bounded_in_bytes_but_never_empty() {
        let mut out = Outbox::new(1 << 20);
        out.push(frame(0, 500)).unwrap();
        out.push(frame(1, 500)).unwrap();
        out.push(frame(2, 500)).unwrap();
        assert_eq!(ids(&out.after(0, 1000).unwrap()), [1, 2]);
        assert_eq!(ids(&out.after(0, 10).unwrap()), [1]);
    }
}

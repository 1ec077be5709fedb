//! The app's session policy on one document ([`SessionPolicy`]): how many sessions may
//! edit it at once, and how long a session stays without input, or at all.
//!
//! Input is what a person does: a change to the document, or a change of their
//! presence (a cursor that moved). An awareness renewal that repeats the same
//! states, a keepalive or a sync step 1 is not. The timers are looked at every
//! [`SessionPolicy::check_every`] while the document has members, never per
//! message: a warning or a close comes at most that late.
//!
//! [`SessionPolicy`]: crate::SessionPolicy

use super::state::{Capped, SessionClock};
use super::DocActor;
use crate::env::OverMaxEditors;
use crate::types::Disconnect;
use chorus_core::{ConnId, Session};
use chorus_protocol::{decode_awareness, ChorusMessage, Message, SyncMessage};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tokio::time::Instant;

/// Presence entries hashed per awareness message at most (the room refuses more).
const MAX_PRESENCE_ENTRIES: usize = 64;

impl DocActor {
    /// A session asking to edit a document that has the app's `max_editors`
    /// joins view-only or is refused, as the app says.
    pub(super) fn cap_editors(&self, session: Arc<Session>) -> Capped {
        let policy = self.env.sessions_for(&self.key.app);
        if policy.max_editors == 0
            || !session.can_edit()
            || self.session.editors.len() < policy.max_editors
        {
            return Capped::AsIs(session);
        }
        match policy.over_max_editors {
            OverMaxEditors::Refuse => Capped::Refused,
            OverMaxEditors::View => Capped::View(Arc::new(session.view_only())),
        }
    }

    /// A member joined: its timers start.
    pub(super) fn clock_started(&mut self, conn: ConnId) {
        let policy = self.env.sessions_for(&self.key.app);
        let Some(every) = policy.check_every() else {
            return;
        };
        let now = Instant::now();
        self.members.clocks.insert(
            conn,
            SessionClock {
                joined: now,
                last_input: now,
                warned: false,
                presence: 0,
            },
        );
        if self.session_check_at.is_none() {
            self.session_check_at = Some(now + every);
        }
    }

    /// `msg` arrived from `conn`: input restarts its idle time.
    pub(super) fn note_input(&mut self, conn: ConnId, msg: &Message) {
        let Some(clock) = self.members.clocks.get_mut(&conn) else {
            return;
        };
        let input = match msg {
            // An empty update (`00 00`) changes nothing.
            Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) => u.len() > 2,
            Message::Awareness(body) => {
                let Ok(entries) = decode_awareness(body, MAX_PRESENCE_ENTRIES) else {
                    return;
                };
                let mut h = std::collections::hash_map::DefaultHasher::new();
                for e in &entries {
                    e.client_id.hash(&mut h);
                    e.state.hash(&mut h);
                }
                let presence = h.finish();
                let changed = presence != clock.presence;
                clock.presence = presence;
                changed
            }
            _ => false,
        };
        if input {
            clock.last_input = Instant::now();
            clock.warned = false;
        }
    }

    /// Warn the sessions idle for `idle_warning`, close those idle for `idle_close`
    /// or alive for `max_lifetime`; look again later while anyone is here.
    pub(super) fn check_sessions(&mut self) {
        let policy = *self.env.sessions_for(&self.key.app);
        let now = Instant::now();
        let mut closing = Vec::new();
        let mut warning = Vec::new();
        for (conn, clock) in &mut self.members.clocks {
            let idle = now.saturating_duration_since(clock.last_input);
            if policy
                .max_lifetime
                .is_some_and(|max| now.saturating_duration_since(clock.joined) >= max)
            {
                closing.push((*conn, Disconnect::Expired));
            } else if policy.idle_close.is_some_and(|max| idle >= max) {
                closing.push((*conn, Disconnect::Idle));
            } else if !clock.warned && policy.idle_warning.is_some_and(|warn| idle >= warn) {
                clock.warned = true;
                let left = policy
                    .idle_close
                    .map_or(0, |close| close.saturating_sub(idle).as_secs());
                warning.push((*conn, left));
            }
        }
        for (conn, closes_in_secs) in warning {
            self.room
                .notify(conn, ChorusMessage::IdleWarning { closes_in_secs });
        }
        for (conn, reason) in closing {
            if let Some(control) = self.members.controls.remove(&conn) {
                control.close(reason);
            }
            self.member_left(conn);
        }
        self.session_check_at = match policy.check_every() {
            Some(every) if !self.members.clocks.is_empty() => Some(now + every),
            _ => None,
        };
    }
}

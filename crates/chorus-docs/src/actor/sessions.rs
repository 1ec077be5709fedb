//! Who is connected to a document, and what the host may do about it: list the
//! sessions, make one view-only, end one, close them all (app disabled); and the
//! exclusive mode of apps with `collaboration = false`, where one edit session holds
//! the draft and later ones wait in view mode until the hold passes to them.
//!
//! A downgrade or an ended session holds for that user on this document until the
//! token they had expires, whatever token they come back with: it is kept in the
//! document's metadata ([`Revocation`]), so it survives a restart and, in cluster
//! mode, a change of owner (every join of a document is judged by its owner).

use super::state::Admission;
use super::DocActor;
use crate::command::SessionInfo;
use crate::env::now_ms;
use crate::types::Disconnect;
use chorus_auth::Mode;
use chorus_core::{ConnId, Session};
use chorus_protocol::ChorusMessage;
use chorus_store::Revocation;
use std::sync::Arc;

/// Revocations kept per document at most; past it the ones that end soonest go.
const MAX_REVOCATIONS: usize = 1024;

impl DocActor {
    /// Exclusive mode: a session asking for edit while another holds the draft joins
    /// view-only and waits. Returns the session to join with.
    pub(super) fn admit(&mut self, conn: ConnId, session: Arc<Session>) -> Arc<Session> {
        self.members.joined_at.insert(conn, now_ms());
        if !self.exclusive() || !session.can_edit() {
            return session;
        }
        if self.hold.holder.is_none() {
            self.hold.holder = Some(conn);
            return session;
        }
        self.hold.waiting.push(conn);
        Arc::new(session.view_only())
    }

    /// After `conn` joined: tell a waiting session why it is view-only, and who holds.
    pub(super) fn announce_hold(&mut self, conn: ConnId) {
        if !self.hold.waiting.contains(&conn) {
            return;
        }
        self.room.notify(
            conn,
            ChorusMessage::ReadOnly {
                reason: "held".into(),
            },
        );
        if let Some(msg) = self.holder_message() {
            self.room.notify(conn, msg);
        }
    }

    /// A member left (or was closed): forget it; if it held the draft, pass the hold on.
    pub(super) fn member_gone(&mut self, conn: ConnId) {
        self.members.joined_at.remove(&conn);
        self.hold.waiting.retain(|c| *c != conn);
        if self.hold.holder == Some(conn) {
            self.hold.holder = None;
            self.pass_hold();
        }
    }

    /// Exclusive mode: the longest-waiting session still here gets the hold.
    fn pass_hold(&mut self) {
        while !self.hold.waiting.is_empty() {
            let next = self.hold.waiting.remove(0);
            if self.room.set_mode(next, Mode::Edit, "") {
                self.hold.holder = Some(next);
                if let Some(session) = self.session_of(next) {
                    self.editor_joined(next, &session);
                }
                if let Some(msg) = self.holder_message() {
                    for c in self.hold.waiting.clone() {
                        self.room.notify(c, msg.clone());
                    }
                }
                return;
            }
        }
    }

    fn holder_message(&self) -> Option<ChorusMessage> {
        let session = self.session_of(self.hold.holder?)?;
        Some(ChorusMessage::Holder {
            user_id: session.user_id.clone(),
            name: session.name.clone(),
        })
    }

    fn session_of(&self, conn: ConnId) -> Option<Arc<Session>> {
        self.room
            .sessions()
            .find(|(c, _)| *c == conn)
            .map(|(_, s)| s.clone())
    }

    fn exclusive(&self) -> bool {
        self.env.exclusive_apps.contains(&*self.key.app)
    }

    /// Every connected session.
    pub(super) fn sessions(&self) -> Vec<SessionInfo> {
        let mut out: Vec<SessionInfo> = self
            .room
            .sessions()
            .map(|(conn, s)| SessionInfo {
                id: conn.0,
                user: s.user_id.clone(),
                name: s.name.clone(),
                mode: s.mode,
                waiting: self.hold.waiting.contains(&conn),
                since_ms: self.members.joined_at.get(&conn).copied().unwrap_or(0),
            })
            .collect();
        out.sort_by_key(|s| (s.since_ms, s.id));
        out
    }

    /// What the host decided about `session`'s user, if anything still holds.
    pub(super) fn judge_join(&mut self, session: Arc<Session>) -> Admission {
        let now = now_ms() / 1000;
        let revoked = &mut self.writes.meta.revoked;
        revoked.retain(|r| r.until > now);
        match revoked.iter().find(|r| r.user == session.user_id) {
            None => Admission::AsIs(session),
            Some(r) if r.ended => Admission::Ended,
            Some(_) if !session.can_edit() => Admission::AsIs(session),
            Some(_) => Admission::Downgraded(Arc::new(session.view_only())),
        }
    }

    /// Keep the host's downgrade (or end) of `conn`'s user until its token expires,
    /// and write it with the document's next write.
    fn revoke(&mut self, conn: ConnId, ended: bool) {
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let now = now_ms() / 1000;
        let revoked = &mut self.writes.meta.revoked;
        revoked.retain(|r| r.until > now);
        match revoked.iter_mut().find(|r| r.user == session.user_id) {
            Some(r) => {
                r.ended |= ended;
                r.until = r.until.max(session.expires_at);
            }
            None => revoked.push(Revocation {
                user: session.user_id.clone(),
                ended,
                until: session.expires_at,
            }),
        }
        if revoked.len() > MAX_REVOCATIONS {
            revoked.sort_by_key(|r| std::cmp::Reverse(r.until));
            revoked.truncate(MAX_REVOCATIONS);
        }
        self.writes.meta_changed = true;
    }

    /// Make a session view-only, and its user's later ones until its token
    /// expires. False if it is not connected.
    pub(super) fn downgrade(&mut self, id: u64) -> bool {
        let conn = ConnId(id);
        self.revoke(conn, false);
        if !self.room.set_mode(conn, Mode::View, "downgraded") {
            return false;
        }
        self.hold.waiting.retain(|c| *c != conn);
        self.editor_left(conn);
        if self.hold.holder == Some(conn) {
            self.hold.holder = None;
            self.pass_hold();
        }
        true
    }

    /// End a session (its socket closes with 4403 `session-ended`), and refuse its
    /// user until its token expires. False if it is not connected.
    pub(super) fn end_session(&mut self, id: u64) -> bool {
        let conn = ConnId(id);
        self.revoke(conn, true);
        let Some(control) = self.members.controls.remove(&conn) else {
            return false;
        };
        control.close(Disconnect::SessionEnded);
        self.member_left(conn);
        true
    }

    /// Close every session with `reason` (the app was disabled).
    pub(super) fn close_all(&mut self, reason: Disconnect) {
        let conns: Vec<ConnId> = self.members.controls.keys().copied().collect();
        for conn in conns {
            if let Some(control) = self.members.controls.remove(&conn) {
                control.close(reason.clone());
            }
            self.member_left(conn);
        }
    }
}

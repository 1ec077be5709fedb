use super::checks::count_fits;
use super::*;
use crate::import::BodyNode;
use crate::{ExternalError, LoadError, RoomError, Session, ROOT_TITLE};
use bytes::Bytes;
use chorus_auth::Mode;
use chorus_protocol::{
    decode_awareness, encode_awareness, ChorusMessage, Message, SyncMessage, MSG_AUTH,
    MSG_AWARENESS,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update, XmlFragment};

/// A peer that records frames, and can be told to refuse them.
#[derive(Clone, Default)]
struct Recorder {
    frames: Rc<RefCell<Vec<Bytes>>>,
    refuse: Rc<RefCell<bool>>,
}

impl Peer for Recorder {
    fn send(&self, frame: Bytes) -> bool {
        if *self.refuse.borrow() {
            return false;
        }
        self.frames.borrow_mut().push(frame);
        true
    }

    /// What was sent and not taken yet is the queue.
    fn backlog_bytes(&self) -> usize {
        self.frames.borrow().iter().map(Bytes::len).sum()
    }
}

impl Recorder {
    fn take(&self) -> Vec<Message> {
        self.frames
            .borrow_mut()
            .drain(..)
            .map(|f| Message::decode(&f).unwrap())
            .collect()
    }
}

fn session(user: &str, mode: Mode) -> Arc<Session> {
    Arc::new(Session {
        user_id: user.into(),
        name: format!("{user} (verified)"),
        color: "#123456".into(),
        avatar: None,
        mode,
        extensions: true,
        expires_at: u64::MAX,
        credential: Default::default(),
    })
}

fn room() -> Room<Recorder> {
    Room::new(RoomLimits::default())
}

/// A client-side document that produces real updates.
fn client_edit(client_id: u64, text: &str) -> (Doc, Vec<u8>) {
    let doc = Doc::with_client_id(client_id);
    let t = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, text);
    let update = txn.encode_update_v1();
    drop(txn);
    (doc, update)
}

fn update_msg(u: &[u8]) -> Message {
    Message::Sync(SyncMessage::Update(Bytes::copy_from_slice(u)))
}

fn title_of(room: &Room<Recorder>) -> String {
    let t = room.doc().get_or_insert_text("title");
    t.get_string(&room.doc().transact())
}

#[test]
fn join_sends_step1() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    let msgs = a.take();
    assert!(matches!(msgs[0], Message::Sync(SyncMessage::Step1(_))));
}

#[test]
fn edits_reach_other_members_but_not_the_sender() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    a.take();
    b.take();
    let (_, u) = client_edit(11, "hello");
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    assert_eq!(title_of(&r), "hello");
    assert!(
        a.take().is_empty(),
        "sender must not get its own update back"
    );
    let got = b.take();
    let [Message::Sync(SyncMessage::Update(bytes))] = got.as_slice() else {
        panic!("expected one update, got {got:?}")
    };
    let doc_b = Doc::with_client_id(22);
    let t = doc_b.get_or_insert_text("title");
    doc_b
        .transact_mut()
        .apply_update(Update::decode_v1(bytes).unwrap())
        .unwrap();
    assert_eq!(t.get_string(&doc_b.transact()), "hello");
}

/// The frames `rec` was sent (not decoded), taken.
fn raw_frames(rec: &Recorder) -> Vec<Bytes> {
    rec.frames.borrow_mut().drain(..).collect()
}

/// A fresh client document after applying the sync frames `frames` (step 2 and
/// updates), an oracle apart from the room: what a joiner ends up with.
fn applied(frames: &[Bytes]) -> String {
    let doc = Doc::new();
    let title = doc.get_or_insert_text("title");
    for frame in frames {
        match Message::decode(frame).unwrap() {
            Message::Sync(SyncMessage::Step2(u) | SyncMessage::Update(u)) => doc
                .transact_mut()
                .apply_update(Update::decode_v1(&u).unwrap())
                .unwrap(),
            other => panic!("not a sync frame: {other:?}"),
        }
    }
    let txn = doc.transact();
    title.get_string(&txn)
}

#[test]
fn joiners_that_have_nothing_share_one_encoding_of_a_large_document() {
    let mut r = room();
    let writer = Recorder::default();
    r.join(ConnId(1), session("w", Mode::Edit), writer.clone());
    let big = "lorem ipsum ".repeat(10_000);
    let (client, u) = client_edit(11, &big);
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    let empty = || {
        let empty_sv = StateVector::default().encode_v1();
        Message::Sync(SyncMessage::Step1(Bytes::from(empty_sv)))
    };
    let join = |r: &mut Room<Recorder>, id: u64| {
        let rec = Recorder::default();
        r.join(ConnId(id), session("j", Mode::View), rec.clone());
        raw_frames(&rec);
        r.receive(ConnId(id), empty()).unwrap();
        raw_frames(&rec)
    };
    // Three joiners: one encoding, the same bytes for each.
    let answers: Vec<Vec<Bytes>> = (2..5).map(|id| join(&mut r, id)).collect();
    for a in &answers {
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].as_ptr(), answers[0][0].as_ptr(), "one shared frame");
        assert_eq!(applied(a), big);
    }
    // An edit later: the shared frame and what changed since, which together are
    // the document.
    let more = {
        let t = client.get_or_insert_text("title");
        let mut txn = client.transact_mut();
        t.insert(&mut txn, 0, "new ");
        txn.encode_update_v1()
    };
    r.receive(ConnId(1), update_msg(&more)).unwrap();
    let later = join(&mut r, 5);
    assert_eq!(later.len(), 2, "step 2 and an update");
    assert_eq!(later[0].as_ptr(), answers[0][0].as_ptr());
    assert_eq!(applied(&later), format!("new {big}"));
    assert_eq!(applied(&later), title_of(&r));
    // A small document is encoded for each joiner (nothing kept).
    let mut small = room();
    small.join(ConnId(1), session("w", Mode::Edit), Recorder::default());
    let (_, u) = client_edit(12, "short");
    small.receive(ConnId(1), update_msg(&u)).unwrap();
    let (x, y) = (join(&mut small, 2), join(&mut small, 3));
    assert_ne!(x[0].as_ptr(), y[0].as_ptr());
    assert_eq!(applied(&x), "short");
}

#[test]
fn a_step1_asked_while_answers_are_queued_is_answered_from_the_shared_state() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    let big = "lorem ipsum ".repeat(10_000);
    let (_, u) = client_edit(11, &big);
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    raw_frames(&a);
    let step1 = |sv: &StateVector| Message::Sync(SyncMessage::Step1(Bytes::from(sv.encode_v1())));
    // What the member already holds: a step 1 that needs nothing.
    let holds = r.doc().transact().state_vector();
    r.receive(ConnId(1), step1(&holds)).unwrap();
    let first = raw_frames(&a);
    assert!(
        first[0].len() < 100,
        "the first is answered with what it lacks"
    );
    // A thousand more at once, the answers piling up unread: the first (its
    // queue was empty) is what it lacks, every later one the same bytes (one
    // encoding), whatever state vector each gives.
    for i in 0..1000 {
        let sv = if i % 2 == 0 {
            holds.clone()
        } else {
            StateVector::default()
        };
        r.receive(ConnId(1), step1(&sv)).unwrap();
    }
    let piled = raw_frames(&a);
    assert_eq!(piled.len(), 1000);
    assert!(piled[0].len() < 100);
    let shared = &piled[1..];
    assert!(
        shared.iter().all(|f| f.as_ptr() == shared[0].as_ptr()),
        "one shared frame"
    );
    assert_eq!(applied(&shared[..1]), big);
    // Its queue empty again, a step 1 is answered with what it lacks.
    r.receive(ConnId(1), step1(&holds)).unwrap();
    assert!(raw_frames(&a)[0].len() < 100);
}

#[test]
fn step1_is_answered_with_the_missing_state() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    let (_, u) = client_edit(11, "abc");
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    a.take();
    let empty_sv = StateVector::default().encode_v1();
    r.receive(
        ConnId(1),
        Message::Sync(SyncMessage::Step1(Bytes::from(empty_sv))),
    )
    .unwrap();
    let got = a.take();
    let [Message::Sync(SyncMessage::Step2(diff))] = got.as_slice() else {
        panic!("expected step2")
    };
    let doc = Doc::new();
    let t = doc.get_or_insert_text("title");
    doc.transact_mut()
        .apply_update(Update::decode_v1(diff).unwrap())
        .unwrap();
    assert_eq!(t.get_string(&doc.transact()), "abc");
}

#[test]
fn view_sessions_cannot_write_and_are_closed_after_a_warning() {
    let mut r = room();
    let (v, e) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("viewer", Mode::View), v.clone());
    r.join(ConnId(2), session("editor", Mode::Edit), e.clone());
    v.take();
    e.take();
    // An empty step 2 (what every client answers to our step 1) is not a write.
    r.receive(
        ConnId(1),
        Message::Sync(SyncMessage::Step2(Bytes::from_static(Update::EMPTY_V1))),
    )
    .unwrap();
    assert!(v.take().is_empty());

    let (_, u) = client_edit(11, "defaced");
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    assert_eq!(title_of(&r), "");
    assert!(e.take().is_empty(), "nothing relayed");
    let warned = v.frames.borrow().iter().any(|f| f[0] == MSG_AUTH);
    assert!(warned, "first write earns a permission-denied warning");
    assert_eq!(
        r.receive(ConnId(1), update_msg(&u)),
        Err(RoomError::ViewOnlyWrite)
    );
    assert_eq!(title_of(&r), "");
}

#[test]
fn garbage_updates_are_refused_and_the_room_carries_on() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    for junk in [&[0xffu8, 0xff, 0xff][..], &[1, 2, 3, 4, 5, 6, 7], &[5]] {
        assert!(matches!(
            r.receive(ConnId(1), update_msg(junk)),
            Err(RoomError::Malformed { .. })
        ));
    }
    let (_, u) = client_edit(33, "still fine");
    r.receive(ConnId(2), update_msg(&u)).unwrap();
    assert_eq!(title_of(&r), "still fine");
    assert!(!r.is_poisoned());
}

#[test]
fn updates_with_a_dependency_gap_are_refused_and_not_kept() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    b.take();
    let (doc, _first) = client_edit(44, "first");
    let t = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 5, " second");
    let second = txn.encode_update_v1();
    drop(txn);
    assert_eq!(
        r.receive(ConnId(1), update_msg(&second)),
        Err(RoomError::MissingDependencies)
    );
    assert!(!r.doc().transact().has_missing_updates());
    assert!(b.take().is_empty());
    assert_eq!(r.encode_state(), room().encode_state());
}

/// A client's title edit, then a paragraph from it: the paragraph's origins (the body
/// root) are present without the title edit, so yrs would integrate it around a Skip.
fn title_then_paragraph() -> (Vec<u8>, Vec<u8>) {
    let doc = Doc::with_client_id(45);
    let title = doc.get_or_insert_text("title");
    let body = doc.get_or_insert_xml_fragment("body");
    let first = {
        let mut txn = doc.transact_mut();
        title.insert(&mut txn, 0, "Release notes");
        txn.encode_update_v1()
    };
    let second = {
        let mut txn = doc.transact_mut();
        let p = body.push_back(&mut txn, yrs::XmlElementPrelim::empty("p"));
        p.push_back(&mut txn, yrs::XmlTextPrelim::new("hello"));
        txn.encode_update_v1()
    };
    (first, second)
}

#[test]
fn a_gap_whose_origins_are_present_is_refused_too_not_integrated_unseen() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    b.take();
    let (first, second) = title_then_paragraph();
    assert_eq!(
        r.receive(ConnId(1), update_msg(&second)),
        Err(RoomError::MissingDependencies)
    );
    assert!(b.take().is_empty());
    assert!(r.take_unsaved().is_empty());
    assert_eq!(
        r.encode_state(),
        room().encode_state(),
        "nothing of it is in the document"
    );
    // In order, both apply, and the other member and the store get both.
    r.receive(ConnId(1), update_msg(&first)).unwrap();
    r.receive(ConnId(1), update_msg(&second)).unwrap();
    let relayed = b
        .take()
        .into_iter()
        .filter(|m| matches!(m, Message::Sync(SyncMessage::Update(_))))
        .count();
    assert_eq!(relayed, 2);
    assert_eq!(r.take_unsaved().len(), 2);
    assert_eq!(
        Room::<Recorder>::from_stored(RoomLimits::default(), None, [second.as_slice()]).err(),
        Some(LoadError::MissingDependencies),
        "a stored record with such a gap is refused as well"
    );
}

#[test]
fn awareness_is_stamped_with_the_verified_user() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("alice", Mode::Edit), a.clone());
    r.join(ConnId(2), session("bob", Mode::Edit), b.clone());
    b.take();
    let body = encode_awareness([(
        501,
        1,
        r#"{"user":{"name":"Mallory","id":"bob","color":"red"},"cursor":null}"#,
    )]);
    r.receive(ConnId(1), Message::Awareness(body)).unwrap();
    let got = b.take();
    let [Message::Awareness(body)] = got.as_slice() else {
        panic!("expected awareness")
    };
    let entries = decode_awareness(body, 8).unwrap();
    let state: serde_json::Value = serde_json::from_str(&entries[0].state).unwrap();
    assert_eq!(state["user"]["name"], "alice (verified)");
    assert_eq!(state["user"]["id"], "alice");
    assert_eq!(state["user"]["color"], "#123456");
    assert!(state.get("cursor").is_some(), "other fields are kept");
}

#[test]
fn awareness_of_one_connection_cannot_be_changed_by_another_user() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("alice", Mode::Edit), a.clone());
    r.join(ConnId(2), session("bob", Mode::Edit), b.clone());
    r.receive(
        ConnId(1),
        Message::Awareness(encode_awareness([(501, 1, "{}")])),
    )
    .unwrap();
    a.take();
    // Bob tries to remove Alice's presence.
    r.receive(
        ConnId(2),
        Message::Awareness(encode_awareness([(501, 9, "null")])),
    )
    .unwrap();
    assert!(a.take().is_empty());
    assert!(r.awareness.get(501).is_some());
}

#[test]
fn leaving_removes_presence_and_tells_the_others() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("alice", Mode::Edit), a.clone());
    r.join(ConnId(2), session("bob", Mode::Edit), b.clone());
    r.receive(
        ConnId(1),
        Message::Awareness(encode_awareness([(501, 3, "{}")])),
    )
    .unwrap();
    b.take();
    r.leave(ConnId(1));
    let frames = b.frames.borrow().clone();
    let removal = frames.iter().find(|f| f[0] == MSG_AWARENESS).unwrap();
    let Message::Awareness(body) = Message::decode(removal).unwrap() else {
        unreachable!()
    };
    let entries = decode_awareness(&body, 8).unwrap();
    assert_eq!(entries[0].client_id, 501);
    assert_eq!(entries[0].clock, 4);
    assert_eq!(entries[0].state, "null");
    assert_eq!(r.member_count(), 1);
}

fn awareness_entries(frames: &[Message]) -> Vec<Vec<(u64, u64, String)>> {
    frames
        .iter()
        .filter_map(|m| match m {
            Message::Awareness(body) => Some(
                decode_awareness(body, 64)
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.client_id, e.clock, e.state.to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn coalesced_presence_is_one_message_per_flush_with_the_latest_state_of_each_client() {
    let mut r = room();
    r.coalesce_presence(true);
    let peers: Vec<Recorder> = (0..4).map(|_| Recorder::default()).collect();
    for (i, p) in peers.iter().enumerate() {
        r.join(
            ConnId(i as u64 + 1),
            session(&format!("u{i}"), Mode::Edit),
            p.clone(),
        );
    }
    for p in &peers {
        p.take();
    }
    // Three clients move their cursors, one of them twice, in one turn.
    for (conn, client, clock, x) in [
        (1, 501, 1, 1),
        (2, 502, 1, 2),
        (1, 501, 2, 3),
        (3, 503, 1, 4),
    ] {
        let state = format!(r#"{{"x":{x}}}"#);
        r.receive(
            ConnId(conn),
            Message::Awareness(encode_awareness([(client, clock, state.as_str())])),
        )
        .unwrap();
    }
    assert!(
        peers[3].take().is_empty(),
        "nothing is relayed before the flush"
    );
    r.flush_presence();
    let got = awareness_entries(&peers[3].take());
    assert_eq!(got.len(), 1, "one merged message: {got:?}");
    let clients: Vec<(u64, u64)> = got[0].iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        clients,
        [(502, 1), (501, 2), (503, 1)],
        "the latest state of each, once"
    );
    assert!(got[0]
        .iter()
        .any(|e| e.0 == 501 && e.2.contains(r#""x":3"#)));
    // From several connections: everyone gets it, the senders too (a client
    // ignores its own entry, which is not newer than its own state).
    assert_eq!(awareness_entries(&peers[0].take()).len(), 1);
    r.flush_presence();
    assert!(
        peers[3].take().is_empty(),
        "a flush with nothing due sends nothing"
    );
}

#[test]
fn coalesced_presence_from_one_connection_is_not_echoed_and_a_removal_wins() {
    let mut r = room();
    r.coalesce_presence(true);
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("alice", Mode::Edit), a.clone());
    r.join(ConnId(2), session("bob", Mode::Edit), b.clone());
    a.take();
    b.take();
    r.receive(
        ConnId(1),
        Message::Awareness(encode_awareness([(501, 1, "{}")])),
    )
    .unwrap();
    r.receive(
        ConnId(1),
        Message::Awareness(encode_awareness([(501, 2, "null")])),
    )
    .unwrap();
    r.flush_presence();
    assert!(a.take().is_empty(), "its own change is not sent back");
    assert_eq!(
        awareness_entries(&b.take()),
        [vec![(501, 2, "null".to_string())]]
    );
    // A member that leaves: its removal is relayed at the next flush.
    r.receive(
        ConnId(1),
        Message::Awareness(encode_awareness([(502, 1, "{}")])),
    )
    .unwrap();
    r.leave(ConnId(1));
    r.flush_presence();
    let got = awareness_entries(&b.take());
    assert_eq!(
        got,
        [vec![(502, 2, "null".to_string())]],
        "the removal replaces the state"
    );
    // Switched off, changes go out at once again.
    r.coalesce_presence(false);
    r.join(ConnId(3), session("carol", Mode::Edit), a.clone());
    b.take();
    r.receive(
        ConnId(3),
        Message::Awareness(encode_awareness([(503, 1, "{}")])),
    )
    .unwrap();
    assert_eq!(awareness_entries(&b.take()).len(), 1);
}

#[test]
fn late_joiners_receive_current_presence() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("alice", Mode::Edit), a.clone());
    r.receive(
        ConnId(1),
        Message::Awareness(encode_awareness([(501, 1, "{}")])),
    )
    .unwrap();
    let b = Recorder::default();
    r.join(ConnId(2), session("bob", Mode::Edit), b.clone());
    assert!(b.take().iter().any(|m| matches!(m, Message::Awareness(_))));
}

#[test]
fn oversized_or_non_object_awareness_is_refused() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("alice", Mode::Edit), a.clone());
    let big = format!("{{\"x\":\"{}\"}}", "y".repeat(40_000));
    assert!(matches!(
        r.receive(
            ConnId(1),
            Message::Awareness(encode_awareness([(1, 1, &*big)]))
        ),
        Err(RoomError::AwarenessTooLarge { .. })
    ));
    assert_eq!(
        r.receive(
            ConnId(1),
            Message::Awareness(encode_awareness([(1, 1, "[1]")]))
        ),
        Err(RoomError::AwarenessNotObject)
    );
}

#[test]
fn a_member_that_cannot_keep_up_is_dropped() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    *b.refuse.borrow_mut() = true;
    let (_, u) = client_edit(11, "x");
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    assert_eq!(r.member_count(), 1);
}

#[test]
fn integrated_updates_and_acks_are_handed_out_for_the_store() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    // Step 2 (empty) and two updates: three update messages.
    r.receive(
        ConnId(1),
        Message::Sync(SyncMessage::Step2(Bytes::from_static(Update::EMPTY_V1))),
    )
    .unwrap();
    let (doc, u1) = client_edit(11, "ab");
    r.receive(ConnId(1), update_msg(&u1)).unwrap();
    let t = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 2, "c");
    let u2 = txn.encode_update_v1();
    drop(txn);
    r.receive(ConnId(1), update_msg(&u2)).unwrap();

    let unsaved = r.take_unsaved();
    assert_eq!(unsaved.len(), 2, "the empty step 2 emitted nothing");
    assert!(r.take_unsaved().is_empty());
    assert_eq!(r.take_acks(), vec![(ConnId(1), 3)]);
    assert!(r.take_acks().is_empty());
    assert_eq!(r.take_contributors(), vec!["a".to_string()]);

    // What the store got rebuilds the same document.
    let stored = Room::<Recorder>::from_stored(
        RoomLimits::default(),
        None,
        unsaved.iter().map(|u| u.as_slice()),
    )
    .unwrap();
    assert_eq!(title_of(&stored), "abc");

    a.take();
    r.send_saved(ConnId(1), 3);
    assert_eq!(
        a.take(),
        vec![Message::Chorus(ChorusMessage::Saved { n: 3 })]
    );
}

#[test]
fn saved_acks_go_only_to_opted_in_clients() {
    let mut r = room();
    let a = Recorder::default();
    let mut plain = (*session("a", Mode::Edit)).clone();
    plain.extensions = false;
    r.join(ConnId(1), Arc::new(plain), a.clone());
    a.take();
    r.send_saved(ConnId(1), 1);
    assert!(a.take().is_empty());
}

#[test]
fn loading_refuses_gaps_and_garbage_rather_than_serving_a_partial_document() {
    let (doc, _first) = client_edit(44, "first");
    let t = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 5, " second");
    let second = txn.encode_update_v1();
    drop(txn);
    assert_eq!(
        Room::<Recorder>::from_stored(RoomLimits::default(), None, [second.as_slice()]).err(),
        Some(LoadError::MissingDependencies)
    );
    assert_eq!(
        Room::<Recorder>::from_stored(RoomLimits::default(), Some(&[1, 2, 3][..]), []).err(),
        Some(LoadError::Undecodable(0))
    );
}

#[test]
fn a_read_only_document_refuses_changes_but_not_known_content() {
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    let (_, u) = client_edit(11, "full");
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    b.take();
    r.set_read_only(true);
    let warned = b.take();
    assert!(matches!(
        warned.as_slice(),
        [Message::Chorus(ChorusMessage::Error { code, .. })] if code == "document-too-large"
    ));
    // Re-sending what the document already has is fine (a reconnect's step 2).
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    let (_, more) = client_edit(22, "more");
    assert_eq!(
        r.receive(ConnId(2), update_msg(&more)),
        Err(RoomError::DocumentTooLarge)
    );
    assert_eq!(title_of(&r), "full");
    r.set_read_only(false);
    r.receive(ConnId(2), update_msg(&more)).unwrap();
    assert!(title_of(&r).contains("more"));
}

/// Updates typing `text` into the title, one transaction per character.
fn typed_updates(doc: &Doc, text: &str) -> Vec<Vec<u8>> {
    let title = doc.get_or_insert_text(ROOT_TITLE);
    text.chars()
        .map(|c| {
            let before = doc.transact().state_vector();
            let mut txn = doc.transact_mut();
            let len = title.len(&txn);
            title.insert(&mut txn, len, &c.to_string());
            drop(txn);
            doc.transact().encode_state_as_update_v1(&before)
        })
        .collect()
}

#[test]
fn stored_bytes_answer_an_empty_step_1_with_the_whole_document() {
    let doc = Doc::with_client_id(3);
    let records = typed_updates(&doc, "hello world");
    let snapshot = {
        let early = Doc::with_client_id(4);
        let mut txn = early.transact_mut();
        for r in &records[..5] {
            txn.apply_update(Update::decode_v1(r).unwrap()).unwrap();
        }
        txn.encode_state_as_update_v1(&StateVector::default())
    };
    let all: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let tail = &all[5..];
    for (snapshot, tail, want) in [
        (Some(snapshot.as_slice()), tail, "hello world"), // snapshot + merged log
        (Some(snapshot.as_slice()), &tail[..1], "hello "), // snapshot + one record
        (Some(snapshot.as_slice()), &tail[..0], "hello"), // snapshot only
        (None, &all[..], "hello world"),                  // log only
        (None, &tail[..0], ""),                           // nothing stored
    ] {
        let answer = sync_from_stored(snapshot, tail).unwrap();
        let client = Doc::new();
        let title = client.get_or_insert_text(ROOT_TITLE);
        if want.is_empty() {
            assert!(answer.is_empty(), "nothing to answer with");
            continue;
        }
        // One step 2 holds all of it: a provider reports `synced` on the first.
        let Message::Sync(SyncMessage::Step2(update)) = Message::decode(&answer).unwrap() else {
            panic!("not a step 2");
        };
        client
            .transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        assert_eq!(title.get_string(&client.transact()), want);
    }
    assert!(sync_from_stored(None, &[b"\xff\xff".as_slice(), b"\x00"]).is_err());
    assert!(sync_from_stored(Some(b"\xff\xff"), &[b"\x00\x00"]).is_err());
}

#[test]
fn only_a_state_vector_naming_no_client_is_empty() {
    assert!(is_empty_state_vector(&StateVector::default().encode_v1()));
    let doc = Doc::with_client_id(9);
    typed_updates(&doc, "x");
    assert!(!is_empty_state_vector(
        &doc.transact().state_vector().encode_v1()
    ));
    assert!(!is_empty_state_vector(b"\xff"), "malformed is not empty");
}

#[test]
fn a_large_external_rewrite_goes_through_the_guard() {
    // Past the in-place budget changed paragraphs are replaced, i.e. inserted anew: the
    // guard walks them like any new content and strips what the policy refuses.
    use crate::import::parse_body_html;
    let mut room = room();
    let policy = room.whitelist().policy.clone();
    let is_mark = |tag: &str| policy.allows_mark(tag, &[]);
    let n = 400;
    let draft = |rev: usize| -> String {
        (0..n)
            .map(|i| {
                if rev == 1 && i % 2 == 1 {
                    format!("<p onclick=\"x()\">Paragraph {i} changed<script>x()</script></p>")
                } else {
                    format!("<p>Paragraph {i}</p>")
                }
            })
            .collect()
    };
    let v0 = parse_body_html(&draft(0), &is_mark);
    assert_eq!(
        room.external_change(None, None, Some(&v0)).unwrap(),
        ["body"]
    );
    room.take_neutralised();
    let v1 = parse_body_html(&draft(1), &is_mark);
    assert_eq!(
        room.external_change(None, None, Some(&v1)).unwrap(),
        ["body"]
    );
    let (neutralised, _) = room.take_neutralised();
    assert!(neutralised.total() > 0);
    let txn = room.doc().transact();
    let body = txn.get_xml_fragment(crate::ROOT_BODY).unwrap();
    let html = crate::render::body_html(&txn, &body);
    assert!(
        !html.contains("script") && !html.contains("onclick"),
        "{html}"
    );
    assert!(html.contains("<p>Paragraph 399 changed</p>"), "{html}");
    assert!(html.contains("<p>Paragraph 398</p>"), "{html}");
}

/// The body of a room with `n` paragraphs "Paragraph i" (every one changed in `rev` 1,
/// to "Paragraph i, revised").
fn rewritable_room(n: usize) -> (Room<Recorder>, impl Fn(usize) -> Vec<BodyNode>) {
    rewritable_room_with(RoomLimits::default(), n)
}

/// [`rewritable_room`] with `limits`.
fn rewritable_room_with(
    limits: RoomLimits,
    n: usize,
) -> (Room<Recorder>, impl Fn(usize) -> Vec<BodyNode>) {
    use crate::import::parse_body_html;
    let mut room = Room::new(limits);
    let policy = room.whitelist().policy.clone();
    let draft = move |rev: usize| -> Vec<BodyNode> {
        let html: String = (0..n)
            .map(|i| match rev {
                0 => format!("<p>Paragraph {i}</p>"),
                _ => format!("<p>Paragraph {i}, revised</p>"),
            })
            .collect();
        parse_body_html(&html, &|tag: &str| policy.allows_mark(tag, &[]))
    };
    room.external_change(None, None, Some(&draft(0))).unwrap();
    (room, draft)
}

/// Someone types `text` at the end of paragraph `i` of the live document.
fn type_into(room: &Room<Recorder>, i: u32, text: &str) {
    use yrs::{XmlFragment, XmlOut};
    let doc = room.doc();
    let body = doc.get_or_insert_xml_fragment(crate::ROOT_BODY);
    let mut txn = doc.transact_mut();
    let Some(XmlOut::Element(p)) = body.get(&txn, i) else {
        panic!("paragraph {i}")
    };
    let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
        panic!("text of paragraph {i}")
    };
    let len = t.len(&txn);
    t.insert(&mut txn, len, text);
}

fn body_of(room: &Room<Recorder>) -> String {
    let txn = room.doc().transact();
    let body = txn.get_xml_fragment(crate::ROOT_BODY).unwrap();
    crate::render::body_html(&txn, &body)
}

/// The ids of the body's paragraphs, in order.
fn paragraph_ids(room: &Room<Recorder>) -> Vec<yrs::BranchID> {
    use yrs::{XmlFragment, XmlOut};
    let txn = room.doc().transact();
    let body = txn.get_xml_fragment(crate::ROOT_BODY).unwrap();
    body.children(&txn)
        .map(|child| match child {
            XmlOut::Element(p) => yrs::branch::Branch::id(p.as_ref()),
            other => panic!("not a paragraph: {other:?}"),
        })
        .collect()
}

#[test]
fn a_long_rewrite_edits_every_paragraph_in_place_unless_the_guard_takes_deep_events() {
    // Strip mode's guard reads a transaction's changes without yrs' deep events, so
    // a rewrite of every paragraph is merged in place: each paragraph (and a cursor
    // in it) stays. Reject mode's guard takes deep events, whose sort costs each
    // edited node a walk of the body, so past the in-place budget it replaces them.
    for (mode, replaces) in [
        (crate::WhitelistMode::Strip, false),
        (crate::WhitelistMode::Reject, true),
    ] {
        let limits = RoomLimits {
            whitelist: crate::Whitelist::new(
                Arc::new(chorus_whitelist::Policy::default_policy()),
                mode,
            ),
            ..RoomLimits::default()
        };
        let (mut room, draft) = rewritable_room_with(limits, 300);
        let before = paragraph_ids(&room);
        assert_eq!(
            room.external_change(None, None, Some(&draft(1))).unwrap(),
            ["body"]
        );
        let after = paragraph_ids(&room);
        assert_eq!(after.len(), before.len());
        let kept = before.iter().zip(&after).filter(|(a, b)| a == b).count();
        if replaces {
            assert!(kept < before.len(), "{mode:?}: nothing was replaced");
        } else {
            assert_eq!(kept, before.len(), "{mode:?}: a paragraph was replaced");
        }
        assert!(body_of(&room).contains("<p>Paragraph 299, revised</p>"));
    }
}

#[test]
fn a_long_rewrite_from_an_old_base_keeps_what_was_typed_since() {
    // A rewrite past the in-place budget would replace changed paragraphs whole, which
    // drops what someone typed into them since the host read the draft. With typing
    // since the base, the change is made in place instead, and the typing survives.
    let (mut room, draft) = rewritable_room(300);
    let base = room.encode_state();
    // Far enough down that the paragraph is past the in-place budget.
    type_into(&room, 250, " (typed meanwhile)");
    let fields = room
        .external_change(Some(&base), None, Some(&draft(1)))
        .unwrap();
    assert_eq!(fields, ["body"]);
    let html = body_of(&room);
    // The typing survives inside paragraph 250, next to the host's text; where exactly
    // depends on the client ids (both edits insert where " (typed meanwhile)" went).
    let typed: Vec<&str> = html
        .split("<p>")
        .filter(|p| p.contains("(typed meanwhile)"))
        .collect();
    assert_eq!(typed.len(), 1, "{html}");
    assert_eq!(
        typed[0].replace(" (typed meanwhile)", ""),
        "Paragraph 250, revised</p>",
        "{}",
        typed[0]
    );
    assert!(html.contains("<p>Paragraph 299, revised</p>"));
}

#[test]
fn a_replacing_rewrite_is_refused_once_the_draft_moved_and_succeeds_when_computed_again() {
    let (mut room, draft) = rewritable_room(300);
    let base = room.encode_state();
    let live = room.doc().transact().state_vector();
    let edit = external_edit(&base, &live, None, Some(&draft(1)), true, &html()).unwrap();
    type_into(&room, 7, " (typed meanwhile)");
    assert_eq!(room.apply_external(edit), Err(ExternalError::Moved));
    assert!(body_of(&room).contains("<p>Paragraph 7 (typed meanwhile)</p>"));
    // Computed from the document as it is now, it applies (and may replace again).
    let base = room.encode_state();
    let live = room.doc().transact().state_vector();
    let edit = external_edit(&base, &live, None, Some(&draft(1)), true, &html()).unwrap();
    assert_eq!(room.apply_external(edit).unwrap(), ["body"]);
    assert!(body_of(&room).contains("<p>Paragraph 299, revised</p>"));
    // Asked not to replace, an edit carries no assumption and is never refused.
    let base = room.encode_state();
    let live = room.doc().transact().state_vector();
    let edit = external_edit(&base, &live, None, Some(&draft(0)), false, &html()).unwrap();
    type_into(&room, 3, " again");
    assert_eq!(room.apply_external(edit).unwrap(), ["body"]);
    assert!(
        body_of(&room).contains("<p>Paragraph 3 again</p>"),
        "{}",
        &body_of(&room)[..300]
    );
}

#[test]
fn a_count_larger_than_the_message_is_malformed_before_yrs_reserves_for_it() {
    let mut r = room();
    let a = Recorder::default();
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    // 2^28 clients, then nothing: yrs would reserve a 10 GiB hash map first.
    let huge = [0x80, 0x80, 0x80, 0x80, 0x01, 0, 0];
    assert_eq!(
        r.receive(ConnId(1), update_msg(&huge)),
        Err(RoomError::Malformed { what: "update" })
    );
    assert_eq!(
        r.receive(
            ConnId(1),
            Message::Sync(SyncMessage::Step1(Bytes::copy_from_slice(&huge)))
        ),
        Err(RoomError::Malformed {
            what: "state vector"
        })
    );
    assert!(count_fits(&[0]) && count_fits(&[1, 7, 0]) && !count_fits(&[3, 0]));
    // Real messages pass.
    let (_, u) = client_edit(9, "fine");
    r.receive(ConnId(1), update_msg(&u)).unwrap();
    assert_eq!(title_of(&r), "fine");
}

#[test]
fn what_the_room_relays_and_stores_always_decodes_even_when_yrs_would_write_it_unreadably() {
    // A JSON item in a root, deleted by the same update: yrs writes that
    // transaction's update in a form it cannot decode (found by fuzzing).
    let hostile = [
        1, 1, 0, 0, 2, 1, 0, 0, 2, 89, 126, 1, 0, 2, 1, 126, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 8,
    ];
    let mut r = room();
    let (a, b) = (Recorder::default(), Recorder::default());
    r.join(ConnId(1), session("a", Mode::Edit), a.clone());
    r.join(ConnId(2), session("b", Mode::Edit), b.clone());
    b.take();
    let _ = r.receive(ConnId(1), update_msg(&hostile));
    for m in b.take() {
        if let Message::Sync(SyncMessage::Update(u)) = m {
            Update::decode_v1(&u).expect("a relayed update decodes");
        }
    }
    let stored = r.take_unsaved();
    Room::<Recorder>::from_stored(
        RoomLimits::default(),
        None,
        stored.iter().map(Vec::as_slice),
    )
    .expect("the stored records load");
}

fn html() -> chorus_whitelist::EditorProfile {
    chorus_whitelist::EditorProfile::html()
}

#[test]
fn a_refused_edit_caps_what_its_connection_is_ever_told_is_saved() {
    let mut room: Room<Recorder> = Room::new(RoomLimits::default());
    let viewer = Recorder::default();
    let session = session("v", Mode::View);
    room.join(ConnId(1), session, viewer.clone());
    let empty = Doc::new()
        .transact()
        .encode_state_as_update_v1(&Default::default());
    room.receive(
        ConnId(1),
        Message::Sync(SyncMessage::Step2(Bytes::from(empty.clone()))),
    )
    .unwrap();
    assert_eq!(
        room.take_acks(),
        vec![(ConnId(1), 1)],
        "nothing refused yet"
    );
    let edit = {
        let d = Doc::with_client_id(5);
        let t = d.get_or_insert_text("title");
        let mut txn = d.transact_mut();
        t.insert(&mut txn, 0, "x");
        txn.encode_update_v1()
    };
    room.receive(
        ConnId(1),
        Message::Sync(SyncMessage::Update(Bytes::from(edit))),
    )
    .unwrap();
    room.receive(
        ConnId(1),
        Message::Sync(SyncMessage::Update(Bytes::from(empty))),
    )
    .unwrap();
    assert_eq!(
        room.take_acks(),
        vec![(ConnId(1), 1)],
        "neither the refused edit nor any message after it is acknowledged"
    );
}

#[test]
fn awareness_states_are_bounded_in_fields_and_depth() {
    let mut room = room();
    let a = Recorder::default();
    room.join(ConnId(1), session("a", Mode::Edit), a);
    let clock = std::cell::Cell::new(0);
    let state = |json: &str| {
        clock.set(clock.get() + 1);
        let mut w = chorus_protocol::Writer::with_capacity(64);
        w.write_var_u64(1);
        w.write_var_u64(77);
        w.write_var_u64(clock.get());
        w.write_var_string(json);
        Message::Awareness(w.finish())
    };
    // A y-prosemirror cursor (four deep) and a few fields pass.
    let cursor = r#"{"cursor":{"anchor":{"type":{"client":1,"clock":2},"tname":null,"item":{"client":1,"clock":3},"assoc":0}},"a":1,"b":[1,[2]]}"#;
    room.receive(ConnId(1), state(cursor)).unwrap();
    let deep = format!("{}1{}", "[".repeat(9), "]".repeat(9));
    let deep = format!(r#"{{"x":{deep}}}"#);
    assert!(matches!(
        room.receive(ConnId(1), state(&deep)),
        Err(RoomError::Malformed { what: "awareness" })
    ));
    let wide: String = (0..33)
        .map(|i| format!(r#""f{i}":0"#))
        .collect::<Vec<_>>()
        .join(",");
    assert!(matches!(
        room.receive(ConnId(1), state(&format!("{{{wide}}}"))),
        Err(RoomError::Malformed { what: "awareness" })
    ));
}

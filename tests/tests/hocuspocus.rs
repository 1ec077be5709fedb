//! `/v1/hocuspocus/{app}` byte for byte, the way `@hocuspocus/provider` speaks it
//! (the test vectors of PROTOCOL.md, "Hocuspocus endpoint"): the token arrives in an
//! `Auth` message, what came before it is kept, every message carries the document's
//! name, and each saved update is acknowledged with one `SyncStatus`. The npm
//! provider itself is driven in `tests/node/hocuspocus.test.mjs`.

use bytes::Bytes;
use chorus_auth::{mint_session, Mode, Secret, SessionClaims};
use chorus_e2e::{now, raw_connect, token_for, TestServer, APP, SECRETS};
use chorus_protocol::hocuspocus::{self, Frame};
use chorus_protocol::{encode_sync, Message, SyncMessage, SYNC_STEP1, SYNC_UPDATE};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn url(server: &TestServer) -> String {
    format!("ws://{}/v1/hocuspocus/{APP}", server.addr)
}

async fn send(ws: &mut Ws, frame: Bytes) {
    ws.send(WsMessage::Binary(frame)).await.unwrap();
}

/// The provider's `Auth` message (Token = 0).
fn auth(name: &str, token: &str) -> Bytes {
    let mut w = chorus_protocol::Writer::with_capacity(token.len() + 16);
    w.write_var_string(name);
    w.write_var_u64(2);
    w.write_var_u64(0);
    w.write_var_string(token);
    w.finish()
}

/// The next binary frame within 5 s, decoded.
async fn next_frame(ws: &mut Ws) -> Bytes {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket stays open")
            .unwrap();
        if let WsMessage::Binary(b) = msg {
            return b;
        }
    }
}

/// Frames until one satisfies `want` (within 5 s each).
async fn until(ws: &mut Ws, mut want: impl FnMut(&Bytes) -> bool) -> Bytes {
    for _ in 0..50 {
        let frame = next_frame(ws).await;
        if want(&frame) {
            return frame;
        }
    }
    panic!("not among 50 frames")
}

#[tokio::test]
async fn a_provider_authenticates_in_band_syncs_and_gets_one_sync_status_per_saved_update() {
    let server = TestServer::start().await;
    let doc = "hp-doc";
    let token = token_for(APP, SECRETS[0], doc, "hp-user", Mode::Edit);
    let mut ws = raw_connect(&url(&server)).await.unwrap();

    // The provider's order: its step 1 may come before the token; then Auth.
    send(
        &mut ws,
        hocuspocus::wrap(doc, &encode_sync(SYNC_STEP1, &[0])),
    )
    .await;
    send(&mut ws, auth(doc, &token)).await;
    assert_eq!(
        next_frame(&mut ws).await,
        hocuspocus::authenticated(doc, false)
    );

    // The server's own step 1 and the answer to the queued one, behind the name.
    let mut saw_step1 = false;
    let mut saw_step2 = false;
    while !(saw_step1 && saw_step2) {
        let frame = next_frame(&mut ws).await;
        let Frame::Protocol { name, message } = Frame::decode(&frame).unwrap() else {
            panic!("a sync message, got {frame:?}")
        };
        assert_eq!(name, doc);
        match Message::decode(&message).unwrap() {
            Message::Sync(SyncMessage::Step1(_)) => saw_step1 = true,
            Message::Sync(SyncMessage::Step2(_)) => saw_step2 = true,
            _ => {}
        }
    }

    // Two updates: two SyncStatus(1), and the text reaches a y-websocket client.
    let replica = Doc::new();
    let text = replica.get_or_insert_text("title");
    for word in ["hello", " hocuspocus"] {
        let update = {
            let mut txn = replica.transact_mut();
            let at = text.len(&txn);
            text.insert(&mut txn, at, word);
            txn.encode_update_v1()
        };
        send(
            &mut ws,
            hocuspocus::wrap(doc, &encode_sync(SYNC_UPDATE, &update)),
        )
        .await;
    }
    let status = hocuspocus::sync_status(doc, true);
    until(&mut ws, |f| *f == status).await;
    until(&mut ws, |f| *f == status).await;
    let reader = server.client(doc, "reader").await;
    chorus_e2e::eventually(
        5,
        "the provider's text reaches a y-websocket client",
        || reader.title() == "hello hocuspocus",
    )
    .await
    .unwrap();

    // The y-websocket client's edit arrives behind the name.
    let _ = reader.insert_title(0, ">");
    let frame = until(&mut ws, |f| {
        matches!(Frame::decode(f), Ok(Frame::Protocol { ref message, .. })
            if matches!(Message::decode(message), Ok(Message::Sync(SyncMessage::Update(_)))))
    })
    .await;
    let Frame::Protocol { message, .. } = Frame::decode(&frame).unwrap() else {
        unreachable!()
    };
    let Ok(Message::Sync(SyncMessage::Update(update))) = Message::decode(&message) else {
        unreachable!()
    };
    replica
        .transact_mut()
        .apply_update(Update::decode_v1(&update).unwrap())
        .unwrap();
    assert_eq!(text.get_string(&replica.transact()), ">hello hocuspocus");
    assert!(replica.transact().state_vector() != StateVector::default());

    // A second document on the same socket is refused for that document only.
    let other = token_for(APP, SECRETS[0], "hp-other", "hp-user", Mode::Edit);
    send(&mut ws, auth("hp-other", &other)).await;
    let refused = hocuspocus::permission_denied("hp-other", "one-document-per-connection");
    until(&mut ws, |f| *f == refused).await;
    let _ = reader.insert_title(0, "!");
    until(&mut ws, |f| {
        matches!(Frame::decode(f), Ok(Frame::Protocol { .. }))
    })
    .await;
}

#[tokio::test]
async fn a_bad_token_gets_permission_denied_with_the_reason_and_the_socket_stays_for_a_retry() {
    let server = TestServer::start().await;
    let doc = "hp-denied";
    let mut ws = raw_connect(&url(&server)).await.unwrap();
    let mut claims = SessionClaims::new(APP, "late", doc, Mode::Edit, now() - 10);
    claims.iat = Some(now() - 100);
    let expired = mint_session(&Secret::new(SECRETS[0]), &claims).unwrap();
    send(&mut ws, auth(doc, &expired)).await;
    assert_eq!(
        next_frame(&mut ws).await,
        hocuspocus::permission_denied(doc, "token-expired")
    );
    // Another document's token is not this one's.
    let wrong = token_for(APP, SECRETS[0], "elsewhere", "u", Mode::Edit);
    send(&mut ws, auth(doc, &wrong)).await;
    assert_eq!(
        next_frame(&mut ws).await,
        hocuspocus::permission_denied(doc, "wrong-doc")
    );
    // A view token opens the document read-only.
    let view = token_for(APP, SECRETS[0], doc, "viewer", Mode::View);
    send(&mut ws, auth(doc, &view)).await;
    assert_eq!(
        next_frame(&mut ws).await,
        hocuspocus::authenticated(doc, true)
    );
}

#[tokio::test]
async fn garbage_before_the_token_closes_with_4400() {
    let server = TestServer::start().await;
    let mut ws = raw_connect(&url(&server)).await.unwrap();
    send(&mut ws, Bytes::from_static(&[0x05, 0x64, 0x6f])).await;
    let (code, _) = chorus_e2e::close_code(&mut ws).await.unwrap();
    assert_eq!(code, 4400);
}

#[tokio::test]
async fn a_view_sessions_edit_gets_sync_status_false_and_never_true() {
    let server = TestServer::start().await;
    let doc = "hp-view";
    let token = token_for(APP, SECRETS[0], doc, "hp-viewer", Mode::View);
    let mut ws = raw_connect(&url(&server)).await.unwrap();
    send(&mut ws, auth(doc, &token)).await;
    assert_eq!(
        next_frame(&mut ws).await,
        hocuspocus::authenticated(doc, true)
    );
    let replica = Doc::new();
    let text = replica.get_or_insert_text("title");
    let update = {
        let mut txn = replica.transact_mut();
        text.insert(&mut txn, 0, "dropped");
        txn.encode_update_v1()
    };
    send(
        &mut ws,
        hocuspocus::wrap(doc, &encode_sync(SYNC_UPDATE, &update)),
    )
    .await;
    let refused = hocuspocus::sync_status(doc, false);
    let saved = hocuspocus::sync_status(doc, true);
    let first = until(&mut ws, |f| *f == refused || *f == saved).await;
    assert_eq!(
        first, refused,
        "the refused edit is answered with SyncStatus(false)"
    );
    // An editor's writes follow (each a group commit that acknowledges what is due) …
    let editor = server.ext_client(doc, "alice").await;
    let mut last = 0;
    for i in 0..3 {
        last = editor.insert_title(0, &format!("{i}"));
    }
    chorus_e2e::eventually(10, "the editor's edits are saved", || {
        editor.saved() == last
    })
    .await
    .unwrap();
    // … and the viewer gets their content, never a SyncStatus(true).
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let WsMessage::Binary(frame) = msg {
            assert_ne!(frame, saved, "a refused edit was acknowledged as saved");
        }
    }
    assert!(!editor.title().contains("dropped"));
}

// Issue 28: what a provider may send before its token was checked is bounded.

#[tokio::test]
async fn more_than_256_kib_before_the_token_closes_with_4413() {
    let server = TestServer::start().await;
    let doc = "hp-big";
    let mut ws = raw_connect(&url(&server)).await.unwrap();
    // An update the size of a large offline edit, before any Auth (under
    // max_message_size, so only the pre-auth cap refuses it).
    let big = encode_sync(SYNC_UPDATE, &vec![0u8; 300 * 1024]);
    send(&mut ws, hocuspocus::wrap(doc, &big)).await;
    let (code, reason) = chorus_e2e::close_code(&mut ws).await.unwrap();
    assert_eq!((code, reason.as_str()), (4413, "message-too-large"));
    // So are many smaller ones that add up to it.
    let mut ws = raw_connect(&url(&server)).await.unwrap();
    let part = encode_sync(SYNC_UPDATE, &vec![0u8; 40 * 1024]);
    for _ in 0..7 {
        if ws
            .send(WsMessage::Binary(hocuspocus::wrap(doc, &part)))
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, _) = chorus_e2e::close_code(&mut ws).await.unwrap();
    assert_eq!(code, 4413);
}

#[tokio::test]
async fn a_flood_of_small_frames_before_the_token_is_rate_limited_and_closed_with_4429() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 10;
        c.limits.messages_burst = 10;
        c.limits.throttle_close_secs = 1;
    })
    .await;
    let doc = "hp-flood";
    let mut ws = raw_connect(&url(&server)).await.unwrap();
    let frame = hocuspocus::wrap(doc, &encode_sync(SYNC_STEP1, &[0]));
    let started = std::time::Instant::now();
    // Sent without waiting: the server stops reading while the frames wait, so
    // the sender's buffers fill rather than the server's memory.
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        for _ in 0..50 {
            if sink.send(WsMessage::Binary(frame.clone())).await.is_err() {
                break;
            }
        }
        sink
    });
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = stream.next().await {
            if let Ok(WsMessage::Close(Some(frame))) = msg {
                return (u16::from(frame.code), frame.reason.to_string());
            }
        }
        panic!("no close frame")
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(closed, (4429, "rate-limited".to_owned()));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "throttled first"
    );
    let _ = writer.await;
    ws = raw_connect(&url(&server)).await.unwrap();

    // The provider's ordinary start under the same limits: step 1 and awareness
    // before the token, then Auth; it joins.
    let token = token_for(APP, SECRETS[0], doc, "hp-user", Mode::Edit);
    send(
        &mut ws,
        hocuspocus::wrap(doc, &encode_sync(SYNC_STEP1, &[0])),
    )
    .await;
    send(&mut ws, auth(doc, &token)).await;
    assert_eq!(
        next_frame(&mut ws).await,
        hocuspocus::authenticated(doc, false)
    );
}

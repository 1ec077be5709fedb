//! Bad input closes only the offending connection, with the documented code.

use bytes::Bytes;
use chorus_e2e::{close_code, eventually, raw_connect, TestServer, APP};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn expect_close(server: &TestServer, frame: WsMessage, code: u16) {
    let url = server.ws_url(APP, "victim", &server.token("victim", "mallory"));
    let mut ws = raw_connect(&url).await.unwrap();
    ws.send(frame.clone()).await.unwrap();
    let (got, reason) = close_code(&mut ws).await.unwrap();
    assert_eq!(got, code, "frame {frame:?} closed with {got} ({reason})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_frame_kind_gets_its_close_code_and_others_keep_working() {
    let server = TestServer::start_with(|c| c.max_message_size = 64 * 1024).await;
    let a = server.client("victim", "alice").await;
    let b = server.client("victim", "bob").await;

    let cases: Vec<(WsMessage, u16)> = vec![
        (WsMessage::Text("hello".into()), 4400),
        (WsMessage::Binary(Bytes::new()), 4400),
        (WsMessage::Binary(Bytes::from_static(&[7])), 4400),
        (WsMessage::Binary(Bytes::from_static(&[0x80])), 4400),
        (WsMessage::Binary(Bytes::from_static(&[0, 2])), 4400),
        (WsMessage::Binary(Bytes::from_static(&[0, 9, 1, 0])), 4400),
        (
            WsMessage::Binary(Bytes::from_static(&[0, 2, 50, 1, 2, 3])),
            4400,
        ),
        (
            WsMessage::Binary(Bytes::from_static(&[0, 2, 1, 0, 0])),
            4400,
        ),
        (
            WsMessage::Binary(Bytes::from_static(&[
                0, 2, 6, 0xff, 0xff, 0xff, 0xff, 0x0f, 1,
            ])),
            4400,
        ),
        (
            WsMessage::Binary(Bytes::from_static(&[0, 0, 3, 0xff, 0xff, 0xff])),
            4400,
        ),
        (
            WsMessage::Binary(Bytes::from_static(&[1, 3, 1, 2, 3])),
            4400,
        ),
        (WsMessage::Binary(Bytes::from(vec![0u8; 100 * 1024])), 4413),
    ];
    for (frame, code) in cases {
        expect_close(&server, frame, code).await;
    }

    // The document and its healthy clients were not disturbed.
    a.insert_title(0, "still alive");
    eventually(10, "bob still receives edits", || {
        b.title() == "still alive"
    })
    .await
    .unwrap();
    assert!(a.closed().is_none() && b.closed().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_frame_storm_never_takes_the_server_down() {
    use rand::{Rng, SeedableRng};
    let server = TestServer::start().await;
    let a = server.client("storm", "alice").await;
    let b = server.client("storm", "bob").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    for _ in 0..200 {
        let url = server.ws_url(APP, "storm", &server.token("storm", "mallory"));
        let mut ws = raw_connect(&url).await.unwrap();
        let len = rng.random_range(1..64);
        let mut frame: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Bias towards sync updates so the CRDT decoder sees garbage, not just the framing.
        if rng.random_bool(0.7) {
            frame[0] = 0;
            if len > 1 {
                frame[1] = 2;
            }
            if len > 2 {
                frame[2] = (len - 3) as u8;
            }
        }
        let _ = ws.send(WsMessage::Binary(frame.into())).await;
        let _ = ws.close(None).await;
    }
    a.insert_title(0, "survived");
    eventually(10, "bob still receives edits", || b.title() == "survived")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_nobody_else_waits() {
    use futures_util::StreamExt;
    let server = TestServer::start_with(|c| c.outbound_queue_frames = 8).await;
    let writer = server.client("slow", "writer").await;
    let healthy = server.client("slow", "healthy").await;
    // A raw client that completes nothing and never reads again.
    let url = server.ws_url(APP, "slow", &server.token("slow", "sloth"));
    let mut stuck = raw_connect(&url).await.unwrap();
    eventually(10, "three members", || {
        server.state.metrics.open_connections() == 3
    })
    .await
    .unwrap();

    // ~16 MB of edits: far more than the socket buffers and 8 queued frames hold.
    // Paced in rounds the healthy client keeps up with; the stuck one falls behind.
    let chunk = "x".repeat(64 * 1024);
    for round in 1..=64 {
        for _ in 0..4 {
            writer.insert_title(0, &chunk);
        }
        eventually(30, "the healthy client keeps up", || {
            healthy.title().len() == round * 4 * chunk.len()
        })
        .await
        .unwrap();
    }
    eventually(10, "the stuck client was closed as a slow consumer", || {
        server
            .state
            .metrics
            .render()
            .contains("chorus_connections_closed_total{code=\"1013\",reason=\"slow-consumer\"} 1")
    })
    .await
    .unwrap();
    assert!(writer.closed().is_none() && healthy.closed().is_none());

    // When it reads again it finds the close frame after what was already in flight.
    let mut code = None;
    let drained = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(Ok(m)) = stuck.next().await {
            if let WsMessage::Close(Some(f)) = m {
                code = Some(u16::from(f.code));
                break;
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "stuck client never saw the end of its stream"
    );
    assert!(
        code.is_none() || code == Some(1013),
        "closed with {code:?}, expected 1013 or a dropped socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_far_over_the_limit_gets_4413_not_a_reset() {
    // The default limit (8 MiB) and a 12 MiB frame: the server refuses it from its
    // header, with most of it still on the way.
    let server = TestServer::start().await;
    let url = server.ws_url(APP, "huge", &server.token("huge", "mallory"));
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .unwrap();
    let mut frame = vec![0u8; 12 << 20];
    frame[0] = 0; // sync
    frame[1] = 2; // update
    let _ = ws.send(WsMessage::Binary(Bytes::from(frame))).await;
    let (code, reason) = close_code(&mut ws).await.unwrap();
    assert_eq!((code, reason.as_str()), (4413, "message-too-large"));
}

//! The broadcast engine (issue 29): the document actor writes each member's frames
//! into its socket itself, once per turn, and the connection's task finishes what
//! the socket did not take. What a member must see whatever the socket does:
//! every update once and in order, its own acks and errors in order with them, and
//! a close only after everything that was sent before it.
//!
//! The readers here are raw websocket clients whose receive buffer is 4 KiB and
//! that stop reading for a while, so the server's writes stop being taken and the
//! backlog path runs (each test checks that it did, through the server's counter,
//! so that it cannot pass without reaching it). The oracle is the bytes: each
//! insert carries a numbered marker, which Yjs v1 encodes verbatim.

use chorus_auth::Mode;
use chorus_e2e::{eventually, host_token, http, token_for, TestServer, YClient, APP, SECRETS};
use chorus_protocol::{encode_sync, Message, SyncMessage, SYNC_STEP1};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

type SmallWs = WebSocketStream<TcpStream>;

/// A raw websocket client with a 4 KiB receive buffer that asked for the
/// document (an empty step 1).
async fn small_window_client(server: &TestServer, doc: &str, user: &str) -> SmallWs {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let tcp = TcpStream::from_std(socket.into()).unwrap();
    let token = token_for(APP, SECRETS[0], doc, user, Mode::Edit);
    let url = format!("{}&chorus=1", server.ws_url(APP, doc, &token));
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    ws.send(WsMessage::Binary(encode_sync(SYNC_STEP1, &[0])))
        .await
        .unwrap();
    // Synced before anyone writes: an update broadcast before the step 1 is
    // answered is in the step 2 as well (a Yjs client applies it twice, harmlessly),
    // which would blur "once".
    let synced = async {
        while let Some(Ok(frame)) = ws.next().await {
            if let WsMessage::Binary(b) = frame {
                if let Ok(Message::Sync(SyncMessage::Step2(_))) = Message::decode(&b) {
                    return;
                }
            }
        }
        panic!("closed before its step 2");
    };
    tokio::time::timeout(Duration::from_secs(10), synced)
        .await
        .expect("a step 2 within 10 s");
    ws
}

/// The numbers of the `~<n>~` markers in `bytes`, in order.
fn markers(bytes: &[u8], out: &mut Vec<u32>) {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 && bytes.get(i + 1 + digits) == Some(&b'~') {
                let n = std::str::from_utf8(&bytes[i + 1..i + 1 + digits]).unwrap();
                out.push(n.parse().unwrap());
                i += digits + 2;
                continue;
            }
        }
        i += 1;
    }
}

/// Read until `want` markers arrived or the server closed: the markers of every
/// sync message in order, and the close frame's code.
async fn read_markers(ws: &mut SmallWs, want: usize) -> (Vec<u32>, Option<u16>) {
    let mut seen = Vec::new();
    let mut close = None;
    let read = async {
        while let Some(Ok(frame)) = ws.next().await {
            match frame {
                WsMessage::Binary(b) => {
                    if let Ok(Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u))) =
                        Message::decode(&b)
                    {
                        markers(&u, &mut seen);
                    }
                }
                WsMessage::Close(c) => {
                    close = c.map(|c| u16::from(c.code));
                    break;
                }
                _ => {}
            }
            if seen.len() >= want && want > 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    (seen, close)
}

fn blocked_writes(server: &TestServer) -> u64 {
    let text = server.state.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix("chorus_socket_blocked_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// `pages` pages of ~4 KB appended to the title, each with its marker, with
/// `between(n)` after page n; the title's length after them.
fn write_pages(writer: &YClient, pages: u32, mut between: impl FnMut(u32)) -> u32 {
    let mut len = 0u32;
    for n in 0..pages {
        let text = format!("~{n}~{}", "x".repeat(4000));
        writer.insert_title(len, &text);
        len += text.len() as u32;
        between(n);
    }
    len
}

async fn lifted_limits() -> TestServer {
    TestServer::start_with(|c| {
        // Not a test of the rate limits.
        c.limits.messages_per_sec = 100_000;
        c.limits.messages_burst = 100_000;
        c.limits.bytes_per_sec = 1 << 30;
        c.limits.bytes_burst = 1 << 30;
        // Room for the whole backlog: a slow consumer is another test's.
        c.outbound_queue_bytes = 64 << 20;
        c.outbound_queue_frames = 1 << 20;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stalls_gets_every_update_once_and_in_order() {
    let server = lifted_limits().await;
    let doc = "in-order";
    let writer = server.ext_client(doc, "writer").await;
    let brisk = server.client(doc, "brisk").await;
    let mut stalled = small_window_client(&server, doc, "stalled").await;
    // Someone moving a cursor all along: presence interleaves with the updates.
    let mover = server.client(doc, "mover").await;
    eventually(10, "four members", || {
        server.state.metrics.open_connections() == 4
    })
    .await
    .unwrap();

    // ~12 MB in 3,000 pages while the stalled reader reads nothing: more than
    // the kernel's socket buffers hold (4 MiB at most here), so the server's
    // writes to it stop being taken and its frames wait in the socket's backlog.
    const PAGES: u32 = 3000;
    let len = write_pages(&writer, PAGES, |n| {
        if n % 100 == 0 {
            mover.set_awareness(u64::from(n) + 1, &format!(r#"{{"cursor":null,"n":{n}}}"#));
        }
    });
    eventually(30, "the brisk reader has every page", || {
        brisk.title().len() == len as usize
    })
    .await
    .unwrap();
    assert!(
        blocked_writes(&server) > 0,
        "the stalled reader's socket never refused bytes: this test reached no backlog"
    );
    eventually(30, "every page saved", || {
        writer.saved() >= u64::from(PAGES)
    })
    .await
    .unwrap();

    let (seen, close) = read_markers(&mut stalled, PAGES as usize).await;
    assert_eq!(close, None, "the stalled reader was not closed");
    let expected: Vec<u32> = (0..PAGES).collect();
    assert_eq!(seen.len(), expected.len(), "every page once");
    assert_eq!(seen, expected, "in the order they were made");
    assert!(writer.errors().is_empty() && brisk.closed().is_none());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_closed_with_a_backlog_gets_all_of_it_then_the_close_frame() {
    let server = lifted_limits().await;
    let doc = "close-after-backlog";
    let writer = server.client(doc, "writer").await;
    let brisk = server.client(doc, "brisk").await;
    let mut stalled = small_window_client(&server, doc, "stalled").await;
    eventually(10, "three members", || {
        server.state.metrics.open_connections() == 3
    })
    .await
    .unwrap();
    const PAGES: u32 = 3000;
    let len = write_pages(&writer, PAGES, |_| {});
    eventually(30, "the writes to the stalled reader back up", || {
        blocked_writes(&server) > 0
    })
    .await
    .unwrap();
    // Every page went out to every member (the brisk reader has them all: the
    // document sent them in the same sweeps); then the stalled session is ended.
    eventually(30, "the brisk reader has every page", || {
        brisk.title().len() == len as usize
    })
    .await
    .unwrap();
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let path = format!("/v1/apps/{APP}/docs/{doc}/sessions");
    let (status, _, body) = http(server.addr, "GET", &path, &[("Authorization", &auth)]).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "stalled")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .expect("the stalled reader has a session");
    let (status, _, _) = http(
        server.addr,
        "DELETE",
        &format!("/v1/apps/{APP}/docs/{doc}/sessions/{id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 204);

    // It reads again: every page that was sent, whole and in order, then the close.
    let (seen, close) = read_markers(&mut stalled, 0).await;
    let expected: Vec<u32> = (0..PAGES).collect();
    assert_eq!(
        seen, expected,
        "the backlog, whole and in order, before the close"
    );
    assert_eq!(
        close,
        Some(4403),
        "closed as an ended session, after the backlog"
    );
    assert!(writer.closed().is_none());
    server.stop().await.unwrap();
}

//! The bus on the real Redis of this machine (127.0.0.1:6379, or `CHORUS_TEST_REDIS`),
//! each test on a channel prefix of its own.

use bytes::Bytes;
use chorus_cluster::{Bus, BusConfig, BusEvent};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The cluster key every node of these tests shares.
const KEY: &[u8] = b"the tests' cluster key, 32+ bytes";

fn redis_url() -> String {
    std::env::var("CHORUS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix(test: &str) -> String {
    format!(
        "chorus-test:{}:{test}:{}",
        std::process::id(),
        rand::random::<u32>()
    )
}

async fn node(prefix: &str, name: &str) -> (Bus, mpsc::Receiver<BusEvent>, CancellationToken) {
    node_at(&redis_url(), prefix, name).await
}

async fn node_at(
    url: &str,
    prefix: &str,
    name: &str,
) -> (Bus, mpsc::Receiver<BusEvent>, CancellationToken) {
    let stop = CancellationToken::new();
    let mut config = BusConfig::new(url, prefix, name).with_keys(vec![KEY.to_vec()]);
    config.heartbeat = Duration::from_millis(100);
    config.node_timeout = Duration::from_millis(600);
    let (bus, events) = Bus::start(config, stop.clone())
        .await
        .expect("Redis at 6379");
    (bus, events, stop)
}

/// A TCP relay to the real Redis that the test can cut (every open connection
/// dropped; new ones relayed again), as a network blip would.
struct Relay {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start() -> Relay {
        let target = redis_url().trim_start_matches("redis://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = cuts.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// The next event that `pick` wants, within `secs`.
async fn next<T>(
    events: &mut mpsc::Receiver<BusEvent>,
    secs: u64,
    mut pick: impl FnMut(&BusEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the event in time")
            .expect("the bus is running");
        if let Some(t) = pick(&event) {
            return t;
        }
    }
}

/// Wait (5 s at most) for `events` to report that `node` restarted or lost messages.
async fn lost_from(events: &mut mpsc::Receiver<BusEvent>, node: &str) {
    next(events, 5, |e| {
        matches!(e, BusEvent::Lost { from } if &**from == node).then_some(())
    })
    .await
}

/// Wait (5 s at most) for the message `payload`.
async fn message(events: &mut mpsc::Receiver<BusEvent>, payload: &[u8]) {
    next(events, 5, |e| match e {
        BusEvent::Message { payload: p, .. } if &p[..] == payload => Some(()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_each_other_and_see_each_other_come_and_go() {
    let prefix = prefix("reach");
    let (a, mut a_events, a_stop) = node(&prefix, "a").await;
    let (b, mut b_events, _b_stop) = node(&prefix, "b").await;
    next(&mut b_events, 5, |e| {
        matches!(e, BusEvent::NodeUp { node } if &**node == "a").then_some(())
    })
    .await;
    next(&mut a_events, 5, |e| {
        matches!(e, BusEvent::NodeUp { node } if &**node == "b").then_some(())
    })
    .await;

    for i in 0..100u32 {
        a.send("b", Bytes::from(i.to_be_bytes().to_vec()));
    }
    let mut got = Vec::new();
    while got.len() < 100 {
        let payload = next(&mut b_events, 5, |e| match e {
            BusEvent::Message { from, payload } if &**from == "a" => Some(payload.clone()),
            BusEvent::Lost { .. } => panic!("nothing is lost on a quiet bus"),
            _ => None,
        })
        .await;
        got.push(u32::from_be_bytes(payload[..].try_into().unwrap()));
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "in order, each once");

    b.broadcast(Bytes::from_static(b"to all"));
    let from = next(&mut a_events, 5, |e| match e {
        BusEvent::Message { from, payload } if &payload[..] == b"to all" => Some(from.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&*from, "b");
    assert!(a.stats().published >= 100);
    assert_eq!(a.stats().nodes_up, 2);

    // a stops: b sees it go down once it has been silent past the timeout.
    a_stop.cancel();
    let started = std::time::Instant::now();
    next(&mut b_events, 5, |e| {
        matches!(e, BusEvent::NodeDown { node } if &**node == "a").then_some(())
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sender_and_a_broken_subscription_are_reported_as_losses() {
    let prefix = prefix("loss");
    let relay = Relay::start().await;
    let (b, mut b_events, _b_stop) = node_at(&relay.url(), &prefix, "b").await;
    let (a, _a_events, a_stop) = node(&prefix, "a").await;
    a.send("b", Bytes::from_static(b"first life"));
    next(&mut b_events, 5, |e| {
        matches!(e, BusEvent::Message { .. }).then_some(())
    })
    .await;
    a_stop.cancel();
    // "a" comes back as a new process: what it shared with b is gone.
    let (a, _a_events, _a_stop) = node(&prefix, "a").await;
    a.send("b", Bytes::from_static(b"second life"));
    lost_from(&mut b_events, "a").await;

    // The network between b and Redis breaks for a moment.
    relay.cut();
    next(&mut b_events, 10, |e| {
        (*e == BusEvent::Reconnected).then_some(())
    })
    .await;
    assert!(b.is_connected());
    // And it works again afterwards.
    a.send("b", Bytes::from_static(b"after"));
    message(&mut b_events, b"after").await;
    assert!(b.stats().losses >= 2);
}

#[tokio::test]
async fn a_node_alone_on_the_bus_counts_itself_up() {
    let p = prefix("alone");
    let (bus, _events, stop) = node(&p, "solo").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bus.stats().nodes_up, 1, "itself, with no peer");
    stop.cancel();
}

#[tokio::test]
async fn a_bus_without_a_cluster_key_does_not_start() {
    let config = BusConfig::new(redis_url(), prefix("nokey"), "n");
    assert!(matches!(
        Bus::start(config, CancellationToken::new()).await,
        Err(chorus_cluster::BusError::NoKey)
    ));
}

/// A version-2 envelope as a party with Redis access but no cluster key could write
/// it: every field chosen, the MAC made with a key of its own.
fn forged(
    channel: &str,
    kind: u8,
    incarnation: u64,
    seq: u64,
    from: &str,
    payload: &[u8],
    key: &[u8],
) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut out = vec![2, kind];
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.push(from.len() as u8);
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(payload);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(channel.as_bytes());
    mac.update(&[0]);
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    out
}

/// A party with only Redis access (no cluster key) publishes forged, tampered,
/// moved and replayed messages, including a replay of a node's earlier life: none
/// is delivered, none makes a node resync (no `Lost`), and each is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_a_cluster_key_signs_is_delivered_and_replays_are_dropped() {
    use futures_util::StreamExt;
    let prefix = prefix("trust");
    let (b_channel, c_channel) = (format!("{prefix}:node:b"), format!("{prefix}:node:c"));
    let client = redis::Client::open(redis_url()).unwrap();
    let mut spy = client.get_async_pubsub().await.unwrap();
    spy.subscribe(&b_channel).await.unwrap();
    let mut spied = spy.into_on_message();
    let redis = client.get_multiplexed_async_connection().await.unwrap();
    let (b, mut b_events, _b_stop) = node(&prefix, "b").await;
    let (c, mut c_events, _c_stop) = node(&prefix, "c").await;
    let (a, _a_events, a_stop) = node(&prefix, "a").await;

    // A genuine message of a's first life, which the spy keeps.
    a.send("b", Bytes::from_static(b"first life"));
    message(&mut b_events, b"first life").await;
    let first_life = loop {
        let m = tokio::time::timeout(Duration::from_secs(5), spied.next())
            .await
            .unwrap()
            .unwrap();
        if m.get_payload_bytes()
            .windows(10)
            .any(|w| w == b"first life")
        {
            break m.get_payload_bytes().to_vec();
        }
    };
    // c has heard a's first life too (a heartbeat), so a's restart is a loss for
    // c as well, and it comes before the attack.
    next(&mut c_events, 5, |e| {
        matches!(e, BusEvent::NodeUp { node } if &**node == "a").then_some(())
    })
    .await;
    // a restarts (a genuine restart: b and c resync once).
    a_stop.cancel();
    let (a, _a_events, _a_stop) = node(&prefix, "a").await;
    a.send("b", Bytes::from_static(b"second life"));
    lost_from(&mut b_events, "a").await;
    message(&mut b_events, b"second life").await;
    lost_from(&mut c_events, "a").await;
    while c_events.try_recv().is_ok() {}
    let (rejected, replayed) = (b.stats().rejected, b.stats().replayed);

    let publish = |channel: &str, bytes: Vec<u8>| {
        let mut redis = redis.clone();
        let channel = channel.to_owned();
        async move {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(bytes)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
    };
    // 1. The first life's message again: an older incarnation.
    publish(&b_channel, first_life.clone()).await;
    // 2. The same bytes on c's channel: signed for b's.
    publish(&c_channel, first_life.clone()).await;
    // 3. Tampered: one payload byte changed.
    let mut tampered = first_life.clone();
    let at = tampered
        .windows(10)
        .position(|w| w == b"first life")
        .unwrap();
    tampered[at] ^= 0x20;
    publish(&b_channel, tampered).await;
    // 4. Forged with a key of the attacker's, as a brand-new life of a (which
    //    would make b drop everything it shares with a) and as a message.
    let wrong = b"not the cluster key, but 32 bytes";
    publish(
        &b_channel,
        forged(&b_channel, 0, u64::MAX, 1, "a", b"forged", wrong),
    )
    .await;
    // 5. An old-format envelope (version 1, no MAC).
    let mut v1 = forged(&b_channel, 0, u64::MAX, 1, "a", b"v1", wrong);
    v1.truncate(v1.len() - 32);
    v1[0] = 1;
    publish(&b_channel, v1).await;
    // 6. Garbage.
    publish(&b_channel, b"\x02garbage".to_vec()).await;

    // Then a genuine message: it is the next (and only) thing b hears from a.
    a.send("b", Bytes::from_static(b"after"));
    let mut heard = Vec::new();
    next(&mut b_events, 5, |e| {
        heard.push(e.clone());
        matches!(e, BusEvent::Message { payload, .. } if &payload[..] == b"after").then_some(())
    })
    .await;
    assert!(
        heard.iter().all(
            |e| matches!(e, BusEvent::Message { payload, .. } if &payload[..] == b"after")
                || matches!(e, BusEvent::NodeUp { .. })
        ),
        "b heard {heard:?}"
    );
    assert_eq!(
        b.stats().rejected - rejected,
        4,
        "tampered, forged, version 1, garbage"
    );
    assert_eq!(b.stats().replayed - replayed, 1, "the first life's message");
    // c dropped the moved message and was never told anything by it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.stats().rejected, 1, "the message moved to c's channel");
    while let Ok(e) = c_events.try_recv() {
        assert!(
            !matches!(e, BusEvent::Message { .. } | BusEvent::Lost { .. }),
            "c: {e:?}"
        );
    }
}

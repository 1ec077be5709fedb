//! The bus on the real Redis of this machine (127.0.0.1:6379, or `CHORUS_TEST_REDIS`),
//! each test on a channel prefix of its own.

use bytes::Bytes;
use chorus_cluster::{Bus, BusConfig, BusEvent};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
    let mut config = BusConfig::new(url, prefix, name);
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
    next(&mut b_events, 5, |e| {
        matches!(e, BusEvent::Lost { from } if &**from == "a").then_some(())
    })
    .await;

    // The network between b and Redis breaks for a moment.
    relay.cut();
    next(&mut b_events, 10, |e| {
        (*e == BusEvent::Reconnected).then_some(())
    })
    .await;
    assert!(b.is_connected());
    // And it works again afterwards.
    a.send("b", Bytes::from_static(b"after"));
    next(&mut b_events, 5, |e| match e {
        BusEvent::Message { payload, .. } if &payload[..] == b"after" => Some(()),
        _ => None,
    })
    .await;
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

//! Cluster mode as operators run it: three `chorus` processes on this machine's real
//! PostgreSQL (a fresh database per test) and a real Redis, clients spread over
//! them, each failure test counting edits sent, acknowledged and lost.
//!
//! A client here behaves as a y-websocket provider does: when its connection closes
//! it reconnects (to another node) with the replica it has, so edits the server never
//! acknowledged are sent again by the handshake. "Acknowledged" is the `saved` ack:
//! committed in PostgreSQL. Lost = acknowledged and missing from the final draft,
//! which must be zero.

use chorus_auth::Mode;
use chorus_e2e::processes::{free_port, metric, metrics_of, redis_url, Cluster, Process};
use chorus_e2e::relay::Relay;
use chorus_e2e::{host_token, http, token_for, YClient, APP, SECRETS};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chorus");

fn host_auth() -> String {
    format!("Bearer {}", host_token(APP, SECRETS[0], None))
}

/// The node that answers host calls for `doc` (its owner), asked through `via`.
async fn owner_of(via: SocketAddr, doc: &str) -> String {
    let auth = host_auth();
    let (status, headers, _) = http(
        via,
        "GET",
        &format!("/v1/apps/{APP}/docs/{doc}/draft?format=json"),
        &[("Authorization", &auth)],
    )
    .await;
    // 404 for a draft nobody wrote yet: still answered by its owner.
    assert!(matches!(status, 200 | 404), "{status}");
    headers
        .get("x-chorus-node")
        .cloned()
        .expect("x-chorus-node")
}

async fn final_title(via: SocketAddr, doc: &str) -> String {
    let auth = host_auth();
    let (status, _, body) = http(
        via,
        "GET",
        &format!("/v1/apps/{APP}/docs/{doc}/draft?format=json"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let draft: serde_json::Value = serde_json::from_slice(&body).unwrap();
    draft["title"].as_str().unwrap_or_default().to_owned()
}

/// One editor: a client that edits, counts its acknowledged edits and reconnects
/// (resuming its replica) when its connection closes.
struct Writer {
    name: String,
    doc: String,
    client: Option<YClient>,
    /// Edits sent and not yet acknowledged: (message number on this connection, marker, when).
    pending: Vec<(u64, String, Instant)>,
    acked: Vec<String>,
    sent: usize,
    reconnects: usize,
    closes: Vec<(u16, String)>,
}

impl Writer {
    async fn connect(name: &str, doc: &str, addr: SocketAddr) -> Writer {
        let mut w = Writer {
            name: name.into(),
            doc: doc.into(),
            client: None,
            pending: Vec::new(),
            acked: Vec::new(),
            sent: 0,
            reconnects: 0,
            closes: Vec::new(),
        };
        assert!(w.open(addr, None).await, "{name} connects to {addr}");
        w
    }

    fn url(&self, addr: SocketAddr) -> String {
        let token = token_for(APP, SECRETS[0], &self.doc, &self.name, Mode::Edit);
        format!(
            "ws://{addr}/v1/ws/{APP}/{}?token={token}&chorus=1",
            self.doc
        )
    }

    async fn open(&mut self, addr: SocketAddr, state: Option<Vec<u8>>) -> bool {
        let url = self.url(addr);
        let client = match &state {
            None => YClient::connect(&url).await,
            Some(state) => YClient::resume(&url, state).await,
        };
        let Ok(client) = client else { return false };
        // A join relayed to an owner that just died is closed (1012) once the
        // node notices; a provider then reconnects at once.
        if client.wait_synced_or_closed(8).await.is_err() {
            return false;
        }
        self.client = Some(client);
        true
    }

    fn is_open(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.closed().is_none())
    }

    /// One edit with a unique marker, if connected.
    fn edit(&mut self) {
        let Some(client) = self.client.as_ref().filter(|c| c.closed().is_none()) else {
            return;
        };
        let marker = format!("<{}:{}>", self.name, self.sent);
        let n = client.insert_title(0, &marker);
        self.pending.push((n, marker, Instant::now()));
        self.sent += 1;
    }

    /// Move acknowledged edits from pending to acked; the latest send time among
    /// them.
    fn collect(&mut self) -> Option<Instant> {
        let saved = self.client.as_ref()?.saved();
        let mut latest = None;
        let (done, rest): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(n, _, _)| *n <= saved);
        self.pending = rest;
        for (_, marker, at) in done {
            latest = Some(latest.map_or(at, |l: Instant| l.max(at)));
            self.acked.push(marker);
        }
        latest
    }

    /// If the connection closed, reconnect to one of `addrs` with the replica.
    async fn recover(&mut self, addrs: &[SocketAddr]) {
        if self.is_open() || addrs.is_empty() {
            return;
        }
        self.collect();
        let state = self.client.as_ref().map(|c| c.state());
        if let Some(closed) = self.client.as_ref().and_then(|c| c.closed()) {
            self.closes.push(closed);
        }
        let addr = addrs[self.reconnects % addrs.len()];
        self.reconnects += 1;
        // On failure the closed client stays: its replica is what the next attempt
        // resumes from.
        if self.open(addr, state).await {
            // What was not acknowledged is in the replica: the handshake's step 2
            // (message 1 of the new connection) carries it.
            for p in &mut self.pending {
                p.0 = 1;
            }
        }
    }

    fn all_acked(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Edit from every writer every `gap` until `until` says stop, reconnecting closed
/// writers to a live node; returns when the first edit sent after `since` was
/// acknowledged (if `since`), measured from `since`.
async fn run_load(
    writers: &mut [Writer],
    addrs: impl Fn() -> Vec<SocketAddr>,
    rounds: usize,
    gap: Duration,
    since: Option<Instant>,
) -> Option<Duration> {
    let mut editable_after = None;
    for _ in 0..rounds {
        let live = addrs();
        for w in writers.iter_mut() {
            w.recover(&live).await;
            w.edit();
            if let (Some(t0), Some(at)) = (since, w.collect()) {
                if at > t0 && editable_after.is_none() {
                    editable_after = Some(t0.elapsed());
                }
            }
        }
        tokio::time::sleep(gap).await;
    }
    editable_after
}

/// Wait until every writer's edits are acknowledged (reconnecting as needed).
async fn settle(writers: &mut [Writer], addrs: &[SocketAddr], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        for w in writers.iter_mut() {
            w.recover(addrs).await;
            w.collect();
        }
        if writers.iter().all(Writer::all_acked) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "edits still unacknowledged after {secs}s: {:?}",
            writers
                .iter()
                .map(|w| (&w.name, w.pending.len(), w.closes.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every acknowledged edit is in the draft; prints and returns (sent, acked, lost).
async fn count(
    test: &str,
    writers: &[Writer],
    via: SocketAddr,
    doc: &str,
) -> (usize, usize, usize) {
    let title = final_title(via, doc).await;
    let sent: usize = writers.iter().map(|w| w.sent).sum();
    let acked: Vec<&String> = writers.iter().flat_map(|w| &w.acked).collect();
    let lost: Vec<&&String> = acked
        .iter()
        .filter(|m| !title.contains(m.as_str()))
        .collect();
    let reconnects: usize = writers.iter().map(|w| w.reconnects).sum();
    eprintln!(
        "{test}: sent {sent}, acknowledged {}, lost {}, reconnects {reconnects}",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged edits lost: {lost:?}");
    (sent, acked.len(), lost.len())
}

fn node_index(name: &str) -> usize {
    name.strip_prefix("node-").unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_under_load_loses_no_acknowledged_edit() {
    let mut cluster = Cluster::new(BIN, 3, |db| db.url().to_owned(), redis_url());
    let doc = "failover";
    let mut writers = Vec::new();
    for (i, name) in ["w0", "w1", "w2"].iter().enumerate() {
        writers.push(Writer::connect(name, doc, cluster.addr(i)).await);
    }
    let addrs = |c: &Cluster| c.live().iter().map(|i| c.addr(*i)).collect::<Vec<_>>();
    run_load(
        &mut writers,
        || addrs(&cluster),
        30,
        Duration::from_millis(20),
        None,
    )
    .await;
    let owner = node_index(&owner_of(cluster.addr(0), doc).await);

    // kill -9 the owner while everyone keeps typing.
    let killed_at = Instant::now();
    cluster.nodes[owner].take().unwrap().child.kill().unwrap();
    let live = addrs(&cluster);
    let editable_after = run_load(
        &mut writers,
        || live.clone(),
        400,
        Duration::from_millis(25),
        Some(killed_at),
    )
    .await
    .expect("the document is editable again");
    settle(&mut writers, &live, 30).await;
    eprintln!("kill -9: editable again {editable_after:?} after the owner died (target 5 s)");
    let (sent, acked, lost) = count("kill -9", &writers, live[0], doc).await;
    assert_eq!(
        (sent, lost),
        (acked, 0),
        "after settling every edit is acknowledged"
    );
    assert!(
        editable_after < Duration::from_secs(15),
        "{editable_after:?}"
    );
    let new_owner = owner_of(live[0], doc).await;
    assert_ne!(node_index(&new_owner), owner);
    let metrics = metrics_of(cluster.addr(node_index(&new_owner))).await;
    assert_eq!(
        metric(&metrics, "chorus_cluster_lease_takeovers_total"),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stopped_past_its_lease_never_writes_again() {
    let cluster = Cluster::new(BIN, 3, |db| db.url().to_owned(), redis_url());
    let doc = "fenced";
    // The first connection makes node-0 the owner.
    let mut local = Writer::connect("local", doc, cluster.addr(0)).await;
    let mut remote = vec![Writer::connect("remote", doc, cluster.addr(1)).await];
    assert_eq!(owner_of(cluster.addr(1), doc).await, "node-0");
    for _ in 0..20 {
        local.edit();
        remote[0].edit();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle(std::slice::from_mut(&mut local), &[cluster.addr(0)], 10).await;
    settle(&mut remote, &[cluster.addr(1)], 10).await;
    let acked_before_stop = local.client.as_ref().unwrap().saved();

    // node-0 stops for twice its lease; node-1 takes the document over meanwhile.
    let node0 = cluster.nodes[0].as_ref().unwrap();
    node0.signal("STOP");
    run_load(
        &mut remote,
        || vec![cluster.addr(1)],
        240,
        Duration::from_millis(25),
        None,
    )
    .await;
    settle(&mut remote, &[cluster.addr(1)], 20).await;
    assert_eq!(owner_of(cluster.addr(1), doc).await, "node-1");
    node0.signal("CONT");

    // The resumed node-0 still has its local connection and takes edits on it, but
    // its writes are fenced: none is acknowledged there, and it lets the connection go.
    for _ in 0..10 {
        local.edit();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while local.is_open() {
        assert!(
            Instant::now() < deadline,
            "node-0 kept the connection after losing the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed = local.client.as_ref().unwrap().closed().unwrap();
    assert_eq!(closed, (1012, "document-moved".into()));
    assert_eq!(
        local.client.as_ref().unwrap().saved(),
        acked_before_stop,
        "nothing was acknowledged by the fenced owner"
    );
    let metrics = metrics_of(cluster.addr(0)).await;
    assert_eq!(
        metric(&metrics, "chorus_cluster_leases_lost_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "chorus_cluster_owned_documents"),
        Some(0.0),
        "{metrics}"
    );

    // Its client reconnects to the new owner; what node-0 never acknowledged is kept.
    let sent_after_resume = local.sent - 20;
    assert!(sent_after_resume >= 1, "an edit reached the resumed node");
    let mut all = vec![local, remote.pop().unwrap()];
    settle(&mut all, &[cluster.addr(1)], 20).await;
    let (sent, acked, lost) = count("SIGSTOP past the lease", &all, cluster.addr(2), doc).await;
    assert_eq!((sent, lost), (acked, 0));
    eprintln!("SIGSTOP: {sent_after_resume} edits sent to the fenced owner after it resumed, 0 acknowledged by it, all acknowledged by the new owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_loses_nothing() {
    let mut cluster = Cluster::new(BIN, 3, |db| db.url().to_owned(), redis_url());
    let doc = "rolling";
    let mut writers = Vec::new();
    for (i, name) in ["w0", "w1", "w2", "w3"].iter().enumerate() {
        writers.push(Writer::connect(name, doc, cluster.addr(i % 3)).await);
    }
    for i in 0..3 {
        let mut node = cluster.nodes[i].take().unwrap();
        node.signal("TERM");
        let live: Vec<SocketAddr> = cluster.live().iter().map(|j| cluster.addr(*j)).collect();
        let load = run_load(
            &mut writers,
            || live.clone(),
            20,
            Duration::from_millis(25),
            None,
        );
        load.await;
        assert_eq!(node.wait(30), Some(0), "a drained node exits 0");
        cluster.restart(i);
        cluster.wait_until_all_hear_each_other();
        let live: Vec<SocketAddr> = cluster.live().iter().map(|j| cluster.addr(*j)).collect();
        run_load(
            &mut writers,
            || live.clone(),
            20,
            Duration::from_millis(25),
            None,
        )
        .await;
    }
    let live: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
    settle(&mut writers, &live, 30).await;
    let (sent, acked, lost) = count("rolling restart", &writers, live[0], doc).await;
    assert_eq!((sent, lost), (acked, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_loses_nothing_and_nodes_resync_without_a_restart() {
    // A Redis of this test's own, so restarting it disturbs nobody else.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let redis = |dir: &Path| {
        Process::spawn(
            Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir),
            Some("Ready to accept connections"),
        )
    };
    let mut bus = redis(dir.path());
    let cluster = Cluster::new(
        BIN,
        3,
        |db| db.url().to_owned(),
        format!("redis://127.0.0.1:{port}"),
    );
    let pids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|n| n.as_ref().unwrap().child.id())
        .collect();
    let doc = "bus-restart";
    let mut writers = Vec::new();
    for (i, name) in ["w0", "w1", "w2"].iter().enumerate() {
        writers.push(Writer::connect(name, doc, cluster.addr(i)).await);
    }
    let live: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
    run_load(
        &mut writers,
        || live.clone(),
        20,
        Duration::from_millis(25),
        None,
    )
    .await;
    bus.signal("KILL");
    bus.wait(10);
    run_load(
        &mut writers,
        || live.clone(),
        40,
        Duration::from_millis(25),
        None,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = http(cluster.addr(1), "GET", "/readyz", &[]).await;
        if status == 503 && String::from_utf8_lossy(&body).contains("bus-unreachable") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness while Redis is down: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bus = redis(dir.path());
    run_load(
        &mut writers,
        || live.clone(),
        120,
        Duration::from_millis(25),
        None,
    )
    .await;
    settle(&mut writers, &live, 30).await;
    let (sent, acked, lost) = count("Redis restart", &writers, live[0], doc).await;
    assert_eq!((sent, lost), (acked, 0));
    for (i, pid) in pids.iter().enumerate() {
        assert_eq!(
            cluster.nodes[i].as_ref().unwrap().child.id(),
            *pid,
            "no node restarted"
        );
        let metrics = metrics_of(cluster.addr(i)).await;
        assert!(
            metric(&metrics, "chorus_bus_losses_total").unwrap_or(0.0) >= 1.0,
            "{metrics}"
        );
    }
    drop(bus);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_unreachable_for_ten_seconds_keeps_editing_live_and_acks_resume() {
    let relay = Relay::start("127.0.0.1:5432".parse().unwrap()).await;
    let relay_addr = relay.addr;
    let cluster = Cluster::new(
        BIN,
        3,
        |db| format!("postgres://postgres@{relay_addr}/{}", db.name()),
        redis_url(),
    );
    let doc = "pg-cut";
    let mut writers = Vec::new();
    for (i, name) in ["w0", "w1", "w2"].iter().enumerate() {
        writers.push(Writer::connect(name, doc, cluster.addr(i)).await);
    }
    let live: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
    run_load(
        &mut writers,
        || live.clone(),
        20,
        Duration::from_millis(25),
        None,
    )
    .await;
    settle(&mut writers, &live, 15).await;
    let acked_before: usize = writers.iter().map(|w| w.acked.len()).sum();

    relay.cut();
    let cut_at = Instant::now();
    let mut sent_during = 0;
    while cut_at.elapsed() < Duration::from_secs(10) {
        run_load(
            &mut writers,
            || live.clone(),
            1,
            Duration::from_millis(100),
            None,
        )
        .await;
        sent_during += writers.len();
        let acked: usize = writers.iter().map(|w| w.acked.len()).sum();
        assert_eq!(
            acked, acked_before,
            "nothing is acknowledged while PostgreSQL is cut off"
        );
    }
    // Editing stayed live: every writer sees every other's latest edit.
    let last: Vec<String> = writers
        .iter()
        .map(|w| w.pending.last().unwrap().1.clone())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = writers.iter().all(|w| {
            let t = w.client.as_ref().unwrap().title();
            last.iter().all(|m| t.contains(m))
        });
        if seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edits are not relayed while PostgreSQL is cut off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = metrics_of(cluster.addr(0)).await;
    let (status, _, body) = http(cluster.addr(0), "GET", "/readyz", &[]).await;
    assert_eq!(status, 503, "{}\n{metrics}", String::from_utf8_lossy(&body));

    relay.restore();
    settle(&mut writers, &live, 40).await;
    let (sent, acked, lost) = count("PostgreSQL cut for 10 s", &writers, live[0], doc).await;
    eprintln!("PostgreSQL cut: {acked_before} acknowledged before, {sent_during} sent during (0 acknowledged then)");
    assert_eq!((sent, lost), (acked, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_round_robin_a_rolling_restart_loses_nothing() {
    let mut cluster = Cluster::new(BIN, 3, |db| db.url().to_owned(), redis_url());
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, lb) = start_nginx(&cluster.ports, dir.path(), Upgrades::Proxied).await;
    // Round robin: consecutive requests are answered by different nodes.
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let auth = host_auth();
        let (_, headers, _) =
            http(lb, "GET", "/v1/apps/wiki/docs", &[("Authorization", &auth)]).await;
        answered.extend(headers.get("x-chorus-node").cloned());
    }
    assert!(answered.len() >= 2, "nginx spreads requests: {answered:?}");

    let doc = "behind-nginx";
    let mut writers = Vec::new();
    for name in ["w0", "w1", "w2", "w3", "w4", "w5"] {
        writers.push(Writer::connect(name, doc, lb).await);
    }
    for i in 0..3 {
        let mut node = cluster.nodes[i].take().unwrap();
        node.signal("TERM");
        run_load(
            &mut writers,
            || vec![lb],
            20,
            Duration::from_millis(25),
            None,
        )
        .await;
        assert_eq!(node.wait(30), Some(0));
        cluster.restart(i);
        cluster.wait_until_all_hear_each_other();
        run_load(
            &mut writers,
            || vec![lb],
            20,
            Duration::from_millis(25),
            None,
        )
        .await;
    }
    settle(&mut writers, &[lb], 30).await;
    let (sent, acked, lost) = count("rolling restart through nginx", &writers, lb, doc).await;
    assert_eq!((sent, lost), (acked, 0));
}

/// What the load balancer does with a websocket upgrade.
#[derive(PartialEq)]
enum Upgrades {
    /// Proxies it (as an operator configures nginx for Chorus).
    Proxied,
    /// Strips it: a network that blocks websockets.
    Refused,
}

/// Debian's nginx on a free port, round robin over `ports`, its files in `dir`;
/// returns once it answers.
async fn start_nginx(ports: &[u16], dir: &Path, upgrades: Upgrades) -> (Process, SocketAddr) {
    let nginx_bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's nginx (tests/run installs nginx-light)");
    let lb_port = free_port();
    let conf = dir.join("nginx.conf");
    let upstream: String = ports
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    let upgrade = match upgrades {
        Upgrades::Proxied => "proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection $connection_upgrade;",
        Upgrades::Refused => "proxy_set_header Upgrade \"\";\n            proxy_set_header Connection \"\";",
    };
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nerror_log {dir}/error.log warn;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {dir};\n    proxy_temp_path {dir};\n\
             \n    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
             \n    upstream chorus {{\n{upstream}    }}\n\
             \n    server {{\n        listen 127.0.0.1:{lb_port};\n        location / {{\n\
                         proxy_pass http://chorus;\n            proxy_http_version 1.1;\n\
                         {upgrade}\n\
                         proxy_read_timeout 3600s;\n            proxy_buffering off;\n\
                         proxy_next_upstream error timeout;\n        }}\n    }}\n}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let nginx = Process::spawn(
        Command::new(nginx_bin)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir),
        None,
    );
    let lb = SocketAddr::from(([127, 0, 0, 1], lb_port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(lb, "/healthz").await != Some(200) {
        assert!(Instant::now() < deadline, "nginx did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (nginx, lb)
}

async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let connect = tokio::net::TcpStream::connect(addr).await.ok()?;
    drop(connect);
    Some(http(addr, "GET", path, &[]).await.0)
}

/// Cluster mode behind a round-robin nginx that strips the websocket upgrade (a
/// network that blocks websockets): no websocket gets through, and two clients of
/// the HTTP transport edit one document, their requests landing on any node. A
/// request for a session another node holds is carried there over the bus
/// (`chorus_http_carried_total`), so every frame arrives once and in order, and the
/// stored draft holds every edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_transport_through_a_round_robin_nginx_that_refuses_upgrades() {
    use chorus_e2e::http_transport::HttpTransportClient;
    let cluster = Cluster::new(BIN, 3, |db| db.url().to_owned(), redis_url());
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, lb) = start_nginx(&cluster.ports, dir.path(), Upgrades::Refused).await;
    let doc = "http-behind-nginx";
    let token = |user: &str| token_for(APP, SECRETS[0], doc, user, Mode::Edit);
    // The network blocks websockets.
    let ws = format!("ws://{lb}/v1/ws/{APP}/{doc}?token={}", token("probe"));
    assert!(
        YClient::connect(&ws).await.is_err(),
        "no websocket gets through this proxy"
    );

    let mut writer = HttpTransportClient::open(lb, doc, &token("writer"))
        .await
        .unwrap();
    let mut reader = HttpTransportClient::open(lb, doc, &token("reader"))
        .await
        .unwrap();
    let mut expected = String::new();
    for i in 0..30 {
        let piece = format!("{i},");
        writer.append_title(&piece).await.unwrap();
        expected.push_str(&piece);
        if i % 5 == 4 {
            reader.poll().await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.title() != expected {
        assert!(
            Instant::now() < deadline,
            "the reader has {:?} of {expected:?}",
            reader.title()
        );
        reader.poll().await.unwrap();
    }
    let n = reader.ids.len() as u64;
    assert_eq!(
        reader.ids,
        (1..=n).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(final_title(lb, doc).await, expected, "the stored draft");
    let mut carried = 0.0;
    for i in 0..3 {
        carried += metric(
            &metrics_of(cluster.addr(i)).await,
            "chorus_http_carried_total",
        )
        .unwrap_or(0.0);
    }
    assert!(
        carried > 0.0,
        "requests landed on nodes other than their session's and were carried"
    );
    assert_eq!(writer.leave().await, 204);
    assert_eq!(reader.leave().await, 204);
}

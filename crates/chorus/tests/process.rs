//! The real `chorus` binary as an operator runs it: killed with SIGKILL mid-write,
//! started on a read-only data directory, running out of disk. Mounts use a
//! private mount namespace (`unshare --mount --map-root-user`), so these tests
//! need neither root nor changes to the host.

use chorus_e2e::{eventually, host_token, http, http_with_body, token_for, YClient, APP, SECRETS};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chorus");

struct Chorus {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("chorus.toml");
    std::fs::write(
        &path,
        format!(
            "[[apps]]\nid = \"{APP}\"\nsecrets = [\"{}\", \"{}\"]\n",
            SECRETS[0], SECRETS[1]
        ),
    )
    .unwrap();
    path
}

/// Start `chorus serve`, optionally inside `sh -c` after `prelude` (run in a
/// private mount namespace). Returns once it logs its address, or the output if it exits.
fn start(
    config: &Path,
    data_dir: &Path,
    prelude: Option<&str>,
) -> Result<Chorus, (Option<i32>, String)> {
    let args = format!(
        "exec '{BIN}' serve --config '{}' --bind 127.0.0.1:0 --data-dir '{}'",
        config.display(),
        data_dir.display()
    );
    let mut cmd = match prelude {
        None => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(&args);
            c
        }
        Some(prelude) => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--map-root-user", "sh", "-c"])
                .arg(format!("{prelude} && {args}"));
            c
        }
    };
    let mut child = cmd
        .env("CHORUS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning chorus");
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (output, tx) = (output.clone(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Ok(addr) = rest.trim().parse() {
                        let _ = tx.send(addr);
                    }
                }
                output.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    for _ in 0..200 {
        if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
            return Ok(Chorus {
                child,
                addr,
                output,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            let out = output.lock().unwrap().clone();
            return Err((status.code(), out));
        }
    }
    let _ = child.kill();
    let out = output.lock().unwrap().clone();
    Err((None, out))
}

impl Chorus {
    fn url(&self, doc: &str, user: &str) -> String {
        let token = token_for(APP, SECRETS[0], doc, user, chorus_e2e_mode());
        format!(
            "ws://{}/v1/ws/{APP}/{doc}?token={token}&chorus=1",
            self.addr
        )
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Chorus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chorus_e2e_mode() -> chorus_auth::Mode {
    chorus_auth::Mode::Edit
}

/// Writers append unique markers as fast as acks allow; SIGKILL at a random moment;
/// after every restart a fresh client must see every marker that was acknowledged
/// as saved before the kill. `CHORUS_CRASH_CYCLES` runs more cycles (default 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_edits_survive_kill_9() {
    crash_cycles(None).await;
}

/// The same on PostgreSQL (a fresh database): the document layer's side of the
/// guarantee, apart from the embedded store's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_edits_survive_kill_9_on_postgresql() {
    let db = chorus_store::TestDatabase::create();
    crash_cycles(Some(db.url())).await;
}

async fn crash_cycles(store: Option<&str>) {
    let cycles: usize = std::env::var("CHORUS_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    // CHORUS_CRASH_DIR keeps the data of a failing run for inspection.
    let root = std::env::var("CHORUS_CRASH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.path().to_owned());
    std::fs::create_dir_all(&root).unwrap();
    let config = write_config(&root);
    if let Some(store) = store {
        let apps = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("store = \"{store}\"\n{apps}")).unwrap();
    }
    let data = root.join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut total_sent = 0usize;

    for cycle in 0..cycles {
        let mut server = start(&config, &data, None).expect("chorus starts");
        // Everything acknowledged before the previous kill is there.
        let check = YClient::connect(&server.url("crash", "checker"))
            .await
            .unwrap();
        if let Err(e) = check.wait_synced_for(60).await {
            panic!(
                "cycle {cycle}: {e}; closed: {:?}; server output:\n{}",
                check.closed(),
                server.output()
            );
        }
        let present = markers_in(&check.title());
        let missing: Vec<_> = acked.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {} acknowledged edits lost, e.g. {:?}",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        drop(check);

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..3 {
            let client = YClient::connect(&server.url("crash", &format!("w{w}")))
                .await
                .unwrap();
            client.wait_synced_for(60).await.unwrap();
            let stop = stop.clone();
            writers.push(tokio::spawn(async move {
                let mut sent: Vec<(u64, String)> = Vec::new();
                let mut k = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && client.closed().is_none()
                {
                    let marker = format!("<{cycle}.{w}.{k}>");
                    let n = client.insert_title(0, &marker);
                    sent.push((n, marker));
                    k += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (client, sent)
            }));
        }
        let kill_after = rng.random_range(150..900);
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        server.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            let (client, sent) = w.await.unwrap();
            // Acks already on the wire before the kill still arrive; then the socket ends.
            eventually(10, "writer sees the connection end", || {
                client.closed().is_some()
            })
            .await
            .unwrap();
            let saved = client.saved();
            total_sent += sent.len();
            acked.extend(
                sent.into_iter()
                    .filter(|(n, _)| *n <= saved)
                    .map(|(_, m)| m),
            );
        }
    }
    // A last restart, and everything acknowledged in the last cycle is there too.
    let server = start(&config, &data, None).expect("chorus starts");
    let check = YClient::connect(&server.url("crash", "checker"))
        .await
        .unwrap();
    check.wait_synced_for(60).await.unwrap();
    let present = markers_in(&check.title());
    let lost = acked.difference(&present).count();
    println!(
        "kill -9: {cycles} cycles, {total_sent} edits sent, {} acknowledged, {lost} lost",
        acked.len()
    );
    assert_eq!(lost, 0);
    assert!(
        acked.len() > cycles * 3,
        "the test acknowledged too little to mean anything"
    );
}

/// Every `<cycle.writer.k>` marker in a title. Markers are typed at position 0,
/// so they never interleave with each other.
fn markers_in(title: &str) -> BTreeSet<String> {
    title
        .split('<')
        .filter_map(|part| part.split_once('>').map(|(m, _)| format!("<{m}>")))
        .collect()
}

#[test]
fn a_read_only_data_directory_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mount = dir.path().join("ro");
    std::fs::create_dir(&mount).unwrap();
    let prelude = format!("mount -t tmpfs -o ro tmpfs '{}'", mount.display());
    match start(&config, &mount.join("data"), Some(&prelude)) {
        Ok(_) => panic!("chorus started on a read-only data directory"),
        Err((code, output)) => {
            assert_eq!(code, Some(1), "exit code; output:\n{output}");
            assert!(output.contains("store"), "names the store:\n{output}");
            assert!(
                output.contains(&mount.display().to_string()),
                "names the path:\n{output}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_run_means_no_saved_ack_readiness_false_then_recovery_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let prelude = format!("mount -t tmpfs -o size=48m tmpfs '{}'", mount.display());
    let server = start(&config, &mount.join("data"), Some(&prelude)).expect("chorus starts");
    let a = YClient::connect(&server.url("full", "alice"))
        .await
        .unwrap();
    a.wait_synced().await.unwrap();
    let n = a.insert_title(0, "saved before the disk filled");
    eventually(10, "first edit saved", || a.saved() >= n)
        .await
        .unwrap();
    assert_eq!(http(server.addr, "GET", "/readyz", &[]).await.0, 200);

    // Fill the server's tmpfs through its own view of the filesystem.
    let filler = PathBuf::from(format!(
        "/proc/{}/root{}/filler",
        server.child.id(),
        mount.display()
    ));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("creating the filler file");
        let block = vec![0u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let before = a.saved();
    let mut last = 0;
    for i in 0..50 {
        last = a.insert_title(0, &format!("{i}:{}", "y".repeat(2000)));
    }
    if let Err(e) = eventually(15, "readiness turns false", || {
        futures_ready(server.addr) == 503
    })
    .await
    {
        let (status, _, body) = http(server.addr, "GET", "/readyz", &[]).await;
        panic!(
            "{e}; readyz {status} {}; saved {} of {last}; server output:\n{}",
            String::from_utf8_lossy(&body),
            a.saved(),
            server.output()
        );
    }
    // The operator and the host are told what is wrong: a full disk, by name.
    let (_, _, ready) = http(server.addr, "GET", "/readyz", &[]).await;
    let ready: serde_json::Value = serde_json::from_slice(&ready).unwrap();
    assert_eq!(ready["status"], "store-unwritable");
    assert_eq!(ready["store"], "disk-full", "readyz: {ready}");
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let change = serde_json::json!({ "html": format!("<p>{}</p>", "z".repeat(4000)) });
    let (status, _, body) = http_with_body(
        server.addr,
        "PUT",
        &format!("/v1/apps/{APP}/docs/full/content"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        change.to_string().as_bytes(),
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("disk-full")),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a.saved() < last,
        "nothing written after the disk filled may be acknowledged"
    );
    assert!(a.saved() >= before);
    assert_eq!(
        http(server.addr, "GET", "/healthz", &[]).await.0,
        200,
        "process alive"
    );
    assert!(
        server.output().contains("store write failed")
            && server.output().contains("condition=disk-full"),
        "logged:\n{}",
        server.output()
    );
    // Other documents keep being served.
    let b = YClient::connect(&server.url("elsewhere", "bob"))
        .await
        .unwrap();
    b.wait_synced().await.unwrap();

    // Space comes back: the service recovers by itself, without a restart, and
    // every edit made while the disk was full is saved and acknowledged.
    std::fs::remove_file(&filler).expect("removing the filler file");
    if let Err(e) = eventually(30, "every edit saved once space is back", || {
        a.saved() >= last
    })
    .await
    {
        panic!(
            "{e}; saved {} of {last}; server output:\n{}",
            a.saved(),
            server.output()
        );
    }
    eventually(15, "ready again", || futures_ready(server.addr) == 200)
        .await
        .unwrap();
    let (status, _, body) = http_with_body(
        server.addr,
        "PUT",
        &format!("/v1/apps/{APP}/docs/full/content"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        change.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let c = YClient::connect(&server.url("full", "carol"))
        .await
        .unwrap();
    c.wait_synced().await.unwrap();
    assert_eq!(
        c.title(),
        a.title(),
        "what the disk could not take at first is all there"
    );
    assert!(c.title().contains("49:") && c.title().contains("saved before the disk filled"));
    assert!(c.body().contains(&"z".repeat(4000)));
    assert_eq!(http(server.addr, "GET", "/healthz", &[]).await.0, 200);
}

/// `/readyz` status from a blocking context inside `eventually`.
fn futures_ready(addr: SocketAddr) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A supervisor that stopped reading the log (it died with the pipe): from then on
/// every log line fails to write. The server goes on serving (refused tokens, each
/// logged, get their close code; an edit is saved) and SIGTERM still stops it
/// cleanly. Before, the first line that failed panicked the task that logged it
/// (tracing reported the failure with `eprintln!`, itself failing on the same
/// broken stderr), and shutdown never finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_any_more_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("CHORUS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning chorus");
    // Read up to the address, then close both pipes: nobody reads the log any more.
    drop(child.stderr.take());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("chorus logs its address").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    drop(lines);
    for _ in 0..3 {
        let bad = format!("ws://{addr}/v1/ws/{APP}/doc-log?token=not-a-token");
        let mut ws = chorus_e2e::raw_connect(&bad).await.unwrap();
        let (code, _) = chorus_e2e::close_code(&mut ws).await.unwrap();
        assert_eq!(code, 4401, "a refusal (logged) still gets its close code");
    }
    let token = token_for(APP, SECRETS[0], "doc-log", "writer", chorus_e2e_mode());
    let client = YClient::connect(&format!(
        "ws://{addr}/v1/ws/{APP}/doc-log?token={token}&chorus=1"
    ))
    .await
    .unwrap();
    client.wait_synced().await.unwrap();
    let n = client.insert_title(0, "still saving");
    eventually(10, "the edit is saved", || client.saved() >= n)
        .await
        .unwrap();
    client.close().await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut status = None;
    for _ in 0..150 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("SIGTERM did not stop a chorus whose log nobody reads");
    };
    assert_eq!(status.code(), Some(0));
}

//! The bus over TLS (`rediss://`), against a `redis-server` the test starts with a
//! certificate signed by a CA the test makes (chorus-tls-fixture).

use bytes::Bytes;
use chorus_cluster::{Bus, BusConfig, BusError, BusEvent};
use chorus_tls_fixture::{TestCa, TlsRedis};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KEY: &[u8] = b"the tests' cluster key, 32+ bytes";

fn config(url: &str, node: &str) -> BusConfig {
    let mut config = BusConfig::new(url, "chorus-test:tls", node).with_keys(vec![KEY.to_vec()]);
    config.heartbeat = Duration::from_millis(100);
    config.node_timeout = Duration::from_millis(600);
    config
}

/// Start a bus, or the error, within 10 s (a refused handshake must not hang).
async fn start(config: BusConfig) -> Result<(Bus, mpsc::Receiver<BusEvent>), BusError> {
    tokio::time::timeout(
        Duration::from_secs(10),
        Bus::start(config, CancellationToken::new()),
    )
    .await
    .expect("Bus::start answers within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_buses_talk_over_rediss_trusting_the_ca_file() {
    let ca = TestCa::new("chorus test CA");
    let redis = TlsRedis::start(&ca);
    let (a, _a_events) = start(config(&redis.url(), "a").with_ca_file(ca.ca_file()))
        .await
        .expect("a on the TLS bus");
    let (_b, mut b_events) = start(config(&redis.url(), "b").with_ca_file(ca.ca_file()))
        .await
        .expect("b on the TLS bus");
    assert!(a.is_connected());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // b subscribes as it starts; messages a sends before that are not heard, so
    // a keeps sending until b hears one.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        a.send("b", Bytes::from_static(b"over TLS"));
        while let Ok(event) = b_events.try_recv() {
            if let BusEvent::Message { from, payload } = event {
                assert_eq!((&*from, &payload[..]), ("a", &b"over TLS"[..]));
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b heard nothing from a over TLS"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_signed_by_another_ca_is_refused_with_the_reason() {
    let ca = TestCa::new("chorus test CA");
    let other = TestCa::new("someone else's CA");
    let redis = TlsRedis::start(&ca);
    let e = start(config(&redis.url(), "a").with_ca_file(other.ca_file()))
        .await
        .expect_err("a certificate from an untrusted CA");
    let text = e.to_string();
    assert!(matches!(e, BusError::Tls { .. }), "{text}");
    assert!(
        text.contains("TLS") && text.contains(&other.ca_file().display().to_string()),
        "{text}"
    );
    assert!(text.contains("UnknownIssuer"), "rustls's reason: {text}");

    // The system's roots do not know the test's CA either.
    let e = start(config(&redis.url(), "a"))
        .await
        .expect_err("no CA file");
    assert!(matches!(e, BusError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("system's roots"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_whose_certificate_names_another_host_is_refused() {
    let ca = TestCa::new("chorus test CA");
    // Signed by the trusted CA, but for another host: a man in the middle with a
    // certificate of his own from the same CA.
    let redis = TlsRedis::start_as(&ca, &["elsewhere.invalid"]);
    let e = start(config(&redis.url(), "a").with_ca_file(ca.ca_file()))
        .await
        .expect_err("a certificate for another host");
    assert!(matches!(e, BusError::Tls { .. }), "{e}");
    assert!(
        e.to_string().contains("not valid for name"),
        "rustls's reason: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_to_the_tls_port_does_not_work() {
    let ca = TestCa::new("chorus test CA");
    let redis = TlsRedis::start(&ca);
    let result = start(config(&redis.plain_url(), "a")).await;
    let e = result.expect_err("redis:// to a TLS-only port");
    assert!(matches!(e, BusError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_refused_before_connecting() {
    let e = start(config("redis://127.0.0.1:1", "a").with_ca_file("/nonexistent"))
        .await
        .expect_err("a CA file for a plaintext bus");
    assert!(e.to_string().contains("rediss://"), "{e}");

    let e = start(config("rediss://127.0.0.1:1/#insecure", "a"))
        .await
        .expect_err("#insecure");
    assert!(e.to_string().contains("insecure"), "{e}");

    let e = start(config("rediss://127.0.0.1:1", "a").with_ca_file("/nonexistent/ca.pem"))
        .await
        .expect_err("a CA file that is not there");
    assert!(
        matches!(e, BusError::CaFile { .. }) && e.to_string().contains("/nonexistent/ca.pem"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = start(config("rediss://127.0.0.1:1", "a").with_ca_file(&empty))
        .await
        .expect_err("a CA file without a certificate");
    assert!(e.to_string().contains("no certificate"), "{e}");
}

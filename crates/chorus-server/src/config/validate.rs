//! [`Config::validate`]: whether the values make sense together (ids, secrets and
//! their length, the demo mode's address, cluster settings, sizes and limits),
//! refused with a reason an operator can act on.

use super::convert::StoreLocation;
use super::error::ConfigError;
use super::redact::redact_url_password;
use super::schema::Config;
use crate::ids::is_id_char;

impl Config {
    /// Check the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.demo && !self.demo_public && !self.bind.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "demo mode mints a token for anyone who asks: bind it to a loopback address \
                 (127.0.0.1:{port}), or set demo_public = true to serve it on {bind}",
                port = self.bind.port(),
                bind = self.bind
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for app in &self.apps {
            if app.id.is_empty() || !app.id.chars().all(is_id_char) {
                return Err(ConfigError::Invalid(format!(
                    "app id {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                    app.id
                )));
            }
            if !seen.insert(app.id.as_str()) || (self.demo && app.id == "demo") {
                return Err(ConfigError::Invalid(format!(
                    "app id {:?} is registered twice",
                    app.id
                )));
            }
            let sessions = &app.sessions;
            if sessions.idle_warning_secs > 0
                && sessions.idle_close_secs > 0
                && sessions.idle_warning_secs >= sessions.idle_close_secs
            {
                return Err(ConfigError::Invalid(format!(
                    "app {:?}: sessions.idle_warning_secs ({}) must be less than sessions.idle_close_secs ({}), or 0",
                    app.id, sessions.idle_warning_secs, sessions.idle_close_secs
                )));
            }
            if app.secrets.is_empty() || app.secrets.iter().any(String::is_empty) {
                return Err(ConfigError::Invalid(format!(
                    "app {:?} needs at least one non-empty secret",
                    app.id
                )));
            }
        }
        self.check_secret_strength()?;
        self.whitelists()?;
        let location = self.store_location()?;
        if let Some(ca) = &self.bus_ca_file {
            if !self
                .bus
                .as_deref()
                .is_some_and(|b| b.starts_with("rediss://"))
            {
                return Err(ConfigError::Invalid(format!(
                    "bus_ca_file {} is set, but the bus is not a rediss:// (TLS) URL",
                    ca.display()
                )));
            }
        }
        if let Some(bus) = &self.bus {
            if !bus.starts_with("redis://") && !bus.starts_with("rediss://") {
                return Err(ConfigError::Invalid(format!(
                    "bus {:?} must be a redis://HOST:PORT or rediss://HOST:PORT (TLS) URL",
                    redact_url_password(bus)
                )));
            }
            if !matches!(location, StoreLocation::Postgres(_)) {
                return Err(ConfigError::Invalid(
                    "a bus (cluster mode) needs store = \"postgres://…\": nodes share their documents through it".into(),
                ));
            }
            if self.cluster_keys.is_empty() {
                return Err(ConfigError::Invalid(
                    "a bus (cluster mode) needs cluster_keys: anyone who can reach the Redis could otherwise speak for a node".into(),
                ));
            }
            if let Some(short) = self.cluster_keys.iter().position(|k| k.len() < 32) {
                return Err(ConfigError::Invalid(format!(
                    "cluster_keys[{short}] must be at least 32 bytes"
                )));
            }
            if self.lease_ttl_ms < 300 {
                return Err(ConfigError::Invalid(
                    "lease_ttl_ms must be at least 300".into(),
                ));
            }
        }
        if let Some(node) = &self.node_id {
            if node.is_empty() || node.len() > 128 || !node.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::Invalid(format!(
                    "node_id {node:?} must be 1 to 128 visible ASCII characters"
                )));
            }
        }
        if self.max_message_size < 1024 {
            return Err(ConfigError::Invalid(
                "max_message_size must be at least 1024 bytes".into(),
            ));
        }
        if self.keepalive_secs == 0 || self.keepalive_secs >= 30 {
            return Err(ConfigError::Invalid(
                "keepalive_secs must be between 1 and 29 (stock clients give up after 30 s)".into(),
            ));
        }
        if self.max_loaded_docs == 0 || self.compact_after_updates == 0 {
            return Err(ConfigError::Invalid(
                "max_loaded_docs and compact_after_updates must be at least 1".into(),
            ));
        }
        let bursts = std::iter::once(("", self.limits.bytes_burst)).chain(
            self.apps
                .iter()
                .filter_map(|a| a.limits.bytes_burst.map(|b| (a.id.as_str(), b))),
        );
        for (app, burst) in bursts {
            if burst > 0 && burst < self.max_message_size as u64 {
                let whose = if app.is_empty() {
                    String::new()
                } else {
                    format!("app {app:?}: ")
                };
                return Err(ConfigError::Invalid(format!(
                    "{whose}limits.bytes_burst ({burst}) must be 0 or at least max_message_size ({}): the largest message must pass",
                    self.max_message_size
                )));
            }
        }
        if self.outbound_queue_frames == 0 {
            return Err(ConfigError::Invalid(
                "outbound_queue_frames must be at least 1".into(),
            ));
        }
        if self.outbound_queue_bytes == 0 {
            return Err(ConfigError::Invalid(
                "outbound_queue_bytes must be at least 1".into(),
            ));
        }
        let http = &self.http_transport;
        for (key, value) in [
            ("session_timeout_secs", http.session_timeout_secs),
            ("heartbeat_secs", http.heartbeat_secs),
            ("poll_wait_secs", http.poll_wait_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "http_transport.{key} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use std::path::Path;

    use figment::Figment;

    #[test]
    fn cluster_mode_needs_cluster_keys_of_32_bytes_and_never_logs_them() {
        let cluster = |keys: &[&str]| Config {
            store: "postgres://chorus@127.0.0.1:5432/chorus".into(),
            bus: Some("redis://127.0.0.1:6379".into()),
            cluster_keys: keys.iter().map(|k| k.to_string()).collect(),
            apps: vec![AppConfig::new("wiki", [&"s".repeat(32)])],
            ..Config::default()
        };
        let err = |c: Config| c.validate().unwrap_err().to_string();
        assert!(
            err(cluster(&[])).contains("cluster_keys"),
            "{}",
            err(cluster(&[]))
        );
        let long = "k".repeat(32);
        assert!(err(cluster(&[&long, "short"])).contains("cluster_keys[1]"));
        let ok = cluster(&[&long]);
        assert!(ok.validate().is_ok(), "{:?}", ok.validate());
        assert!(
            !ok.redacted().to_string().contains(&long),
            "a key in the log"
        );
    }

    #[test]
    fn a_bus_ca_file_needs_a_tls_bus() {
        let cluster = |bus: &str, ca: Option<&str>| Config {
            store: "postgres://chorus@127.0.0.1:5432/chorus?sslmode=verify-full".into(),
            bus: Some(bus.into()),
            bus_ca_file: ca.map(Into::into),
            cluster_keys: vec!["k".repeat(32)],
            apps: vec![AppConfig::new("wiki", [&"s".repeat(32)])],
            ..Config::default()
        };
        let ok = cluster(
            "rediss://redis.internal:6380",
            Some("/etc/chorus/redis-ca.pem"),
        );
        assert!(ok.validate().is_ok(), "{:?}", ok.validate());
        assert!(cluster("rediss://redis.internal:6380", None)
            .validate()
            .is_ok());
        let e = cluster("redis://redis.internal:6379", Some("/ca.pem"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("bus_ca_file") && e.contains("rediss://"), "{e}");
        let e = cluster("http://redis.internal", None)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("rediss://"), "{e}");
    }

    #[test]
    fn demo_mode_starts_on_loopback_only_unless_told_otherwise() {
        let demo = |bind: &str, public: bool| Config {
            demo: true,
            demo_public: public,
            bind: bind.parse().unwrap(),
            ..Config::default()
        };
        assert!(demo("127.0.0.1:10123", false).validate().is_ok());
        assert!(demo("[::1]:10123", false).validate().is_ok());
        let refused = demo("0.0.0.0:10123", false)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(refused.contains("demo_public"), "{refused}");
        assert!(demo("192.0.2.7:10123", false).validate().is_err());
        assert!(demo("0.0.0.0:10123", true).validate().is_ok());
        let plain = Config {
            bind: "0.0.0.0:10123".parse().unwrap(),
            ..Config::default()
        };
        assert!(
            plain.validate().is_ok(),
            "only demo mode is held to loopback"
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[[apps]]\nid = \"wiki\"\nsecrets = []\n")?;
            let err = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("at least one non-empty secret"));
            jail.create_file("typo.toml", "bnid = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("typo.toml")), Figment::new()).is_err());
            assert!(matches!(
                Config::load(Some(Path::new("nope.toml")), Figment::new()),
                Err(ConfigError::MissingFile(_))
            ));
            Ok(())
        });
    }
}

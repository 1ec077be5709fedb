//! Loading: the layers (defaults, the TOML file, `CHORUS_*` environment variables,
//! command-line flags) merged by figment into one [`Config`], and which environment
//! variables count as configuration.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use super::error::ConfigError;
use super::schema::Config;

/// Every key of [`Config`], as read from `CHORUS_<KEY>` environment variables.
const ENV_KEYS: [&str; 33] = [
    "bind",
    "store",
    "bus",
    "node_id",
    "bus_prefix",
    "lease_ttl_ms",
    "data_dir",
    "demo",
    "demo_secret",
    "demo_public",
    "admin_token",
    "log_format",
    "max_message_size",
    "max_awareness_state_bytes",
    "outbound_queue_frames",
    "shutdown_grace_secs",
    "keepalive_secs",
    "token_leeway_secs",
    "store_group_commit",
    "idle_unload_secs",
    "max_loaded_docs",
    "compact_after_updates",
    "compact_after_bytes",
    "max_document_bytes",
    "store_cache_mb",
    "history_interval_secs",
    "external_base_ttl_secs",
    "webhook_retry_base_ms",
    "webhook_max_age_secs",
    "close_delay_secs",
    "saved_webhook_secs",
    "limits",
    "apps",
];

/// The environment layer: `CHORUS_<KEY>` for each top-level key of [`Config`].
fn environment() -> Env {
    // CHORUS_DATA_DIR → data_dir; `CHORUS_APPS='[{id="wiki",secrets=["…"]}]'` works too.
    // Only configuration keys are read: other CHORUS_* variables (CHORUS_LOG,
    // CHORUS_CONFIG, a test suite's CHORUS_BIN) are not configuration.
    Env::prefixed("CHORUS_").only(&ENV_KEYS)
}

impl Config {
    /// Load defaults → `file` → `CHORUS_*` env → `overrides` (flags given on the command line).
    pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(environment());
        let config: Config = fig
            .merge(overrides)
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
// figment's Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::Limits;

    #[test]
    fn file_then_overrides() {
        // Every test that reads the environment runs in a Jail: jails are serialised,
        // so one test's variables never leak into another's load.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "bind = \"127.0.0.1:9999\"\n[[apps]]\nid = \"wiki\"\nsecrets = [\"a\", \"b\"]\n",
            )?;
            let path = Path::new("c.toml");
            let c = Config::load(Some(path), Figment::new()).unwrap();
            assert_eq!(c.bind.port(), 9999);
            assert_eq!(c.apps[0].secrets, ["a", "b"]);
            assert!(c.apps[0].enabled);
            let flags = Figment::new().merge(Serialized::default("bind", "127.0.0.1:1"));
            assert_eq!(Config::load(Some(path), flags).unwrap().bind.port(), 1);
            Ok(())
        });
    }

    #[test]
    fn env_keys_cover_every_field_and_nothing_else() {
        let fields = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<_> = fields.as_object().unwrap().keys().cloned().collect();
        let mut keys: Vec<_> = ENV_KEYS.iter().map(|k| k.to_string()).collect();
        fields.sort();
        keys.sort();
        assert_eq!(fields, keys);
    }

    /// The keys of `Config` as it serializes them (its defaults, every field present).
    fn fields() -> Vec<String> {
        let fields = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<_> = fields.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        fields
    }

    #[test]
    fn every_field_of_config_is_read_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            for field in fields() {
                jail.set_env(format!("CHORUS_{}", field.to_uppercase()), "1");
            }
            for stray in ["CHORUS_LOG", "CHORUS_CONFIG", "CHORUS_BIN"] {
                jail.set_env(stray, "x");
            }
            let mut read: Vec<String> = environment().iter().map(|(k, _)| k.to_string()).collect();
            read.sort();
            assert_eq!(read, fields(), "every field, and nothing else");
            Ok(())
        });
    }

    #[test]
    fn limits_are_one_table_in_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHORUS_LIMITS", "{messages_per_sec=5}");
            // Nested keys are not separate variables: these are not configuration.
            jail.set_env("CHORUS_LIMITS__AWARENESS_PER_SEC", "7");
            jail.set_env("CHORUS_LIMITS.BYTES_PER_SEC", "7");
            let c = Config::load(None, Figment::new()).unwrap();
            let defaults = Limits::default();
            assert_eq!(c.limits.messages_per_sec, 5);
            assert_eq!(c.limits.messages_burst, defaults.messages_burst);
            assert_eq!(c.limits.awareness_per_sec, defaults.awareness_per_sec);
            assert_eq!(c.limits.bytes_per_sec, defaults.bytes_per_sec);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_and_strays_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "bind = \"127.0.0.1:9999\"\n")?;
            jail.set_env("CHORUS_BIND", "127.0.0.1:7777");
            jail.set_env("CHORUS_LOG", "debug");
            jail.set_env("CHORUS_BIN", "/somewhere/chorus");
            jail.set_env("CHORUS_APPS", r#"[{id="wiki",secrets=["s"]}]"#);
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            assert_eq!(c.bind.port(), 7777);
            assert_eq!(c.apps[0].id, "wiki");
            Ok(())
        });
    }
}

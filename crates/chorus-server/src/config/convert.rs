//! What the settings mean to the other crates: the store location, each app's
//! whitelist (policy and editor files are read here), the document policy, webhook
//! delivery, the app registry, and this node's cluster name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chorus_auth::{App, AppRegistry, Secret};
use chorus_core::{Whitelist, WhitelistMode};
use chorus_whitelist::{EditorProfile, Policy};

use super::error::ConfigError;
use super::redact::redact_url_password;
use super::schema::Config;

/// Where documents are stored, as the `store` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded sled store in this directory.
    Sled(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

impl Config {
    /// This node's id in a cluster: `node_id`, or the host name and port.
    pub fn node_name(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "chorus".to_owned());
        format!("{host}:{}", self.bind.port())
    }

    /// Which store `store` names.
    pub fn store_location(&self) -> Result<StoreLocation, ConfigError> {
        let store = self.store.trim();
        if store == "sled" {
            Ok(StoreLocation::Sled(self.data_dir.clone()))
        } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(store.to_owned()))
        } else {
            Err(ConfigError::UnknownStore(redact_url_password(store)))
        }
    }

    /// The whitelist of every app that does not use the default one (policy files are
    /// read and validated here, so a bad file stops the start with its path and reason).
    pub fn whitelists(&self) -> Result<HashMap<String, Whitelist>, ConfigError> {
        let mut out = HashMap::new();
        for app in &self.apps {
            let profile = match EditorProfile::builtin(&app.editor) {
                Some(p) => p,
                None => {
                    let path = std::path::Path::new(&app.editor);
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: editor {:?} is neither html, tiptap nor a readable profile file: {e}",
                            app.id, app.editor
                        ))
                    })?;
                    let name = path
                        .file_stem()
                        .map_or("custom".into(), |s| s.to_string_lossy());
                    EditorProfile::from_json(&name, &text).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: editor {}: {e}",
                            app.id, app.editor
                        ))
                    })?
                }
            };
            let policy = match &app.whitelist {
                None if app.whitelist_mode == WhitelistMode::Strip && profile.is_identity() => {
                    continue
                }
                None => Whitelist::default().policy,
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: cannot read whitelist {}: {e}",
                            app.id,
                            path.display()
                        ))
                    })?;
                    Arc::new(Policy::from_json(&text).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: whitelist {}: {e}",
                            app.id,
                            path.display()
                        ))
                    })?)
                }
            };
            out.insert(
                app.id.clone(),
                Whitelist::new(policy, app.whitelist_mode).with_profile(Arc::new(profile)),
            );
        }
        Ok(out)
    }

    /// How documents are kept in memory and in the store.
    pub fn doc_policy(&self) -> chorus_docs::DocPolicy {
        chorus_docs::DocPolicy {
            idle_unload: std::time::Duration::from_secs(self.idle_unload_secs),
            max_loaded: self.max_loaded_docs,
            compact_after_updates: self.compact_after_updates,
            compact_after_bytes: self.compact_after_bytes,
            max_document_bytes: self.max_document_bytes,
            history_interval: std::time::Duration::from_secs(self.history_interval_secs),
            base_ttl: std::time::Duration::from_secs(self.external_base_ttl_secs),
            close_delay: std::time::Duration::from_secs(self.close_delay_secs),
            saved_webhook_every: std::time::Duration::from_secs(self.saved_webhook_secs),
        }
    }

    /// Webhook delivery settings.
    pub fn hooks_config(&self) -> chorus_hooks::HooksConfig {
        let base = std::time::Duration::from_millis(self.webhook_retry_base_ms.max(1));
        let defaults = chorus_hooks::HooksConfig::default();
        chorus_hooks::HooksConfig {
            backoff_base: base,
            backoff_cap: defaults.backoff_cap.max(base),
            max_age: std::time::Duration::from_secs(self.webhook_max_age_secs.max(1)),
            // Cluster mode: one node delivers every node's events, read from the
            // shared outbox.
            shared_outbox_poll: self
                .bus
                .is_some()
                .then_some(std::time::Duration::from_millis(250)),
            ..defaults
        }
    }

    /// Each app's history retention.
    pub fn retention_policies(&self) -> HashMap<String, chorus_docs::RetentionPolicy> {
        let age = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        self.apps
            .iter()
            .map(|a| {
                let r = &a.retention;
                let policy = chorus_docs::RetentionPolicy {
                    auto_points: r.auto_points,
                    max_auto_age: age(r.auto_point_max_age_secs),
                    named_points: r.named_points,
                    max_named_age: age(r.named_point_max_age_secs),
                    evict_after: age(r.evict_after_secs),
                };
                (a.id.clone(), policy)
            })
            .collect()
    }

    /// Each app's session policy.
    pub fn session_policies(&self) -> HashMap<String, chorus_docs::SessionPolicy> {
        let secs = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        self.apps
            .iter()
            .map(|a| {
                let s = &a.sessions;
                let policy = chorus_docs::SessionPolicy {
                    max_editors: s.max_editors,
                    over_max_editors: match s.over_max_editors {
                        super::schema::OverMaxEditors::View => chorus_docs::OverMaxEditors::View,
                        super::schema::OverMaxEditors::Refuse => {
                            chorus_docs::OverMaxEditors::Refuse
                        }
                    },
                    idle_warning: secs(s.idle_warning_secs),
                    idle_close: secs(s.idle_close_secs),
                    max_lifetime: secs(s.max_session_secs),
                };
                (a.id.clone(), policy)
            })
            .collect()
    }

    /// Apps in exclusive mode (`collaboration = false`).
    pub fn exclusive_apps(&self) -> std::collections::HashSet<String> {
        self.apps
            .iter()
            .filter(|a| !a.collaboration)
            .map(|a| a.id.clone())
            .collect()
    }

    /// Where each app's webhooks go and the secret that signs them (apps without a
    /// `callback_url` are absent).
    pub fn hook_targets(&self) -> HashMap<String, chorus_hooks::HookTarget> {
        self.apps
            .iter()
            .filter_map(|a| {
                let url = a.callback_url.clone()?;
                let secret = a.secrets.first()?.as_bytes().to_vec();
                Some((
                    a.id.clone(),
                    chorus_hooks::HookTarget {
                        callback_url: url,
                        secret,
                    },
                ))
            })
            .collect()
    }

    /// The app registry these settings describe (`demo_secret` must be resolved first).
    pub fn app_registry(&self) -> AppRegistry {
        let mut apps: Vec<App> = self
            .apps
            .iter()
            .map(|a| {
                App::new(
                    a.id.clone(),
                    a.secrets.iter().cloned().map(Secret::new).collect(),
                    a.enabled,
                )
            })
            .collect();
        if self.demo {
            if let Some(secret) = &self.demo_secret {
                apps.push(App::new("demo", vec![Secret::new(secret.clone())], true));
            }
        }
        AppRegistry::new(apps).with_leeway(self.token_leeway_secs)
    }
}

#[cfg(test)]
// figment's Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use std::path::Path;

    use figment::Figment;

    #[test]
    fn whitelist_per_app_is_loaded_and_a_bad_file_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("strict.json", chorus_whitelist::DEFAULT_POLICY_JSON)?;
            jail.create_file(
                "c.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\nwhitelist = \"strict.json\"\nwhitelist_mode = \"reject\"\n\
                 [[apps]]\nid = \"cms\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\n",
            )?;
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            let w = c.whitelists().unwrap();
            assert_eq!(w["wiki"].mode, WhitelistMode::Reject);
            assert!(
                !w.contains_key("cms"),
                "default whitelist for apps that set none"
            );

            jail.create_file("bad.json", r#"{"elements": {"script": []}, "global_attributes": [], "url_attributes": [], "url_schemes": [], "styles": {}, "marks": {}}"#)?;
            jail.create_file(
                "bad.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\nwhitelist = \"bad.json\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("bad.json"), "{err}");
            assert!(err.to_string().contains("script"), "{err}");
            jail.create_file(
                "mode.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\nwhitelist_mode = \"maybe\"\n",
            )?;
            assert!(Config::load(Some(Path::new("mode.toml")), Figment::new()).is_err());
            Ok(())
        });
    }

    #[test]
    fn an_apps_editor_is_html_tiptap_or_a_profile_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mine.json",
                r#"{"fragment": "doc", "nodes": {"para": {"html": "p"}}, "marks": {"b": {"html": "strong"}}}"#,
            )?;
            jail.create_file(
                "c.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\neditor = \"tiptap\"\n\
                 [[apps]]\nid = \"cms\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\neditor = \"mine.json\"\n\
                 [[apps]]\nid = \"blog\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\n",
            )?;
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            let w = c.whitelists().unwrap();
            assert_eq!(w["wiki"].profile.fragment(), "default");
            assert_eq!(w["wiki"].profile.name(), "tiptap");
            assert_eq!(w["cms"].profile.fragment(), "doc");
            assert!(w["cms"].profile.node("para").is_some());
            assert!(!w.contains_key("blog"), "html, the default, needs no entry");
            assert_eq!(c.apps[2].editor, "html");
            jail.create_file(
                "bad.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\neditor = \"quill\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("neither html, tiptap"), "{err}");
            Ok(())
        });
    }
}

//! Keeping secrets out of logs and messages: URL passwords ([`redact_url_password`])
//! and the start-up log's copy of the configuration ([`Config::redacted`]).

use super::schema::Config;

/// `scheme://user:secret@host/…` → `scheme://user:[redacted]@host/…`; anything without a
/// password is returned as it is.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:[redacted]@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// The configuration as JSON with every secret replaced by `"[redacted]"`, for the start-up log.
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        for key in ["demo_secret", "admin_token"] {
            if let Some(s) = v.get_mut(key).filter(|s| !s.is_null()) {
                *s = "[redacted]".into();
            }
        }
        if let Some(store) = v.get_mut("store") {
            *store = redact_url_password(&self.store).into();
        }
        if let Some(keys) = v.get_mut("cluster_keys").and_then(|k| k.as_array_mut()) {
            for k in keys {
                *k = "[redacted]".into();
            }
        }
        if let Some(bus) = self.bus.as_deref() {
            v["bus"] = redact_url_password(bus).into();
        }
        if let Some(apps) = v.get_mut("apps").and_then(|a| a.as_array_mut()) {
            for app in apps {
                if let Some(secrets) = app.get_mut("secrets").and_then(|s| s.as_array_mut()) {
                    for s in secrets {
                        *s = "[redacted]".into();
                    }
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, StoreLocation};

    #[test]
    fn store_urls_lose_their_password_in_the_log_and_in_errors() {
        assert_eq!(
            redact_url_password("postgres://chorus:hunter2@db:5432/chorus?sslmode=disable"),
            "postgres://chorus:[redacted]@db:5432/chorus?sslmode=disable"
        );
        assert_eq!(
            redact_url_password("postgres://chorus@db/chorus"),
            "postgres://chorus@db/chorus"
        );
        let c = Config {
            store: "postgres://chorus:hunter2@db:5432/chorus".into(),
            ..Config::default()
        };
        assert!(!c.redacted().to_string().contains("hunter2"));
        assert_eq!(
            c.store_location().unwrap(),
            StoreLocation::Postgres("postgres://chorus:hunter2@db:5432/chorus".into())
        );
        let bad = Config {
            store: "mysql://root:hunter2@db/x".into(),
            ..Config::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("neither") && !e.contains("hunter2"), "{e}");
        assert_eq!(
            Config::default().store_location().unwrap(),
            StoreLocation::Sled("./data".into())
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config {
            demo_secret: Some("topsecret".into()),
            admin_token: Some("admin-sesame".into()),
            apps: vec![AppConfig::new("wiki", ["hunter2"])],
            ..Config::default()
        };
        let text = c.redacted().to_string();
        assert!(!text.contains("hunter2") && !text.contains("topsecret"));
        assert!(!text.contains("admin-sesame"));
        assert!(text.contains("wiki"));
    }
}

//! App secrets: read from `secrets_file` at start ([`Config::read_secret_files`]),
//! and judged for length ([`Config::weak_secrets`]): an HMAC key shorter than
//! [`MIN_SECRET_BYTES`] can be guessed offline from any token it signed.

use std::path::Path;

use super::error::ConfigError;
use super::schema::Config;

/// The shortest app secret accepted without `allow_weak_secrets`: 32 bytes, the
/// output size of SHA-256 (what `openssl rand -base64 32` gives is 44).
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Fill each app's `secrets` from its `secrets_file`. An app must name exactly
    /// one of the two; the file must hold at least one secret. Errors name the app
    /// and the file, never a secret.
    pub fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        for app in &mut self.apps {
            match (&app.secrets_file, app.secrets.is_empty()) {
                (Some(_), false) => {
                    return Err(ConfigError::Invalid(format!(
                        "app {:?} gives both secrets and secrets_file: keep one",
                        app.id
                    )))
                }
                (None, true) => {
                    return Err(ConfigError::Invalid(format!(
                        "app {:?} needs at least one non-empty secret (secrets or secrets_file)",
                        app.id
                    )))
                }
                (None, false) => {}
                (Some(path), true) => {
                    app.secrets = read_secrets(path).map_err(|why| {
                        ConfigError::Invalid(format!(
                            "app {:?}: secrets_file {}: {why}",
                            app.id,
                            path.display()
                        ))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Who has a secret shorter than [`MIN_SECRET_BYTES`]: app ids (`demo` for a
    /// configured `demo_secret`), each once.
    pub fn weak_secrets(&self) -> Vec<&str> {
        let weak = |s: &String| s.len() < MIN_SECRET_BYTES;
        let mut ids: Vec<&str> = self
            .apps
            .iter()
            .filter(|a| a.secrets.iter().any(weak))
            .map(|a| a.id.as_str())
            .collect();
        if self.demo && self.demo_secret.as_ref().is_some_and(weak) {
            ids.push("demo");
        }
        ids
    }

    /// Refuse a weak secret unless `allow_weak_secrets` says otherwise.
    pub(super) fn check_secret_strength(&self) -> Result<(), ConfigError> {
        if self.allow_weak_secrets {
            return Ok(());
        }
        match self.weak_secrets().first() {
            None => Ok(()),
            Some(id) => Err(ConfigError::Invalid(format!(
                "app {id:?} has a secret shorter than {MIN_SECRET_BYTES} bytes: generate one with \
                 `openssl rand -base64 32`, or set allow_weak_secrets = true \
                 (CHORUS_ALLOW_WEAK_SECRETS, --allow-weak-secrets) to start anyway"
            ))),
        }
    }
}

/// The secrets of a file: one a line, surrounding whitespace trimmed, blank lines
/// and lines starting with `#` skipped.
fn read_secrets(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let secrets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if secrets.is_empty() {
        return Err("holds no secret".into());
    }
    Ok(secrets)
}

#[cfg(test)]
// figment's Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use figment::Figment;

    const STRONG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_short_secret_is_refused_naming_the_app_but_not_the_secret() {
        let config = |secret: &str, allow: bool| Config {
            allow_weak_secrets: allow,
            apps: vec![
                AppConfig::new("cms", [STRONG]),
                AppConfig::new("wiki", [secret]),
            ],
            ..Config::default()
        };
        let err = config("hunter2", false).validate().unwrap_err().to_string();
        assert!(
            err.contains("\"wiki\"") && err.contains("32 bytes"),
            "{err}"
        );
        assert!(err.contains("allow_weak_secrets"), "{err}");
        assert!(!err.contains("hunter2"), "the secret in an error: {err}");
        // 31 bytes: still weak; 32: strong.
        assert!(config(&STRONG[1..], false).validate().is_err());
        assert!(config(STRONG, false).validate().is_ok());
        // The flag admits it, and the weak app is still known (to warn about).
        let allowed = config("hunter2", true);
        assert!(allowed.validate().is_ok());
        assert_eq!(allowed.weak_secrets(), ["wiki"]);
    }

    #[test]
    fn a_configured_demo_secret_is_judged_too() {
        let demo = |secret: &str| Config {
            demo: true,
            demo_secret: Some(secret.into()),
            ..Config::default()
        };
        let err = demo("demo-secret").validate().unwrap_err().to_string();
        assert!(err.contains("\"demo\""), "{err}");
        assert!(demo(STRONG).validate().is_ok());
    }

    #[test]
    fn the_flag_comes_from_the_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[[apps]]\nid = \"wiki\"\nsecrets = [\"short\"]\n")?;
            let path = Path::new("c.toml");
            let err = Config::load(Some(path), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("\"wiki\""), "{err}");
            jail.set_env("CHORUS_ALLOW_WEAK_SECRETS", "true");
            let c = Config::load(Some(path), Figment::new()).unwrap();
            assert!(c.allow_weak_secrets);
            Ok(())
        });
    }

    #[test]
    fn secrets_come_from_a_file_one_a_line() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wiki.secrets",
                &format!("# current first\n{STRONG}\n\n  {STRONG}-previous  \n"),
            )?;
            jail.create_file(
                "c.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets_file = \"wiki.secrets\"\n",
            )?;
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            assert_eq!(
                c.apps[0].secrets,
                [STRONG.to_owned(), format!("{STRONG}-previous")]
            );
            let log = c.redacted().to_string();
            assert!(
                !log.contains(STRONG) && log.contains("wiki.secrets"),
                "{log}"
            );

            let load = |toml: &str| {
                jail.create_file("x.toml", toml).unwrap();
                Config::load(Some(Path::new("x.toml")), Figment::new())
                    .unwrap_err()
                    .to_string()
            };
            let both = load(&format!(
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"{STRONG}\"]\nsecrets_file = \"wiki.secrets\"\n"
            ));
            assert!(both.contains("both secrets and secrets_file"), "{both}");
            let neither = load("[[apps]]\nid = \"wiki\"\n");
            assert!(neither.contains("secrets or secrets_file"), "{neither}");
            let missing = load("[[apps]]\nid = \"wiki\"\nsecrets_file = \"nope\"\n");
            assert!(
                missing.contains("\"wiki\"") && missing.contains("nope"),
                "{missing}"
            );
            jail.create_file("empty.secrets", "# nothing yet\n\n")?;
            let empty = load("[[apps]]\nid = \"wiki\"\nsecrets_file = \"empty.secrets\"\n");
            assert!(empty.contains("holds no secret"), "{empty}");
            // A file's secrets are judged like any others.
            jail.create_file("weak.secrets", "short\n")?;
            let weak = load("[[apps]]\nid = \"wiki\"\nsecrets_file = \"weak.secrets\"\n");
            assert!(
                weak.contains("32 bytes") && !weak.contains("short\""),
                "{weak}"
            );
            Ok(())
        });
    }
}

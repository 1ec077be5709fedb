//! Loading: the layers (defaults, the TOML file, `CHORUS_*` environment variables,
//! command-line flags) merged by figment into one [`Config`], and which environment
//! variables count as configuration.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::error::ConfigError;
use super::schema::Config;

/// Every top-level key of [`Config`], each read from `CHORUS_<KEY>`: the field names
/// its `Deserialize` impl accepts (as the file spells them, renames and aliases
/// included), so a new field is configurable from the environment as it is from the
/// file, with no list to keep. A nested table is one variable (`CHORUS_LIMITS='{..}'`).
fn env_keys() -> &'static [&'static str] {
    struct_fields::<Config>().expect("Config deserializes from a struct (no #[serde(flatten)])")
}

/// The field names a struct's derived `Deserialize` impl passes to
/// `deserialize_struct` (serde's derive lists every accepted name there, aliases
/// too); `None` if `T` does not deserialize from a struct.
fn struct_fields<'de, T: Deserialize<'de>>() -> Option<&'static [&'static str]> {
    /// A deserializer that only records the field names it is asked for.
    struct Fields(Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("only the field names were wanted"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }

    let mut fields = Fields(None);
    // Always an error: the names are all that is wanted.
    let _ = T::deserialize(&mut fields);
    fields.0
}

/// The environment layer: `CHORUS_<KEY>` for each top-level key of [`Config`].
fn environment() -> Env {
    // CHORUS_DATA_DIR → data_dir; `CHORUS_APPS='[{id="wiki",secrets=["…"]}]'` works too.
    // Only configuration keys are read: other CHORUS_* variables (CHORUS_LOG,
    // CHORUS_CONFIG, a test suite's CHORUS_BIN) are not configuration.
    Env::prefixed("CHORUS_").only(env_keys())
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
        let mut config: Config = fig
            .merge(overrides)
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.read_secret_files()?;
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

    const A: &str = "wiki-secret-a-0123456789abcdef0123";
    const B: &str = "wiki-secret-b-0123456789abcdef0123";

    #[test]
    fn file_then_overrides() {
        // Every test that reads the environment runs in a Jail: jails are serialised,
        // so one test's variables never leak into another's load.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                &format!("bind = \"127.0.0.1:9999\"\n[[apps]]\nid = \"wiki\"\nsecrets = [\"{A}\", \"{B}\"]\n"),
            )?;
            let path = Path::new("c.toml");
            let c = Config::load(Some(path), Figment::new()).unwrap();
            assert_eq!(c.bind.port(), 9999);
            assert_eq!(c.apps[0].secrets, [A, B]);
            assert!(c.apps[0].enabled);
            let flags = Figment::new().merge(Serialized::default("bind", "127.0.0.1:1"));
            assert_eq!(Config::load(Some(path), flags).unwrap().bind.port(), 1);
            Ok(())
        });
    }

    #[test]
    fn env_keys_are_the_fields_of_config() {
        let mut keys: Vec<_> = env_keys().iter().map(|k| k.to_string()).collect();
        keys.sort();
        // An alias (#[serde(alias)]) would be one more key here, read like the others.
        assert_eq!(keys, fields());
        assert_eq!(struct_fields::<u64>(), None);
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
            jail.set_env("CHORUS_APPS", format!(r#"[{{id="wiki",secrets=["{A}"]}}]"#));
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            assert_eq!(c.bind.port(), 7777);
            assert_eq!(c.apps[0].id, "wiki");
            Ok(())
        });
    }
}

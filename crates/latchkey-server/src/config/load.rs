//! Layered loading: defaults < TOML file < `LATCHKEY_*` environment < CLI flags.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::describe::{describe, env_name, nearest, DEFAULTS, ENV_SOURCE, FLAG_SOURCE};
use super::{secrets, Config};

/// Environment variables read from the process start with this.
pub const ENV_PREFIX: &str = "LATCHKEY_";

/// Variables with these prefixes belong to other tools (the test harness, the
/// `--config` flag) and are neither settings nor typos.
const FOREIGN_ENV: [&str; 2] = ["LATCHKEY_TEST_", "LATCHKEY_CONFIG"];

/// The default file, read when present and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "latchkey.toml";

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config PATH`: this file must exist. Without it, `./latchkey.toml` is read
    /// when present.
    pub config_file: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
}

/// A loaded configuration and what deserves a warning about how it was given.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged configuration (not yet validated: see [`Config::validate`]).
    pub config: Config,
    /// Unknown `LATCHKEY_*` variables and similar slips, one line each.
    pub warnings: Vec<String>,
    /// Where each key's value came from (`default`, `file PATH`, `env VAR`,
    /// `flag --NAME`), for `latchkey config check --show`.
    pub origins: BTreeMap<String, String>,
}

/// A provider under a name of ours: errors and `--show` say where a value came
/// from in configuration words (not a library type's name).
struct Named<P> {
    name: String,
    inner: P,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

fn named<P: Provider>(name: impl Into<String>, inner: P) -> Named<P> {
    Named {
        name: name.into(),
        inner,
    }
}

/// The configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` names a file that does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// A layer had a value of the wrong type, an unknown key, or bad TOML. The message
    /// names the key; secret values are never included.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layered configuration. `env` is the process environment (passed in
    /// so tests control it).
    pub fn load(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(named(DEFAULTS, Serialized::defaults(Config::default())));
        match &overrides.config_file {
            Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.clone())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if std::path::Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        let known = known_keys();
        let secret_keys: BTreeSet<String> = secrets::secret_names()
            .iter()
            .map(|n| format!("secrets.{n}"))
            .chain(super::mail::TEXT_KEYS.iter().map(|k| (*k).to_owned()))
            .collect();
        let mut warnings = Vec::new();
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if FOREIGN_ENV.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            if !known.contains(&key) {
                warnings.push(format!(
                    "environment variable {name} is not a latchkey setting and is ignored{}",
                    suggestion(&key, &known)
                ));
                continue;
            }
            // Secrets stay text whatever they look like; other values are parsed the
            // way figment parses environment values (numbers, booleans, [arrays]).
            let value = if secret_keys.contains(&key) {
                Value::from(raw)
            } else {
                raw.parse::<Value>().unwrap_or_else(|never| match never {})
            };
            figment = figment.merge(named(
                format!("{ENV_SOURCE}{name}"),
                Serialized::default(&key, value),
            ));
        }
        if let Some(listen) = overrides.listen {
            figment = figment.merge(named(
                format!("{FLAG_SOURCE}--listen"),
                Serialized::default("listen", listen),
            ));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(named(
                format!("{FLAG_SOURCE}--data-dir"),
                Serialized::default("data_dir", dir),
            ));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(&e)))?;
        let origins = known
            .iter()
            .map(|key| (key.clone(), origin(&figment, key)))
            .collect();
        Ok(Loaded {
            config,
            warnings,
            origins,
        })
    }
}

/// Where the value of `key` came from, in `--show` words.
fn origin(figment: &Figment, key: &str) -> String {
    let Some(metadata) = figment.find_metadata(key) else {
        return "default".into();
    };
    if let Some(file) = metadata.source.as_ref().and_then(|s| s.file_path()) {
        return format!("file {}", file.display());
    }
    if let Some(var) = metadata.name.strip_prefix(ENV_SOURCE) {
        return format!("env {var}");
    }
    if let Some(flag) = metadata.name.strip_prefix(FLAG_SOURCE) {
        return format!("flag {flag}");
    }
    "default".into()
}

/// Every settable key as a dotted path (`database.url`), derived from the defaults so
/// the list cannot fall behind the structs.
pub fn known_keys() -> BTreeSet<String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    if let Ok(value) = serde_json::to_value(Config::default()) {
        walk("", &value, &mut out);
    }
    out
}

/// ", did you mean LATCHKEY_X?" when a known key is at most two edits away.
fn suggestion(key: &str, known: &BTreeSet<String>) -> String {
    nearest(key, known.iter().map(String::as_str))
        .map(|k| format!(" (did you mean {}?)", env_name(k)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_any_layer() {
        // The crate directory has no latchkey.toml, so only the defaults apply.
        let loaded = Config::load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(loaded.config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(loaded.config.mode, Mode::Dev);
        assert_eq!(loaded.config.http.body_limit_bytes, 65_536);
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lk.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[database]\nmax_connections = 3\nmin_connections = 1\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let loaded = Config::load(
            &overrides,
            env(&[
                ("LATCHKEY_DATABASE__MAX_CONNECTIONS", "7"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.listen.port(), 9000, "file beats default");
        assert_eq!(loaded.config.database.max_connections, 7, "env beats file");
        assert_eq!(loaded.config.database.min_connections, 1);

        let cli = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            ..overrides
        };
        let loaded = Config::load(&cli, env(&[("LATCHKEY_LISTEN", "127.0.0.1:7000")])).unwrap();
        assert_eq!(loaded.config.listen.port(), 0, "flag beats env");
        assert_eq!(loaded.config.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_env_vars_warn_with_a_suggestion_and_test_vars_do_not() {
        let loaded = Config::load(
            &Overrides::default(),
            env(&[
                ("LATCHKEY_DATABSE__URL", "x"),
                ("LATCHKEY_TEST_POSTGRES_URL", "postgres://x"),
                ("LATCHKEY_CONFIG", "x.toml"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("LATCHKEY_DATABSE__URL"));
        assert!(loaded.warnings[0].contains("did you mean LATCHKEY_DATABASE__URL"));
    }

    #[test]
    fn unknown_file_keys_and_bad_types_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lk.toml");
        std::fs::write(&file, "[database]\nmax_conections = 3\n").unwrap();
        let o = Overrides {
            config_file: Some(file.clone()),
            ..Overrides::default()
        };
        let err = Config::load(&o, env(&[])).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");

        std::fs::write(&file, "[http]\nbody_limit_bytes = \"lots\"\n").unwrap();
        let err = Config::load(&o, env(&[])).unwrap_err().to_string();
        assert!(err.contains("http.body_limit_bytes"), "{err}");

        let missing = Overrides {
            config_file: Some(dir.path().join("nope.toml")),
            ..Overrides::default()
        };
        assert!(matches!(
            Config::load(&missing, env(&[])),
            Err(ConfigError::MissingFile(_))
        ));
    }

    #[test]
    fn secrets_from_env_stay_text_and_never_show_in_errors_or_debug() {
        let loaded = Config::load(
            &Overrides::default(),
            env(&[
                (
                    "LATCHKEY_SECRETS__MASTER_KEY",
                    "12345678901234567890123456789012345",
                ),
                ("LATCHKEY_SECRETS__HMAC_KEY", "[not-an-array]"),
            ]),
        )
        .unwrap();
        let secrets = &loaded.config.secrets;
        assert_eq!(
            secrets.master_key.as_ref().unwrap().expose(),
            "12345678901234567890123456789012345"
        );
        assert_eq!(
            secrets.hmac_key.as_ref().unwrap().expose(),
            "[not-an-array]"
        );
        let debug = format!("{:?}", loaded.config);
        assert!(!debug.contains("1234567890"), "{debug}");
        assert!(!debug.contains("not-an-array"), "{debug}");
    }

    #[test]
    fn known_keys_cover_nested_and_optional_fields() {
        let keys = known_keys();
        for k in [
            "listen",
            "data_dir",
            "database.url",
            "tls.cert",
            "secrets.master_key_file",
            "cors.allowed_origins",
        ] {
            assert!(keys.contains(k), "{k} missing from {keys:?}");
        }
    }
}

//! `latchkey config check --show`: the effective configuration, one key per
//! line with the layer its value came from. Secrets print as `<set>`, passwords
//! in database and Redis URLs as `***`.

use std::collections::BTreeMap;

use super::{without_password, Config};

/// Whether `key` holds a secret value (its `_file` path is not one).
fn is_secret(key: &str) -> bool {
    (key.starts_with("secrets.") && !key.ends_with("_file")) || key == "mail.smtp.password"
}

/// The lines of `--show`: `key = value  # origin`, keys in order.
pub fn show(config: &Config, origins: &BTreeMap<String, String>) -> Vec<String> {
    let mut leaves = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(config) {
        collect("", &value, &mut leaves);
    }
    leaves
        .into_iter()
        .map(|(key, value)| {
            let shown = render(&key, &value);
            let origin = origins.get(&key).map_or("default", String::as_str);
            format!("{key} = {shown}  # {origin}")
        })
        .collect()
}

fn collect(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect(&path, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

fn render(key: &str, value: &serde_json::Value) -> String {
    let empty = match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::String(s) => s.is_empty(),
        _ => false,
    };
    if is_secret(key) {
        return if empty {
            "(unset)".into()
        } else {
            "<set>".into()
        };
    }
    match value {
        serde_json::Value::Null => "(unset)".into(),
        serde_json::Value::String(url) if key == "database.url" || key == "redis.url" => {
            serde_json::Value::String(without_password(url)).to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_url_passwords_never_show() {
        let mut config = Config::default();
        config.secrets.master_key = Some(super::super::Secret::new("master-value-1234"));
        config.secrets.previous_master_keys = vec![super::super::Secret::new("old-value-5678")];
        config.mail.smtp.password = Some(super::super::Secret::new("smtp-value-9012"));
        config.database.url = Some("postgres://lk:db-value-3456@db/lk".into());
        config.redis.url = Some("redis://:redis-value-7890@cache:6379".into());
        let mut origins = BTreeMap::new();
        origins.insert(
            "database.url".to_owned(),
            "env LATCHKEY_DATABASE__URL".to_owned(),
        );
        let lines = show(&config, &origins);
        let text = lines.join("\n");
        for secret in [
            "master-value",
            "old-value",
            "smtp-value",
            "db-value",
            "redis-value",
        ] {
            assert!(!text.contains(secret), "{secret}:\n{text}");
        }
        for line in [
            "secrets.master_key = <set>  # default",
            "secrets.hmac_key = (unset)  # default",
            "secrets.previous_master_keys = <set>  # default",
            "mail.smtp.password = <set>  # default",
            "database.url = \"postgres://lk:***@db/lk\"  # env LATCHKEY_DATABASE__URL",
            "redis.url = \"redis://:***@cache:6379\"  # default",
            "listen = \"127.0.0.1:8080\"  # default",
            "public_url = (unset)  # default",
        ] {
            assert!(lines.iter().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert_eq!(lines.len(), super::super::load::known_keys().len());
    }
}

//! Configuration errors people can act on: each names its source (the TOML
//! file and line, the environment variable, the flag), the key, the nearest
//! known key for a typo, and how to write a list in an environment variable —
//! never a library type name.

use std::ops::Range;
use std::path::Path;

use figment::error::Kind;
use figment::Metadata;

use super::load::ENV_PREFIX;

/// Name of the metadata of built-in defaults.
pub(super) const DEFAULTS: &str = "built-in default";
/// Prefix of the metadata name of an environment variable.
pub(super) const ENV_SOURCE: &str = "environment variable ";
/// Prefix of the metadata name of a command-line flag.
pub(super) const FLAG_SOURCE: &str = "command-line flag ";

/// The environment variable of a dotted key (`database.url` →
/// `LATCHKEY_DATABASE__URL`).
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

/// The candidate closest to `key`, if it is at most two edits away.
pub(super) fn nearest<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(c, key), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// One line per figment error: `key: what is wrong (where it was set)`.
pub(super) fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let what = what(&e.kind, &key, e.metadata.as_ref());
            let place = e.metadata.as_ref().map(|m| place(m, &e.path));
            match (key.is_empty(), place) {
                (true, Some(place)) => format!("{what} ({place})"),
                (true, None) => what,
                (false, Some(place)) => format!("{key}: {what} ({place})"),
                (false, None) => format!("{key}: {what}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a value came from, as a person would look for it.
fn place(metadata: &Metadata, path: &[String]) -> String {
    match metadata.source.as_ref().and_then(|s| s.file_path()) {
        Some(file) => match line_of(file, path) {
            Some(line) => format!("in {}, line {line}", file.display()),
            None => format!("in {}", file.display()),
        },
        None => format!("from the {}", metadata.name),
    }
}

fn from_env(metadata: Option<&Metadata>) -> Option<&str> {
    metadata.and_then(|m| m.name.strip_prefix(ENV_SOURCE))
}

/// The message of one error, in configuration words.
fn what(kind: &Kind, key: &str, metadata: Option<&Metadata>) -> String {
    match kind {
        Kind::UnknownField(found, expected) => {
            let parent = key.rsplit_once('.').map(|(p, _)| p);
            match nearest(found, expected.iter().copied()) {
                Some(near) => {
                    let full = parent.map_or_else(|| near.to_owned(), |p| format!("{p}.{near}"));
                    format!("unknown key (did you mean {full}?)")
                }
                None if expected.is_empty() => "unknown key".into(),
                None => format!("unknown key; known here: {}", expected.join(", ")),
            }
        }
        Kind::InvalidType(actual, expected) => {
            let expected = plain_type(expected);
            let mut text = format!("expected {expected}, found {actual}");
            if let Some(var) = from_env(metadata) {
                if expected == "a list" {
                    let example = match actual {
                        figment::error::Actual::Str(one) if !one.contains(['"', '\'']) => {
                            format!("'[\"{one}\"]'")
                        }
                        _ => "'[\"first\", \"second\"]'".into(),
                    };
                    text = format!("{text}; write a list in TOML syntax, e.g. {var}={example}");
                }
            }
            text
        }
        Kind::UnknownVariant(found, expected) => format!(
            "{found:?} is not one of {}",
            expected
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::InvalidValue(actual, expected) => {
            format!("expected {}, found {actual}", plain_type(expected))
        }
        Kind::InvalidLength(n, expected) => format!("expected {expected}, found {n} items"),
        Kind::MissingField(field) => format!("{field} is required here"),
        Kind::DuplicateField(field) => format!("{field} is set twice"),
        // TOML syntax errors carry their own line and column.
        Kind::Message(message) => message.trim().to_owned(),
        other => other.to_string(),
    }
}

/// Serde's type words in configuration words (`usize` → `a whole number`).
fn plain_type(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" | "struct" => "a table".into(),
        "socket address" => "an address with a port, like 127.0.0.1:8080".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.into(),
    }
}

/// The 1-based line of the key at `path` in a TOML file, when it can be found.
fn line_of(file: &Path, path: &[String]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let doc = toml_edit::ImDocument::parse(text.as_str()).ok()?;
    let span = key_span(doc.as_table(), path)?;
    Some(text.get(..span.start)?.matches('\n').count() + 1)
}

/// Where in the file the deepest part of `path` that exists is written.
fn key_span(root: &toml_edit::Table, path: &[String]) -> Option<Range<usize>> {
    enum Node<'a> {
        Table(&'a dyn toml_edit::TableLike),
        Tables(&'a toml_edit::ArrayOfTables),
        Array(&'a toml_edit::Array),
        Leaf,
    }
    fn node(item: &toml_edit::Item) -> Node<'_> {
        match item {
            toml_edit::Item::ArrayOfTables(a) => Node::Tables(a),
            toml_edit::Item::Value(toml_edit::Value::Array(a)) => Node::Array(a),
            other => other.as_table_like().map_or(Node::Leaf, Node::Table),
        }
    }
    let mut here = Node::Table(root);
    let mut span = None;
    for segment in path {
        here = match here {
            Node::Table(table) => {
                let Some((key, item)) = table.get_key_value(segment) else {
                    break;
                };
                span = key.span().or(span);
                node(item)
            }
            Node::Tables(tables) => {
                let Some(table) = segment.parse().ok().and_then(|i| tables.get(i)) else {
                    break;
                };
                span = table.span().or(span);
                Node::Table(table)
            }
            Node::Array(array) => {
                let Some(value) = segment.parse().ok().and_then(|i| array.get(i)) else {
                    break;
                };
                span = value.span().or(span);
                match value {
                    toml_edit::Value::InlineTable(t) => Node::Table(t),
                    toml_edit::Value::Array(a) => Node::Array(a),
                    _ => Node::Leaf,
                }
            }
            Node::Leaf => break,
        };
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, path: &[&str]) -> Option<usize> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lk.toml");
        std::fs::write(&file, text).unwrap();
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        line_of(&file, &path)
    }

    #[test]
    fn keys_are_found_in_tables_dotted_keys_arrays_of_tables_and_inline_tables() {
        let text = "mode = \"dev\"\n\n[database]\nurl = \"x\"\nmax_conections = 3\n\
                    [[rate_limit.rules]]\nname = \"a\"\n[[rate_limit.rules]]\nname = \"b\"\n\
                    window_secondz = 3\n[cors]\nallowed_origins = [\"a\",\n  5]\n\
                    [mail]\nsmtp = { host = \"h\", prot = 25 }\n";
        assert_eq!(line(text, &["mode"]), Some(1));
        assert_eq!(line(text, &["database", "max_conections"]), Some(5));
        assert_eq!(
            line(text, &["rate_limit", "rules", "1", "window_secondz"]),
            Some(10)
        );
        assert_eq!(line(text, &["cors", "allowed_origins", "1"]), Some(13));
        assert_eq!(line(text, &["mail", "smtp", "prot"]), Some(15));
        // A key that is not there: the deepest part that is.
        assert_eq!(line(text, &["database", "nope"]), Some(3));
    }

    #[test]
    fn the_nearest_key_is_within_two_edits() {
        let known = ["max_connections", "min_connections", "url"];
        assert_eq!(nearest("max_conections", known), Some("max_connections"));
        assert_eq!(nearest("ulr", known), Some("url"));
        assert_eq!(nearest("something", known), None);
        assert_eq!(
            env_name("database.max_connections"),
            "LATCHKEY_DATABASE__MAX_CONNECTIONS"
        );
    }
}

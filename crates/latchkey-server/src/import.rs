//! The file format of `latchkey users import` and `users export`: JSON lines,
//! one account per line, `{"email", "name"?, "email_verified"?,
//! "password_hash"?, "roles"?}`. Parsing checks every line with the same
//! shape rules as the admin API and reports every problem with its line
//! number; a file with any problem imports nothing.

use latchkey_core::account::{normalize_email, User};
use latchkey_core::auth::{Admin, ImportRecord};
use serde::Deserialize;

use crate::error::FieldError;
use crate::routes::input::{check_email_shape, check_name, MAX_NAME};

/// Longest line accepted, in bytes (a record is far smaller).
pub const MAX_LINE: usize = 64 * 1024;

/// Largest file accepted, in bytes (about 400,000 accounts of typical size):
/// the whole file is held and checked in memory before anything is written,
/// so a bigger export is imported in several files.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// One line as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    email: String,
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    password_hash: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// What is wrong with one line (1-based), never quoting a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// The line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

fn fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.code))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The records of `file`, or every problem found. Blank lines are skipped;
/// a NUL byte, invalid UTF-8, a line over [`MAX_LINE`], a line that is not one
/// JSON object of the format (a truncated line included), a bad address or
/// name, a hash `admin` would not accept (bcrypt cost over 16 among them),
/// and an address that appeared on an earlier line are problems.
pub fn parse(file: &[u8], admin: &Admin) -> Result<Vec<ImportRecord>, Vec<LineProblem>> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (index, raw) in file.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let mut problem = |text: String| {
            problems.push(LineProblem {
                line,
                problem: text,
            });
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if raw.len() > MAX_LINE {
            problem(format!("longer than {MAX_LINE} bytes"));
            continue;
        }
        if raw.contains(&0) {
            problem("contains a NUL byte".into());
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            problem("not UTF-8".into());
            continue;
        };
        let parsed: Line = match serde_json::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                problem(format!(
                    "not a record of the import format ({})",
                    json_problem(&e)
                ));
                continue;
            }
        };
        let mut errors = Vec::new();
        check_email_shape(&parsed.email, "email", &mut errors);
        let name = parsed
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if let Some(name) = &name {
            check_name("name", name, MAX_NAME, &mut errors);
        }
        if !errors.is_empty() {
            problem(fields(&errors));
            continue;
        }
        if let Some(hash) = &parsed.password_hash {
            if !admin.importable_hash(hash) {
                problem(
                    "password_hash: not an Argon2 PHC string or a $2a$/$2b$/$2y$ bcrypt hash of cost 16 or less"
                        .into(),
                );
                continue;
            }
        }
        if let Some(first) = seen.insert(normalize_email(&parsed.email), line) {
            problem(format!("email: the same address as line {first}"));
            continue;
        }
        records.push(ImportRecord {
            email: parsed.email,
            name,
            email_verified: parsed.email_verified,
            password_hash: parsed.password_hash,
            roles: parsed.roles,
        });
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

/// One account as a record of the format, with its hash only if asked.
pub fn export_record(user: &User, with_password_hash: bool) -> serde_json::Value {
    let mut record = serde_json::json!({
        "email": user.email,
        "name": user.name,
        "email_verified": user.email_verified_at.is_some(),
        "roles": user.roles,
    });
    if with_password_hash {
        record["password_hash"] = serde_json::Value::String(user.password_hash.clone());
    }
    record
}

/// One account as a line of the format, with its hash only if asked.
pub fn export_line(user: &User, with_password_hash: bool) -> String {
    export_record(user, with_password_hash).to_string()
}

/// What kind of JSON problem `e` is, in words (never quoting the line).
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "wrong or unknown fields",
        serde_json::error::Category::Eof => "truncated",
    }
}

//! The real binary, end to end: start-up, the printed address, generated dev secrets,
//! graceful stop on SIGTERM, every production refusal (exit code 2, one line
//! per problem, never a secret's value), and mail that survives a killed process.

// Test code: failing loudly is its job (DESIGN.md denies these lints outside tests only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A command for the binary, isolated from the caller's `LATCHKEY_*` variables and
/// from any `latchkey.toml` in the working directory.
fn latchkey(dir: &Path) -> Command {
    isolated(Command::new(BIN), dir)
}

/// `cmd` run in `dir` without the caller's `LATCHKEY_*` variables.
fn isolated(mut cmd: Command, dir: &Path) -> Command {
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A running `serve` that is killed (and reaped) when dropped, so a test that
/// fails half-way never leaves a server behind holding the test run open.
struct Server(Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("binary runs")
}

/// Starts `serve` on port 0 and returns the child and the base URL it printed.
fn spawn_server(dir: &Path) -> (Server, String) {
    spawn_server_with(dir, &[])
}

/// The same with extra environment variables.
fn spawn_server_with(dir: &Path, env: &[(&str, String)]) -> (Server, String) {
    let mut child = Server(
        latchkey(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env("LATCHKEY_LOG__LEVEL", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts"),
    );
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let url = line
        .trim()
        .strip_prefix("latchkey listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

fn sigterm(child: &Child) {
    signal(child, "TERM");
}

fn signal(child: &Child, name: &str) {
    // The shell's builtin kill: no dependency on a kill binary being installed.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {}", child.id())])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("server did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn read_secret(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("data/secrets").join(name)).expect("secret file")
}

#[test]
fn serve_prints_its_address_answers_and_stops_on_sigterm_keeping_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_server(dir.path());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        !url.ends_with(":0"),
        "the bound port is printed, not 0: {url}"
    );

    let health = reqwest::blocking::get(format!("{url}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().unwrap(), r#"{"status":"ok"}"#);

    assert!(dir.path().join("data/latchkey.db").exists());
    let master = read_secret(dir.path(), "master_key");
    let hmac = read_secret(dir.path(), "hmac_key");
    assert_eq!(master.len(), 43);
    assert_ne!(master, hmac);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["master_key", "hmac_key"] {
            let mode = std::fs::metadata(dir.path().join("data/secrets").join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    // A restart reuses the generated secrets.
    let (mut child, url) = spawn_server(dir.path());
    assert_eq!(
        reqwest::blocking::get(format!("{url}/readyz"))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(read_secret(dir.path(), "master_key"), master);
    assert_eq!(read_secret(dir.path(), "hmac_key"), hmac);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

/// Starts `serve` with stderr piped; returns the child, the base URL and the
/// stderr lines as they come.
fn spawn_logging(dir: &Path, env: &[(&str, &str)]) -> (Server, String, mpsc::Receiver<String>) {
    let mut child = Server(
        latchkey(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts"),
    );
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("a line");
    let url = line
        .trim()
        .strip_prefix("latchkey listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url, rx)
}

/// Stderr lines until one contains `until` (or 20 s pass), and that line.
fn lines_until(rx: &mpsc::Receiver<String>, until: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(until);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {until:?} in {seen:#?}");
}

#[test]
fn serve_logs_a_start_up_summary_once_without_colour_codes_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("LATCHKEY_LOG__LEVEL", "info"),
        ("LATCHKEY_LOG__FORMAT", "pretty"),
    ];
    let (mut child, _url, rx) = spawn_logging(dir.path(), &env);
    let first = lines_until(&rx, "redis: ");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let mut all = first.clone();
    all.extend(rx.try_iter());
    let text = all.join("\n");
    assert!(!text.contains('\u{1b}'), "ANSI codes in a pipe:\n{text}");
    for needle in [
        "mode: dev",
        &format!("data directory: {}", dir.path().join("data").display()),
        "database: sqlite, ",
        "public URL: http://127.0.0.1:",
        "secrets: master_key, hmac_key generated now into ",
        "mail: file transport",
        "breached-password check: range API, outbound HTTPS to api.pwnedpasswords.com",
        "passkeys: off: passkeys need a domain name",
        "pages: http://127.0.0.1:",
        "metrics: /metrics on the main listener",
        "redis: not configured",
    ] {
        assert_eq!(
            all.iter().filter(|l| l.contains(needle)).count(),
            1,
            "{needle:?} once in:\n{text}"
        );
    }
    for name in ["master_key", "hmac_key"] {
        let value = read_secret(dir.path(), name);
        assert!(!text.contains(&value), "{name} leaked");
    }

    // A restart reuses the secrets and says so; JSON lines carry the summary too.
    let env = [
        ("LATCHKEY_LOG__LEVEL", "info"),
        ("LATCHKEY_LOG__FORMAT", "json"),
    ];
    let (mut child, _url, rx) = spawn_logging(dir.path(), &env);
    let lines = lines_until(&rx, "redis: ");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let secrets = lines
        .iter()
        .find(|l| l.contains("\"secrets: "))
        .expect("a secrets line");
    let json: serde_json::Value = serde_json::from_str(secrets).expect("a JSON line");
    assert_eq!(json["target"], "latchkey::startup");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("master_key, hmac_key kept in "),
        "{json}"
    );
}

#[test]
fn debug_logs_carry_no_sql_from_the_mail_poller() {
    let dir = tempfile::tempdir().unwrap();
    // With sqlx at trace, the poller's statements show (so they are being made)...
    let env = [("LATCHKEY_LOG__LEVEL", "info,sqlx=trace")];
    let (mut child, _url, rx) = spawn_logging(dir.path(), &env);
    let traced = lines_until(&rx, "mail_outbox");
    assert!(traced.iter().any(|l| l.contains("TRACE")), "{traced:#?}");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    // ...and at debug, none of them does.
    let env = [("LATCHKEY_LOG__LEVEL", "debug")];
    let (mut child, url, rx) = spawn_logging(dir.path(), &env);
    let health = reqwest::blocking::get(format!("{url}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("request completed")),
        "{lines:#?}"
    );
    let sql: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("sqlx::query") || l.contains("mail_outbox"))
        .collect();
    assert!(sql.is_empty(), "SQL at debug: {sql:#?}");
}

#[test]
fn sigterm_the_moment_the_address_is_printed_is_a_graceful_stop() {
    // The handlers are installed before the address is printed: a signal in the
    // instant after it must not kill the process with the default action.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let (mut child, _url) = spawn_server(dir.path());
        sigterm(&child);
        let status = wait_exit(&mut child, Duration::from_secs(15));
        assert!(status.success(), "round {round}: {status:?}");
    }
}

/// Out of file descriptors (a limit of 64, 150 connections held open): the
/// server backs off instead of spinning, logs the failing accepts once with
/// a count instead of once per failure, and serves again as soon as
/// connections close.
#[cfg(unix)]
#[test]
fn out_of_file_descriptors_the_server_backs_off_logs_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut cmd = isolated(Command::new("sh"), dir.path());
    cmd.args(["-c", "ulimit -n 64 && exec \"$@\"", "sh", BIN])
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LATCHKEY_LOG__LEVEL", "warn")
        .env("LATCHKEY_LOG__FORMAT", "json")
        // Neither a cap nor a timeout frees a descriptor during the test.
        .env("LATCHKEY_HTTP__MAX_CONNECTIONS_PER_IP", "10000")
        .env("LATCHKEY_HTTP__HEADER_READ_TIMEOUT_MS", "60000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut child = Server(cmd.spawn().expect("serve starts"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("latchkey listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let addr = url.trim_start_matches("http://").to_owned();
    assert_eq!(
        reqwest::blocking::get(format!("{url}/healthz"))
            .unwrap()
            .status(),
        200
    );

    let held: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // The descriptors run out after a few dozen: accepting fails meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let failures = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} accept-failure lines (one per interval expected)"
    );

    drop(held);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(10) {
        if client
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(recovered, "serving again once connections closed");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn version_and_dev_config_check_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(latchkey(dir.path()).arg("--version"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let out = run(latchkey(dir.path()).args(["config", "check"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK (mode: dev)"));
    assert!(
        !dir.path().join("latchkey-data").exists(),
        "check creates nothing"
    );
}

#[test]
fn migrate_creates_and_migrates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(latchkey(dir.path()).args(["migrate", "--data-dir", "d"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied (sqlite)"));
    assert!(dir.path().join("d/latchkey.db").exists());
    let again = run(latchkey(dir.path()).args(["migrate", "--data-dir", "d"]));
    assert!(again.status.success(), "migrate is idempotent");
}

const GOOD_MASTER: &str = "Vq3kZ8pX1rT7mN4bW9cJ2hL6yF0dS5gA";
const GOOD_HMAC: &str = "pR8nQ2xK5vB1zM7wT4jH9cL3fY6gD0sE";

/// A production environment with everything right; each case breaks one thing.
fn production(dir: &Path) -> Command {
    let mut cmd = latchkey(dir);
    cmd.env("LATCHKEY_MODE", "production")
        .env("LATCHKEY_PUBLIC_URL", "https://auth.example.com")
        .env("LATCHKEY_DATA_DIR", dir.join("data"))
        .env("LATCHKEY_SECRETS__MASTER_KEY", GOOD_MASTER)
        .env("LATCHKEY_SECRETS__HMAC_KEY", GOOD_HMAC)
        // latchkey's own pages are off in production: the links lead to the app.
        .env(
            "LATCHKEY_MAIL__VERIFY_URL",
            "https://app.example.com/verify-email?token={token}",
        )
        .env(
            "LATCHKEY_MAIL__RESET_URL",
            "https://app.example.com/reset-password?token={token}",
        );
    cmd
}

fn assert_refused(out: &Output, needle: &str, secret: Option<&str>) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    if let Some(secret) = secret {
        assert!(
            !stderr.contains(secret),
            "stderr leaks the secret: {stderr}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    }
}

#[test]
fn production_with_everything_right_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(production(dir.path()).args(["config", "check"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("mode: production"));
}

#[test]
fn production_refuses_missing_short_and_placeholder_secrets() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [["config", "check"].as_slice(), ["serve"].as_slice()] {
        let out = run(production(dir.path())
            .env_remove("LATCHKEY_SECRETS__MASTER_KEY")
            .args(sub));
        assert_refused(&out, "secrets.master_key: is not set", None);

        let short = "Zq8xK2vB";
        let out = run(production(dir.path())
            .env("LATCHKEY_SECRETS__HMAC_KEY", short)
            .args(sub));
        assert_refused(&out, "secrets.hmac_key", Some(short));
        assert_refused(&out, "shorter than 32 bytes", None);

        let placeholder = "change-me-change-me-change-me-change-me!";
        let out = run(production(dir.path())
            .env("LATCHKEY_SECRETS__MASTER_KEY", placeholder)
            .args(sub));
        assert_refused(&out, "looks like a placeholder", Some(placeholder));

        let repeated = "x".repeat(48);
        let out = run(production(dir.path())
            .env("LATCHKEY_SECRETS__MASTER_KEY", &repeated)
            .args(sub));
        assert_refused(&out, "secrets.master_key", Some(&repeated));
    }
    assert!(
        !dir.path().join("data/secrets").exists(),
        "production never generates secrets"
    );
}

#[test]
fn production_reads_secrets_from_files_and_refuses_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    std::fs::write(&file, format!("{GOOD_MASTER}\n")).unwrap();
    let out = run(production(dir.path())
        .env_remove("LATCHKEY_SECRETS__MASTER_KEY")
        .env("LATCHKEY_SECRETS__MASTER_KEY_FILE", &file)
        .args(["config", "check"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(production(dir.path())
        .env_remove("LATCHKEY_SECRETS__MASTER_KEY")
        .env(
            "LATCHKEY_SECRETS__MASTER_KEY_FILE",
            dir.path().join("missing.key"),
        )
        .args(["config", "check"]));
    assert_refused(&out, "secrets.master_key_file: cannot read", None);
}

#[test]
fn production_refuses_plain_http_public_url_wildcard_cors_and_insecure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(production(dir.path())
        .env("LATCHKEY_PUBLIC_URL", "http://auth.example.com")
        .arg("serve"));
    assert_refused(&out, "public_url: must be https in production", None);

    let out = run(production(dir.path())
        .env_remove("LATCHKEY_PUBLIC_URL")
        .arg("serve"));
    assert_refused(&out, "public_url: is not set", None);

    let out = run(production(dir.path())
        .env("LATCHKEY_CORS__ALLOWED_ORIGINS", "[\"*\"]")
        .env("LATCHKEY_CORS__ALLOW_CREDENTIALS", "true")
        .arg("serve"));
    assert_refused(&out, "cors.allowed_origins", None);

    let out = run(production(dir.path())
        .env("LATCHKEY_COOKIES__SECURE", "false")
        .env("LATCHKEY_COOKIES__SESSION_NAME", "lk_session")
        .env("LATCHKEY_COOKIES__REFRESH_NAME", "lk_refresh")
        .env("LATCHKEY_COOKIES__CSRF_NAME", "lk_csrf")
        .arg("serve"));
    assert_refused(&out, "cookies.secure: must be true in production", None);
}

#[test]
fn production_refuses_mail_links_to_pages_it_does_not_serve() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [["config", "check"].as_slice(), ["serve"].as_slice()] {
        let out = run(production(dir.path())
            .env_remove("LATCHKEY_MAIL__VERIFY_URL")
            .env_remove("LATCHKEY_MAIL__RESET_URL")
            .args(sub));
        assert_refused(
            &out,
            "mail.verify_url: mail links point at latchkey's own /verify-email page",
            None,
        );
        assert_refused(&out, "mail.reset_url:", None);
        assert_refused(&out, "pages.enabled = true", None);

        // A link spelled out to latchkey itself is just as dead.
        let out = run(production(dir.path())
            .env(
                "LATCHKEY_MAIL__RESET_URL",
                "https://auth.example.com/reset-password?token={token}",
            )
            .args(sub));
        assert_refused(&out, "mail.reset_url:", None);
    }
    // With the pages on, the default links work.
    let out = run(production(dir.path())
        .env_remove("LATCHKEY_MAIL__VERIFY_URL")
        .env_remove("LATCHKEY_MAIL__RESET_URL")
        .env("LATCHKEY_PAGES__ENABLED", "true")
        .args(["config", "check"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn production_refuses_an_sqlite_path_that_is_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the data directory should be: nothing can be created
    // below it, even by root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let out = run(production(dir.path())
        .env("LATCHKEY_DATA_DIR", &blocker)
        .arg("serve"));
    assert_refused(&out, "is not writable", None);
}

#[test]
fn every_problem_is_reported_at_once_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(production(dir.path())
        .env_remove("LATCHKEY_SECRETS__MASTER_KEY")
        .env_remove("LATCHKEY_SECRETS__HMAC_KEY")
        .env("LATCHKEY_PUBLIC_URL", "http://x.example.com")
        .args(["config", "check"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let problems = stderr
        .lines()
        .filter(|l| l.contains("configuration problem:"))
        .count();
    assert_eq!(problems, 3, "{stderr}");
}

#[test]
fn bad_config_file_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("latchkey.toml"), "[http]\nbody_limit = 5\n").unwrap();
    let out = run(latchkey(dir.path()).args(["config", "check"]));
    assert_refused(&out, "body_limit", None);

    let out = run(latchkey(dir.path()).args(["--config", "nope.toml", "config", "check"]));
    assert_refused(&out, "nope.toml", None);
}

#[test]
fn configuration_errors_name_their_source_line_and_the_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = String::new();
    let file = dir.path().join("lk.toml");
    std::fs::write(&file, "mode = \"dev\"\n\n[database]\nmax_conections = 3\n").unwrap();
    let out = run(latchkey(dir.path())
        .arg("--config")
        .arg(&file)
        .args(["config", "check"]));
    assert_refused(
        &out,
        &format!(
            "database.max_conections: unknown key (did you mean database.max_connections?) (in {}, line 4)",
            file.display()
        ),
        None,
    );
    seen.push_str(&String::from_utf8_lossy(&out.stderr));

    std::fs::write(&file, "[http]\nbody_limit_bytes = \"lots\"\n").unwrap();
    let out = run(latchkey(dir.path())
        .arg("--config")
        .arg(&file)
        .args(["config", "check"]));
    assert_refused(&out, "http.body_limit_bytes: expected a whole number", None);
    assert_refused(&out, "line 2)", None);
    seen.push_str(&String::from_utf8_lossy(&out.stderr));

    let out = run(latchkey(dir.path())
        .env("LATCHKEY_HTTP__BODY_LIMIT_BYTES", "lots")
        .args(["config", "check"]));
    assert_refused(
        &out,
        "(from the environment variable LATCHKEY_HTTP__BODY_LIMIT_BYTES)",
        None,
    );
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    let out = run(latchkey(dir.path())
        .env("LATCHKEY_CORS__ALLOWED_ORIGINS", "https://app.example.com")
        .args(["config", "check"]));
    assert_refused(
        &out,
        "cors.allowed_origins: expected a list, found string \"https://app.example.com\"; \
         write a list in TOML syntax, e.g. LATCHKEY_CORS__ALLOWED_ORIGINS='[\"https://app.example.com\"]'",
        None,
    );
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    let out = run(latchkey(dir.path())
        .env("LATCHKEY_MODE", "prod")
        .args(["config", "check"]));
    assert_refused(
        &out,
        "mode: \"prod\" is not one of \"dev\", \"production\"",
        None,
    );
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(!seen.contains("figment"), "{seen}");
    assert!(!seen.contains("::"), "a Rust path: {seen}");
}

#[test]
fn config_check_show_prints_each_value_with_its_source_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lk.toml");
    std::fs::write(&file, "[database]\nmax_connections = 4\n").unwrap();
    let out = run(latchkey(dir.path())
        .arg("--config")
        .arg(&file)
        .env("LATCHKEY_SECRETS__HMAC_KEY", GOOD_HMAC)
        .env(
            "LATCHKEY_REDIS__URL",
            "redis://:redis-pass-77@127.0.0.1:6379",
        )
        .args(["config", "check", "--show", "--listen", "127.0.0.1:9999"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        format!("database.max_connections = 4  # file {}", file.display()),
        "database.min_connections = 0  # default".to_owned(),
        "secrets.hmac_key = <set>  # env LATCHKEY_SECRETS__HMAC_KEY".to_owned(),
        "secrets.master_key = (unset)  # default".to_owned(),
        "redis.url = \"redis://:***@127.0.0.1:6379\"  # env LATCHKEY_REDIS__URL".to_owned(),
        "listen = \"127.0.0.1:9999\"  # flag --listen".to_owned(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{stdout}"
        );
    }
    assert!(!stdout.contains(GOOD_HMAC), "the secret leaked");
    assert!(!stdout.contains("redis-pass-77"), "the password leaked");
    assert!(stdout.contains("configuration OK (mode: dev)"));
}

#[test]
fn keys_rotate_adds_a_new_private_key_file_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("d/keys");
    for expected in 1..=2 {
        let out = run(latchkey(dir.path()).args(["keys", "rotate", "--data-dir", "d"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("new signing key"), "{stdout}");
        assert!(
            stdout.contains("published now, running servers sign with it from"),
            "published ahead of signing: {stdout}"
        );
        let files: Vec<_> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), expected);
        let newest = files
            .iter()
            .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
            .max()
            .unwrap();
        let (created, activates) = newest
            .strip_suffix(".eddsa.der")
            .and_then(|s| s.split_once('_'))
            .unwrap();
        let ahead = activates.parse::<i64>().unwrap() - created.parse::<i64>().unwrap();
        assert_eq!(ahead, 360, "keys.publish_ahead_seconds by default");
        #[cfg(unix)]
        for f in files {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

#[test]
fn keys_rotate_now_signs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(latchkey(dir.path()).args(["keys", "rotate", "--now", "--data-dir", "d"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sign with it within seconds"));
    let file = std::fs::read_dir(dir.path().join("d/keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let (created, activates) = file
        .to_str()
        .unwrap()
        .strip_suffix(".eddsa.der")
        .and_then(|s| s.split_once('_'))
        .unwrap();
    assert_eq!(created, activates);
}

#[test]
fn production_keeps_signing_keys_sealed_in_the_database_and_refuses_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let out = run(production(dir.path()).args(["keys", "rotate"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let kid = stdout
            .strip_prefix("new signing key ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned();
        kids.push(kid);
    }
    assert_ne!(kids[0], kids[1]);
    assert!(
        !dir.path().join("data/keys").exists(),
        "no private key file in production"
    );
    // The row may still sit in the write-ahead log.
    let mut db = std::fs::read(dir.path().join("data/latchkey.db")).unwrap();
    db.extend(std::fs::read(dir.path().join("data/latchkey.db-wal")).unwrap_or_default());
    assert!(
        db.windows(kids[1].len()).any(|w| w == kids[1].as_bytes()),
        "the key is in the database"
    );

    let out = run(production(dir.path())
        .env("LATCHKEY_TOKENS__KEY_STORAGE", "files")
        .args(["config", "check"]));
    assert_refused(&out, "tokens.key_storage", None);
}

#[test]
fn users_unlock_runs_against_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(latchkey(dir.path()).args([
        "users",
        "unlock",
        "Someone@Example.com",
        "--data-dir",
        "d",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to unlock"));
    let out = run(latchkey(dir.path()).args(["users", "unlock"]));
    assert!(!out.status.success(), "the email is required");
}

#[test]
fn cleanup_runs_once_and_reports_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(latchkey(dir.path()).args(["cleanup", "--data-dir", "d"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed: 0 sessions"));
}

/// A minimal plain-text SMTP server on threads, enough for lettre: every accepted
/// message is sent down the channel as (recipients, raw message).
fn smtp_sink() -> (u16, mpsc::Receiver<(Vec<String>, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || smtp_session(stream, &tx));
        }
    });
    (port, rx)
}

fn smtp_session(stream: TcpStream, tx: &mpsc::Sender<(Vec<String>, String)>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut out = stream;
    let mut say = |text: &str| out.write_all(format!("{text}\r\n").as_bytes()).ok();
    say("220 sink.test ESMTP")?;
    let mut rcpt = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return Some(());
        }
        let line = line.trim_end();
        let verb = line.split([' ', ':']).next()?.to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => say("250-sink.test\r\n250 8BITMIME")?,
            "RCPT" => {
                let address = line.split_once('<')?.1.split_once('>')?.0;
                rcpt.push(address.to_owned());
                say("250 ok")?;
            }
            "DATA" => {
                say("354 go on")?;
                let mut raw = String::new();
                loop {
                    let mut data = String::new();
                    if reader.read_line(&mut data).ok()? == 0 || data.trim_end() == "." {
                        break;
                    }
                    raw.push_str(data.strip_prefix('.').unwrap_or(&data));
                }
                tx.send((std::mem::take(&mut rcpt), raw)).ok()?;
                say("250 queued")?;
            }
            "QUIT" => return say("221 bye"),
            _ => say("250 ok")?,
        }
    }
}

/// The `token=` value of the first link in a (possibly quoted-printable) message.
fn link_token(raw: &str) -> String {
    let decoded = raw
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = decoded.find("token=").expect("a link with a token") + "token=".len();
    decoded[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

#[test]
fn mail_committed_before_a_kill_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = |port: u16| {
        vec![
            ("LATCHKEY_MAIL__TRANSPORT", "smtp".to_owned()),
            ("LATCHKEY_MAIL__SMTP__HOST", "127.0.0.1".to_owned()),
            ("LATCHKEY_MAIL__SMTP__PORT", port.to_string()),
            ("LATCHKEY_MAIL__SMTP__TLS", "none".to_owned()),
            // A 1 s timeout makes the claim on a message 12 s: a message claimed
            // when the process died is free again soon after the restart.
            ("LATCHKEY_MAIL__SMTP__TIMEOUT_SECONDS", "1".to_owned()),
            ("LATCHKEY_MAIL__OUTBOX__RETRY_BASE_SECONDS", "1".to_owned()),
            ("LATCHKEY_MAIL__OUTBOX__RETRY_MAX_SECONDS", "2".to_owned()),
            ("LATCHKEY_PASSWORD__BREACH_CHECK", "off".to_owned()),
        ]
    };
    // SMTP is down: nothing listens on this port.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let (mut child, url) = spawn_server_with(dir.path(), &smtp(dead_port));
    let client = reqwest::blocking::Client::new();
    let body = std::collections::HashMap::from([
        ("email", "Survivor@Example.com"),
        ("password", "correct horse battery staple"),
    ]);
    let r = client
        .post(format!("{url}/v1/signup"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    // The answer came after the commit. Once the worker has failed to deliver at
    // least once, the process dies without any cleanup.
    let started = Instant::now();
    while !reqwest::blocking::get(format!("{url}/metrics"))
        .unwrap()
        .text()
        .unwrap()
        .lines()
        .any(|l| l.starts_with("latchkey_mail_retried_total "))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no delivery attempt"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    signal(&child, "KILL");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(!status.success(), "{status:?}");

    // The SMTP server is up now; the restarted process delivers the message.
    let (port, received) = smtp_sink();
    let (mut child, url) = spawn_server_with(dir.path(), &smtp(port));
    let (rcpt, raw) = received
        .recv_timeout(Duration::from_mins(1))
        .expect("the queued mail was not delivered after the restart");
    assert_eq!(rcpt, vec!["Survivor@Example.com".to_owned()]);
    assert!(
        raw.lines()
            .any(|l| l.trim_end() == "Subject: Verify your email address for latchkey"),
        "{raw}"
    );
    let token = link_token(&raw);
    let r = client
        .post(format!("{url}/v1/email/verify"))
        .json(&std::collections::HashMap::from([(
            "token",
            token.as_str(),
        )]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    assert!(
        received.try_recv().is_err(),
        "the message was delivered twice"
    );
}

/// A webhook receiver on 127.0.0.1 in a thread: it holds its first request
/// unanswered (an attempt in flight), then answers 200 to every later one;
/// each request's `webhook-id` is sent on the channel as it arrives.
fn hanging_then_ok_receiver() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut id = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("webhook-id:") {
                    v.trim().clone_into(&mut id);
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let _ = tx.send(id);
            if n == 0 {
                held.push(stream);
            } else {
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    (port, rx)
}

#[test]
fn a_webhook_delivery_in_flight_when_the_server_is_killed_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (port, received) = hanging_then_ok_receiver();
    // A 1 s attempt timeout makes a claim 7 s: the delivery claimed by the
    // killed process is due again soon after the restart.
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!(
            "[webhooks]\ntimeout_seconds = 1\nretry_base_seconds = 1\nretry_max_seconds = 2\n\n\
             [[webhooks.endpoints]]\nname = \"receiver\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             events = [\"login_failed\"]\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
        ),
    )
    .unwrap();
    let (mut child, url) = spawn_server_with(dir.path(), &[]);
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{url}/v1/login"))
        .json(&std::collections::HashMap::from([
            ("email", "nobody@example.com"),
            ("password", "correct horse battery staple"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // The event committed and its first attempt is in flight (held by the
    // receiver): the process dies without any cleanup.
    let first = received
        .recv_timeout(Duration::from_secs(30))
        .expect("no delivery attempt");
    assert!(!first.is_empty(), "the attempt carries a webhook-id");
    signal(&child, "KILL");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(!status.success(), "{status:?}");

    let (mut child, _url) = spawn_server_with(dir.path(), &[]);
    let again = received
        .recv_timeout(Duration::from_mins(1))
        .expect("the delivery was lost with the killed process");
    assert_eq!(again, first, "the same event, redelivered");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    assert!(received.try_recv().is_err(), "delivered again after a 200");
}

const MASTER_A: &str = "first-master-key-0123456789-abcdefghij";
const MASTER_B: &str = "second-master-key-0123456789-abcdefghi";

/// Starts `serve` expecting a refusal; returns its stderr.
fn serve_refused(dir: &Path, env: &[(&str, String)]) -> String {
    let mut child = latchkey(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env("LATCHKEY_LOG__LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let status = wait_exit(&mut child, Duration::from_mins(1));
    assert!(!status.success(), "serve must refuse to start");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

#[test]
fn keys_reencrypt_moves_totp_seeds_to_a_new_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let no_verification = (
        "LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION",
        "false".to_owned(),
    );
    // A TOTP seed sealed under master key A (a pending enrolment is enough).
    let (mut child, url) = spawn_server_with(
        dir.path(),
        &[
            ("LATCHKEY_SECRETS__MASTER_KEY", MASTER_A.to_owned()),
            no_verification.clone(),
            // No breached-password lookups from a test.
            ("LATCHKEY_PASSWORD__BREACH_CHECK", "off".to_owned()),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let account = serde_json_body("ada@example.com");
    let r = client
        .post(format!("{url}/v1/signup"))
        .header("content-type", "application/json")
        .body(account.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let r = client
        .post(format!("{url}/v1/login"))
        .header("content-type", "application/json")
        .body(account)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().unwrap();
    let access = json_string(&body, "access_token");
    let r = client
        .post(format!("{url}/v1/me/mfa/totp"))
        .bearer_auth(&access)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());

    // Master key B alone: refused, naming the missing key.
    let only_b = [
        ("LATCHKEY_SECRETS__MASTER_KEY", MASTER_B.to_owned()),
        no_verification.clone(),
    ];
    let stderr = serve_refused(dir.path(), &only_b);
    let key_id = stderr
        .split("sealed with encryption key ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no key id named: {stderr}"))
        .to_owned();
    assert!(!key_id.is_empty(), "{stderr}");
    assert!(stderr.contains("previous_master_keys"), "{stderr}");
    assert!(!stderr.contains(MASTER_A) && !stderr.contains(MASTER_B));

    // B current, A previous: reencrypt moves the seed, then has nothing to do.
    let previous = dir.path().join("previous.keys");
    std::fs::write(&previous, format!("{MASTER_A}\n")).unwrap();
    let reencrypt = || {
        run(latchkey(dir.path())
            .args(["keys", "reencrypt", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("LATCHKEY_SECRETS__MASTER_KEY", MASTER_B)
            .env("LATCHKEY_SECRETS__PREVIOUS_MASTER_KEYS_FILE", &previous))
    };
    for expected in ["1 TOTP secrets", "0 TOTP secrets"] {
        let out = reencrypt();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("re-encrypted with the current master key: ")
                && stdout.contains(expected),
            "{stdout}"
        );
    }

    // B alone now suffices; the old key is no longer needed.
    let (mut child, url) = spawn_server_with(dir.path(), &only_b);
    assert_eq!(
        reqwest::blocking::get(format!("{url}/readyz"))
            .unwrap()
            .status(),
        200
    );
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    // The name of the key that sealed the seed is not B's.
    let stderr = serve_refused(
        dir.path(),
        &[("LATCHKEY_SECRETS__MASTER_KEY", MASTER_A.to_owned())],
    );
    assert!(!stderr.contains(&key_id), "now sealed with B: {stderr}");
}

/// `{"email": .., "password": ..}` with the test password.
fn serde_json_body(email: &str) -> String {
    format!(r#"{{"email":"{email}","password":"correct horse battery staple"}}"#)
}

/// The string value of `"key"` in a flat JSON object.
fn json_string(body: &str, key: &str) -> String {
    let needle = format!("\"{key}\":\"");
    let start = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    body[start..].chars().take_while(|c| *c != '"').collect()
}

/// `latchkey users ...` on the data directory of a running server; the
/// output and exit code.
fn operator(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(latchkey(dir)
        .args(args)
        .args(["--data-dir", "data"])
        .env("LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION", "false"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `operator` with extra environment variables (the server's configuration).
fn operator_with(dir: &Path, args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let out = run(latchkey(dir)
        .args(args)
        .args(["--data-dir", "data"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn with_redis_an_operator_grant_reaches_a_running_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = std::env::var("LATCHKEY_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let env = [
        (
            "LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION",
            "false".to_owned(),
        ),
        ("LATCHKEY_REDIS__URL", redis),
        // A channel of this test's own: no other server hears it.
        (
            "LATCHKEY_REDIS__KEY_PREFIX",
            format!("cli-bus-{}:", std::process::id()),
        ),
    ];
    let (_server, url) = spawn_server_with(dir.path(), &env);
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{url}/v1/signup"))
        .header("content-type", "application/json")
        .body(serde_json_body("ada@example.com"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let login = http
        .post(format!("{url}/v1/login"))
        .header("content-type", "application/json")
        .body(serde_json_body("ada@example.com"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let token = json_string(&login, "access_token");
    let admin_list = || {
        http.get(format!("{url}/v1/admin/users"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status()
    };
    // The server now remembers the refusal for its cache TTL (5 s).
    let primed = Instant::now();
    assert_eq!(admin_list(), 403);
    let (code, err) = operator_with(
        dir.path(),
        &["users", "grant", "ada@example.com", "admin"],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    let seen = loop {
        if admin_list() == 200 {
            break true;
        }
        if primed.elapsed() > Duration::from_secs(4) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        seen,
        "the grant did not reach the server before its cached refusal expired: no cache bus"
    );
    assert!(!err.contains("Redis did not take"), "{err}");
}

/// A connection to the SQLite database of `dir`, with the runtime that drives it.
fn sqlite(dir: &Path) -> (tokio::runtime::Runtime, sqlx::SqliteConnection) {
    use sqlx::Connection as _;
    let url = format!("sqlite:{}", dir.join("data/latchkey.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime
        .block_on(sqlx::SqliteConnection::connect(&url))
        .unwrap();
    (runtime, db)
}

/// Runs one statement on the SQLite database of `dir` (a fault under the store).
fn sqlite_execute(dir: &Path, sql: &str) {
    let (runtime, mut db) = sqlite(dir);
    runtime.block_on(sqlx::query(sql).execute(&mut db)).unwrap();
}

/// The one text `sql` answers on the SQLite database of `dir`.
fn sqlite_text(dir: &Path, sql: &str) -> String {
    let (runtime, mut db) = sqlite(dir);
    runtime
        .block_on(sqlx::query_scalar(sql).fetch_one(&mut db))
        .unwrap()
}

#[test]
fn audit_verify_passes_on_a_whole_chain_and_names_the_first_broken_event() {
    let dir = tempfile::tempdir().unwrap();
    let steps: [&[&str]; 5] = [
        &["users", "create", "ada@example.com", "--invite"],
        &["users", "create", "bob@example.com", "--invite"],
        &["users", "grant", "ada@example.com", "admin"],
        &["users", "disable", "bob@example.com"],
        &["users", "enable", "bob@example.com"],
    ];
    for step in steps {
        let (code, _, err) = operator(dir.path(), step);
        assert_eq!(code, Some(0), "{step:?}: {err}");
    }
    let (code, out, err) = operator(dir.path(), &["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("chain verified: 5 events (0 redacted"),
        "{out}"
    );
    let (code, out, _) = operator(
        dir.path(),
        &["audit", "verify", "--since", "2100-01-01T00:00:00Z"],
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("chain verified: 0 events"), "{out}");
    let (code, _, err) = operator(dir.path(), &["audit", "verify", "--since", "yesterday"]);
    assert_eq!(code, Some(2), "a usage error");
    assert!(err.contains("RFC 3339"), "{err}");

    let hex = sqlite_text(
        dir.path(),
        "SELECT lower(hex(id)) FROM security_events WHERE seq = 3",
    );
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    sqlite_execute(
        dir.path(),
        "UPDATE security_events SET details = '{}' WHERE seq = 3",
    );
    let (code, out, err) = operator(dir.path(), &["audit", "verify"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains(&format!("chain broken at event {id} (place 3)"))
            && err.contains("2 events before it verified"),
        "{err}"
    );
    let recorded = sqlite_text(
        dir.path(),
        "SELECT details FROM security_events WHERE kind = 'audit_chain_broken'",
    );
    assert!(
        recorded.contains(&id) && recorded.contains("\"place\":3"),
        "the break is an event: {recorded}"
    );
}

/// An import the database stops in its second batch (a trigger refuses one
/// row) keeps the first batch whole and nothing of the second, says what it
/// wrote, and the same file run again finishes the job.
#[test]
fn an_import_the_database_stops_mid_way_keeps_whole_batches_and_a_rerun_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(latchkey(dir.path()).args(["migrate", "--data-dir", "data"]));
    assert!(out.status.success());
    sqlite_execute(
        dir.path(),
        "CREATE TRIGGER refuse_one BEFORE INSERT ON users \
         WHEN NEW.email_normalized = 'user1499@example.com' \
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
    );
    let file = (0..1500)
        .map(|i| format!("{{\"email\":\"user{i:04}@example.com\"}}"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("users.jsonl"), file).unwrap();
    let (code, _, err) = operator(dir.path(), &["users", "import", "users.jsonl"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("import stopped: 1000 created, 0 skipped")
            && err.contains("run the same file again")
            && err.contains("database"),
        "{err}"
    );
    let (_, out, _) = operator(dir.path(), &["users", "list", "--json"]);
    assert_eq!(out.lines().count(), 1000, "the first batch, whole");
    assert!(
        out.contains("user0999@") && !out.contains("user1000@"),
        "nothing of the second batch"
    );
    sqlite_execute(dir.path(), "DROP TRIGGER refuse_one");
    let (code, out, err) = operator(dir.path(), &["users", "import", "users.jsonl"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("500 created, 1000 skipped"), "{out}");
}

/// With Redis down the operator's change is made all the same, and the
/// command says that running servers show it only once their cache expires.
#[test]
fn with_redis_down_an_operator_grant_is_made_and_the_delay_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = operator(
        dir.path(),
        &["users", "create", "ada@example.com", "--invite"],
    );
    assert_eq!(code, Some(0), "{err}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [("LATCHKEY_REDIS__URL", format!("redis://127.0.0.1:{dead}"))];
    let (code, err) = operator_with(
        dir.path(),
        &["users", "grant", "ada@example.com", "admin"],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("Redis did not take the change notice") && err.contains("within 5 s"),
        "{err}"
    );
    let (_, out, _) = operator(dir.path(), &["users", "show", "ada@example.com", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["roles"], serde_json::json!(["admin"]), "{out}");
    // A read changes nothing: nothing to tell.
    let (code, err) = operator_with(dir.path(), &["users", "list"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("Redis"), "{err}");
}

#[test]
#[allow(clippy::too_many_lines)] // one operator session against one running server
fn the_operator_makes_the_first_admin_and_manages_roles_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "LATCHKEY_AUTH__REQUIRE_EMAIL_VERIFICATION",
        "false".to_owned(),
    )];
    let (mut child, url) = spawn_server_with(dir.path(), &env);
    let http = reqwest::blocking::Client::new();
    for email in ["ada@example.com", "bob@example.com"] {
        let r = http
            .post(format!("{url}/v1/signup"))
            .header("content-type", "application/json")
            .body(serde_json_body(email))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{email}");
    }
    let login = |email: &str| {
        http.post(format!("{url}/v1/login"))
            .header("content-type", "application/json")
            .body(serde_json_body(email))
            .send()
            .unwrap()
    };
    let token = json_string(&login("ada@example.com").text().unwrap(), "access_token");
    let admin_list = |token: &str| {
        http.get(format!("{url}/v1/admin/users"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(admin_list(&token), 403);

    let (code, out, err) = operator(dir.path(), &["users", "grant", "ADA@example.com", "admin"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("roles: admin"), "{out}");
    // The running server remembered the refusal; it sees the grant once its
    // access cache lets go (within its TTL, 5 s: no Redis, so no cache bus).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while admin_list(&token) != 200 {
        assert!(std::time::Instant::now() < deadline, "grant never seen");
        std::thread::sleep(Duration::from_millis(250));
    }

    // The last administrator stays.
    let (code, _, err) = operator(dir.path(), &["users", "revoke", "ada@example.com", "admin"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("last enabled administrator"), "{err}");
    let (code, _, _) = operator(dir.path(), &["users", "disable", "ada@example.com"]);
    assert_eq!(code, Some(1));

    // Roles.
    let (code, _, err) = operator(
        dir.path(),
        &[
            "roles",
            "create",
            "ops",
            "--permission",
            "users:read",
            "--description",
            "On call",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, _) = operator(dir.path(), &["roles", "create", "ops"]);
    assert_eq!(code, Some(1), "taken");
    let (code, _, _) = operator(dir.path(), &["roles", "create", "Bad Name"]);
    assert_eq!(code, Some(1));
    let (code, _, _) = operator(
        dir.path(),
        &["roles", "create", "x", "--permission", "root"],
    );
    assert_eq!(code, Some(1));
    let (code, out, _) = operator(dir.path(), &["roles", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("admin (built in)") && out.contains("ops  users:read"),
        "{out}"
    );
    let (code, _, _) = operator(dir.path(), &["roles", "delete", "admin"]);
    assert_eq!(code, Some(1));
    let (code, _, _) = operator(dir.path(), &["users", "grant", "bob@example.com", "ops"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = operator(dir.path(), &["users", "show", "bob@example.com", "--json"]);
    assert_eq!(code, Some(0));
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(shown["roles"], serde_json::json!(["ops"]));
    assert!(shown.get("password_hash").is_none());
    let (code, out, _) = operator(dir.path(), &["users", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, out, _) = operator(dir.path(), &["users", "list", "--query", "bob@example.com"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("bob@example.com") && !out.contains("ada@"),
        "{out}"
    );
    let (code, _, _) = operator(dir.path(), &["roles", "delete", "ops"]);
    assert_eq!(code, Some(0));

    // Disable, enable, sign out.
    let (code, _, _) = operator(dir.path(), &["users", "disable", "bob@example.com"]);
    assert_eq!(code, Some(0));
    assert_eq!(login("bob@example.com").status(), 403);
    let (code, _, _) = operator(dir.path(), &["users", "enable", "bob@example.com"]);
    assert_eq!(code, Some(0));
    assert_eq!(login("bob@example.com").status(), 200);
    let (code, out, _) = operator(dir.path(), &["users", "logout", "bob@example.com"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("session(s) revoked"), "{out}");

    // Refusals and usage.
    let (code, _, err) = operator(dir.path(), &["users", "show", "nobody@example.com"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such account"), "{err}");
    let (code, _, _) = operator(dir.path(), &["users", "grant", "ada@example.com"]);
    assert_eq!(code, Some(2), "a missing argument is a usage error");

    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

/// `operator` with `stdin` written to the command's standard input.
fn operator_with_stdin(dir: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = latchkey(dir)
        .args(args)
        .args(["--data-dir", "data"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_operator_creates_accounts_on_a_stopped_server_with_a_password_or_an_invite() {
    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple";
    let create = ["users", "create", "Ada@Example.com", "--name", "Ada"];
    let args = [&create[..], &["--password-stdin", "--email-verified"]].concat();
    let (code, out, err) = operator_with_stdin(dir.path(), &args, &format!("{password}\n"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("created") && out.contains("Ada@Example.com"),
        "{out}"
    );
    assert!(!out.contains(password) && !err.contains(password));
    // Taken (any case), weak, empty, and neither or both ways: refused.
    let taken = ["users", "create", "ada@example.com", "--password-stdin"];
    let (code, _, err) = operator_with_stdin(dir.path(), &taken, &format!("{password}\n"));
    assert_eq!(code, Some(1));
    assert!(err.contains("taken"), "{err}");
    let weak = ["users", "create", "weak@example.com", "--password-stdin"];
    let (code, _, err) = operator_with_stdin(dir.path(), &weak, "password\n");
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = operator_with_stdin(dir.path(), &weak, "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no password"), "{err}");
    let (code, _, _) = operator(dir.path(), &["users", "create", "x@example.com"]);
    assert_eq!(
        code,
        Some(2),
        "one of --password-stdin and --invite is required"
    );
    let both = [
        "users",
        "create",
        "x@example.com",
        "--password-stdin",
        "--invite",
    ];
    assert_eq!(operator(dir.path(), &both).0, Some(2));
    let (code, _, err) = operator(
        dir.path(),
        &["users", "create", "not-an-address", "--invite"],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid_email"), "{err}");
    let unknown_role = [
        "users",
        "create",
        "r@example.com",
        "--invite",
        "--role",
        "nope",
    ];
    assert_eq!(operator(dir.path(), &unknown_role).0, Some(1));
    // An invite, with a role.
    let invite = [
        "users",
        "create",
        "bob@example.com",
        "--invite",
        "--role",
        "admin",
    ];
    let (code, out, err) = operator(dir.path(), &invite);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("invite queued") && out.contains("roles=admin"),
        "{out}"
    );
    let (code, out, _) = operator(dir.path(), &["users", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 2, "nothing refused was created: {out}");

    // The stored hash is the one a server verifies.
    let (mut child, url) = spawn_server(dir.path());
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/login"))
        .header("content-type", "application/json")
        .body(serde_json_body("ada@example.com"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

#[test]
fn users_import_refuses_a_bad_file_whole_and_imports_bcrypt_users_who_then_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple";
    let bcrypt_hash = bcrypt::hash(password, 4).unwrap();
    let costly = format!("$2b$31${}", &bcrypt_hash[7..]);
    let good = format!(
        r#"{{"email":"ada@example.com","name":"Ada","email_verified":true,"password_hash":"{bcrypt_hash}","roles":["admin"]}}"#
    );
    let bad = [
        good.clone(),
        "{\"email\":\"nul@example.com\",\"name\":\"a\u{0}b\"}".to_owned(),
        r#"{"email":"cut@exam"#.to_owned(),
        r#"{"email":"ADA@example.com"}"#.to_owned(),
        format!(r#"{{"email":"dos@example.com","password_hash":"{costly}"}}"#),
        r#"{"email":"x@example.com","is_admin":true}"#.to_owned(),
        r#"{"email":"not an address"}"#.to_owned(),
    ]
    .join("\n");
    std::fs::write(dir.path().join("bad.jsonl"), bad).unwrap();
    let (code, _, err) = operator(dir.path(), &["users", "import", "bad.jsonl"]);
    assert_eq!(code, Some(1));
    for line in 2..=7 {
        assert!(err.contains(&format!("line {line}:")), "line {line}: {err}");
    }
    assert!(
        !err.contains("line 1:") && err.contains("nothing imported"),
        "{err}"
    );
    assert!(!err.contains(&bcrypt_hash[7..]), "no hash in messages");
    // A file over the cap is refused before it is read whole (sparse: cheap).
    let huge = std::fs::File::create(dir.path().join("huge.jsonl")).unwrap();
    huge.set_len(64 * 1024 * 1024 + 1).unwrap();
    drop(huge);
    let (code, _, err) = operator(dir.path(), &["users", "import", "huge.jsonl"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("larger than 67108864 bytes"), "{err}");
    let (_, out, _) = operator(dir.path(), &["users", "list", "--json"]);
    assert_eq!(out.lines().count(), 0, "nothing half-imported: {out}");

    let file = format!("{good}\n\n{}\n", r#"{"email":"bob@example.com"}"#);
    std::fs::write(dir.path().join("users.jsonl"), file).unwrap();
    let (code, out, err) = operator(dir.path(), &["users", "import", "users.jsonl"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 created, 0 skipped"), "{out}");
    let (code, out, _) = operator(dir.path(), &["users", "import", "users.jsonl"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("0 created, 2 skipped"), "idempotent: {out}");
    let (code, out, _) = operator(dir.path(), &["users", "export", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 2);
    assert!(!out.contains("password_hash"), "{out}");
    let ada: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(ada["roles"], serde_json::json!(["admin"]));
    assert_eq!(ada["email_verified"], true);

    // The bcrypt hash signs in, and is re-hashed to Argon2id; bob has no
    // usable password.
    let (mut child, url) = spawn_server(dir.path());
    let http = reqwest::blocking::Client::new();
    let login = |email: &str| {
        http.post(format!("{url}/v1/login"))
            .header("content-type", "application/json")
            .body(serde_json_body(email))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(login("ada@example.com"), 200);
    assert_eq!(login("bob@example.com"), 401);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, out, _) = operator(
            dir.path(),
            &["users", "export", "--json", "--with-password-hashes"],
        );
        if out.lines().next().unwrap().contains("$argon2id$") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never re-hashed: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(login("ada@example.com"), 200);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

//! `TestApp`: the real server (the same `Application` the binary runs) on
//! `127.0.0.1:0`, with its own data directory and SQLite file (or its own PostgreSQL
//! schema), so tests run in parallel and share nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use latchkey_server::config::Config;
use latchkey_server::passes::{BackgroundPasses, Passes};
use latchkey_server::{AppState, Application, BuildOptions};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::db::PgSchema;

/// Extra routes for probes (slow, panicking, echoing handlers) mounted inside the
/// full middleware stack.
pub type ExtraRoutes = axum::Router<AppState>;

/// A running server and a client for it.
pub struct TestApp {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (or https with TLS).
    pub base_url: String,
    /// A client without cookies or redirects.
    pub client: reqwest::Client,
    /// The server's state (store, config, ...).
    pub state: AppState,
    /// The separate metrics listener, when `metrics.listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    passes: BackgroundPasses,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _data_dir: Arc<TempDir>,
    _schema: Option<PgSchema>,
}

/// How to build a [`TestApp`].
pub struct TestAppBuilder {
    config: Config,
    options: BuildOptions,
    data_dir: Arc<TempDir>,
    schema: Option<PgSchema>,
    client: Option<reqwest::Client>,
}

impl TestApp {
    /// A builder with the default test configuration: dev mode, port 0, a fresh
    /// temporary data directory (hence a fresh SQLite file).
    pub fn builder() -> TestAppBuilder {
        let data_dir =
            Arc::new(tempfile::tempdir().unwrap_or_else(|e| fail(&format!("tempdir: {e}"))));
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.path().to_path_buf(),
            ..Config::default()
        };
        // The cheapest Argon2id the server accepts: tests check behaviour, not cost.
        config.password.argon2_memory_kib = 8 * 1024;
        config.password.argon2_iterations = 1;
        // Tests never reach the internet: the breached-password range API is off
        // unless a test points it at its own server (tests/it/breach.rs).
        config.password.breach_check = latchkey_server::config::BreachMode::Off;
        TestAppBuilder {
            config,
            options: BuildOptions::default(),
            data_dir,
            schema: None,
            client: None,
        }
    }

    /// A server with the default test configuration on SQLite.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| fail(&format!("GET {path}: {e}")))
    }

    /// `GET path` with `Authorization: Bearer <access_token>`.
    pub async fn get_as(&self, path: &str, access_token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap_or_else(|e| fail(&format!("GET {path}: {e}")))
    }

    /// Creates an account directly in the store (hashed with the server's own
    /// hasher), verified unless `verified` is false; returns its id.
    pub async fn create_user(&self, email: &str, password: &str, verified: bool) -> uuid::Uuid {
        let hash = self
            .state
            .services
            .passwords
            .hasher()
            .hash(password)
            .await
            .unwrap_or_else(|e| fail(&format!("hash: {e:?}")));
        self.create_user_with_hash(email, &hash, verified).await
    }

    /// Like [`TestApp::create_user`] with a given stored hash (e.g. bcrypt).
    pub async fn create_user_with_hash(
        &self,
        email: &str,
        hash: &str,
        verified: bool,
    ) -> uuid::Uuid {
        let now = self.state.clock.now();
        let user = latchkey_core::account::NewUser {
            id: uuid::Uuid::now_v7(),
            email: email.trim().to_owned(),
            email_normalized: latchkey_core::account::normalize_email(email),
            name: None,
            password_hash: hash.to_owned(),
            created_at: now,
        };
        let store = &self.state.store;
        store
            .create_user(&user)
            .await
            .unwrap_or_else(|e| fail(&format!("create user: {e:?}")));
        if verified {
            store
                .mark_email_verified(user.id, now)
                .await
                .unwrap_or_else(|e| fail(&format!("verify: {e:?}")));
        }
        user.id
    }

    /// The mail files written so far (dev file transport), oldest first, each as
    /// headers plus decoded body ([`crate::mail::ParsedMail::to_text`]).
    pub fn mails(&self) -> Vec<String> {
        let dir = self.state.config.data_dir.join("mail");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|raw| crate::mail::ParsedMail::parse(&raw).to_text())
            .collect()
    }

    /// Waits (up to 10 s) until the work requests left for after their answer
    /// (failed-sign-in bookkeeping, lock notices, forgot and resend) is done:
    /// a completion signal from the server's runner, not a sleep. Mail those
    /// tasks queued may still be on its way through the outbox.
    pub async fn settled(&self) {
        if tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.state.services.background.idle(),
        )
        .await
        .is_err()
        {
            fail("background work still running after 10 s");
        }
    }

    /// Asks the outbox worker for a round at once and waits (up to 10 s) until a
    /// round that started after the call found no mail due: every message
    /// queued before the call has been attempted and its outcome recorded (with
    /// the dev file transport, written to [`TestApp::mails`]). Fails the test
    /// if the worker does not get there. Use it before asserting that a mail
    /// was *not* sent, or not sent twice.
    pub async fn outbox_pass(&self) {
        pass_within(
            &self.passes.outbox,
            Wake::Now,
            std::time::Duration::from_secs(10),
            "outbox worker",
        )
        .await;
    }

    /// Waits for a round of the event delivery worker that started after the
    /// call and found nothing to do: every event committed before the call
    /// is queued for its webhooks (and in the Redis stream), and every
    /// delivery due at the clock's time attempted, its outcome recorded.
    pub async fn events_pass(&self) {
        pass_within(
            &self.passes.events,
            Wake::Now,
            std::time::Duration::from_secs(20),
            "event delivery worker",
        )
        .await;
    }

    /// [`TestApp::settled`], then [`TestApp::outbox_pass`]: the work left for
    /// after the answers so far is done, and all the mail that requests and
    /// that work queued has been attempted.
    pub async fn mail_settled(&self) {
        self.settled().await;
        self.outbox_pass().await;
    }

    /// Asks the signing-key watcher to re-read the key storage at once (instead
    /// of after `keys::WATCH_INTERVAL`) and waits (up to 10 s) until a read
    /// that started after the call, at the clock's time then, has updated the
    /// ring in use. Fails the test if the watcher does not get there.
    pub async fn key_watch_pass(&self) {
        pass_within(
            &self.passes.key_watch,
            Wake::Now,
            std::time::Duration::from_secs(10),
            "signing-key watcher",
        )
        .await;
    }

    /// Like [`TestApp::key_watch_pass`] without asking: waits for the watcher's
    /// own next read (within `keys::WATCH_INTERVAL`; the test fails after that
    /// plus 10 s). For the tests of the production pace.
    pub async fn key_watch_pass_on_its_own(&self) {
        pass_within(
            &self.passes.key_watch,
            Wake::No,
            latchkey_server::keys::WATCH_INTERVAL + std::time::Duration::from_secs(10),
            "signing-key watcher",
        )
        .await;
    }

    /// Waits (up to 10 s) until at least `count` mails addressed to `to` exist and
    /// returns them, oldest first.
    pub async fn wait_for_mails(&self, to: &str, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let mine: Vec<String> = self
                .mails()
                .into_iter()
                .filter(|m| m.lines().any(|l| l.trim_end() == format!("To: {to}")))
                .collect();
            if mine.len() >= count {
                return mine;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        fail(&format!("no {count} mail(s) to {to} within 10 s"))
    }

    /// `POST /v1/login` in token mode; returns the response.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap_or_else(|e| fail(&format!("login: {e}")))
    }

    /// Starts a graceful shutdown and waits until the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Starts a graceful shutdown without waiting; returns the server task.
    pub fn begin_shutdown(&mut self) -> Option<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestAppBuilder {
    /// Changes the configuration before start.
    #[must_use]
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Sends mail over plain-text SMTP to a server on this machine's `port` (the
    /// in-process sink of [`crate::smtp_sink`]).
    #[must_use]
    pub fn smtp_plain(self, port: u16) -> Self {
        self.configure(|c| {
            c.mail.transport = latchkey_server::config::MailTransport::Smtp;
            c.mail.smtp.host = "127.0.0.1".into();
            c.mail.smtp.port = Some(port);
            c.mail.smtp.tls = latchkey_server::config::SmtpTls::None;
        })
    }

    /// Mounts extra routes inside the middleware stack.
    #[must_use]
    pub fn routes(mut self, routes: ExtraRoutes) -> Self {
        self.options.extra_routes = Some(routes);
        self
    }

    /// Uses this clock instead of the system clock.
    #[must_use]
    pub fn clock(mut self, clock: std::sync::Arc<dyn latchkey_core::clock::Clock>) -> Self {
        self.options.clock = Some(clock);
        self
    }

    /// A second node of `node`'s deployment: the same database and data
    /// directory (signing keys, secrets). `node` must outlive it (it owns the
    /// directory and any PostgreSQL schema).
    #[must_use]
    pub fn beside(self, node: &TestApp) -> Self {
        let database_url = node.state.config.database.url.clone();
        let data_dir = node.state.config.data_dir.clone();
        self.configure(move |c| {
            c.database.url = database_url;
            c.data_dir = data_dir;
        })
    }

    /// Uses this HTTP client (e.g. one trusting a test certificate).
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Runs on a fresh schema of the PostgreSQL server in
    /// `LATCHKEY_TEST_POSTGRES_URL`; `None` (with a "skipped" line) when it is unset.
    pub async fn on_postgres(mut self) -> Option<Self> {
        let schema = PgSchema::create_or_skip().await?;
        self.config.database.url = Some(schema.url().to_owned());
        self.schema = Some(schema);
        Some(self)
    }

    /// The data directory the server will use.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Builds and starts the server; panics (test failure) if it cannot start.
    pub async fn spawn(self) -> TestApp {
        match self.try_spawn().await {
            Ok(app) => app,
            Err(e) => fail(&format!("server did not start: {e:?}")),
        }
    }

    /// Builds and starts the server, returning the start-up error instead.
    ///
    /// A server without an explicit database runs on the backend
    /// [`BACKEND_ENV`] names: SQLite by default, a fresh PostgreSQL schema with
    /// `LATCHKEY_TEST_BACKEND=postgres` (then `LATCHKEY_TEST_POSTGRES_URL` must
    /// be set: asking for PostgreSQL without one fails, it never skips).
    pub async fn try_spawn(mut self) -> Result<TestApp, latchkey_server::StartupError> {
        crate::logs::captured();
        if self.config.database.url.is_none()
            && self.schema.is_none()
            && test_backend() == TestBackend::Postgres
        {
            let Some(schema) = PgSchema::create_or_skip().await else {
                fail(&format!(
                    "{BACKEND_ENV}=postgres needs {}",
                    crate::db::POSTGRES_ENV
                ));
            };
            self.config.database.url = Some(schema.url().to_owned());
            self.schema = Some(schema);
        }
        let app = Application::build_with(self.config, self.options).await?;
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let scheme = if app.is_tls() { "https" } else { "http" };
        let state = app.state().clone();
        let passes = app.passes().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let client = self.client.unwrap_or_else(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_else(|e| fail(&format!("client: {e}")))
        });
        Ok(TestApp {
            addr,
            base_url: format!("{scheme}://{addr}"),
            client,
            state,
            metrics_addr,
            passes,
            stop: Some(stop),
            task: Some(task),
            _data_dir: self.data_dir,
            _schema: self.schema,
        })
    }
}

/// Whether a pass wait asks the loop for a pass at once.
#[derive(Debug, Clone, Copy)]
enum Wake {
    Now,
    No,
}

/// Waits until a pass of `passes` that started after the call has finished;
/// fails the test after `limit`.
async fn pass_within(passes: &Passes, wake: Wake, limit: std::time::Duration, what: &str) {
    let pass = match wake {
        Wake::Now => futures::future::Either::Left(passes.run()),
        Wake::No => futures::future::Either::Right(passes.next()),
    };
    if tokio::time::timeout(limit, pass).await.is_err() {
        fail(&format!("the {what} finished no pass within {limit:?}"));
    }
}

/// Fails the test with `message` (the harness's one way to give up).
#[allow(clippy::panic)] // test harness: a failure to set up is a test failure
pub(crate) fn fail(message: &str) -> ! {
    panic!("{message}")
}

/// The `token=` value of the first link in a mail.
pub fn link_token(mail: &str) -> String {
    mail.split_whitespace()
        .find_map(|w| w.split_once("token=").map(|(_, t)| t.to_owned()))
        .unwrap_or_else(|| fail(&format!("no token link in {mail}")))
}

/// The variable choosing the backend of the end-to-end suite's servers:
/// `sqlite` (the default) or `postgres`. `.ci/run` runs the suite once per value.
pub const BACKEND_ENV: &str = "LATCHKEY_TEST_BACKEND";

/// The backend [`BACKEND_ENV`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestBackend {
    Sqlite,
    Postgres,
}

/// Reads [`BACKEND_ENV`]; any other value fails the test (a typo must not
/// quietly run everything on SQLite).
fn test_backend() -> TestBackend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Err(_) | Ok("" | "sqlite") => TestBackend::Sqlite,
        Ok("postgres") => TestBackend::Postgres,
        Ok(other) => fail(&format!("{BACKEND_ENV}={other}: use sqlite or postgres")),
    }
}

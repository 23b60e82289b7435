//! The worker against a real (SQLite) outbox, a scripted mailer and a manual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use latchkey_core::clock::{Clock, ManualClock};
use latchkey_core::mail::{MailError, Mailer, OutboxSeal, OutgoingMail, OUTBOX_SEAL_PURPOSE};
use latchkey_core::ports::{PoolOptions, Store};
use time::macros::datetime;
use time::Duration;
use uuid::Uuid;

use super::{OutboxSettings, Worker};

/// Fails temporarily while `down`; otherwise records what it "delivers". Each
/// attempt moves the clock by `takes`.
#[derive(Debug)]
struct ScriptedMailer {
    down: AtomicBool,
    attempts: Mutex<Vec<Uuid>>,
    delivered: Mutex<Vec<Uuid>>,
    clock: ManualClock,
    takes: Duration,
}

impl ScriptedMailer {
    fn new(clock: &ManualClock, takes: Duration) -> Arc<Self> {
        Arc::new(Self {
            down: AtomicBool::new(false),
            attempts: Mutex::new(Vec::new()),
            delivered: Mutex::new(Vec::new()),
            clock: clock.clone(),
            takes,
        })
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }

    fn delivered(&self) -> Vec<Uuid> {
        self.delivered.lock().unwrap().clone()
    }
}

impl ScriptedMailer {
    fn attempt(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        self.attempts.lock().unwrap().push(mail.id);
        self.clock.advance(self.takes);
        if self.down.load(Ordering::SeqCst) {
            return Err(MailError::Transient("cannot reach the SMTP server".into()));
        }
        self.delivered.lock().unwrap().push(mail.id);
        Ok(())
    }
}

// `Mailer` is an `async_trait`; this is its expansion (the server crate does not
// depend on the macro).
impl Mailer for ScriptedMailer {
    fn send<'s, 'm, 'f>(
        &'s self,
        mail: &'m OutgoingMail,
    ) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'f>>
    where
        's: 'f,
        'm: 'f,
        Self: 'f,
    {
        let result = self.attempt(mail);
        Box::pin(async move { result })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: ManualClock,
    seal: Arc<OutboxSeal>,
}

fn seal(master: &[u8]) -> Arc<OutboxSeal> {
    Arc::new(OutboxSeal::new(latchkey_core::seal::Keyring::new(
        OUTBOX_SEAL_PURPOSE,
        master,
        &[],
    )))
}

const MASTER: &[u8] = b"a master key of at least thirty-two bytes!";

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = latchkey_store_sqlite::open(
        &dir.path().join("outbox.db"),
        &PoolOptions::default(),
        StdDuration::from_secs(5),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    Fixture {
        _dir: dir,
        store: Arc::new(store),
        clock: ManualClock::new(datetime!(2026-11-23 10:00:00 UTC)),
        seal: seal(MASTER),
    }
}

impl Fixture {
    async fn enqueue(&self, n: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for i in 0..n {
            let mail = OutgoingMail::new(
                &format!("user{i}@example.com"),
                "Hello",
                "body".into(),
                self.clock.now(),
            );
            self.store
                .enqueue_mail(&self.seal.seal(&mail))
                .await
                .unwrap();
            ids.push(mail.id);
        }
        ids
    }

    fn worker(&self, mailer: &Arc<ScriptedMailer>, settings: OutboxSettings) -> Worker {
        let mailer: Arc<dyn Mailer> = mailer.clone();
        Worker::new(
            Arc::clone(&self.store),
            mailer,
            Arc::clone(&self.seal),
            Arc::new(self.clock.clone()),
            settings,
        )
    }
}

fn settings() -> OutboxSettings {
    OutboxSettings {
        send_deadline: StdDuration::from_secs(40),
        retry_base: Duration::seconds(1),
        retry_max: Duration::hours(1),
        max_attempts: 12,
        breaker_failures: 3,
        breaker_cooldown: Duration::seconds(30),
    }
}

#[test]
fn backoff_doubles_and_caps() {
    let defaults = OutboxSettings::default();
    assert_eq!(defaults.backoff(1), Duration::seconds(10));
    assert_eq!(defaults.backoff(2), Duration::seconds(20));
    assert_eq!(defaults.backoff(5), Duration::seconds(160));
    assert_eq!(defaults.backoff(12), Duration::hours(1));
    assert_eq!(defaults.backoff(1000), Duration::hours(1));
    let mut custom = settings();
    custom.retry_max = Duration::seconds(5);
    assert_eq!(custom.backoff(1), Duration::seconds(1));
    assert_eq!(custom.backoff(3), Duration::seconds(4));
    assert_eq!(custom.backoff(4), Duration::seconds(5));
    assert_eq!(custom.backoff(i32::MAX), Duration::seconds(5));
}

#[tokio::test]
async fn an_outage_opens_the_breaker_and_only_a_probe_connects_until_it_closes() {
    let f = fixture().await;
    let ids = f.enqueue(5).await;
    let mailer = ScriptedMailer::new(&f.clock, Duration::ZERO);
    mailer.down.store(true, Ordering::SeqCst);
    let mut worker = f.worker(&mailer, settings());

    // Three temporary failures open the breaker; the other two claimed messages
    // are handed back unsent.
    assert_eq!(worker.round().await, 5);
    assert_eq!(mailer.attempts(), 3);
    assert!(worker.breaker.is_open());
    assert_eq!(f.store.pending_mail().await.unwrap(), 5);

    // While open: nothing is claimed, nothing connects, even with mail due.
    for _ in 0..3 {
        f.clock.advance(Duration::seconds(9));
        assert_eq!(worker.round().await, 0);
    }
    assert_eq!(mailer.attempts(), 3);

    // After the cooldown one probe goes out; it fails and the breaker reopens.
    f.clock.advance(Duration::seconds(3));
    assert_eq!(worker.round().await, 1);
    assert_eq!(mailer.attempts(), 4);
    assert!(worker.breaker.is_open());
    f.clock.advance(Duration::seconds(29));
    assert_eq!(worker.round().await, 0);
    assert_eq!(mailer.attempts(), 4);

    // The server is back: the next probe succeeds, the breaker closes, and the
    // rest is delivered; every message exactly once.
    mailer.down.store(false, Ordering::SeqCst);
    f.clock.advance(Duration::seconds(1));
    assert_eq!(worker.round().await, 1);
    assert!(!worker.breaker.is_open());
    assert_eq!(worker.round().await, 4);
    let mut delivered = mailer.delivered();
    delivered.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(delivered, expected);
    assert_eq!(f.store.pending_mail().await.unwrap(), 0);
    f.clock.advance(Duration::hours(2));
    assert_eq!(worker.round().await, 0);
    assert_eq!(mailer.delivered().len(), 5);
}

#[tokio::test]
async fn no_send_starts_that_could_outlive_its_claim() {
    let f = fixture().await;
    f.enqueue(3).await;
    // Each send takes just over one deadline (the worst an SMTP exchange may
    // take): after the first, the claim no longer covers a second one with margin.
    let mailer = ScriptedMailer::new(&f.clock, Duration::seconds(41));
    let mut worker = f.worker(&mailer, settings());
    assert_eq!(worker.round().await, 3);
    assert_eq!(mailer.attempts(), 1);
    assert_eq!(f.store.pending_mail().await.unwrap(), 2);
    // The handed-back messages are due at once, not after the lease.
    assert_eq!(worker.round().await, 2);
    assert_eq!(worker.round().await, 1);
    assert_eq!(mailer.delivered().len(), 3);
    assert_eq!(f.store.pending_mail().await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_failing_every_time_is_given_up_after_max_attempts() {
    let f = fixture().await;
    f.enqueue(1).await;
    let mailer = ScriptedMailer::new(&f.clock, Duration::ZERO);
    mailer.down.store(true, Ordering::SeqCst);
    let mut s = settings();
    s.max_attempts = 3;
    s.breaker_failures = 0;
    let mut worker = f.worker(&mailer, s);
    for _ in 0..10 {
        worker.round().await;
        f.clock.advance(Duration::hours(1));
    }
    assert_eq!(mailer.attempts(), 3);
    assert_eq!(f.store.pending_mail().await.unwrap(), 0);
}

#[tokio::test]
async fn mail_sealed_under_a_forgotten_master_key_is_given_up_without_connecting() {
    let f = fixture().await;
    let ids = f.enqueue(1).await;
    let mailer = ScriptedMailer::new(&f.clock, Duration::ZERO);
    let mailer_dyn: Arc<dyn Mailer> = mailer.clone();
    let mut worker = Worker::new(
        Arc::clone(&f.store),
        mailer_dyn,
        seal(b"another master key, also long enough......"),
        Arc::new(f.clock.clone()),
        settings(),
    );
    assert_eq!(worker.round().await, 1);
    assert_eq!(mailer.attempts(), 0, "nothing to send: no connection");
    assert!(!worker.breaker.is_open());
    assert_eq!(f.store.pending_mail().await.unwrap(), 0, "given up");
    assert!(!mailer.delivered().contains(&ids[0]));
}

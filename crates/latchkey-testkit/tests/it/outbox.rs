//! Delivery that loses nothing, end to end against the real SMTP sink: an SMTP
//! server that is down and comes back (retries, circuit breaker, pending gauge),
//! and two nodes sharing one database that deliver every message exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use latchkey_core::mail::OutgoingMail;
use latchkey_server::config::{Config, MailTransport, SmtpTls};
use latchkey_testkit::app::{link_token, TestApp};
use latchkey_testkit::smtp_sink::{SinkOptions, SmtpSink};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

fn smtp_to(port: u16) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.mail.transport = MailTransport::Smtp;
        c.mail.smtp.host = "127.0.0.1".into();
        c.mail.smtp.port = Some(port);
        c.mail.smtp.tls = SmtpTls::None;
        c.mail.smtp.timeout_seconds = 2;
        c.mail.outbox.retry_base_seconds = 1;
        c.mail.outbox.retry_max_seconds = 2;
        c.mail.outbox.breaker_cooldown_seconds = 1;
    }
}

/// A local port nothing listens on (yet).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The value of an unlabelled metric in the `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Waits (up to 30 s) until `/metrics` shows `name` at `value`. The recorder is
/// shared by every server in this process, so the value is polled until this
/// server's worker has written it.
/// Waits until the app's outbox holds `pending` unfinished messages, and returns
/// `/metrics` then. (The Prometheus recorder is process-global and other tests'
/// servers set the same gauge, so its value is asserted only to be exported.)
async fn wait_for_pending(app: &TestApp, pending: u64) -> String {
    for _ in 0..600 {
        if app.state.store.pending_mail().await.unwrap() == pending {
            let text = app.get("/metrics").await.text().await.unwrap();
            if metric(&text, "latchkey_mail_outbox_pending").is_some() {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox never held {pending} pending message(s) with the gauge exported");
}

#[tokio::test]
async fn smtp_down_then_back_the_outbox_retries_and_delivers_each_message_once() {
    let port = free_port();
    let app = TestApp::builder().configure(smtp_to(port)).spawn().await;
    let emails = [
        "down.one@example.com",
        "down.two@example.com",
        "down.three@example.com",
    ];
    for email in emails {
        let r = app
            .client
            .post(app.url("/v1/signup"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    // Nothing listens: every attempt fails, the three messages stay queued (the
    // gauge is refreshed after the rounds that tried them), and the run of
    // failures opens the circuit breaker.
    wait_for_pending(&app, 3).await;
    for counter in [
        "latchkey_mail_retried_total",
        "latchkey_mail_breaker_opened_total",
    ] {
        let mut seen = false;
        for _ in 0..200 {
            let text = app.get("/metrics").await.text().await.unwrap();
            if metric(&text, counter).is_some_and(|n| n >= 1.0) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "{counter} never counted");
    }
    assert_eq!(app.state.store.pending_mail().await.unwrap(), 3);

    // The server comes back on the same port: the breaker's probe gets through,
    // the rest follows, every message once.
    let sink = SmtpSink::start_on(([127, 0, 0, 1], port).into(), SinkOptions::plain()).await;
    let received = sink.wait_for(3).await;
    let recipients: BTreeSet<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(
        recipients,
        emails
            .iter()
            .map(|e| (*e).to_owned())
            .collect::<BTreeSet<_>>()
    );
    wait_for_pending(&app, 0).await;
    assert_eq!(app.state.store.pending_mail().await.unwrap(), 0);

    // The delayed link works through the API.
    let mail = received
        .iter()
        .find(|m| m.rcpt_to == ["down.two@example.com"])
        .unwrap();
    assert_eq!(
        mail.parsed().header("Subject"),
        Some("Verify your email address for latchkey")
    );
    let token = link_token(&mail.parsed().to_text());
    let r = app
        .client
        .post(app.url("/v1/email/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await;
    assert_eq!(sink.received().len(), 3, "a message was delivered twice");

    // The breaker logged its state changes without any recipient.
    let logs = latchkey_testkit::logs::captured().text();
    let breaker_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("mail circuit breaker"))
        .collect();
    assert!(
        breaker_lines.iter().any(|l| l.contains("breaker open")),
        "no breaker log"
    );
    assert!(
        breaker_lines.iter().all(|l| !l.contains('@')),
        "{breaker_lines:?}"
    );
}

#[tokio::test]
async fn two_nodes_on_one_database_deliver_every_message_exactly_once() {
    const MESSAGES: usize = 120;
    let sink = SmtpSink::start(SinkOptions::plain()).await;
    let port = sink.addr().port();
    let first = TestApp::builder().configure(smtp_to(port)).spawn().await;
    // The second node shares the first one's database: its PostgreSQL schema in
    // the PostgreSQL suite, else its data directory (SQLite file and secrets).
    // Nodes of one deployment share the master key (queued bodies are sealed
    // with it).
    let database_url = first.state.config.database.url.clone();
    let data_dir = first.state.config.data_dir.clone();
    let master = first.state.secrets.master_key.clone();
    let second = TestApp::builder()
        .configure(smtp_to(port))
        .configure(move |c| match database_url {
            Some(url) => {
                c.database.url = Some(url);
                c.secrets.master_key = Some(master);
            }
            None => c.data_dir = data_dir,
        })
        .spawn()
        .await;

    let now = first.state.clock.now();
    for i in 0..MESSAGES {
        let mail = OutgoingMail::new(
            &format!("node.{i}@example.com"),
            "Hello",
            format!("message {i}"),
            now,
        );
        // Queued through both nodes, claimed by whichever worker gets there first.
        let store = if i % 2 == 0 {
            &first.state.store
        } else {
            &second.state.store
        };
        let queued = first.state.services.outbox.seal(&mail);
        store.enqueue_mail(&queued).await.unwrap();
    }
    for _ in 0..600 {
        if first.state.store.pending_mail().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first.state.store.pending_mail().await.unwrap(), 0);
    // Both workers have stopped: nothing can still be in flight.
    second.shutdown().await;
    first.shutdown().await;

    let received = sink.received();
    let recipients: Vec<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    let distinct: BTreeSet<&String> = recipients.iter().collect();
    assert_eq!(distinct.len(), MESSAGES, "a message was lost");
    assert_eq!(recipients.len(), MESSAGES, "a message was delivered twice");
}

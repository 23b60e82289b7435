//! The SMTP transport against a real SMTP server (the in-process sink): STARTTLS
//! with a private CA and authentication end to end through sign-up, implicit TLS,
//! no downgrade to plain text, untrusted certificates, refused credentials, and
//! how each failure is classified for the outbox.

use std::sync::Arc;
use std::time::Duration;

use latchkey_adapters::mail_message::Sender;
use latchkey_adapters::mail_smtp::{SmtpMailer, SmtpSecurity, SmtpSettings};
use latchkey_core::clock::ManualClock;
use latchkey_core::mail::{MailError, Mailer, OutgoingMail};
use latchkey_server::config::{MailTransport, SmtpTls};
use latchkey_testkit::app::{link_token, TestApp};
use latchkey_testkit::smtp_sink::{SinkOptions, SinkSecurity, SmtpSink};
use serde_json::json;
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery staple";
const SMTP_USER: &str = "latchkey@relay.test";
const SMTP_PASSWORD: &str = "relay password 0123";

fn settings(sink: &SmtpSink, security: SmtpSecurity, trust: bool) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.addr().port(),
        security,
        credentials: Some((SMTP_USER.into(), Zeroizing::new(SMTP_PASSWORD.into()))),
        extra_roots_pem: trust.then(|| sink.ca_pem().as_bytes().to_vec()),
        timeout: Duration::from_secs(5),
        hello_name: "auth.example.test".into(),
        from: Sender::parse("Example <no-reply@example.test>").unwrap(),
    }
}

fn message(to: &str) -> OutgoingMail {
    OutgoingMail::new(
        to,
        "Hello",
        "A line\nand a link https://auth.example.test/verify-email?token=lk_ev_0123456789abcdef0123456789abcdef0123456789a\n".into(),
        time::macros::datetime!(2026-11-23 10:00:00 UTC),
    )
}

fn authenticated(security: SinkSecurity) -> SinkOptions {
    SinkOptions::plain()
        .with_security(security)
        .with_auth(SMTP_USER, SMTP_PASSWORD)
}

#[tokio::test]
async fn signup_mail_travels_over_starttls_with_auth_and_its_link_verifies() {
    let sink = SmtpSink::start(authenticated(SinkSecurity::StartTls)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("relay-ca.pem");
    std::fs::write(&ca, sink.ca_pem()).unwrap();
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, format!("{SMTP_PASSWORD}\n")).unwrap();
    let port = sink.addr().port();
    let app = TestApp::builder()
        .configure(move |c| {
            c.mail.transport = MailTransport::Smtp;
            c.mail.from = "Example Auth <no-reply@example.test>".into();
            c.mail.smtp.host = "127.0.0.1".into();
            c.mail.smtp.port = Some(port);
            c.mail.smtp.tls = SmtpTls::Starttls;
            c.mail.smtp.username = Some(SMTP_USER.into());
            c.mail.smtp.password_file = Some(password_file);
            c.mail.smtp.ca_file = Some(ca);
        })
        .spawn()
        .await;
    let r = app
        .client
        .post(app.url("/v1/signup"))
        .json(&json!({"email": "New.User@Example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let received = sink.wait_for(1).await;
    let mail = &received[0];
    assert!(mail.tls, "the message travelled in plain text");
    assert_eq!(mail.user.as_deref(), Some(SMTP_USER));
    assert_eq!(mail.mail_from, "no-reply@example.test");
    assert_eq!(mail.rcpt_to, vec!["New.User@Example.com".to_owned()]);
    let parsed = mail.parsed();
    assert_eq!(
        parsed.header("From"),
        Some("\"Example Auth\" <no-reply@example.test>")
    );
    assert_eq!(
        parsed.header("Subject"),
        Some("Verify your email address for latchkey")
    );
    assert!(parsed
        .header("Message-ID")
        .is_some_and(|id| id.ends_with("@example.test>")));
    let commands = sink.commands();
    let starttls = commands.iter().position(|c| c == "STARTTLS").unwrap();
    let auth = commands.iter().position(|c| c.starts_with("AUTH")).unwrap();
    assert!(starttls < auth, "credentials before STARTTLS: {commands:?}");
    assert!(
        commands
            .iter()
            .any(|c| c == "EHLO 127.0.0.1" || c.starts_with("EHLO ")),
        "{commands:?}"
    );
    assert!(app.mails().is_empty(), "SMTP mode also wrote mail files");

    // The link in the delivered message works through the API.
    let token = link_token(&parsed.to_text());
    let r = app
        .client
        .post(app.url("/v1/email/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.login("new.user@example.com", PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn implicit_tls_delivers_and_announces_the_hello_name() {
    let sink = SmtpSink::start(authenticated(SinkSecurity::ImplicitTls)).await;
    let mailer = SmtpMailer::new(settings(&sink, SmtpSecurity::ImplicitTls, true)).unwrap();
    mailer.send(&message("someone@example.com")).await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls);
    assert_eq!(received[0].rcpt_to, vec!["someone@example.com".to_owned()]);
    assert!(
        received[0]
            .parsed()
            .body
            .contains("token=lk_ev_0123456789abcdef"),
        "{}",
        received[0].raw
    );
    assert_eq!(sink.commands()[0], "EHLO auth.example.test");
}

#[tokio::test]
async fn starttls_is_never_downgraded_to_plain_text() {
    // A server (or an attacker in the path) that does not offer STARTTLS but
    // happily offers AUTH in plain text.
    let sink = SmtpSink::start(authenticated(SinkSecurity::Plain)).await;
    let mailer = SmtpMailer::new(settings(&sink, SmtpSecurity::StartTls, true)).unwrap();
    let err = mailer
        .send(&message("someone@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    let commands = sink.commands();
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
        "credentials or mail sent without TLS: {commands:?}"
    );
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_gets_neither_credentials_nor_mail() {
    for security in [SinkSecurity::StartTls, SinkSecurity::ImplicitTls] {
        let sink = SmtpSink::start(authenticated(security)).await;
        let client = if security == SinkSecurity::StartTls {
            SmtpSecurity::StartTls
        } else {
            SmtpSecurity::ImplicitTls
        };
        let mailer = SmtpMailer::new(settings(&sink, client, false)).unwrap();
        let err = mailer
            .send(&message("someone@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err:?}");
        assert!(!sink.commands().iter().any(|c| c.starts_with("AUTH")));
        assert!(sink.received().is_empty());
    }
}

#[tokio::test]
async fn refused_credentials_keep_the_message_for_later() {
    let sink = SmtpSink::start(
        SinkOptions::plain()
            .with_security(SinkSecurity::StartTls)
            .with_auth(SMTP_USER, "another password"),
    )
    .await;
    let mailer = SmtpMailer::new(settings(&sink, SmtpSecurity::StartTls, true)).unwrap();
    let err = mailer
        .send(&message("someone@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MailError::Transient(why) if !why.contains(SMTP_PASSWORD)),
        "{err:?}"
    );
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn replies_are_classified_5xx_permanent_4xx_transient() {
    let mut sink_options = authenticated(SinkSecurity::StartTls);
    sink_options.rcpt_reply = Some((550, "5.1.1 no such user".into()));
    let sink = SmtpSink::start(sink_options).await;
    let mailer = SmtpMailer::new(settings(&sink, SmtpSecurity::StartTls, true)).unwrap();
    let err = mailer.send(&message("gone@example.com")).await.unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent(why) if why.contains("550")),
        "{err:?}"
    );

    sink.set_rcpt_reply(Some((451, "4.3.0 try again later".into())));
    let err = mailer.send(&message("gone@example.com")).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");

    sink.set_rcpt_reply(None);
    mailer.send(&message("back@example.com")).await.unwrap();
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_hung_server_or_a_closed_port_is_a_temporary_failure() {
    let mut silent = SinkOptions::plain();
    silent.silent = true;
    let sink = SmtpSink::start(silent).await;
    let mut hung = settings(&sink, SmtpSecurity::ImplicitTls, true);
    hung.timeout = Duration::from_secs(1);
    let err = SmtpMailer::new(hung)
        .unwrap()
        .send(&message("someone@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut refused = settings(&sink, SmtpSecurity::StartTls, true);
    refused.port = port;
    let err = SmtpMailer::new(refused)
        .unwrap()
        .send(&message("someone@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn an_invalid_ca_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = TestApp::builder()
        .configure(move |c| {
            c.mail.transport = MailTransport::Smtp;
            c.mail.smtp.host = "127.0.0.1".into();
            c.mail.smtp.ca_file = Some(ca);
        })
        .try_spawn()
        .await
        .err()
        .expect("a broken ca_file was accepted");
    assert!(format!("{err:?}").contains("mail.smtp.ca_file"), "{err:?}");
}

#[tokio::test]
async fn the_outbox_retries_a_temporary_refusal_and_gives_up_on_a_permanent_one() {
    let mut sink_options = SinkOptions::plain();
    sink_options.rcpt_reply = Some((451, "4.3.0 try again later".into()));
    let sink = SmtpSink::start(sink_options).await;
    let clock = ManualClock::new(time::macros::datetime!(2026-11-23 10:00:00 UTC));
    let port = sink.addr().port();
    let app = TestApp::builder()
        .clock(Arc::new(clock.clone()))
        .smtp_plain(port)
        .spawn()
        .await;
    let signup = |email: &'static str| {
        app.client
            .post(app.url("/v1/signup"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
    };
    assert_eq!(signup("later@example.com").await.unwrap().status(), 202);
    // The first attempt is refused with 451: nothing is lost, nothing arrives.
    wait_until(|| sink.commands().iter().any(|c| c.starts_with("RCPT"))).await;
    assert!(sink.received().is_empty());

    // The server recovers; once the backoff has passed the message is delivered, once.
    sink.set_rcpt_reply(None);
    clock.advance(time::Duration::seconds(11));
    let received = sink.wait_for(1).await;
    assert_eq!(received[0].rcpt_to, vec!["later@example.com".to_owned()]);
    clock.advance(time::Duration::hours(2));
    app.outbox_pass().await;
    assert_eq!(sink.received().len(), 1, "delivered twice");

    // A permanent refusal is counted and not retried.
    sink.set_rcpt_reply(Some((550, "5.1.1 no such user".into())));
    assert_eq!(signup("gone@example.com").await.unwrap().status(), 202);
    wait_until(|| {
        sink.commands()
            .iter()
            .filter(|c| c.starts_with("RCPT"))
            .count()
            >= 3
    })
    .await;
    let rcpts = || {
        sink.commands()
            .iter()
            .filter(|c| c.starts_with("RCPT"))
            .count()
    };
    let after_refusal = rcpts();
    clock.advance(time::Duration::hours(2));
    app.outbox_pass().await;
    assert_eq!(
        rcpts(),
        after_refusal,
        "a permanently refused message was retried"
    );
    // (The recorder is shared by every test in this process: only presence is ours to check.)
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("latchkey_mail_failed_total"), "{metrics}");
    assert!(metrics.contains("latchkey_mail_sent_total"), "{metrics}");
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}

//! Security notices and mail templates: a sign-in from a new device, a password
//! change and a refresh-token reuse are mailed (each can be turned off); HTML
//! bodies escape user-controlled values; operators' templates replace the
//! built-in ones, and a broken one stops the start.

use latchkey_testkit::app::{TestApp, TestAppBuilder};
use latchkey_testkit::smtp_sink::{SinkOptions, SmtpSink};
use serde_json::{json, Value};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";
const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                              (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const NEW_PASSWORD: &str = "another fine passphrase 9";
const NEW_DEVICE: &str = "Subject: New sign-in to your latchkey account";

fn builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

async fn login_as(app: &TestApp, user_agent: &str) -> Value {
    login_with(app, user_agent, PASSWORD).await
}

async fn login_with(app: &TestApp, user_agent: &str, password: &str) -> Value {
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("user-agent", user_agent)
        .json(&json!({"email": EMAIL, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn count(app: &TestApp, subject_line: &str) -> usize {
    app.mails()
        .iter()
        .filter(|m| m.lines().any(|l| l.trim_end() == subject_line))
        .count()
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_mailed_once() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    // The very first sign-in is no news.
    login_as(&app, FIREFOX_LINUX).await;
    login_as(&app, FIREFOX_LINUX).await;
    app.mail_settled().await;
    assert_eq!(count(&app, NEW_DEVICE), 0);

    login_as(&app, CHROME_WINDOWS).await;
    let mails = app.wait_for_mails(EMAIL, 1).await;
    let notice = mails.iter().find(|m| m.contains(NEW_DEVICE)).unwrap();
    assert!(notice.contains("Chrome on Windows"), "{notice}");
    assert!(notice.contains("Address: 127.0.0.1"), "{notice}");
    // The same device again: nothing new.
    login_as(&app, CHROME_WINDOWS).await;
    app.mail_settled().await;
    assert_eq!(count(&app, NEW_DEVICE), 1);
}

#[tokio::test]
async fn notices_can_be_turned_off_one_by_one() {
    let app = builder()
        .configure(|c| {
            c.mail.notifications.new_device = false;
            c.mail.notifications.password_changed = false;
            c.mail.notifications.refresh_reuse = false;
        })
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    login_as(&app, FIREFOX_LINUX).await;
    let session = login_as(&app, CHROME_WINDOWS).await;
    change_password(&app, &session).await;
    let again = login_with(&app, CHROME_WINDOWS, NEW_PASSWORD).await;
    reuse_refresh_token(&app, &again).await;
    app.mail_settled().await;
    assert!(app.mails().is_empty(), "{:?}", app.mails());
}

async fn change_password(app: &TestApp, session: &Value) {
    let r = app
        .client
        .post(app.url("/v1/me/password"))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn reuse_refresh_token(app: &TestApp, session: &Value) {
    let refresh = |token: String| async move {
        app.client
            .post(app.url("/v1/token/refresh"))
            .header("user-agent", CHROME_WINDOWS)
            .json(&json!({ "refresh_token": token }))
            .send()
            .await
            .unwrap()
    };
    let old = session["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(old.clone()).await.status(), 200);
    assert_eq!(refresh(old).await.status(), 401, "reuse");
}

#[tokio::test]
async fn password_change_and_refresh_reuse_are_mailed_with_escaped_html() {
    let sink = SmtpSink::start(SinkOptions::plain()).await;
    let port = sink.addr().port();
    let app = builder()
        .smtp_plain(port)
        .configure(|c| c.mail.product_name = "Acme & <Co>".into())
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let session = login_as(&app, FIREFOX_LINUX).await;
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .json(&json!({"name": "<img src=x onerror=alert(1)>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    change_password(&app, &session).await;
    let session = login_with(&app, FIREFOX_LINUX, NEW_PASSWORD).await;
    reuse_refresh_token(&app, &session).await;

    let mails = sink.wait_for(2).await;
    // Delivery order within one outbox batch is not guaranteed.
    let mut subjects: Vec<String> = mails
        .iter()
        .map(|m| m.parsed().header("Subject").unwrap_or_default().to_owned())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            "A Acme & <Co> session was signed out for your safety",
            "Your Acme & <Co> password was changed",
        ]
    );
    for mail in &mails {
        assert_eq!(mail.rcpt_to, vec![EMAIL.to_owned()]);
        let parsed = mail.parsed();
        let html = parsed.html.expect("HTML alternative");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<Co>"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("Acme &amp; &lt;Co&gt;"), "{html}");
        assert!(
            parsed.body.contains("Hello <img src=x onerror=alert(1)>,"),
            "the text part is plain text: {}",
            parsed.body
        );
    }
}

#[tokio::test]
async fn operator_templates_replace_the_built_in_ones_and_broken_ones_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("verify_email.txt"),
        "Subject: Welcome aboard {{ product }}\n\nYour link: {{ link }}\n",
    )
    .unwrap();
    let path = dir.path().to_owned();
    let app = builder()
        .configure(move |c| c.mail.templates_dir = Some(path))
        .spawn()
        .await;
    let r = app
        .client
        .post(app.url("/v1/signup"))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mail = &app.wait_for_mails(EMAIL, 1).await[0];
    assert!(mail.contains("Subject: Welcome aboard latchkey"), "{mail}");
    assert!(mail.contains("Your link: http"), "{mail}");

    std::fs::write(
        dir.path().join("new_device.html"),
        "{% extends \"layout.html\" %}{% block body %}{{ browsr }}{% endblock %}",
    )
    .unwrap();
    let path = dir.path().to_owned();
    let Err(e) = builder()
        .configure(move |c| c.mail.templates_dir = Some(path))
        .try_spawn()
        .await
    else {
        panic!("a template with an unknown variable must stop the start");
    };
    let text = format!("{e:?}");
    assert!(text.contains("mail.templates_dir"), "{text}");
    assert!(text.contains("new_device.html"), "{text}");
}

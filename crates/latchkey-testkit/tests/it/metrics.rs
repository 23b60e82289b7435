//! `/metrics`: request counts and latency by matched route template, never by raw
//! path; optionally on a separate listener.

use latchkey_testkit::app::TestApp;

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/no/such/path-7f3a9c").await.status(), 404);
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let has = |needle: &str| {
        text.lines().any(|l| {
            l.starts_with("http_requests_total") && needle.split(',').all(|part| l.contains(part))
        })
    };
    assert!(
        has(r#"method="GET",route="/healthz",status="200""#),
        "{text}"
    );
    assert!(has(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        !text.contains("path-7f3a9c"),
        "raw paths never become labels"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_request_duration_seconds_bucket")
                && l.contains(r#"route="/healthz""#)
                && l.contains("le=")),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_count"));
}

#[tokio::test]
async fn unknown_methods_do_not_create_new_labels() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            app.url("/healthz"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("BREW"));
    assert!(text.contains(r#"method="other""#));
}

#[tokio::test]
async fn metrics_can_move_to_a_separate_listener() {
    let app = TestApp::builder()
        .configure(|c| c.metrics.listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the main listener"
    );
    let addr = app.metrics_addr.expect("metrics listener bound");
    let r = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("http_requests_total"));
    let r = app
        .client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the metrics listener serves only /metrics");
}

#[tokio::test]
async fn metrics_can_be_disabled() {
    let app = TestApp::builder()
        .configure(|c| c.metrics.enabled = false)
        .spawn()
        .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
}

#[tokio::test]
async fn refused_access_tokens_are_counted_by_the_check_that_refused_them() {
    let clock =
        latchkey_core::clock::ManualClock::new(time::macros::datetime!(2026-11-23 10:00:00 UTC));
    let app = TestApp::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    app.create_user("ada@example.com", "correct horse battery staple", true)
        .await;
    let token = |body: serde_json::Value| body["access_token"].as_str().unwrap().to_owned();
    let sign_in = || async {
        let r = app
            .login("ada@example.com", "correct horse battery staple")
            .await;
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()
    };
    // A forged token.
    assert_eq!(app.get_as("/v1/me", "not.a.token").await.status(), 401);
    // A logged-out token (denylisted).
    let first = token(sign_in().await);
    let r = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(&first)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get_as("/v1/me", &first).await.status(), 401);
    // A token whose session another session ended.
    let doomed = sign_in().await;
    let survivor = token(sign_in().await);
    let r = app
        .client
        .delete(app.url(&format!(
            "/v1/me/sessions/{}",
            doomed["session_id"].as_str().unwrap()
        )))
        .bearer_auth(&survivor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get_as("/v1/me", &token(doomed)).await.status(), 401);
    // An expired one (15 minutes plus the 60 s leeway later).
    clock.advance(time::Duration::minutes(17));
    assert_eq!(app.get_as("/v1/me", &survivor).await.status(), 401);

    let text = app.get("/metrics").await.text().await.unwrap();
    for reason in ["invalid", "denied", "session", "expired"] {
        let series = format!("latchkey_access_token_rejected_total{{reason=\"{reason}\"}}");
        assert!(text.contains(&series), "{series} in {text}");
    }
}

/// A production configuration a test server can start with.
fn production(c: &mut latchkey_server::config::Config) {
    use latchkey_server::config::{KeyStorageKind, Mode, Secret};
    c.mode = Mode::Production;
    c.public_url = Some("https://auth.example.com".into());
    c.secrets.master_key = Some(Secret::new("Pk3v9TqLx2Wb7Ns5Yh8Rc4Jm6Gd1Zf0A-production"));
    c.secrets.hmac_key = Some(Secret::new("Hq7Lr2Vx9Kc4Tn6Wb1Ys8Jd3Mf5Gp0Z-production"));
    c.tokens.key_storage = KeyStorageKind::Database;
    c.mail.verify_url = Some("https://app.example.com/verify?token={token}".into());
    c.mail.reset_url = Some("https://app.example.com/reset?token={token}".into());
}

/// Counts `latchkey_mail_sent_total` move by one per mail: public metrics would
/// tell whether an address has an account (`forgot` mails only known ones).
#[tokio::test]
async fn production_keeps_metrics_off_the_public_listener() {
    let app = TestApp::builder().configure(production).spawn().await;
    let r = app.get("/metrics").await;
    assert_eq!(
        r.status(),
        404,
        "not served without a token or a private listener"
    );

    let token = "a metrics scraper token of 32+ random bytes: 7Qp2xLz";
    let app = TestApp::builder()
        .configure(production)
        .configure(move |c| {
            c.metrics.bearer_token = Some(latchkey_server::config::Secret::new(token));
        })
        .spawn()
        .await;
    let r = app.get("/metrics").await;
    crate::support::assert_problem(r, 401, "unauthorized").await;
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("a metrics scraper token of 32+ random bytes: 7Qp2xLy")
        .send()
        .await
        .unwrap();
    crate::support::assert_problem(r, 401, "unauthorized").await;
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("http_requests_total"));

    // A private listener serves them (here without a token).
    let app = TestApp::builder()
        .configure(production)
        .configure(|c| c.metrics.listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let private = format!("http://{}/metrics", app.metrics_addr.unwrap());
    assert_eq!(app.client.get(private).send().await.unwrap().status(), 200);
}

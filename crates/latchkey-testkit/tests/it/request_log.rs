//! The request log: one `info` line per request with its id, method, route
//! template, status, latency and masked client IP; background work a request
//! starts logs under the same request id.

use latchkey_testkit::app::TestApp;
use serde_json::Value;

use crate::support::captured_logs;

/// The captured JSON lines whose request span has `request_id`.
fn lines_of(request_id: &str) -> Vec<Value> {
    captured_logs()
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["request_id"] == request_id)
        .collect()
}

/// The one request line of `request_id` (fails if there is none or several).
fn request_line(request_id: &str) -> Value {
    let mine: Vec<Value> = lines_of(request_id)
        .into_iter()
        .filter(|l| l["fields"]["message"] == "request completed")
        .collect();
    assert_eq!(mine.len(), 1, "{request_id}: {mine:?}");
    mine[0].clone()
}

async fn get_with_id(app: &TestApp, path: &str, id: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_request_gets_one_info_line_with_route_status_latency_and_masked_ip() {
    captured_logs();
    let app = TestApp::spawn().await;
    let r = get_with_id(&app, "/healthz", "rlog-health").await;
    assert_eq!(r.status(), 200);
    let line = request_line("rlog-health");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["method"], "GET");
    let fields = &line["fields"];
    assert_eq!(fields["route"], "/healthz");
    assert_eq!(fields["status"], 200);
    assert!(
        fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    assert_eq!(fields["client_ip"], "127.0.0.0", "the last octet is masked");

    // A failure names its route template (never the raw path) and status.
    let path = format!("/v1/me/sessions/{}", uuid::Uuid::now_v7());
    let r = get_with_id(&app, &path, "rlog-405").await;
    assert_eq!(r.status(), 405);
    let line = request_line("rlog-405");
    assert_eq!(line["fields"]["route"], "/v1/me/sessions/{id}");
    assert_eq!(line["fields"]["status"], 405);
    assert!(!line.to_string().contains(&path[16..]), "{line}");

    let r = get_with_id(&app, "/v1/me", "rlog-401").await;
    assert_eq!(r.status(), 401);
    assert_eq!(request_line("rlog-401")["fields"]["status"], 401);
}

#[tokio::test]
async fn unmatched_paths_are_logged_without_their_query_and_bounded() {
    captured_logs();
    let app = TestApp::spawn().await;
    let r = get_with_id(&app, "/no/such/page?token=lk_pr_secretvalue", "rlog-404").await;
    assert_eq!(r.status(), 404);
    let line = request_line("rlog-404");
    assert_eq!(line["fields"]["route"], "unmatched");
    assert_eq!(line["fields"]["path"], "/no/such/page");
    assert!(!line.to_string().contains("secretvalue"), "{line}");

    let long = format!("/{}", "a".repeat(5000));
    let r = get_with_id(&app, &long, "rlog-long").await;
    assert_eq!(r.status(), 404);
    let logged = request_line("rlog-long")["fields"]["path"]
        .as_str()
        .unwrap()
        .len();
    assert_eq!(logged, 200);
}

#[tokio::test]
async fn a_forwarded_client_ip_is_logged_masked_never_whole() {
    captured_logs();
    let app = TestApp::builder()
        .configure(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
        .spawn()
        .await;
    for (id, forwarded, masked) in [
        ("rlog-v4", "203.0.113.77", "203.0.113.0"),
        ("rlog-v6", "2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
    ] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", id)
            .header("x-forwarded-for", forwarded)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let line = request_line(id);
        assert_eq!(line["fields"]["client_ip"], masked);
        assert!(!line.to_string().contains(forwarded), "{line}");
    }
}

#[tokio::test]
async fn background_work_started_by_a_request_logs_under_its_request_id() {
    captured_logs();
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    app.create_user("bg@example.com", "correct horse battery staple", true)
        .await;
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("x-request-id", "rlog-failed-login")
        .json(&serde_json::json!({"email": "bg@example.com", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(app.url("/v1/password/forgot"))
        .header("x-request-id", "rlog-forgot")
        .json(&serde_json::json!({"email": "bg@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    app.wait_for_mails("bg@example.com", 1).await;
    // The failure is counted after the answer, in a task of its own.
    app.settled().await;
    let counted = lines_of("rlog-failed-login")
        .iter()
        .any(|l| l["fields"]["message"] == "failed sign-in counted");
    assert!(counted, "{:?}", lines_of("rlog-failed-login"));
    assert!(
        lines_of("rlog-forgot")
            .iter()
            .any(|l| l["fields"]["message"] == "forgot-password request processed"),
        "{:?}",
        lines_of("rlog-forgot")
    );
    // The request lines themselves.
    assert_eq!(
        request_line("rlog-failed-login")["fields"]["route"],
        "/v1/login"
    );
    assert_eq!(request_line("rlog-forgot")["fields"]["status"], 202);
}

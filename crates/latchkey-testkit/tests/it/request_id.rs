//! `x-request-id`: echoed when valid, generated (UUIDv7) otherwise, in every
//! problem body and in every log line written while serving the request.

use latchkey_testkit::app::TestApp;

use crate::support::assert_problem;

fn header(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_owned()
}

fn is_uuid_v7(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 7)
}

#[tokio::test]
async fn a_valid_client_id_is_echoed() {
    let app = TestApp::spawn().await;
    for id in ["abc", "01JD-request.id_~!", &"x".repeat(128)] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r), id);
    }
}

#[tokio::test]
async fn garbage_ids_are_replaced_by_a_generated_uuid_v7() {
    let app = TestApp::spawn().await;
    let long = "y".repeat(129);
    let cases: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_static(""),
        reqwest::header::HeaderValue::from_str(&long).unwrap(),
        reqwest::header::HeaderValue::from_static("has space"),
        reqwest::header::HeaderValue::from_static("tab\there"),
        reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    ];
    for value in cases {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", value.clone())
            .send()
            .await
            .unwrap();
        let id = header(&r);
        assert!(is_uuid_v7(&id), "{value:?} gave {id}");
    }
    let r = app.get("/healthz").await;
    assert!(is_uuid_v7(&header(&r)));
    let a = header(&app.get("/healthz").await);
    let b = header(&app.get("/healthz").await);
    assert_ne!(a, b, "ids are unique");
}

#[tokio::test]
async fn problem_bodies_carry_the_request_id() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/missing"))
        .header("x-request-id", "trace-404")
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 404, "not_found").await;
    assert_eq!(body["request_id"], "trace-404");
}

#[tokio::test]
async fn log_lines_written_while_serving_carry_the_request_id() {
    let logs = crate::support::captured_logs();
    let app = TestApp::builder()
        .routes(crate::probes::routes())
        .spawn()
        .await;
    let r = app
        .client
        .get(app.url("/test/panic"))
        .header("x-request-id", "trace-log-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let r = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-log-8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let text = logs.text();
    let mine = |id: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(id))
            .map(str::to_owned)
            .collect()
    };
    let seven = mine("trace-log-7");
    assert!(
        seven.iter().any(|l| l.contains("handler panicked")),
        "the panic is logged under its id: {seven:?}"
    );
    assert!(
        seven.iter().any(|l| l.contains("request failed")),
        "{seven:?}"
    );
    assert!(
        mine("trace-log-8")
            .iter()
            .any(|l| l.contains("request rejected")),
        "{text}"
    );
    // No line written inside a request lacks its id.
    for line in text
        .lines()
        .filter(|l| l.contains("handler panicked") || l.contains("request rejected"))
    {
        assert!(
            line.contains("\"request_id\""),
            "line without request_id: {line}"
        );
    }
}

//! The OpenAPI document describes exactly the routes the router serves.

use std::collections::BTreeSet;

use latchkey_server::routes::endpoints;
use latchkey_testkit::app::TestApp;

#[tokio::test]
async fn the_document_is_openapi_3_1_and_matches_the_route_table() {
    let app = TestApp::spawn().await;
    let r = app.get("/v1/openapi.json").await;
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = endpoints(&app.state)
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );

    // Every documented route really answers (not the 404 fallback).
    for (method, path) in &served {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 404, "{method} {path}");
    }
}

/// A request that runs past the timeout answers 503 on any route, and a bug
/// 500: every operation says so, as a problem, keeping its own 503 note.
#[tokio::test]
async fn every_operation_lists_500_and_503_as_problems() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for status in ["500", "503"] {
                let answer = &operation["responses"][status];
                assert!(
                    answer["content"]["application/problem+json"]["schema"].is_object(),
                    "{method} {path} {status}: {answer}"
                );
            }
        }
    }
    let readyz = doc["paths"]["/readyz"]["get"]["responses"]["503"]["description"]
        .as_str()
        .unwrap();
    assert!(
        readyz.contains("the detail names it") && readyz.contains("request_timeout_ms"),
        "{readyz}"
    );
}

#[tokio::test]
async fn the_problem_schema_is_published() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in ["type", "title", "status", "detail", "code", "request_id"] {
        assert!(problem.get(field).is_some(), "Problem.{field} missing");
    }
}

#[tokio::test]
async fn introspection_lists_its_form_encoding_and_json() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    let content = &doc["paths"]["/v1/introspect"]["post"]["requestBody"]["content"];
    for media in ["application/x-www-form-urlencoded", "application/json"] {
        assert!(content[media]["schema"].is_object(), "{media}: {content}");
    }
    let forgot = &doc["paths"]["/v1/password/forgot"]["post"]["responses"]["202"];
    assert!(
        forgot["content"]["application/json"]["schema"].is_object(),
        "{forgot}"
    );
}

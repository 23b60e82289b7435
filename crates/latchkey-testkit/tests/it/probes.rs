//! Probe routes mounted inside the real middleware stack to exercise it: a JSON
//! echo using the production extractor, a slow handler and a panicking one.

use std::time::Duration;

use axum::routing::{get, post};
use latchkey_server::extract::ApiJson;
use latchkey_server::AppState;
use latchkey_testkit::app::ExtraRoutes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Echo {
    pub name: String,
    pub count: u32,
}

async fn echo(ApiJson(body): ApiJson<Echo>) -> ApiJson<Echo> {
    ApiJson(body)
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(800)).await;
    "done"
}

#[allow(clippy::panic)]
async fn boom() -> &'static str {
    panic!("secret internal state /src/db.rs:42")
}

/// The probe routes: `POST /test/echo`, `GET /test/slow`, `GET /test/panic`.
pub fn routes() -> ExtraRoutes {
    axum::Router::<AppState>::new()
        .route("/test/echo", post(echo))
        .route("/v1/test/echo", post(echo))
        .route("/test/slow", get(slow))
        .route("/test/panic", get(boom))
}

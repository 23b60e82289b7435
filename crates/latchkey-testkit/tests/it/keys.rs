//! Key rotation while the server runs: new tokens use the new key within seconds,
//! tokens signed by the old key stay valid, both keys are published.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use latchkey_core::token::Algorithm;
use latchkey_testkit::app::TestApp;
use serde_json::Value;

fn kid(jwt: &str) -> String {
    let header: Value =
        serde_json::from_slice(&B64.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_old_tokens_stay_valid() {
    // Polling logs in repeatedly: keep every session alive.
    let app = TestApp::builder()
        .configure(|c| c.sessions.max_per_user = 1000)
        .spawn()
        .await;
    app.create_user("rot@example.com", "correct horse battery staple", true)
        .await;
    let login = || async {
        let body: Value = app
            .login("rot@example.com", "correct horse battery staple")
            .await
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let old_token = login().await;
    let dir = latchkey_server::keys::key_dir(&app.state.config.data_dir);
    let new_key =
        latchkey_server::keys::rotate(&dir, Algorithm::EdDSA, app.state.clock.now()).unwrap();

    // Eventually (the watcher re-reads the directory every few seconds).
    let mut new_token = login().await;
    for _ in 0..40 {
        if kid(&new_token) == new_key.kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        new_token = login().await;
    }
    assert_eq!(
        kid(&new_token),
        new_key.kid(),
        "new tokens are signed with the new key"
    );
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_key.kid(), kid(&old_token).as_str()],
        "current first, previous still published"
    );
    for token in [&old_token, &new_token] {
        let r = app
            .client
            .get(app.url("/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

//! The integration guides' examples: the Rust one runs here against a real
//! server (the Python, Node and curl ones run in `.ci/run`, see
//! `.ci/examples.sh`), and every copy of an example inside a guide is the file
//! that runs, byte for byte.

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_core::token::Algorithm;
use latchkey_testkit::app::TestApp;
use serde_json::Value;

#[path = "../../../../docs/examples/rust/verify_token.rs"]
mod verify_token;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

const EMAIL: &str = "guide@example.com";
const PASSWORD: &str = "correct horse battery staple";

async fn access_token(app: &TestApp) -> String {
    let body: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn kid(jwt: &str) -> String {
    crate::support::jwt_parts(jwt).0["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_rust_example_verifies_tokens_refetches_keys_after_rotation_and_refuses_forgeries() {
    let app = TestApp::builder()
        .configure(|c| {
            c.rate_limit.enabled = false;
            c.sessions.max_per_user = 1000;
        })
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let mut verifier = verify_token::Verifier::new(&app.base_url, "latchkey");
    verifier.refetch_every = Duration::ZERO;
    let token = access_token(&app).await;
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.sid.len(), 36);
    assert!(claims.exp > 0);
    assert!(claims.roles.is_empty());
    let (_, payload) = crate::support::jwt_parts(&token);
    assert_eq!(claims.sub, payload["sub"].as_str().unwrap());

    // Forged, wrong audience, wrong issuer, not an access token: refused.
    let mut forged = token.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    assert!(verifier
        .verify(&String::from_utf8(forged).unwrap())
        .await
        .is_err());
    let other_audience = verify_token::Verifier::new(&app.base_url, "someone-else");
    assert!(other_audience.verify(&token).await.is_err());
    let other_issuer = verify_token::Verifier::new(&format!("{}/", app.base_url), "latchkey");
    assert!(other_issuer.verify(&token).await.is_err());
    let body: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    assert!(verifier
        .verify(body["refresh_token"].as_str().unwrap())
        .await
        .is_err());

    // A key rotated with `--now` (signing at once): the verifier holds only
    // the old set and fetches it again on the unknown kid.
    let storage = latchkey_server::auth_setup::key_storage(
        &app.state.config,
        &app.state.store,
        &app.state.secrets,
    );
    let now = app.state.clock.now();
    let new_key = storage
        .rotate(
            Algorithm::EdDSA,
            now,
            now,
            latchkey_server::auth_setup::key_retirement(&app.state.config),
        )
        .await
        .unwrap();
    // Key files are named by the second: a key rotated within the second its
    // predecessor was created in signs from the next one. Until then, ask the
    // watcher for another read.
    let mut fresh = String::new();
    for _ in 0..40 {
        app.key_watch_pass().await;
        fresh = access_token(&app).await;
        if kid(&fresh) == new_key.kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kid(&fresh), new_key.kid());
    assert!(
        verifier.verify(&fresh).await.is_ok(),
        "refetched on the new kid"
    );
    assert!(
        verifier.verify(&token).await.is_ok(),
        "old tokens stay valid"
    );
}

/// Every `<!-- embed: examples/PATH -->` in a guide is followed by a fenced
/// block holding exactly that file.
fn embeds(guide: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- embed: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{path}: no fenced block after the marker"
        );
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        found.push((path.to_owned(), body));
    }
    found
}

#[test]
fn the_guides_embed_the_example_files_verbatim() {
    let mut embedded = Vec::new();
    for guide in [
        "resource-servers.md",
        "single-page-apps.md",
        "quick-tour.md",
    ] {
        let text = std::fs::read_to_string(docs().join(guide)).unwrap();
        let found = embeds(&text);
        assert!(!found.is_empty(), "{guide} embeds no example");
        for (path, body) in found {
            let file = std::fs::read_to_string(docs().join(&path))
                .unwrap_or_else(|e| panic!("{guide}: {path}: {e}"));
            assert_eq!(
                body, file,
                "{guide}: the copy of {path} differs from the file"
            );
            embedded.push(path);
        }
    }
    // Every example that runs is shown in a guide.
    for example in [
        "examples/python/verify_token.py",
        "examples/python/introspect.py",
        "examples/node/verify_token.mjs",
        "examples/node/introspect.mjs",
        "examples/rust/verify_token.rs",
        "examples/spa/latchkey-session.mjs",
        "examples/quick-tour.sh",
    ] {
        assert!(
            embedded.iter().any(|p| p == example),
            "{example} is in no guide"
        );
    }
}

#[test]
fn the_readme_points_at_the_guides() {
    let readme = std::fs::read_to_string(docs().join("../README.md")).unwrap();
    for guide in [
        "docs/resource-servers.md",
        "docs/single-page-apps.md",
        "docs/quick-tour.md",
    ] {
        assert!(readme.contains(guide), "README does not link {guide}");
    }
}

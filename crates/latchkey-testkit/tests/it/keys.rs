//! Key rotation while the server runs: new tokens use the new key within seconds,
//! tokens signed by the old key stay valid, both keys are published — with keys in
//! files (dev) and in the database sealed with the master key (production).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use latchkey_core::seal::Keyring;
use latchkey_core::token::Algorithm;
use latchkey_server::config::{KeyStorageKind, Secret};
use latchkey_server::keys::KeyStorage;
use latchkey_testkit::app::TestApp;
use serde_json::Value;

fn kid(jwt: &str) -> String {
    let header: Value =
        serde_json::from_slice(&B64.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn storage_of(app: &TestApp) -> KeyStorage {
    latchkey_server::auth_setup::key_storage(
        &app.state.config,
        &app.state.store,
        &app.state.secrets,
    )
}

/// An emergency rotation (`--now`): the new key signs at once.
async fn rotate(app: &TestApp) -> latchkey_core::token::SigningKey {
    let now = app.state.clock.now();
    storage_of(app)
        .rotate(
            Algorithm::EdDSA,
            now,
            now,
            latchkey_server::auth_setup::key_retirement(&app.state.config),
        )
        .await
        .unwrap()
}

fn database_keys(c: &mut latchkey_server::config::Config) {
    c.tokens.key_storage = KeyStorageKind::Database;
    // Polling logs in repeatedly: keep every session alive, and do not let the
    // login rate limits (tested in rate_limit.rs) interfere.
    c.sessions.max_per_user = 1000;
    c.rate_limit.enabled = false;
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_old_tokens_stay_valid() {
    let app = TestApp::builder()
        .configure(|c| {
            c.sessions.max_per_user = 1000;
            c.rate_limit.enabled = false;
        })
        .spawn()
        .await;
    assert!(
        matches!(storage_of(&app), KeyStorage::Files(_)),
        "dev default"
    );
    rotation_is_picked_up(&app).await;
}

#[tokio::test]
async fn a_rotated_database_key_is_picked_up() {
    let app = TestApp::builder().configure(database_keys).spawn().await;
    rotation_is_picked_up(&app).await;
}

#[tokio::test]
#[cfg_attr(
    latchkey_postgres_unset,
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)"
)]
async fn a_rotated_database_key_is_picked_up_on_postgres() {
    let Some(builder) = TestApp::builder()
        .configure(database_keys)
        .on_postgres()
        .await
    else {
        return;
    };
    rotation_is_picked_up(&builder.spawn().await).await;
}

async fn rotation_is_picked_up(app: &TestApp) {
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
    let new_key = rotate(app).await;

    // At the watcher's own next read (it re-reads the storage every few
    // seconds; nothing asks it to hurry here).
    app.key_watch_pass_on_its_own().await;
    let new_token = login().await;
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

#[tokio::test]
async fn database_keys_are_sealed_bound_to_their_kid_and_need_the_same_master_key() {
    let app = TestApp::builder().configure(database_keys).spawn().await;
    assert!(
        !latchkey_server::keys::key_dir(&app.state.config.data_dir).exists(),
        "no key file is written"
    );
    let stored = app.state.store.signing_keys("EdDSA").await.unwrap();
    assert_eq!(stored.len(), 1);
    let row = &stored[0];
    let seal = Keyring::new(
        latchkey_server::keys::SEAL_PURPOSE,
        app.state.secrets.master_key.expose().as_bytes(),
        &[],
    );
    let aad = format!("latchkey signing key {}", row.kid);
    let der = seal.open(&row.sealed_key, aad.as_bytes()).unwrap();
    assert!(
        !row.sealed_key.windows(32).any(|w| der.ends_with(w)),
        "the private key is not stored in clear"
    );
    assert!(seal
        .open(&row.sealed_key, b"latchkey signing key other")
        .is_err());

    // A second node on the same database with the same master key shares the key.
    let db_url = app.state.config.database.url.clone().unwrap_or_else(|| {
        format!(
            "sqlite:{}",
            app.state.config.data_dir.join("latchkey.db").display()
        )
    });
    let master = app.state.secrets.master_key.expose().to_owned();
    let hmac = app.state.secrets.hmac_key.expose().to_owned();
    let same = {
        let (db_url, master, hmac) = (db_url.clone(), master.clone(), hmac.clone());
        TestApp::builder()
            .configure(move |c| {
                database_keys(c);
                c.database.url = Some(db_url);
                c.secrets.master_key = Some(Secret::new(&master));
                c.secrets.hmac_key = Some(Secret::new(&hmac));
            })
            .spawn()
            .await
    };
    assert_eq!(
        same.state.services.sessions.keys().ring().current_kid(),
        app.state.services.sessions.keys().ring().current_kid()
    );

    // A node with another master key refuses to start, saying why.
    let err = TestApp::builder()
        .configure(move |c| {
            database_keys(c);
            c.database.url = Some(db_url);
            c.secrets.master_key = Some(Secret::new("a-different-master-key-9f8e7d6c5b4a39281706"));
        })
        .try_spawn()
        .await
        .err()
        .expect("start-up must fail");
    let text = format!("{err}");
    assert!(
        text.contains(&row.kid) && text.contains("master key"),
        "{text}"
    );
}

#[tokio::test]
async fn database_rotation_forgets_keys_no_token_can_need() {
    let app = TestApp::builder().configure(database_keys).spawn().await;
    let first = app
        .state
        .services
        .sessions
        .keys()
        .ring()
        .current_kid()
        .to_owned();
    let storage = storage_of(&app);
    let retire = latchkey_server::auth_setup::key_retirement(&app.state.config);
    let now = app.state.clock.now();
    let second = storage
        .rotate(Algorithm::EdDSA, now, now, retire)
        .await
        .unwrap();
    let kids = |keys: Vec<latchkey_core::ports::StoredSigningKey>| {
        keys.into_iter().map(|k| k.kid).collect::<Vec<_>>()
    };
    assert_eq!(
        kids(app.state.store.signing_keys("EdDSA").await.unwrap()),
        [first.clone(), second.kid().to_owned()]
    );
    // Long after: the first key's successor is older than any token's life.
    let later = now + retire + time::Duration::minutes(1);
    let third = storage
        .rotate(Algorithm::EdDSA, later, later, retire)
        .await
        .unwrap();
    assert_eq!(
        kids(app.state.store.signing_keys("EdDSA").await.unwrap()),
        [second.kid().to_owned(), third.kid().to_owned()],
        "the first key is deleted, the second kept until its tokens expire"
    );
}

/// A normal rotation publishes the new key first and signs with it only once
/// resource servers' JWKS caches have had time to learn it.
#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs() {
    let clock =
        latchkey_core::clock::ManualClock::new(time::macros::datetime!(2026-12-03 10:00 UTC));
    let app = TestApp::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .configure(database_keys)
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
    let old_kid = kid(&login().await);
    let now = app.state.clock.now();
    let config = &app.state.config;
    assert_eq!(
        config.keys.publish_ahead_seconds, 360,
        "JWKS max-age + 60 s"
    );
    let jwks_max_age = app.get("/.well-known/jwks.json").await.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwks_max_age, "public, max-age=300");
    let new_key = storage_of(&app)
        .rotate(
            Algorithm::EdDSA,
            now,
            latchkey_server::auth_setup::activation(config, now, false),
            latchkey_server::auth_setup::key_retirement(config),
        )
        .await
        .unwrap();
    let published = || async {
        let jwks: Value = app
            .get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new_key.kid())
    };
    // Published at the watcher's next read, while tokens keep the old key.
    app.key_watch_pass().await;
    assert!(published().await, "the new key is in the JWKS");
    assert_eq!(kid(&login().await), old_kid, "not signing yet");
    // Just before its activation: a read at that time keeps the old key.
    clock.advance(time::Duration::seconds(359));
    app.key_watch_pass().await;
    assert_eq!(kid(&login().await), old_kid);
    // Once active, new tokens use it; both keys stay published.
    clock.advance(time::Duration::seconds(2));
    app.key_watch_pass().await;
    assert_eq!(kid(&login().await), new_key.kid());
    assert!(published().await);
}

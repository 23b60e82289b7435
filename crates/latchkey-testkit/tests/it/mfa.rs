//! Multi-factor sign-in: TOTP enrolment and removal, recovery codes, the
//! `mfa_required` challenge and its limits, lockout, sealed seeds and master-key
//! rotation with `keys reencrypt`.

use std::sync::Arc;

use latchkey_core::clock::{Clock, ManualClock};
use latchkey_core::mfa::{base32, totp};
use latchkey_server::config::Secret;
use latchkey_testkit::app::{TestApp, TestAppBuilder};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::{assert_problem, jwt_parts, refreshed_access_token};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

struct Mfa {
    app: TestApp,
    clock: ManualClock,
    secret: Vec<u8>,
    recovery_codes: Vec<String>,
    /// Access token of the session that enrolled.
    access: String,
}

fn builder(clock: &ManualClock) -> TestAppBuilder {
    TestApp::builder()
        .clock(Arc::new(clock.clone()))
        .configure(|c| c.rate_limit.enabled = false)
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn login(app: &TestApp) -> Value {
    let r = app.login(EMAIL, PASSWORD).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

impl Mfa {
    fn code(&self) -> String {
        totp::code_at_step(
            &self.secret,
            totp::step_at(self.clock.now().unix_timestamp()),
        )
    }

    /// Moves to the next time step (a code is accepted once per step).
    fn next_step(&self) {
        self.clock.advance(time::Duration::seconds(30));
    }

    async fn challenge(&self) -> String {
        let body = login(&self.app).await;
        assert_eq!(body["mfa_required"], true, "{body}");
        body["mfa_token"].as_str().unwrap().to_owned()
    }

    async fn answer(&self, token: &str, method: &str, code: &str) -> reqwest::Response {
        post(
            &self.app,
            "/v1/login/mfa",
            None,
            json!({"mfa_token": token, "method": method, "code": code}),
        )
        .await
    }
}

/// A verified user with TOTP enabled through the API.
async fn enrolled(builder: TestAppBuilder, clock: ManualClock) -> Mfa {
    let app = builder.spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let access = login(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(&app, "/v1/me/mfa/totp", Some(&access), json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let secret = base32::decode(body["secret"].as_str().unwrap()).unwrap();
    assert_eq!(secret.len(), 20);
    let step = totp::step_at(clock.now().unix_timestamp());
    let r = post(
        &app,
        "/v1/me/mfa/totp/confirm",
        Some(&access),
        json!({"code": totp::code_at_step(&secret, step)}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let recovery_codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mfa = Mfa {
        app,
        clock,
        secret,
        recovery_codes,
        access,
    };
    mfa.next_step();
    mfa
}

fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-11-23 10:00:00 UTC))
}

#[tokio::test]
async fn enrolment_shows_a_qr_code_and_needs_a_valid_code() {
    let clock = clock();
    let app = builder(&clock).spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let first = login(&app).await;
    let other = login(&app).await;
    let access = first["access_token"].as_str().unwrap();
    let r = post(&app, "/v1/me/mfa/totp", Some(access), json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160-bit seed in base32");
    assert_eq!(
        body["otpauth_uri"],
        format!("otpauth://totp/latchkey:ada%40example.com?secret={secret}&issuer=latchkey&algorithm=SHA1&digits=6&period=30")
    );
    let svg = body["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");

    // Pending: not yet a factor.
    let me: Value = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa"], json!({"totp": false, "webauthn": 0}));
    assert_eq!(login(&app).await["mfa_required"], Value::Null);

    let seed = base32::decode(secret).unwrap();
    let now = totp::step_at(clock.now().unix_timestamp());
    for (bad, status, code) in [
        ("12345", 400, "validation_failed"),
        ("abcdef", 400, "validation_failed"),
        (
            totp::code_at_step(&seed, now + 3).as_str(),
            401,
            "invalid_mfa_code",
        ),
    ] {
        let r = post(
            &app,
            "/v1/me/mfa/totp/confirm",
            Some(access),
            json!({"code": bad}),
        )
        .await;
        assert_problem(r, status, code).await;
    }
    let r = post(
        &app,
        "/v1/me/mfa/totp/confirm",
        Some(access),
        json!({"code": totp::code_at_step(&seed, now)}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let codes: Value = r.json().await.unwrap();
    let codes = codes["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    let mut distinct: Vec<_> = codes.iter().map(|c| c.as_str().unwrap()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);

    // Enabling a factor signs out the other sessions, keeps this one, mails the user.
    let r = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(other["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    let me: Value = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa"], json!({"totp": true, "webauthn": 0}));
    let mails = app.wait_for_mails(EMAIL, 1).await;
    assert!(mails
        .iter()
        .any(|m| m.contains("A sign-in factor was added")));
    // A second enrolment while one is active is a conflict.
    let r = post(&app, "/v1/me/mfa/totp", Some(access), json!({})).await;
    assert_problem(r, 409, "conflict").await;
}

#[tokio::test]
async fn login_needs_the_second_factor_and_amr_says_so() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let body = login(&mfa.app).await;
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expires_in"], 300);
    assert!(body["mfa_token"].as_str().unwrap().starts_with("lk_mfa_"));
    assert!(body.get("access_token").is_none(), "{body}");
    let token = body["mfa_token"].as_str().unwrap();

    let r = mfa.answer(token, "totp", &mfa.code()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(body["user"]["mfa"]["totp"], true);
    // The token was single use.
    let r = mfa.answer(token, "totp", &mfa.code()).await;
    assert_problem(r, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_code_works_once_within_one_step_either_side() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let code = mfa.code();
    let token = mfa.challenge().await;
    assert_eq!(mfa.answer(&token, "totp", &code).await.status(), 200);
    // Replay of the same code, even on a fresh challenge.
    let token = mfa.challenge().await;
    assert_problem(
        mfa.answer(&token, "totp", &code).await,
        401,
        "invalid_mfa_code",
    )
    .await;
    // The previous step's code is older than the last accepted one.
    let now = totp::step_at(mfa.clock.now().unix_timestamp());
    let previous = totp::code_at_step(&mfa.secret, now - 1);
    assert_problem(
        mfa.answer(&token, "totp", &previous).await,
        401,
        "invalid_mfa_code",
    )
    .await;
    // Two steps ahead is outside the window; one step ahead (clock drift) is fine.
    let far = totp::code_at_step(&mfa.secret, now + 2);
    assert_problem(
        mfa.answer(&token, "totp", &far).await,
        401,
        "invalid_mfa_code",
    )
    .await;
    let ahead = totp::code_at_step(&mfa.secret, now + 1);
    assert_eq!(mfa.answer(&token, "totp", &ahead).await.status(), 200);
}

#[tokio::test]
async fn the_mfa_token_expires_allows_five_wrong_codes_and_checks_shape() {
    let clock = clock();
    let mfa = enrolled(
        builder(&clock).configure(|c| c.lockout.threshold = 0),
        clock,
    )
    .await;
    let token = mfa.challenge().await;
    for bad in ["12345", "1234567", "12a456", ""] {
        assert_problem(
            mfa.answer(&token, "totp", bad).await,
            400,
            "validation_failed",
        )
        .await;
    }
    assert_problem(
        mfa.answer("lk_mfa_forged", "totp", &mfa.code()).await,
        401,
        "invalid_token",
    )
    .await;
    let wrong = if mfa.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        assert_problem(
            mfa.answer(&token, "totp", wrong).await,
            401,
            "invalid_mfa_code",
        )
        .await;
    }
    // The sixth answer finds the token spent, even with the right code.
    assert_problem(
        mfa.answer(&token, "totp", &mfa.code()).await,
        401,
        "invalid_token",
    )
    .await;

    let token = mfa.challenge().await;
    mfa.clock.advance(time::Duration::seconds(301));
    assert_problem(
        mfa.answer(&token, "totp", &mfa.code()).await,
        401,
        "invalid_token",
    )
    .await;
    let r = post(
        &mfa.app,
        "/v1/login/mfa",
        None,
        json!({"mfa_token": token, "method": "sms", "code": "123456"}),
    )
    .await;
    assert_problem(r, 400, "malformed_request").await;
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let wrong = if mfa.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let token = mfa.challenge().await;
    for _ in 0..4 {
        assert_problem(
            mfa.answer(&token, "totp", wrong).await,
            401,
            "invalid_mfa_code",
        )
        .await;
    }
    let token = mfa.challenge().await;
    // The fifth failure (threshold 5) locks the address.
    assert_problem(
        mfa.answer(&token, "totp", wrong).await,
        401,
        "invalid_mfa_code",
    )
    .await;
    assert_problem(
        mfa.answer(&token, "totp", &mfa.code()).await,
        423,
        "account_locked",
    )
    .await;
    assert_problem(mfa.app.login(EMAIL, PASSWORD).await, 423, "account_locked").await;
}

#[tokio::test]
async fn recovery_codes_are_single_use_mailed_and_replaceable() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let code = mfa.recovery_codes[0].to_uppercase().replace('-', " ");
    let token = mfa.challenge().await;
    let r = mfa.answer(&token, "recovery_code", &code).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "mfa", "rc"]));
    let mails = mfa.app.wait_for_mails(EMAIL, 2).await;
    assert!(
        mails
            .iter()
            .any(|m| m.contains("recovery code was just used") && m.contains("9 unused")),
        "{mails:?}"
    );
    let ada = mfa
        .app
        .state
        .store
        .user_by_email(EMAIL)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<String> = mfa
        .app
        .state
        .store
        .user_events(ada.id, 50)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "recovery_code_used"), "{kinds:?}");

    let token = mfa.challenge().await;
    let r = mfa
        .answer(&token, "recovery_code", &mfa.recovery_codes[0])
        .await;
    assert_problem(r, 401, "invalid_mfa_code").await;
    let r = mfa.answer(&token, "recovery_code", "not-a-code").await;
    assert_problem(r, 401, "invalid_mfa_code").await;

    // New codes need the password and void the old ones.
    let r = post(
        &mfa.app,
        "/v1/me/mfa/recovery-codes",
        Some(&mfa.access),
        json!({"password": "wrong password!"}),
    )
    .await;
    assert_problem(r, 401, "invalid_credentials").await;
    let r = post(
        &mfa.app,
        "/v1/me/mfa/recovery-codes",
        Some(&mfa.access),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    let fresh = fresh["recovery_codes"][0].as_str().unwrap().to_owned();
    let r = mfa
        .answer(&token, "recovery_code", &mfa.recovery_codes[1])
        .await;
    assert_problem(r, 401, "invalid_mfa_code").await;
    assert_eq!(
        mfa.answer(&token, "recovery_code", &fresh).await.status(),
        200
    );
}

#[tokio::test]
async fn removing_totp_needs_the_password_and_ends_the_challenge() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let delete = |password: &'static str| {
        mfa.app
            .client
            .delete(mfa.app.url("/v1/me/mfa/totp"))
            .bearer_auth(&mfa.access)
            .json(&json!({ "password": password }))
            .send()
    };
    assert_problem(
        delete("wrong password!").await.unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(delete(PASSWORD).await.unwrap().status(), 204);
    let body = login(&mfa.app).await;
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["user"]["mfa"], json!({"totp": false, "webauthn": 0}));
    let mails = mfa.app.wait_for_mails(EMAIL, 2).await;
    assert!(mails
        .iter()
        .any(|m| m.contains("A sign-in factor was removed")));
    // The recovery codes went with it.
    let r = post(
        &mfa.app,
        "/v1/me/mfa/recovery-codes",
        Some(&mfa.access),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_problem(r, 409, "conflict").await;
    assert_problem(delete(PASSWORD).await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn seeds_are_sealed_and_bound_to_their_row() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let store = &mfa.app.state.store;
    let ada = store.user_by_email(EMAIL).await.unwrap().unwrap();
    let record = store.totp(ada.id).await.unwrap().unwrap();
    assert!(
        !record
            .secret_sealed
            .windows(mfa.secret.len())
            .any(|w| w == mfa.secret.as_slice()),
        "the seed is stored in clear"
    );
    assert_eq!(record.secret_sealed.len(), 1 + 8 + 24 + 20 + 16);
    let seal = &mfa
        .app
        .state
        .secrets
        .keyring(latchkey_core::mfa::TOTP_SEAL_PURPOSE);
    assert_eq!(
        seal.open(&record.secret_sealed, record.id.as_bytes())
            .unwrap()
            .as_slice(),
        mfa.secret.as_slice()
    );
    // Copied to another user's row, the ciphertext does not open.
    mfa.app.create_user("eve@example.com", PASSWORD, true).await;
    let eve = store
        .user_by_email("eve@example.com")
        .await
        .unwrap()
        .unwrap();
    let eve_access = mfa
        .app
        .login("eve@example.com", PASSWORD)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let eve_access = eve_access["access_token"].as_str().unwrap();
    assert_eq!(
        post(&mfa.app, "/v1/me/mfa/totp", Some(eve_access), json!({}))
            .await
            .status(),
        200
    );
    let eve_record = store.totp(eve.id).await.unwrap().unwrap();
    assert!(seal
        .open(&record.secret_sealed, eve_record.id.as_bytes())
        .is_err());
    assert!(store
        .reseal_totp(
            eve_record.id,
            &eve_record.secret_sealed,
            &record.secret_sealed,
            &record.key_id
        )
        .await
        .unwrap());
    let copied = store.totp(eve.id).await.unwrap().unwrap();
    assert!(seal
        .open(&copied.secret_sealed, copied.id.as_bytes())
        .is_err());
}

pub(crate) const MASTER_A: &str = "k3J9xQ2mVb7LwZp4Rt8YhN1cFs6DgE0uAiO5eWqTy-first";
pub(crate) const MASTER_B: &str = "Zp4Rt8YhN1cFs6DgE0uAiO5eWqTyk3J9xQ2mVb7Lw-second";
const MASTER_C: &str = "N1cFs6DgE0uAiO5eWqTyk3J9xQ2mVb7LwZp4Rt8Yh-third";

#[tokio::test]
async fn a_new_master_key_with_the_old_one_kept_and_reencrypt_keep_totp_working() {
    let clock = clock();
    let mfa = enrolled(
        builder(&clock).configure(|c| c.secrets.master_key = Some(Secret::new(MASTER_A))),
        clock.clone(),
    )
    .await;
    let shared = |c: &mut latchkey_server::config::Config| {
        c.data_dir = mfa.app.state.config.data_dir.clone();
        c.database
            .url
            .clone_from(&mfa.app.state.config.database.url);
    };

    // Master key B current, A previous: old seeds open, sign-in works.
    let second = builder(&clock)
        .configure(shared)
        .configure(|c| {
            c.secrets.master_key = Some(Secret::new(MASTER_B));
            c.secrets.previous_master_keys = vec![Secret::new(MASTER_A)];
        })
        .spawn()
        .await;
    let body = login(&second).await;
    let token = body["mfa_token"].as_str().unwrap();
    let r = post(
        &second,
        "/v1/login/mfa",
        None,
        json!({"mfa_token": token, "method": "totp", "code": mfa.code()}),
    )
    .await;
    assert_eq!(r.status(), 200);
    mfa.next_step();

    // Re-encrypt: every seed moves to B.
    let report =
        latchkey_server::reencrypt::run(&*second.state.store, &secrets(MASTER_B, &[MASTER_A]))
            .await
            .unwrap();
    assert_eq!(report.totp_secrets, 1);
    let again =
        latchkey_server::reencrypt::run(&*second.state.store, &secrets(MASTER_B, &[MASTER_A]))
            .await
            .unwrap();
    assert_eq!(again.totp_secrets, 0, "a second run has nothing to do");

    // B alone now suffices.
    let third = builder(&clock)
        .configure(shared)
        .configure(|c| c.secrets.master_key = Some(Secret::new(MASTER_B)))
        .spawn()
        .await;
    let body = login(&third).await;
    let token = body["mfa_token"].as_str().unwrap();
    let r = post(
        &third,
        "/v1/login/mfa",
        None,
        json!({"mfa_token": token, "method": "totp", "code": mfa.code()}),
    )
    .await;
    assert_eq!(r.status(), 200);

    // A server with an unrelated master key refuses to start and names the key.
    let err = builder(&clock)
        .configure(shared)
        .configure(|c| c.secrets.master_key = Some(Secret::new(MASTER_C)))
        .try_spawn()
        .await
        .err()
        .expect("started with the wrong master key");
    let text = format!("{err}");
    assert!(
        text.contains("TOTP secrets are sealed with encryption key"),
        "{text}"
    );
    assert!(text.contains("previous_master_keys"), "{text}");
}

pub(crate) fn secrets(
    current: &str,
    previous: &[&str],
) -> latchkey_server::config::ResolvedSecrets {
    latchkey_server::config::ResolvedSecrets {
        master_key: Secret::new(current),
        hmac_key: Secret::new("unused-here-unused-here-unused-here-0123"),
        previous_master_keys: previous.iter().map(|k| Secret::new(*k)).collect(),
        metrics_bearer_token: None,
    }
}

#[tokio::test]
async fn cookie_mode_carries_through_the_second_step_from_an_allowed_origin_only() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let app = &mfa.app;
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("origin", &app.base_url)
        .json(&json!({"email": EMAIL, "password": PASSWORD, "mode": "cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "cookies before the second factor"
    );
    let body: Value = r.json().await.unwrap();
    let token = body["mfa_token"].as_str().unwrap();
    let answer = |origin: &'static str, base: bool| {
        let origin = if base {
            app.base_url.clone()
        } else {
            origin.to_owned()
        };
        app.client
            .post(app.url("/v1/login/mfa"))
            .header("origin", origin)
            .json(&json!({"mfa_token": token, "method": "totp", "code": mfa.code()}))
            .send()
    };
    // A foreign page cannot finish the sign-in, and the attempt costs nothing.
    assert_problem(
        answer("https://evil.example", false).await.unwrap(),
        403,
        "csrf_failed",
    )
    .await;
    let r = answer("", true).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    for name in [
        "__Host-lk_session=",
        "__Host-lk_refresh=",
        "__Host-lk_csrf=",
        "__Host-lk_device=",
    ] {
        assert!(
            cookies.iter().any(|c| c.starts_with(name)),
            "{name} in {cookies:?}"
        );
    }
    let body: Value = r.json().await.unwrap();
    assert!(body["csrf_token"].is_string());
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn the_security_summary_reports_factors_codes_password_age_and_events() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let summary = |access: String| {
        let app = &mfa.app;
        async move {
            let r = app
                .client
                .get(app.url("/v1/me/security"))
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let s = summary(mfa.access.clone()).await;
    assert_eq!(
        s["mfa"],
        json!({"totp": true, "webauthn": 0, "recovery_codes_left": 10})
    );
    assert_eq!(s["sessions"], 1, "enrolment signed the other sessions out");
    assert_eq!(s["password_age_days"], 0);
    assert_eq!(s["failed_logins_since_last_success"], 0);
    assert!(s["last_login_at"].is_string());
    assert_eq!(s["recent_events"][0]["kind"], "mfa_enabled");
    assert_eq!(s["recent_events"][1]["kind"], "login_succeeded");

    // A wrong password counts; a recovery code is used; days pass.
    assert_problem(
        mfa.app.login(EMAIL, "wrong password!!").await,
        401,
        "invalid_credentials",
    )
    .await;
    // A wrong password's account bookkeeping is written just after the answer.
    let user = mfa
        .app
        .state
        .store
        .user_by_email(EMAIL)
        .await
        .unwrap()
        .unwrap();
    mfa.app.settled().await;
    let events = mfa.app.state.store.user_events(user.id, 10).await.unwrap();
    assert!(events.iter().any(|e| e.kind.as_str() == "login_failed"));
    mfa.clock.advance(time::Duration::days(3));
    let token = mfa.challenge().await;
    let r = mfa
        .answer(&token, "recovery_code", &mfa.recovery_codes[3])
        .await;
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = summary(access.clone()).await;
    assert_eq!(s["mfa"]["recovery_codes_left"], 9);
    assert_eq!(s["password_age_days"], 3);
    assert_eq!(s["sessions"], 2);
    let kinds: Vec<&str> = s["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        &kinds[..3],
        ["login_succeeded", "recovery_code_used", "login_failed"]
    );

    // A password change resets the age.
    let r = post(
        &mfa.app,
        "/v1/me/password",
        Some(&access),
        json!({"current_password": PASSWORD, "new_password": "another long passphrase 42"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let s = summary(access).await;
    assert_eq!(s["password_age_days"], 0);
    assert_problem(
        mfa.app
            .client
            .get(mfa.app.url("/v1/me/security"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
}

/// The `code` of a problem answer.
async fn problem_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

/// Waits until a mail to the user contains `text` (the outbox writes after
/// the answer).
async fn wait_for_mail_containing(app: &TestApp, text: &str) {
    for count in 1..=20 {
        let mails = app.wait_for_mails(EMAIL, count).await;
        if mails.iter().any(|m| m.contains(text)) {
            return;
        }
    }
    panic!("no mail containing {text:?}");
}

#[tokio::test]
async fn concurrent_wrong_codes_on_one_token_are_checked_at_most_five_times() {
    let clock = clock();
    let mfa = enrolled(
        builder(&clock).configure(|c| c.lockout.threshold = 0),
        clock,
    )
    .await;
    let token = mfa.challenge().await;
    let wrong = if mfa.code() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = mfa.app.client.clone();
        let url = mfa.app.url("/v1/login/mfa");
        let body = json!({"mfa_token": token, "method": "totp", "code": wrong});
        tasks.push(tokio::spawn(async move {
            problem_code(client.post(url).json(&body).send().await.unwrap()).await
        }));
    }
    let mut checked = 0;
    for task in tasks {
        match task.await.unwrap() {
            (401, code) if code == "invalid_mfa_code" => checked += 1,
            (401, code) if code == "invalid_token" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(checked, 5, "each checked code spends one of the 5 attempts");
    assert_problem(
        mfa.answer(&token, "totp", &mfa.code()).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn login_with(app: &TestApp, password: &str) -> String {
    let r = app.login(EMAIL, password).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_pending_mfa_token_dies_when_the_password_changes_or_is_reset() {
    const CHANGED: &str = "a brand new passphrase 2026";
    const RESET: &str = "another long passphrase 42";
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;

    // Changed through the API after the password step.
    let pending = mfa.challenge().await;
    mfa.clock.advance(time::Duration::seconds(1));
    let r = post(
        &mfa.app,
        "/v1/me/password",
        Some(&mfa.access),
        json!({"current_password": PASSWORD, "new_password": CHANGED}),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_problem(
        mfa.answer(&pending, "totp", &mfa.code()).await,
        401,
        "invalid_token",
    )
    .await;
    // A challenge from the new password works.
    let fresh = login_with(&mfa.app, CHANGED).await;
    assert_eq!(mfa.answer(&fresh, "totp", &mfa.code()).await.status(), 200);
    mfa.next_step();

    // Reset by mail after the password step.
    let pending = login_with(&mfa.app, CHANGED).await;
    mfa.clock.advance(time::Duration::seconds(1));
    let r = post(
        &mfa.app,
        "/v1/password/forgot",
        None,
        json!({"email": EMAIL}),
    )
    .await;
    assert_eq!(r.status(), 202);
    wait_for_mail_containing(&mfa.app, "Reset your latchkey password").await;
    let mail = mfa
        .app
        .mails()
        .into_iter()
        .find(|m| m.contains("Reset your latchkey password"))
        .unwrap();
    let reset_token = latchkey_testkit::app::link_token(&mail);
    let r = post(
        &mfa.app,
        "/v1/password/reset",
        None,
        json!({"token": reset_token, "new_password": RESET}),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_problem(
        mfa.answer(&pending, "totp", &mfa.code()).await,
        401,
        "invalid_token",
    )
    .await;
    let fresh = login_with(&mfa.app, RESET).await;
    assert_eq!(mfa.answer(&fresh, "totp", &mfa.code()).await.status(), 200);
}

#[tokio::test]
async fn removing_totp_signs_out_the_other_sessions_and_mails_the_user() {
    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let token = mfa.challenge().await;
    let r = mfa.answer(&token, "totp", &mfa.code()).await;
    assert_eq!(r.status(), 200);
    let other = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    mfa.next_step();
    let me = |token: String| {
        mfa.app
            .client
            .get(mfa.app.url("/v1/me"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(me(other.clone()).await.unwrap().status(), 200);
    let r = mfa
        .app
        .client
        .delete(mfa.app.url("/v1/me/mfa/totp"))
        .bearer_auth(&mfa.access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(me(other).await.unwrap(), 401, "unauthorized").await;
    assert_eq!(me(mfa.access.clone()).await.unwrap().status(), 200);
    wait_for_mail_containing(
        &mfa.app,
        "A sign-in factor was removed from your latchkey account",
    )
    .await;
}

#[tokio::test]
async fn second_factors_change_only_shortly_after_signing_in() {
    let clock = clock();
    let app = builder(&clock).spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let refresh = login(&app).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Sixteen minutes on, the session lives on through a refresh (as a stolen
    // refresh token would keep it going), but its sign-in is 16 minutes old.
    clock.advance(time::Duration::minutes(16));
    let stale = refreshed_access_token(&app, &refresh).await;
    let r = post(&app, "/v1/me/mfa/totp", Some(&stale), json!({})).await;
    assert_problem(r, 403, "reauthentication_required").await;
    let r = post(
        &app,
        "/v1/me/mfa/totp/confirm",
        Some(&stale),
        json!({"code": "123456"}),
    )
    .await;
    assert_problem(r, 403, "reauthentication_required").await;
    let r = app
        .client
        .delete(app.url(&format!("/v1/me/webauthn/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&stale)
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "reauthentication_required").await;
    // Reads stay open to the old session.
    let r = app
        .client
        .get(app.url("/v1/me/security"))
        .bearer_auth(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Signing in again opens the window.
    let fresh = login(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(&app, "/v1/me/mfa/totp", Some(&fresh), json!({})).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_sign_in_age_limit_can_be_turned_off() {
    let clock = clock();
    let app = builder(&clock)
        .configure(|c| c.sessions.privileged_max_age_seconds = 0)
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let refresh = login(&app).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(time::Duration::hours(2));
    let old_sign_in = refreshed_access_token(&app, &refresh).await;
    let r = post(&app, "/v1/me/mfa/totp", Some(&old_sign_in), json!({})).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_factor_change_between_the_two_steps_voids_the_mfa_token() {
    use latchkey_core::mfa::passkey::PasskeyRecord;
    use latchkey_core::ports::{Aftermath, Revocation};
    use latchkey_core::session::RevokeReason;

    let clock = clock();
    let mfa = enrolled(builder(&clock), clock).await;
    let token = mfa.challenge().await;
    // Meanwhile a passkey is added to the account (as the enrolling session
    // would, revoking the others).
    let user = mfa
        .app
        .state
        .store
        .user_by_email(EMAIL)
        .await
        .unwrap()
        .unwrap();
    let passkey = PasskeyRecord {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        credential_id: vec![9; 16],
        name: "Added elsewhere".into(),
        passkey_json: "{}".into(),
        counter: 0,
        backup_eligible: false,
        backup_state: false,
        created_at: mfa.clock.now(),
        last_used_at: None,
    };
    let after = Aftermath {
        revoke: Some(Revocation {
            keep: None,
            reason: RevokeReason::MfaChanged,
        }),
        ..Aftermath::default()
    };
    mfa.app
        .state
        .store
        .insert_passkey(&passkey, &after, 20)
        .await
        .unwrap();
    // A right code on the old challenge is refused; a new challenge works.
    let r = mfa.answer(&token, "totp", &mfa.code()).await;
    assert_problem(r, 401, "invalid_token").await;
    let token = mfa.challenge().await;
    let r = mfa.answer(&token, "totp", &mfa.code()).await;
    assert_eq!(r.status(), 200);
}

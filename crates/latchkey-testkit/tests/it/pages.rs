//! latchkey's own pages for mailed links, driven end to end by an HTTP client:
//! fetch the mailed link, check the page (CSP, markup), fetch its script and
//! do what the script does (POST the link's token to the API).

use latchkey_testkit::app::{link_token, TestApp};
use serde_json::{json, Value};

use crate::support::{assert_problem, post_json};

const EMAIL: &str = "page@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a fresh passphrase for 2026";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn builder() -> latchkey_testkit::app::TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

/// The mailed link (the first `http` word holding `token=`).
fn link_of(mail: &str) -> String {
    mail.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("token="))
        .unwrap()
        .to_owned()
}

/// GETs a page and checks what every page must be; returns its HTML.
async fn fetch_page(app: &TestApp, url: &str) -> String {
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let h = r.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["cache-control"], "no-store", "the URL carries a token");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("role=\"status\" aria-live=\"polite\""));
    assert!(html.contains("<h1>"));
    // The only script is our own file, linked relatively (a path prefix works).
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<script src=\"pages/latchkey-pages.js\" defer></script>"));
    assert!(html.contains("<link rel=\"stylesheet\" href=\"pages/latchkey-pages.css\">"));
    html
}

/// The script and stylesheet the page links, as a browser would load them.
async fn fetch_assets(app: &TestApp) -> String {
    let r = app.get("/pages/latchkey-pages.js").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let script = r.text().await.unwrap();
    let r = app.get("/pages/latchkey-pages.css").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    script
}

#[tokio::test]
async fn the_mailed_verification_link_opens_a_page_that_verifies_the_address() {
    let app = builder().spawn().await;
    let r = post_json(
        &app,
        "/v1/signup",
        &json!({"email": EMAIL, "password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let mail = app.wait_for_mails(EMAIL, 1).await.remove(0);
    let link = link_of(&mail);
    assert!(
        link.starts_with(&format!("{}/verify-email?token=lk_ev_", app.base_url)),
        "{link}"
    );
    let html = fetch_page(&app, &link).await;
    assert!(html.contains("<button type=\"submit\""), "{html}");
    let script = fetch_assets(&app).await;
    // What the script does: read ?token= and POST it as JSON to v1/email/verify.
    assert!(script.contains("new URLSearchParams(window.location.search).get(\"token\")"));
    assert!(script.contains("send(\"v1/email/verify\", { token: token })"));
    let token = link_token(&mail);
    let r = post_json(
        &app,
        "/v1/email/verify",
        &json!({"token": token}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["email_verified"], true);
    // Opened again, the page works; its token no longer does (what the page says).
    fetch_page(&app, &link).await;
    let r = post_json(
        &app,
        "/v1/email/verify",
        &json!({"token": token}).to_string(),
    )
    .await;
    assert_problem(r, 401, "invalid_token").await;
    assert!(script.contains("problem.code === \"invalid_token\""));
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), 200);
}

/// What the reset page's script sends.
async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    let body = json!({"token": token, "new_password": password}).to_string();
    post_json(app, "/v1/password/reset", &body).await
}

#[tokio::test]
async fn the_mailed_reset_link_opens_a_page_that_sets_the_new_password() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let r = post_json(
        &app,
        "/v1/password/forgot",
        &json!({"email": EMAIL}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let mail = app.wait_for_mails(EMAIL, 1).await.remove(0);
    let link = link_of(&mail);
    assert!(
        link.starts_with(&format!("{}/reset-password?token=lk_pr_", app.base_url)),
        "{link}"
    );
    let html = fetch_page(&app, &link).await;
    for needle in [
        "<label for=\"lk-password\">",
        "id=\"lk-password\" name=\"new_password\" autocomplete=\"new-password\"",
        "<label for=\"lk-confirm\">",
        "aria-describedby=\"lk-password-errors\"",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    let script = fetch_assets(&app).await;
    assert!(
        script.contains("send(\"v1/password/reset\", { token: token, new_password: password })")
    );
    // The script shows each `errors[].message` for new_password next to the field.
    assert!(script.contains("e.field === \"new_password\""));
    let token = link_token(&mail);
    let body = assert_problem(reset(&app, &token, "short").await, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert!(body["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), 204);
    assert_problem(
        reset(&app, &token, NEW_PASSWORD).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(app.login(EMAIL, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn nothing_from_the_request_is_reflected_into_a_page() {
    let app = builder()
        .configure(|c| c.mail.product_name = "<b>Acme</b> & \"Co\"".into())
        .spawn()
        .await;
    for path in ["/verify-email", "/reset-password"] {
        let url = format!(
            "{}{path}?token=%3Cscript%3Ealert(1)%3C%2Fscript%3E&x=%22%3E%3Cimg",
            app.base_url
        );
        let html = fetch_page(&app, &url).await;
        assert!(!html.contains("alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        // The product name is configuration, and still escaped.
        assert!(
            html.contains("&lt;b&gt;Acme&lt;/b&gt; &amp; &quot;Co&quot;"),
            "{html}"
        );
        assert!(!html.contains("<b>Acme"), "{html}");
        // The page is the same with or without a token: the script reads it.
        let bare = fetch_page(&app, &app.url(path)).await;
        assert_eq!(bare, html);
    }
    // Other methods are not pages.
    let r = app
        .client
        .post(app.url("/verify-email"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn api_answers_keep_the_strict_api_csp() {
    let app = builder().spawn().await;
    let r = app.get("/healthz").await;
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn with_the_pages_off_the_paths_are_not_served() {
    let app = builder()
        .configure(|c| {
            c.pages.enabled = Some(false);
            c.mail.verify_url = Some("https://app.example.com/verify?token={token}".into());
            c.mail.reset_url = Some("https://app.example.com/reset?token={token}".into());
        })
        .spawn()
        .await;
    for path in [
        "/verify-email",
        "/reset-password",
        "/pages/latchkey-pages.js",
        "/pages/latchkey-pages.css",
    ] {
        assert_problem(app.get(path).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn dev_mail_files_hold_each_link_whole_on_one_line() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let r = post_json(
        &app,
        "/v1/password/forgot",
        &json!({"email": EMAIL}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let token = link_token(&app.wait_for_mails(EMAIL, 1).await[0]);
    assert_eq!(token.len(), "lk_pr_".len() + 43, "{token}");
    // What `grep lk_pr_ latchkey-data/mail/*` prints: lines with the whole token.
    let dir = app.state.config.data_dir.join("mail");
    let raw: String = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "{raw}");
    let grepped: Vec<&str> = raw.lines().filter(|l| l.contains("lk_pr_")).collect();
    assert!(!grepped.is_empty());
    for line in grepped {
        assert!(line.contains(&token), "a cut token: {line}");
    }
}

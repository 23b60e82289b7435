//! latchkey's own pages at the default mail link targets (`[pages]`): static
//! HTML and one script, served from latchkey itself under a strict CSP (no
//! inline script or style). The script reads the token from the link and posts
//! it to the API; the server never echoes anything from the request into a page.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The pages' Content-Security-Policy: their own script, style and API only.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where the script is served (pages link it relatively, so a path prefix works).
pub const SCRIPT_PATH: &str = "/pages/latchkey-pages.js";
/// Where the stylesheet is served.
pub const STYLE_PATH: &str = "/pages/latchkey-pages.css";

const VERIFY_HTML: &str = include_str!("pages/verify-email.html");
const RESET_HTML: &str = include_str!("pages/reset-password.html");
const SCRIPT: &str = include_str!("pages/latchkey-pages.js");
const STYLE: &str = include_str!("pages/latchkey-pages.css");

/// Text safe inside HTML content.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(state: &AppState, template: &str) -> Response {
    let html = template.replace("{{product}}", &escape_html(&state.config.mail.product_name));
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // The URL carries a one-time token: no cache keeps the page under it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The page of a verification link: a button posts the link's token to
/// `POST /v1/email/verify` and says whether it worked.
#[utoipa::path(get, path = "/verify-email", tag = "pages",
    params(("token" = Option<String>, Query, description = "The mailed `lk_ev_`/`lk_ec_` token (read by the page's script, never by the server)")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub async fn verify_email(State(state): State<AppState>) -> Response {
    page(&state, VERIFY_HTML)
}

/// The page of a reset link: asks for the new password (twice) and posts it
/// with the link's token to `POST /v1/password/reset`, showing the password
/// rules' refusals next to the field.
#[utoipa::path(get, path = "/reset-password", tag = "pages",
    params(("token" = Option<String>, Query, description = "The mailed `lk_pr_` token (read by the page's script, never by the server)")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
pub async fn reset_password(State(state): State<AppState>) -> Response {
    page(&state, RESET_HTML)
}

/// The pages' script.
#[utoipa::path(get, path = "/pages/latchkey-pages.js", tag = "pages",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/pages/latchkey-pages.css", tag = "pages",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_name_cannot_inject_markup() {
        assert_eq!(
            escape_html("<b>\"A&B's\"</b>"),
            "&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt;"
        );
    }

    #[test]
    fn the_pages_have_no_inline_script_or_style() {
        for html in [VERIFY_HTML, RESET_HTML] {
            assert!(!html.contains("<style"), "inline style element");
            assert!(!html.contains(" style="), "inline style attribute");
            let handler = html.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "inline event handler");
            assert_eq!(html.matches("<script").count(), 1);
            assert!(html.contains("<script src=\"pages/latchkey-pages.js\" defer></script>"));
            assert!(!PAGE_CSP.contains("unsafe"));
        }
        assert!(!SCRIPT.contains("innerHTML"), "text only");
    }
}

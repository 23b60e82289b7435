//! `[cookies]`: browser sessions (`"mode": "cookie"` at login).

use serde::{Deserialize, Serialize};

use super::{Config, Mode, Problem};

/// Cookie names and flags for cookie-mode sessions.
///
/// In cookie mode the access token travels in the HttpOnly session cookie, the
/// refresh token in the HttpOnly refresh cookie (never in a body), and the CSRF
/// token in a cookie the page can read. All three are `SameSite=Strict`, `Path=/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookiesConfig {
    /// Accept `"mode": "cookie"` at login and the session cookie on
    /// authenticated endpoints. Off: only bearer tokens work.
    pub enabled: bool,
    /// Cookie carrying the access token (HttpOnly).
    pub session_name: String,
    /// Cookie carrying the refresh token (HttpOnly).
    pub refresh_name: String,
    /// Cookie carrying the CSRF token (readable by the page).
    pub csrf_name: String,
    /// Cookie carrying the device token of the lockout defence (HttpOnly, set
    /// at every successful sign-in, whatever the mode).
    pub device_name: String,
    /// Set the `Secure` flag. Turning it off (plain-http development on a host
    /// other than localhost) also needs names without `__Host-`/`__Secure-`;
    /// refused in production.
    pub secure: bool,
}

impl Default for CookiesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_name: "__Host-lk_session".into(),
            refresh_name: "__Host-lk_refresh".into(),
            csrf_name: "__Host-lk_csrf".into(),
            device_name: "__Host-lk_device".into(),
            secure: true,
        }
    }
}

/// RFC 6265 `token`: visible ASCII except separators.
fn is_cookie_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>) {
    let c = &cfg.cookies;
    let names = [
        ("cookies.session_name", &c.session_name),
        ("cookies.refresh_name", &c.refresh_name),
        ("cookies.csrf_name", &c.csrf_name),
        ("cookies.device_name", &c.device_name),
    ];
    for (key, name) in names {
        if !is_cookie_name(name) {
            problems.push(Problem::new(
                key,
                "must be 1 to 64 visible ASCII characters without separators like ; = , or spaces",
            ));
        }
        let prefixed = name.starts_with("__Host-") || name.starts_with("__Secure-");
        if prefixed && !c.secure {
            problems.push(Problem::new(
                key,
                "a __Host- or __Secure- name needs cookies.secure = true (browsers drop it otherwise)",
            ));
        }
    }
    let distinct: std::collections::HashSet<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
    if distinct.len() != names.len() {
        problems.push(Problem::new("cookies", "the cookie names must differ"));
    }
    if cfg.mode == Mode::Production && !c.secure {
        problems.push(Problem::new(
            "cookies.secure",
            "must be true in production (session cookies would travel in clear text)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(edit: impl FnOnce(&mut Config)) -> Vec<String> {
        let mut cfg = Config::default();
        edit(&mut cfg);
        let mut problems = Vec::new();
        check(&cfg, &mut problems);
        problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(problems(|_| {}).is_empty());
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a b", "a;b", "a=b", "é", &"x".repeat(65)] {
            let keys = problems(|c| c.cookies.csrf_name = bad.into());
            assert_eq!(keys, ["cookies.csrf_name"], "{bad:?}");
        }
        assert_eq!(
            problems(|c| c.cookies.csrf_name = "__Host-lk_refresh".into()),
            ["cookies"]
        );
    }

    #[test]
    fn insecure_cookies_need_plain_names_and_dev_mode() {
        assert_eq!(
            problems(|c| c.cookies.secure = false).len(),
            4,
            "each __Host- name is refused"
        );
        let plain = |c: &mut Config| {
            c.cookies.secure = false;
            c.cookies.session_name = "lk_session".into();
            c.cookies.refresh_name = "lk_refresh".into();
            c.cookies.csrf_name = "lk_csrf".into();
            c.cookies.device_name = "lk_device".into();
        };
        assert!(problems(plain).is_empty());
        assert_eq!(
            problems(|c| {
                plain(c);
                c.mode = Mode::Production;
            }),
            ["cookies.secure"]
        );
    }
}

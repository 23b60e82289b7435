//! `[pages]`: latchkey's own minimal pages at the default mail link targets
//! (`/verify-email`, `/reset-password`), so every mailed flow can be finished
//! in a browser before an application has pages of its own.

use serde::{Deserialize, Serialize};

use super::{Config, Mode, Problem};

/// Path of the verification page (the default `mail.verify_url` target).
pub const VERIFY_PAGE: &str = "/verify-email";
/// Path of the password-reset page (the default `mail.reset_url` target).
pub const RESET_PAGE: &str = "/reset-password";

/// `[pages]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// Serve `GET /verify-email` and `GET /reset-password`. Unset: on in dev,
    /// off in production.
    pub enabled: Option<bool>,
}

impl Config {
    /// Whether latchkey serves its own verification and reset pages.
    pub fn pages_enabled(&self) -> bool {
        self.pages.enabled.unwrap_or(self.mode == Mode::Dev)
    }

    /// The link mailed for `page` (`{token}` in it): the configured URL, or
    /// latchkey's own page under the public URL.
    pub fn mail_link(&self, page: &str) -> String {
        let configured = match page {
            VERIFY_PAGE => self.mail.verify_url.as_deref(),
            _ => self.mail.reset_url.as_deref(),
        };
        configured.map_or_else(
            || format!("{}{page}?token={{token}}", self.effective_public_url()),
            str::to_owned,
        )
    }
}

/// Whether `link` leads to latchkey's own `page` under `public_url`.
fn points_at_own_page(link: &str, public_url: &str, page: &str) -> bool {
    let link = link.split(['?', '#']).next().unwrap_or_default();
    link.trim_end_matches('/')
        .eq_ignore_ascii_case(&format!("{}{page}", public_url.trim_end_matches('/')))
}

/// Refuses links to pages that are not served: in production with the pages off
/// (their default), a verification or reset link pointing at latchkey itself
/// would be a dead link in every mail. In dev it is a warning.
pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>, warnings: &mut Vec<String>) {
    if cfg.pages_enabled() {
        return;
    }
    // In dev without public_url the links point at the listener: the same check.
    let public = cfg.effective_public_url();
    for (key, page) in [
        ("mail.verify_url", VERIFY_PAGE),
        ("mail.reset_url", RESET_PAGE),
    ] {
        if !points_at_own_page(&cfg.mail_link(page), &public, page) {
            continue;
        }
        let message = format!(
            "mail links point at latchkey's own {page} page, which is not served: set {key} to \
             your application's page (e.g. \"https://app.example.com{page}?token={{token}}\"), \
             or turn latchkey's pages on with pages.enabled = true"
        );
        if cfg.mode == Mode::Production {
            problems.push(Problem::new(key, message));
        } else {
            warnings.push(format!("{key}: {message}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Config {
        Config {
            mode: Mode::Production,
            public_url: Some("https://auth.example.com".into()),
            ..Config::default()
        }
    }

    fn checked(cfg: &Config) -> (Vec<String>, Vec<String>) {
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        check(cfg, &mut problems, &mut warnings);
        (problems.into_iter().map(|p| p.key).collect(), warnings)
    }

    #[test]
    fn pages_are_on_in_dev_and_off_in_production_unless_configured() {
        assert!(Config::default().pages_enabled());
        assert!(!production().pages_enabled());
        let mut cfg = production();
        cfg.pages.enabled = Some(true);
        assert!(cfg.pages_enabled());
        let mut cfg = Config::default();
        cfg.pages.enabled = Some(false);
        assert!(!cfg.pages_enabled());
    }

    #[test]
    fn production_refuses_links_to_pages_it_does_not_serve() {
        let mut cfg = production();
        assert_eq!(checked(&cfg).0, ["mail.verify_url", "mail.reset_url"]);
        // Explicit links to latchkey itself are just as dead (any case, a query).
        cfg.mail.verify_url = Some("https://AUTH.example.com/verify-email/?token={token}".into());
        cfg.mail.reset_url = Some("https://app.example.com/reset?t={token}".into());
        assert_eq!(checked(&cfg).0, ["mail.verify_url"]);
        cfg.mail.verify_url = Some("https://app.example.com/verify-email?token={token}".into());
        assert!(checked(&cfg).0.is_empty());
        // Or the pages are turned on.
        let mut cfg = production();
        cfg.pages.enabled = Some(true);
        assert!(checked(&cfg).0.is_empty());
    }

    #[test]
    fn dev_with_pages_off_only_warns() {
        let mut cfg = Config::default();
        cfg.pages.enabled = Some(false);
        let (problems, warnings) = checked(&cfg);
        assert!(problems.is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("pages.enabled = true"), "{warnings:?}");
    }

    #[test]
    fn the_default_links_lead_to_the_pages_under_the_public_url() {
        let cfg = Config {
            public_url: Some("https://example.com/auth/".into()),
            ..Config::default()
        };
        assert_eq!(
            cfg.mail_link(VERIFY_PAGE),
            "https://example.com/auth/verify-email?token={token}"
        );
        assert_eq!(
            cfg.mail_link(RESET_PAGE),
            "https://example.com/auth/reset-password?token={token}"
        );
    }
}

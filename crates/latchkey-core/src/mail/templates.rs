//! Mail templates: every message has a plain-text and an HTML body rendered with
//! minijinja from built-in templates, which operators may replace file by file
//! from a directory.
//!
//! Guarantees: every value put into an HTML body is HTML-escaped (templates
//! named `*.html` are auto-escaped); subjects never carry a line break; an
//! operator's template that does not parse, or uses a variable the message does
//! not have, is refused when the server starts (with the file's name), and a
//! message whose custom template still fails at run time is rendered from the
//! built-in one instead of being lost.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, Value};

/// One kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// Link confirming the address of a new account.
    VerifyEmail,
    /// Notice to an owner that someone tried to sign up with their address.
    SignupAttempt,
    /// Password-reset link.
    PasswordReset,
    /// Notice: the password was changed or reset.
    PasswordChanged,
    /// Notice: sign-in was paused after repeated failures.
    AccountLocked,
    /// Notice: a second factor was added or removed.
    MfaChanged,
    /// Notice: a recovery code was used.
    RecoveryCodeUsed,
    /// Notice: a sign-in from a device not seen before.
    NewDevice,
    /// Link confirming a new address (email change), sent to the new address.
    EmailChangeVerify,
    /// Notice to the current address that a change was asked for.
    EmailChangeRequested,
    /// Notice to the old address that the change happened.
    EmailChanged,
    /// Notice: a session was revoked because its refresh token was reused.
    SessionRevoked,
    /// Link choosing the first password of an account an administrator
    /// created.
    Invite,
}

impl Template {
    /// Every template.
    pub const ALL: [Self; 13] = [
        Self::VerifyEmail,
        Self::SignupAttempt,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::AccountLocked,
        Self::MfaChanged,
        Self::RecoveryCodeUsed,
        Self::NewDevice,
        Self::EmailChangeVerify,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::SessionRevoked,
        Self::Invite,
    ];

    /// The file name stem (`<name>.txt`, `<name>.html`).
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::SignupAttempt => "signup_attempt",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::AccountLocked => "account_locked",
            Self::MfaChanged => "mfa_changed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::NewDevice => "new_device",
            Self::EmailChangeVerify => "email_change_verify",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::SessionRevoked => "session_revoked",
            Self::Invite => "invite",
        }
    }

    fn builtin(self) -> (&'static str, &'static str) {
        macro_rules! files {
            ($name:literal) => {
                (
                    include_str!(concat!("../../templates/mail/", $name, ".txt")),
                    include_str!(concat!("../../templates/mail/", $name, ".html")),
                )
            };
        }
        match self {
            Self::VerifyEmail => files!("verify_email"),
            Self::SignupAttempt => files!("signup_attempt"),
            Self::PasswordReset => files!("password_reset"),
            Self::PasswordChanged => files!("password_changed"),
            Self::AccountLocked => files!("account_locked"),
            Self::MfaChanged => files!("mfa_changed"),
            Self::RecoveryCodeUsed => files!("recovery_code_used"),
            Self::NewDevice => files!("new_device"),
            Self::EmailChangeVerify => files!("email_change_verify"),
            Self::EmailChangeRequested => files!("email_change_requested"),
            Self::EmailChanged => files!("email_changed"),
            Self::SessionRevoked => files!("session_revoked"),
            Self::Invite => files!("invite"),
        }
    }
}

/// The shared HTML frame every `.html` template extends.
pub const LAYOUT: &str = "layout.html";
const BUILTIN_LAYOUT: &str = include_str!("../../templates/mail/layout.html");
/// Largest template file read from the override directory.
pub const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// One line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A file of the override directory could not be read.
    #[error("mail template {file}: {why}")]
    Read {
        /// The file name.
        file: String,
        /// What went wrong.
        why: String,
    },
    /// A template does not parse or does not render.
    #[error("mail template {file}: {why}")]
    Invalid {
        /// The template's file name.
        file: String,
        /// minijinja's message.
        why: String,
    },
}

/// The loaded templates: the built-in set, and the operator's where given.
pub struct MailTemplates {
    builtin: Environment<'static>,
    custom: Option<Environment<'static>>,
}

impl std::fmt::Debug for MailTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailTemplates")
            .field("custom", &self.custom.is_some())
            .finish_non_exhaustive()
    }
}

fn environment(
    sources: Vec<(String, String)>,
    undefined: UndefinedBehavior,
) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // `*.html` auto-escapes (minijinja's default rule); `.txt` stays plain.
    for (name, source) in sources {
        env.add_template_owned(name.clone(), source)
            .map_err(|e| TemplateError::Invalid {
                file: name,
                why: e.to_string(),
            })?;
    }
    Ok(env)
}

fn builtin_sources() -> Vec<(String, String)> {
    let mut sources = vec![(LAYOUT.to_owned(), BUILTIN_LAYOUT.to_owned())];
    for t in Template::ALL {
        let (text, html) = t.builtin();
        sources.push((format!("{}.txt", t.name()), text.to_owned()));
        sources.push((format!("{}.html", t.name()), html.to_owned()));
    }
    sources
}

/// A context with every variable any template gets, to check templates at
/// start.
fn sample_context() -> Value {
    minijinja::context! {
        product => "latchkey",
        public_url => "https://auth.example.com",
        name => "Ada",
        link => "https://auth.example.com/verify-email?token=lk_ev_sample",
        hours => 24,
        minutes => 30,
        threshold => 5,
        until => "Mon, 23 Nov 2026 10:15:00 +0000",
        enabled => true,
        reset => false,
        time => "Mon, 23 Nov 2026 10:00:00 +0000",
        ip => "192.0.2.1",
        browser => "Firefox",
        os => "Linux",
        device_type => "pc",
        new_email => "new@example.com",
        left => 9,
    }
}

impl MailTemplates {
    /// The built-in templates only.
    ///
    /// # Errors
    /// Never in a released build (a test renders every built-in template).
    pub fn builtin() -> Result<Self, TemplateError> {
        Ok(Self {
            builtin: environment(builtin_sources(), UndefinedBehavior::Lenient)?,
            custom: None,
        })
    }

    /// The built-in templates with the files found in `dir` in their place
    /// (`layout.html`, `<name>.txt`, `<name>.html`; other files are ignored).
    /// Every template is rendered once with a sample of every variable, in
    /// strict mode, so a typo stops the start instead of a message.
    ///
    /// # Errors
    /// A file that cannot be read, is larger than [`MAX_TEMPLATE_BYTES`], does
    /// not parse or does not render; a text template without a `Subject:` line.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut templates = Self::builtin()?;
        let Some(dir) = dir else {
            return Ok(templates);
        };
        if !dir.is_dir() {
            return Err(TemplateError::Read {
                file: dir.display().to_string(),
                why: "not a readable directory".into(),
            });
        }
        let mut sources = builtin_sources();
        let mut replaced = 0usize;
        for (name, source) in &mut sources {
            let path = dir.join(&*name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let read_error = |why: String| TemplateError::Read {
                file: name.clone(),
                why,
            };
            if meta.len() > MAX_TEMPLATE_BYTES {
                return Err(read_error(format!(
                    "larger than {MAX_TEMPLATE_BYTES} bytes"
                )));
            }
            *source = std::fs::read_to_string(&path).map_err(|e| read_error(e.to_string()))?;
            replaced += 1;
        }
        let strict = environment(sources.clone(), UndefinedBehavior::Strict)?;
        let sample = sample_context();
        for t in Template::ALL {
            render_with(&strict, t, &sample)?;
        }
        if replaced > 0 {
            templates.custom = Some(environment(sources, UndefinedBehavior::Lenient)?);
        }
        Ok(templates)
    }

    /// Renders `template` with `context`, from the operator's version when there
    /// is one and it renders, else from the built-in one.
    ///
    /// # Errors
    /// Only when the built-in template fails too (a bug).
    pub fn render(
        &self,
        template: Template,
        context: &Value,
    ) -> Result<RenderedMail, TemplateError> {
        if let Some(custom) = &self.custom {
            match render_with(custom, template, context) {
                Ok(rendered) => return Ok(rendered),
                Err(e) => {
                    tracing::error!(error = %e, "custom mail template failed; using the built-in one");
                }
            }
        }
        render_with(&self.builtin, template, context)
    }
}

fn render_with(
    env: &Environment<'static>,
    template: Template,
    context: &Value,
) -> Result<RenderedMail, TemplateError> {
    let render = |file: String| {
        env.get_template(&file)
            .and_then(|t| t.render(context))
            .map_err(|e| TemplateError::Invalid {
                file,
                why: e.to_string(),
            })
    };
    let text_file = format!("{}.txt", template.name());
    let text = render(text_file.clone())?;
    let html = render(format!("{}.html", template.name()))?;
    let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let Some(subject) = first.strip_prefix("Subject:") else {
        return Err(TemplateError::Invalid {
            file: text_file,
            why: "the first line must be `Subject: ...`".into(),
        });
    };
    let subject = subject.trim().replace(['\r', '\n'], " ");
    if subject.is_empty() {
        return Err(TemplateError::Invalid {
            file: text_file,
            why: "the subject is empty".into(),
        });
    }
    let mut body = rest.trim_start_matches(['\r', '\n']).to_owned();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Ok(RenderedMail {
        subject,
        text: body,
        html,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_renders_in_strict_mode() {
        let strict = environment(builtin_sources(), UndefinedBehavior::Strict).unwrap();
        for t in Template::ALL {
            let r = render_with(&strict, t, &sample_context()).unwrap();
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{t:?}");
            assert!(r.text.starts_with("Hello Ada,"), "{t:?}: {}", r.text);
            assert!(r.html.contains("<p>Hello Ada,</p>"), "{t:?}");
        }
    }

    #[test]
    fn values_are_escaped_in_html_and_subjects_stay_one_line() {
        let t = MailTemplates::builtin().unwrap();
        let ctx = minijinja::context! {
            product => "Acme\r\nBcc: x@example.com",
            name => "<script>alert(1)</script>",
            link => "https://x.example/?a=\"><img src=x>",
            hours => 24,
        };
        let r = t.render(Template::VerifyEmail, &ctx).unwrap();
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
        assert!(!r.html.contains("\"><img"), "{}", r.html);
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
        assert!(
            r.text.contains("<script>alert(1)</script>"),
            "text is plain"
        );
    }

    #[test]
    fn overrides_replace_single_files_and_bad_ones_are_refused() {
        let dir = tempdir();
        std::fs::write(
            dir.join("verify_email.txt"),
            "Subject: Welcome to {{ product }}\n\nClick {{ link }}\n",
        )
        .unwrap();
        let t = MailTemplates::load(Some(&dir)).unwrap();
        let ctx = minijinja::context! { product => "Acme", link => "L", hours => 24 };
        let r = t.render(Template::VerifyEmail, &ctx).unwrap();
        assert_eq!(r.subject, "Welcome to Acme");
        assert_eq!(r.text, "Click L\n");
        assert!(
            r.html.contains("Verify my email address"),
            "html stays built in"
        );

        std::fs::write(dir.join("verify_email.txt"), "Subject: {{ prodct }}\n\nx").unwrap();
        let e = MailTemplates::load(Some(&dir)).unwrap_err().to_string();
        assert!(e.contains("verify_email.txt"), "{e}");

        std::fs::write(dir.join("verify_email.txt"), "no subject {{ link }}").unwrap();
        let e = MailTemplates::load(Some(&dir)).unwrap_err().to_string();
        assert!(e.contains("Subject"), "{e}");

        std::fs::write(dir.join("verify_email.txt"), "Subject: x\n\n{% if %}").unwrap();
        assert!(MailTemplates::load(Some(&dir)).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lk-mail-tpl-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

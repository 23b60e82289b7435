//! The SMTP mail transport (lettre over rustls): STARTTLS that never falls back
//! to plain text, implicit TLS, or plain text for a local relay, with optional
//! authentication and a bounded time per message.

use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::mail::{MailError, Mailer, OutgoingMail};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use zeroize::Zeroizing;

use crate::mail_message::{render, Sender};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS` (port 587). The upgrade is
    /// required: a server that does not offer it (or an attacker stripping it) gets
    /// no credentials and no message.
    StartTls,
    /// TLS from the first byte (port 465, "SMTPS").
    ImplicitTls,
    /// No encryption: only for a relay on the same machine or in development.
    None,
}

/// Everything the transport needs, already validated by the configuration.
pub struct SmtpSettings {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection protection.
    pub security: SmtpSecurity,
    /// `(user name, password)` for `AUTH PLAIN`/`LOGIN`, if the server needs it.
    pub credentials: Option<(String, Zeroizing<String>)>,
    /// PEM certificates trusted in addition to the public web PKI roots (a private
    /// relay's CA).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Limit on connecting and on each reply; a whole message gets four times this.
    pub timeout: Duration,
    /// Name sent with `EHLO`.
    pub hello_name: String,
    /// The `From` mailbox and envelope sender.
    pub from: Sender,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// Delivers each message over its own SMTP connection. Failures are classified
/// for the outbox: a 5xx reply or an invalid address is [`MailError::Permanent`];
/// 4xx replies, refused credentials, timeouts, refused connections and TLS
/// failures are [`MailError::Transient`] (the message waits and is retried). Error texts never
/// contain credentials or the server's free-text reply.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Sender,
    deadline: Duration,
    endpoint: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Why the SMTP transport could not be built (from configuration, at start).
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    /// The extra trusted roots are not a PEM certificate.
    #[error("not a PEM certificate: {0}")]
    NotPem(#[source] lettre::transport::smtp::Error),
    /// The TLS settings were refused.
    #[error("TLS settings: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
}

impl SmtpMailer {
    /// Builds the transport; fails when the extra roots are not valid PEM
    /// certificates. Connects to nothing until the first message.
    pub fn new(settings: SmtpSettings) -> Result<Self, SmtpSetupError> {
        let endpoint = format!("{}:{}", settings.host, settings.port);
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .timeout(Some(settings.timeout))
                .hello_name(ClientId::Domain(settings.hello_name.clone()));
        let tls = match settings.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(&settings)?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters(&settings)?),
        };
        builder = builder.tls(tls);
        if let Some((user, password)) = &settings.credentials {
            builder = builder
                .credentials(Credentials::new(user.clone(), password.to_string()))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from,
            deadline: settings.timeout.saturating_mul(4),
            endpoint,
        })
    }
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, SmtpSetupError> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(pem) = &settings.extra_roots_pem {
        let certificate = Certificate::from_pem(pem).map_err(SmtpSetupError::NotPem)?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(SmtpSetupError::Tls)
}

/// 5xx replies about authentication (RFC 4954): a problem of our configuration,
/// not of the message.
const AUTH_CODES: [&str; 4] = ["530", "534", "535", "538"];

/// The outbox's view of a failed SMTP exchange.
fn classify(error: &lettre::transport::smtp::Error) -> MailError {
    let code = error.status().map(|c| c.to_string());
    if error.is_permanent() && code.as_deref().is_some_and(|c| AUTH_CODES.contains(&c)) {
        // Our credentials were refused: every message would fail the same way until
        // the configuration is fixed, so none of them is given up.
        tracing::warn!(smtp_code = ?code, "SMTP authentication failed: check mail.smtp.username and password");
        return MailError::Transient("the SMTP server refused our credentials".into());
    }
    if error.is_permanent() {
        let code = code.unwrap_or_else(|| "5xx".into());
        tracing::warn!(smtp_code = %code, "SMTP server refused the message permanently");
        return MailError::Permanent(format!("refused by the SMTP server ({code})"));
    }
    let what = if error.is_transient() {
        format!(
            "temporarily refused by the SMTP server ({})",
            code.as_deref().unwrap_or("4xx")
        )
    } else if error.is_timeout() {
        "the SMTP server did not answer in time".to_owned()
    } else if error.is_tls() {
        "TLS with the SMTP server failed (certificate or protocol)".to_owned()
    } else if error.is_client() {
        // lettre's client errors are ours to describe: the one that matters is a
        // server (or an attacker in the path) not offering STARTTLS.
        "the SMTP session could not be secured or completed (is STARTTLS offered?)".to_owned()
    } else {
        "cannot reach the SMTP server".to_owned()
    };
    tracing::warn!(reason = %what, "SMTP delivery failed; the message stays queued");
    MailError::Transient(what)
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = render(&self.from, mail)?;
        match tokio::time::timeout(self.deadline, self.transport.send(message)).await {
            Ok(Ok(_response)) => {
                tracing::info!(mail_id = %mail.id, server = %self.endpoint, "mail handed to the SMTP server");
                Ok(())
            }
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => {
                tracing::warn!(server = %self.endpoint, "SMTP exchange exceeded its deadline");
                Err(MailError::Transient(
                    "the SMTP exchange took too long".into(),
                ))
            }
        }
    }
}

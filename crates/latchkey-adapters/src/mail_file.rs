//! The file mail transport (the dev default): one RFC 5322 `.eml` file per
//! message in a directory, readable by any mail client, nothing sent anywhere.

use std::path::PathBuf;

use async_trait::async_trait;
use latchkey_core::mail::{MailError, Mailer, OutgoingMail};

use crate::mail_message::{render_with, BodyEncoding, Sender};

/// Writes each message to `<dir>/<queued-at>-<id>.eml` (created 0600), rendered
/// as the SMTP transport would send it but with 8bit bodies, so
/// `grep lk_ev_ <dir>/*` shows each link with its whole token.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: Sender,
    log_links: bool,
}

impl FileMailer {
    /// A transport writing into `dir` (created on first use) with this `From`.
    /// With `log_links`, the first link of each message is logged at info level,
    /// so a developer can click through without opening files (dev only: links
    /// carry one-time tokens).
    pub fn new(dir: PathBuf, from: Sender, log_links: bool) -> Self {
        Self {
            dir,
            from,
            log_links,
        }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let dir = self.dir.clone();
        let path = dir.join(format!(
            "{}-{}.eml",
            mail.created_at.unix_timestamp(),
            mail.id
        ));
        let content = render_with(&self.from, mail, BodyEncoding::EightBit)?.formatted();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(&dir)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&path)?, &content)?;
            Ok(path)
        })
        .await
        .map_err(|e| MailError::Transient(e.to_string()))?
        .map_err(|e| MailError::Transient(format!("cannot write mail file: {}", e.kind())))?;
        if self.log_links {
            let link = mail
                .body_text
                .split_whitespace()
                .find(|w| w.starts_with("http"));
            tracing::info!(path = %written.display(), link = link.unwrap_or("-"), "mail written (dev file transport)");
        } else {
            tracing::info!(path = %written.display(), "mail written (file transport)");
        }
        Ok(())
    }
}

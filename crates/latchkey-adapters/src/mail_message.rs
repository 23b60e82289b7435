//! The one rendering of an outbox message as an RFC 5322 message, shared by every
//! transport: what the file transport writes is what SMTP sends, headers and
//! structure alike; only its bodies are 8bit, so links stay whole in the file.

use latchkey_core::mail::{MailError, OutgoingMail};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart};
use lettre::Message;

/// A parsed `From` mailbox (`Name <local@domain>` or `local@domain`).
#[derive(Debug, Clone)]
pub struct Sender {
    mailbox: Mailbox,
}

/// A `From` value that is not a mailbox. Its message says why and how to write
/// one, without echoing the value.
#[derive(Debug, thiserror::Error)]
#[error("not a valid mailbox ({0}); use `Name <user@example.com>`")]
pub struct InvalidSender(#[source] lettre::address::AddressError);

impl Sender {
    /// Parses the configured `From` value.
    pub fn parse(from: &str) -> Result<Self, InvalidSender> {
        from.parse::<Mailbox>()
            .map(|mailbox| Self { mailbox })
            .map_err(InvalidSender)
    }

    /// The bare address, used as the SMTP envelope sender.
    pub fn address(&self) -> &lettre::Address {
        &self.mailbox.email
    }
}

/// Builds `mail` as a MIME message: `From`, `To`, `Subject` (RFC 2047 when not
/// ASCII), `Date` (when it was queued), a `Message-ID` derived from the outbox id
/// (so a retried message keeps its id and receivers can drop duplicates), and a
/// UTF-8 text body in 7bit when it fits, quoted-printable otherwise; with an HTML
/// body too, both as `multipart/alternative` (text first).
///
/// The recipient must be a bare address (`local@domain`): a display name or
/// angle brackets (`Victim <attacker@evil.example>`) are refused. An address
/// that does not parse is a [`MailError::Permanent`]: retrying cannot fix it. Line breaks never reach a header.
pub fn render(from: &Sender, mail: &OutgoingMail) -> Result<Message, MailError> {
    render_with(from, mail, BodyEncoding::Transport)
}

/// How bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// 7bit when it fits, quoted-printable otherwise: what every SMTP server takes.
    Transport,
    /// 8bit (raw UTF-8, lines whole), so a link and its token stay on one line
    /// of the file; a body with a line over 998 bytes falls back to `Transport`.
    /// For the dev file transport, which nothing sends on.
    EightBit,
}

/// Longest line an 8bit body may have (RFC 5322: 998 characters before CRLF).
const MAX_8BIT_LINE: usize = 998;

fn body(text: String, encoding: BodyEncoding) -> Body {
    if encoding == BodyEncoding::EightBit {
        // lettre offers 8bit only for lines under 76 characters (links are
        // longer), so the RFC's own limits are checked here.
        let crlf = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\n', "\r\n");
        if !crlf.contains('\0') && crlf.split("\r\n").all(|l| l.len() <= MAX_8BIT_LINE) {
            return Body::dangerous_pre_encoded(
                crlf.into_bytes(),
                ContentTransferEncoding::EightBit,
            );
        }
    }
    Body::new(text)
}

/// [`render`] with the bodies encoded as `encoding` says.
pub fn render_with(
    from: &Sender,
    mail: &OutgoingMail,
    encoding: BodyEncoding,
) -> Result<Message, MailError> {
    // A bare address, never a mailbox: `Name <other@host>` in the stored
    // address must not send the mail somewhere the address does not say.
    let to = Mailbox::new(
        None,
        mail.to
            .trim()
            .parse::<lettre::Address>()
            .map_err(|_| MailError::Permanent("invalid recipient address".into()))?,
    );
    let subject = mail.subject.replace(['\r', '\n'], " ");
    let domain = from.address().domain().to_owned();
    let builder = Message::builder()
        .from(from.mailbox.clone())
        .to(to)
        .subject(subject)
        .date(mail.created_at.into())
        .message_id(Some(format!("<{}@{domain}>", mail.id)));
    let text = body(mail.body_text.clone(), encoding);
    let built = match &mail.body_html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            text,
            body(html.clone(), encoding),
        )),
        None => builder.header(ContentType::TEXT_PLAIN).body(text),
    };
    built.map_err(|e| MailError::Permanent(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{render, render_with, BodyEncoding, Sender};
    use latchkey_core::mail::{MailError, OutgoingMail};
    use time::macros::datetime;

    fn mail(to: &str, subject: &str, body: &str) -> OutgoingMail {
        OutgoingMail::new(to, subject, body.into(), datetime!(2026-11-23 10:00 UTC))
    }

    fn text(from: &Sender, mail: &OutgoingMail) -> String {
        String::from_utf8(render(from, mail).unwrap().formatted()).unwrap()
    }

    #[test]
    fn renders_headers_and_a_stable_message_id() {
        let from = Sender::parse("latchkey <no-reply@localhost>").unwrap();
        let m = mail("user@example.com", "Verify your email", "Hello\nworld");
        let out = text(&from, &m);
        assert!(
            out.contains("From: latchkey <no-reply@localhost>\r\n"),
            "{out}"
        );
        assert!(out.contains("To: user@example.com\r\n"), "{out}");
        assert!(out.contains("Subject: Verify your email\r\n"), "{out}");
        assert!(
            out.contains("Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!("Message-ID: <{}@localhost>\r\n", m.id)),
            "{out}"
        );
        assert!(out.ends_with("Hello\r\nworld"), "{out}");
        assert_eq!(out, text(&from, &m), "rendering is deterministic");
    }

    #[test]
    fn header_injection_is_impossible() {
        let from = Sender::parse("no-reply@example.com").unwrap();
        let out = text(
            &from,
            &mail("user@example.com", "Hi\r\nBcc: victim@example.com", "x"),
        );
        assert!(!out.contains("\r\nBcc:"), "{out}");
        let bad = mail("user@example.com\r\nBcc: victim@example.com", "Hi", "x");
        assert!(matches!(render(&from, &bad), Err(MailError::Permanent(_))));
    }

    #[test]
    fn an_html_body_makes_a_multipart_alternative() {
        let from = Sender::parse("no-reply@example.com").unwrap();
        let mut m = mail("user@example.com", "Hi", "plain words");
        m.body_html = Some("<p>html words</p>".into());
        let out = text(&from, &m);
        assert!(out.contains("Content-Type: multipart/alternative"), "{out}");
        assert!(
            out.contains("Content-Type: text/plain; charset=utf-8"),
            "{out}"
        );
        assert!(
            out.contains("Content-Type: text/html; charset=utf-8"),
            "{out}"
        );
        let (plain, html) = (
            out.find("plain words").unwrap(),
            out.find("html words").unwrap(),
        );
        assert!(plain < html, "text first, HTML last (preferred)");
    }

    #[test]
    fn refuses_invalid_addresses() {
        assert!(Sender::parse("not an address").is_err());
        let from = Sender::parse("no-reply@example.com").unwrap();
        for bad in [
            "nobody",
            "Victim<attacker@evil.example>",
            "Victim <attacker@evil.example>",
            "<attacker@evil.example>",
        ] {
            assert!(
                matches!(
                    render(&from, &mail(bad, "Hi", "x")),
                    Err(MailError::Permanent(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn eight_bit_bodies_keep_links_whole_on_one_line() {
        let from = Sender::parse("no-reply@example.com").unwrap();
        let link = format!(
            "https://auth.example.com/verify-email?token=lk_ev_{}",
            "a".repeat(43)
        );
        let mut m = mail("user@example.com", "Grüße", &format!("Bonjour Zoë\n{link}"));
        m.body_html = Some(format!("<p><a href=\"{link}\">{link}</a></p>"));
        let out = String::from_utf8(
            render_with(&from, &m, BodyEncoding::EightBit)
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert_eq!(
            out.matches("Content-Transfer-Encoding: 8bit").count(),
            2,
            "{out}"
        );
        assert!(out.contains("Bonjour Zoë\r\n"), "{out}");
        assert!(out.lines().any(|l| l == link), "{out}");
        assert!(out.contains(&format!("href=\"{link}\"")), "{out}");
        // A line too long for 8bit falls back to an encoding that fits.
        let long = mail("user@example.com", "Hi", &"x".repeat(2000));
        let out = String::from_utf8(
            render_with(&from, &long, BodyEncoding::EightBit)
                .unwrap()
                .formatted(),
        )
        .unwrap();
        assert!(!out.contains("8bit"), "{out}");
    }

    #[test]
    fn long_or_non_ascii_bodies_are_encoded() {
        let from = Sender::parse("no-reply@example.com").unwrap();
        let link = format!(
            "https://auth.example.com/verify-email?token=lk_ev_{}",
            "a".repeat(43)
        );
        let out = text(
            &from,
            &mail("user@example.com", "Grüße", &format!("Bonjour Zoë\n{link}")),
        );
        assert!(
            out.contains("Content-Transfer-Encoding: quoted-printable"),
            "{out}"
        );
        assert!(out.contains("Subject: =?utf-8?"), "{out}");
        assert!(out.is_ascii());
    }
}

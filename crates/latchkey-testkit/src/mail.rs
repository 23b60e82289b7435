//! Reading the MIME messages latchkey sends (from the file transport or the SMTP
//! sink): unfolded headers, RFC 2047 words and a decoded text body.

use base64::Engine;

/// A message split into decoded headers and body.
#[derive(Debug, Clone)]
pub struct ParsedMail {
    /// `(name, value)` in order, values unfolded and RFC 2047-decoded.
    pub headers: Vec<(String, String)>,
    /// The body after `Content-Transfer-Encoding` decoding, `\r\n` line ends;
    /// of a `multipart/alternative` message, its `text/plain` part.
    pub body: String,
    /// The decoded `text/html` part of a `multipart/alternative` message.
    pub html: Option<String>,
}

impl ParsedMail {
    /// Parses a raw RFC 5322 message.
    pub fn parse(raw: &str) -> Self {
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .or_else(|| raw.split_once("\n\n"))
            .unwrap_or((raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line.trim_start());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        for (_, value) in &mut headers {
            *value = decode_words(value);
        }
        let mut parsed = Self {
            headers,
            body: String::new(),
            html: None,
        };
        if let Some(boundary) = parsed.boundary() {
            let delimiter = format!("--{boundary}");
            for part in body.split(delimiter.as_str()).skip(1) {
                if part.starts_with("--") {
                    break;
                }
                let part = Self::parse(part.trim_start_matches(['\r', '\n']));
                let kind = part
                    .header("Content-Type")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if kind.starts_with("text/html") {
                    parsed.html = Some(part.body);
                } else if kind.starts_with("text/plain") {
                    parsed.body = part.body;
                }
            }
            return parsed;
        }
        let encoding = parsed
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        parsed.body = match encoding.as_str() {
            "quoted-printable" => String::from_utf8_lossy(
                &quoted_printable::decode(body, quoted_printable::ParseMode::Robust)
                    .unwrap_or_default(),
            )
            .into_owned(),
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap_or_default(),
                )
                .into_owned()
            }
            _ => body.to_owned(),
        };
        parsed
    }

    /// The multipart boundary, if the message is multipart.
    fn boundary(&self) -> Option<String> {
        let kind = self.header("Content-Type")?;
        if !kind.to_ascii_lowercase().starts_with("multipart/") {
            return None;
        }
        let at = kind.find("boundary=")?;
        let value = kind[at + "boundary=".len()..].split(';').next()?.trim();
        Some(value.trim_matches('"').to_owned())
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Headers and decoded body as one text, for assertions and token scraping.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&self.body);
        out
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=` / `=?utf-8?q?...?=`).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let Some(word) = rest[start + 2..]
            .splitn(3, '?')
            .collect::<Vec<_>>()
            .get(..3)
            .map(<[&str]>::to_vec)
        else {
            break;
        };
        let (charset, kind, tail) = (word[0], word[1], word[2]);
        let Some(end) = tail.find("?=") else {
            break;
        };
        let text = &tail[..end];
        let decoded = match kind.to_ascii_lowercase().as_str() {
            "b" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
            "q" => quoted_printable::decode(
                text.replace('_', " "),
                quoted_printable::ParseMode::Robust,
            )
            .ok(),
            _ => None,
        };
        let Some(bytes) = decoded.filter(|_| charset.eq_ignore_ascii_case("utf-8")) else {
            break;
        };
        let before = &rest[..start];
        // Whitespace between two encoded words is not part of the text.
        if !before.trim().is_empty() || out.is_empty() {
            out.push_str(before);
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        let consumed = start + 2 + charset.len() + 1 + kind.len() + 1 + end + 2;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::ParsedMail;

    #[test]
    fn decodes_quoted_printable_and_encoded_words() {
        let raw = "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\nTo: a@b.c\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   https://x.test/verify?token=3Dlk_ev_abc=\r\ndef\r\n";
        let mail = ParsedMail::parse(raw);
        assert_eq!(mail.header("subject"), Some("Grüße"));
        assert_eq!(mail.header("To"), Some("a@b.c"));
        assert_eq!(mail.body, "https://x.test/verify?token=lk_ev_abcdef\r\n");
    }
}

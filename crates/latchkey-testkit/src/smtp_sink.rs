//! A real SMTP server for tests, in process: plain text, `STARTTLS` or implicit
//! TLS with a fresh self-signed certificate, `AUTH PLAIN`/`LOGIN`, configurable
//! replies to `RCPT TO`, and a server that never answers. It records every
//! command (AUTH arguments elided) and every message it accepts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::app::fail;
use crate::mail::ParsedMail;

/// How the sink protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkSecurity {
    /// Plain text; `STARTTLS` is not offered (also what a client sees when an
    /// attacker strips the offer).
    Plain,
    /// Plain text until the client upgrades with `STARTTLS`.
    StartTls,
    /// TLS from the first byte.
    ImplicitTls,
}

/// What the sink does.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Connection protection.
    pub security: SinkSecurity,
    /// Credentials every client must present before `MAIL FROM` (`AUTH` is only
    /// offered over TLS unless the sink is [`SinkSecurity::Plain`]).
    pub auth: Option<(String, String)>,
    /// Reply to every `RCPT TO`, e.g. `(550, "5.1.1 no such user")`; unset: 250.
    /// Changed on a running sink with [`SmtpSink::set_rcpt_reply`].
    pub rcpt_reply: Option<(u16, String)>,
    /// Accept connections but never say anything (a hung server).
    pub silent: bool,
}

impl SinkOptions {
    /// A plain-text sink that accepts everything.
    pub fn plain() -> Self {
        Self {
            security: SinkSecurity::Plain,
            auth: None,
            rcpt_reply: None,
            silent: false,
        }
    }

    /// The same with another protection.
    #[must_use]
    pub fn with_security(mut self, security: SinkSecurity) -> Self {
        self.security = security;
        self
    }

    /// The same, requiring these credentials.
    #[must_use]
    pub fn with_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM` address.
    pub mail_from: String,
    /// `RCPT TO` addresses.
    pub rcpt_to: Vec<String>,
    /// Whether the message travelled over TLS.
    pub tls: bool,
    /// The user it authenticated as, if any.
    pub user: Option<String>,
    /// The message as received (dot-unstuffed, CRLF line ends).
    pub raw: String,
}

impl Received {
    /// The message with its body decoded.
    pub fn parsed(&self) -> ParsedMail {
        ParsedMail::parse(&self.raw)
    }
}

#[derive(Default)]
struct Record {
    commands: Vec<String>,
    received: Vec<Received>,
    connections: usize,
}

struct Shared {
    options: Mutex<SinkOptions>,
    record: Mutex<Record>,
    tls: TlsAcceptor,
}

impl Shared {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn options(&self) -> SinkOptions {
        self.options
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A running sink; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// Starts a sink on `127.0.0.1:0` with a new self-signed certificate for
    /// `127.0.0.1` and `localhost`.
    pub async fn start(options: SinkOptions) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Starts a sink on `addr`, e.g. a port a server was told about while nothing
    /// listened there (an SMTP server coming back).
    pub async fn start_on(addr: SocketAddr, options: SinkOptions) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("tempdir: {e}")));
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .unwrap_or_else(|e| fail(&format!("certificate: {e}")));
        let ca_pem = cert.cert.pem();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &ca_pem).unwrap_or_else(|e| fail(&e.to_string()));
        std::fs::write(&key_path, cert.key_pair.serialize_pem())
            .unwrap_or_else(|e| fail(&e.to_string()));
        let tls = latchkey_server::serve::tls_acceptor(&cert_path, &key_path)
            .unwrap_or_else(|e| fail(&e.to_string()));
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fail(&format!("bind {addr}: {e}")));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| fail(&e.to_string()));
        let shared = Arc::new(Shared {
            options: Mutex::new(options),
            record: Mutex::new(Record::default()),
            tls,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            addr,
            ca_pem,
            shared,
            task,
            _dir: dir,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its certificate (PEM), to trust as `mail.smtp.ca_file`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Messages accepted so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.record().received.clone()
    }

    /// Every command received so far (arguments of `AUTH` elided).
    pub fn commands(&self) -> Vec<String> {
        self.shared.record().commands.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.record().connections
    }

    /// Changes the reply to `RCPT TO` from now on.
    pub fn set_rcpt_reply(&self, reply: Option<(u16, String)>) {
        self.shared
            .options
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rcpt_reply = reply;
    }

    /// Waits (up to 10 s) until `count` messages arrived and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..200 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fail(&format!(
            "the SMTP sink did not receive {count} message(s) within 10 s; commands: {:?}",
            self.commands()
        ))
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        shared.record().connections += 1;
        tokio::spawn(connection(tcp, Arc::clone(&shared)));
    }
}

/// What a session ended with.
enum End {
    Closed,
    StartTls,
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>) {
    let options = shared.options();
    if options.silent {
        tokio::time::sleep(Duration::from_mins(10)).await;
        return;
    }
    if options.security == SinkSecurity::ImplicitTls {
        if let Ok(tls) = shared.tls.accept(tcp).await {
            let mut reader = BufReader::new(tls);
            let _ = session(&mut reader, &shared, &options, true, true).await;
        }
        return;
    }
    let mut reader = BufReader::new(tcp);
    if let Ok(End::StartTls) = session(&mut reader, &shared, &options, false, true).await {
        // Anything the client pipelined after STARTTLS is dropped with the buffer
        // (RFC 3207: commands injected before the handshake must not count).
        let tcp = reader.into_inner();
        if let Ok(tls) = shared.tls.accept(tcp).await {
            let mut reader = BufReader::new(tls);
            let _ = session(&mut reader, &shared, &options, true, false).await;
        }
    }
}

async fn reply<S: AsyncWrite + Unpin>(io: &mut S, text: &str) -> std::io::Result<()> {
    io.write_all(text.as_bytes()).await?;
    io.write_all(b"\r\n").await?;
    io.flush().await
}

async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn decode_b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Decodes an `AUTH PLAIN` response (`authzid \0 user \0 password`).
fn plain_credentials(b64: &str) -> (String, String) {
    let text = decode_b64(b64);
    let mut parts = text.split('\0').skip(1);
    (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    )
}

#[allow(clippy::too_many_lines)] // one SMTP state machine reads best in one place
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    shared: &Shared,
    options: &SinkOptions,
    tls: bool,
    greet: bool,
) -> std::io::Result<End> {
    if greet {
        reply(io.get_mut(), "220 sink.test ESMTP latchkey test sink").await?;
    }
    let offer_auth = options.auth.is_some() && (tls || options.security == SinkSecurity::Plain);
    let mut user: Option<String> = None;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    while let Some(line) = read_line(io).await? {
        let upper = line.to_ascii_uppercase();
        let verb = upper
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let logged = if verb == "AUTH" {
            upper
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            line.clone()
        };
        shared.record().commands.push(logged);
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut lines = vec!["250-sink.test".to_owned()];
                if options.security == SinkSecurity::StartTls && !tls {
                    lines.push("250-STARTTLS".into());
                }
                if offer_auth {
                    lines.push("250-AUTH PLAIN LOGIN".into());
                }
                lines.push("250 8BITMIME".into());
                reply(io.get_mut(), &lines.join("\r\n")).await?;
            }
            "STARTTLS" if options.security == SinkSecurity::StartTls && !tls => {
                reply(io.get_mut(), "220 2.0.0 ready to start TLS").await?;
                return Ok(End::StartTls);
            }
            "AUTH" if offer_auth => {
                let args: Vec<&str> = line.split_whitespace().skip(1).collect();
                let mechanism = args.first().map(|m| m.to_ascii_uppercase());
                let (name, password) = if mechanism.as_deref() == Some("PLAIN") {
                    let response = if let Some(initial) = args.get(1) {
                        (*initial).to_owned()
                    } else {
                        reply(io.get_mut(), "334 ").await?;
                        read_line(io).await?.unwrap_or_default()
                    };
                    plain_credentials(&response)
                } else if mechanism.as_deref() == Some("LOGIN") {
                    reply(io.get_mut(), "334 VXNlcm5hbWU6").await?;
                    let name = decode_b64(&read_line(io).await?.unwrap_or_default());
                    reply(io.get_mut(), "334 UGFzc3dvcmQ6").await?;
                    let password = decode_b64(&read_line(io).await?.unwrap_or_default());
                    (name, password)
                } else {
                    reply(io.get_mut(), "504 5.5.4 mechanism not supported").await?;
                    continue;
                };
                if options.auth.as_ref() == Some(&(name.clone(), password)) {
                    user = Some(name);
                    reply(io.get_mut(), "235 2.7.0 authenticated").await?;
                } else {
                    reply(io.get_mut(), "535 5.7.8 authentication failed").await?;
                }
            }
            "MAIL" => {
                if options.auth.is_some() && user.is_none() {
                    reply(io.get_mut(), "530 5.7.0 authentication required").await?;
                    continue;
                }
                mail_from = Some(address_of(&line));
                rcpt_to.clear();
                reply(io.get_mut(), "250 2.1.0 ok").await?;
            }
            "RCPT" => {
                if let Some((code, text)) = shared.options().rcpt_reply {
                    reply(io.get_mut(), &format!("{code} {text}")).await?;
                } else {
                    rcpt_to.push(address_of(&line));
                    reply(io.get_mut(), "250 2.1.5 ok").await?;
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpt_to.is_empty() {
                    reply(io.get_mut(), "503 5.5.1 need MAIL and RCPT first").await?;
                    continue;
                }
                reply(io.get_mut(), "354 end with <CRLF>.<CRLF>").await?;
                let mut raw = String::new();
                while let Some(data) = read_line(io).await? {
                    if data == "." {
                        break;
                    }
                    raw.push_str(data.strip_prefix('.').unwrap_or(&data));
                    raw.push_str("\r\n");
                }
                shared.record().received.push(Received {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    tls,
                    user: user.clone(),
                    raw,
                });
                reply(io.get_mut(), "250 2.0.0 queued").await?;
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                reply(io.get_mut(), "250 2.0.0 ok").await?;
            }
            "NOOP" => reply(io.get_mut(), "250 2.0.0 ok").await?,
            "QUIT" => {
                reply(io.get_mut(), "221 2.0.0 bye").await?;
                return Ok(End::Closed);
            }
            _ => reply(io.get_mut(), "502 5.5.2 command not implemented").await?,
        }
    }
    Ok(End::Closed)
}

/// The address between `<` and `>` of a `MAIL FROM:`/`RCPT TO:` line.
fn address_of(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

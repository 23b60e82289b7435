//! Connections that hold a socket without using it are closed, and no client
//! address holds more than its share: raw TCP (and TLS) clients that send
//! nothing, half an HTTP/2 preface, SETTINGS and nothing more, HEADERS that
//! never end; the per-IP and total caps refuse the next connection while the
//! others are held. Timeouts are small here so the tests are quick; each
//! assertion only bounds the close generously.

use std::sync::Arc;
use std::time::Duration;

use latchkey_server::config::Config;
use latchkey_testkit::app::TestApp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for a close expected after a few hundred milliseconds.
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn short_timeouts(c: &mut Config) {
    c.http.header_read_timeout_ms = 300;
    c.http.idle_timeout_ms = 300;
    c.http.request_timeout_ms = 1_000;
}

async fn short_timeout_app() -> TestApp {
    TestApp::builder().configure(short_timeouts).spawn().await
}

/// Reads until the server closes the connection (EOF or reset), failing the
/// test if it is still open after [`CLOSED_WITHIN`]; returns what was read.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(CLOSED_WITHIN, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {CLOSED_WITHIN:?}"
    );
    received
}

/// An HTTP/2 frame: 9-byte header (length, type, flags, stream) and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The frames (type, stream) in what a server sent.
fn frames(mut bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        out.push((bytes[3], stream));
        bytes = bytes.get(9 + len..).unwrap_or_default();
    }
    out
}

/// HPACK for `GET /healthz` over http (indexed :method GET, :scheme http,
/// literal :path, literal :authority).
fn healthz_request_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"localhost");
    block
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let app = short_timeout_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    assert!(read_until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed() {
    let app = short_timeout_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&H2_PREFACE[..10]).await.unwrap();
    read_until_closed(&mut stream).await;
}

#[tokio::test]
async fn an_h2c_connection_that_stops_after_settings_is_closed() {
    let app = short_timeout_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(
        frames(&received).contains(&(SETTINGS, 0)),
        "it spoke HTTP/2 before closing"
    );
}

#[tokio::test]
async fn http2_headers_without_end_headers_are_closed() {
    let app = short_timeout_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    // The first part of a header block whose CONTINUATION never comes.
    let block = healthz_request_block();
    stream
        .write_all(&frame(HEADERS, END_STREAM, 1, &block[..3]))
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(
        !frames(&received).contains(&(HEADERS, 1)),
        "no answer to an unfinished request"
    );
}

#[tokio::test]
async fn an_http2_connection_idle_after_its_request_is_closed() {
    let app = TestApp::builder()
        .configure(|c| {
            // Long enough for the request; the idle timeout is what closes it.
            c.http.header_read_timeout_ms = 5_000;
            c.http.idle_timeout_ms = 300;
            c.http.request_timeout_ms = 1_000;
        })
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    stream
        .write_all(&frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &healthz_request_block(),
        ))
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(
        frames(&received).contains(&(HEADERS, 1)),
        "the request was answered before the idle close: {:?}",
        frames(&received)
    );
}

#[tokio::test]
async fn an_http1_keep_alive_connection_without_a_next_request_is_closed() {
    let app = TestApp::builder()
        .configure(|c| {
            // Only the header timeout can close it here.
            c.http.header_read_timeout_ms = 300;
            c.http.idle_timeout_ms = 600_000;
        })
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "answered, then closed"
    );
}

fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path, cert.cert.der().to_vec())
}

#[tokio::test]
async fn a_tls_connection_idle_after_its_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path());
    let app = TestApp::builder()
        .configure(move |c| {
            short_timeouts(c);
            c.tls.cert = Some(cert);
            c.tls.key = Some(key);
            c.public_url = Some("https://localhost".into());
        })
        .spawn()
        .await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    read_until_closed(&mut tls).await;
}

/// `GET path` over a fresh connection; the whole answer, or `None` when the
/// connection was refused (closed without one).
async fn get_raw(app: &TestApp, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(app.addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    send_and_read(&mut stream, &request).await
}

async fn send_and_read(stream: &mut TcpStream, request: &str) -> Option<String> {
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    match tokio::time::timeout(CLOSED_WITHIN, stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) if !answer.is_empty() => Some(String::from_utf8_lossy(&answer).into_owned()),
        _ => None,
    }
}

/// Whether a fresh connection is served.
async fn served(app: &TestApp) -> bool {
    get_raw(app, "/healthz")
        .await
        .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
}

/// Whether a fresh connection is served within a few seconds (a closed
/// connection's place is given back once the server has seen it close).
async fn served_soon(app: &TestApp) -> bool {
    for _ in 0..100 {
        if served(app).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// `n` open connections that sent nothing yet (accepted in order, so a
/// connection opened after them is the one over a cap).
async fn hold(app: &TestApp, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    held
}

#[tokio::test]
async fn the_per_ip_cap_refuses_the_next_connection_while_the_others_are_held() {
    let app = TestApp::builder()
        .configure(|c| c.http.max_connections_per_ip = 3)
        .spawn()
        .await;
    let mut held = hold(&app, 3).await;
    assert!(!served(&app).await, "connection 4 is refused");
    // The held ones are served.
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = send_and_read(&mut held[0], request).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Closed connections give their places back.
    held.clear();
    assert!(served_soon(&app).await, "a freed place is given again");
    let mut metrics = None;
    for _ in 0..100 {
        metrics = get_raw(&app, "/metrics").await;
        if metrics.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = metrics.unwrap();
    assert!(
        metrics.contains("latchkey_connections_refused_total{reason=\"max_connections_per_ip\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_total_cap_holds_and_trusted_proxies_are_exempt_from_the_per_ip_cap() {
    let app = TestApp::builder()
        .configure(|c| {
            c.http.max_connections = 3;
            c.http.max_connections_per_ip = 1;
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .spawn()
        .await;
    // Three from the proxy's address, beyond its per-IP cap of one.
    let held = hold(&app, 3).await;
    assert!(!served(&app).await, "the fourth is over the total");
    drop(held);
    assert!(served_soon(&app).await);
}

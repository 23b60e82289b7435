//! The accept loop: plain HTTP or rustls TLS (1.2 and 1.3 only), HTTP/1.1 and h2,
//! the peer address handed to handlers as `ConnectInfo`, connection caps and
//! timeouts ([`admission`], [`idle`]), and graceful shutdown: stop accepting,
//! let in-flight requests finish within the grace period, then drop what
//! remains.

mod admission;
mod idle;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use latchkey_adapters::log_every::{LogEvery, TROUBLE_INTERVAL};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use admission::Admission;
use idle::{drive, Activity, Closed, IdleLimits, Tracked};

/// Why the TLS acceptor could not be built. The text names the file, never
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate file could not be read as PEM.
    #[error("tls.cert {}: {source}", .path.display())]
    Certificate {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("tls.cert {}: no certificate found", .0.display())]
    NoCertificate(std::path::PathBuf),
    /// The key file could not be read as a PEM private key.
    #[error("tls.key {}: {source}", .path.display())]
    Key {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the protocol versions (a bug).
    #[error("tls: {0}")]
    Versions(#[source] rustls::Error),
    /// The certificate and the key do not belong together.
    #[error("tls: certificate and key do not fit together: {0}")]
    Mismatch(#[source] rustls::Error),
}

/// Builds the TLS acceptor from PEM files: TLS 1.3 and 1.2 only, ALPN h2 and
/// http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|source| TlsSetupError::Certificate {
            path: cert.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsSetupError::Versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsSetupError::Mismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How one listener serves.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// The application.
    pub router: Router,
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Time allowed for a TLS handshake and for request headers to arrive.
    pub header_timeout: Duration,
    /// Time in-flight requests get after shutdown starts.
    pub grace: Duration,
    /// Connection caps and timeouts.
    pub connections: ConnectionLimits,
}

/// How many connections a listener holds and how long an unused one lives
/// (`[http]`; see docs/http.md, Connections).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections at most per client address (IPv6: per /64).
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-address cap (they carry many clients).
    pub exempt: Vec<ipnet::IpNet>,
    /// IPv6 clients are counted by this prefix (`rate_limit.ipv6_prefix`).
    pub ipv6_prefix: u8,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// An idle connection told to close is cut off after this.
    pub close_grace: Duration,
    /// HTTP/2 ping interval and the time its answer may take.
    pub h2_keep_alive: (Duration, Duration),
}

impl ConnectionLimits {
    /// The admission counter of these caps.
    fn admission(&self) -> std::sync::Arc<Admission> {
        Admission::new(
            self.max_connections,
            self.max_connections_per_ip,
            self.exempt.clone(),
            self.ipv6_prefix,
        )
    }

    /// The limits `config` sets (trusted proxies exempt from the per-IP cap).
    pub fn from_config(config: &crate::config::Config) -> Self {
        let http = &config.http;
        Self {
            max_connections: http.max_connections,
            max_connections_per_ip: http.max_connections_per_ip,
            exempt: config.trusted_proxies.clone(),
            ipv6_prefix: config.rate_limit.ipv6_prefix,
            idle_timeout: Duration::from_millis(http.idle_timeout_ms),
            close_grace: Duration::from_millis(http.request_timeout_ms),
            h2_keep_alive: (
                Duration::from_millis(http.h2_keep_alive_interval_ms),
                Duration::from_millis(http.h2_keep_alive_timeout_ms),
            ),
        }
    }
}

/// Most HTTP/1 headers hyper parses (the application refuses more than
/// [`crate::middleware::request_limits::MAX_HEADERS`] with a problem).
const HYPER_MAX_HEADERS: usize = 1000;
/// Largest HTTP/2 header list hyper takes (its default, 16 KiB, is below the
/// application's [`crate::middleware::request_limits::MAX_HEADER_BYTES`]).
const HYPER_MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

/// First pause after a failed accept; doubles up to [`MAX_ACCEPT_BACKOFF`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after failed accepts (out of file descriptors: connections
/// must close before accepting can succeed again).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves until `stop` turns true, then drains.
///
/// Guarantees: connections beyond `connections.max_connections`, or beyond
/// `max_connections_per_ip` from one client address, are closed at once;
/// a connection must send its first request's headers within
/// `header_timeout` of being accepted (TLS handshake included) and is closed
/// after `idle_timeout` with no request in flight; failed accepts back off
/// and are logged at most once per [`TROUBLE_INTERVAL`] with a count, and so
/// are refused connections.
pub async fn run(listener: Listener, mut stop: watch::Receiver<bool>) {
    let Listener {
        socket,
        router,
        tls,
        header_timeout,
        grace,
        connections: limits,
    } = listener;
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper's own header limits sit far above the application's (middleware
    // request_limits), so an oversized request is answered with a problem;
    // only requests beyond these get hyper's bare 431 / 414.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(HYPER_MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keep_alive.0)
        .keep_alive_timeout(limits.h2_keep_alive.1)
        .max_header_list_size(HYPER_MAX_HEADER_LIST_BYTES);
    let serving = Serving {
        builder,
        tls,
        header_timeout,
        idle: IdleLimits {
            first_request: header_timeout,
            idle: limits.idle_timeout,
            close_grace: limits.close_grace,
        },
    };
    let admission = limits.admission();
    let accept_failures = LogEvery::new(TROUBLE_INTERVAL);
    let refusals = LogEvery::new(TROUBLE_INTERVAL);
    let mut backoff = ACCEPT_BACKOFF;
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = ACCEPT_BACKOFF;
                pair
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of
                // spinning, while connections that end give descriptors back.
                metrics::counter!("latchkey_accept_errors_total").increment(1);
                if let Some(occurrences) = accept_failures.hit() {
                    tracing::warn!(error = %e, occurrences, open = admission.open(), retry_in_ms = backoff.as_millis(), "accept failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                metrics::counter!("latchkey_connections_refused_total", "reason" => refused.as_str())
                    .increment(1);
                if let Some(occurrences) = refusals.hit() {
                    tracing::warn!(
                        cap = refused.as_str(),
                        occurrences,
                        "connection refused: too many open connections"
                    );
                }
                // Dropping the stream closes it at once.
                continue;
            }
        };
        let connection = serving
            .clone()
            .connection(stream, router.clone(), peer, stop.clone());
        connections.spawn(async move {
            connection.await;
            drop(admitted);
        });
    }
    drop(socket);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis(),
            connections = connections.len(),
            "in-flight requests cut off after the grace period"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// What serving one accepted connection needs.
#[derive(Clone)]
struct Serving {
    builder: Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    idle: IdleLimits,
}

impl Serving {
    /// Serves one connection from `peer` (TLS handshake first, when
    /// configured) until it ends, is unused too long, or `stop` turns true.
    async fn connection(
        self,
        stream: TcpStream,
        router: Router,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        // Accepted now: the first request's deadline includes the handshake.
        let activity = Activity::new();
        let service = with_peer(router, peer, activity.clone());
        let (closed, served) = match self.tls {
            None => {
                let conn = self
                    .builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service);
                drive(conn, &activity, self.idle, stop).await
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.header_timeout, acceptor.accept(stream)).await;
                let Ok(Ok(stream)) = handshake else {
                    if handshake.is_err() {
                        metrics::counter!("latchkey_connections_timed_out_total", "phase" => "tls_handshake")
                            .increment(1);
                    }
                    tracing::debug!("TLS handshake failed or timed out");
                    return;
                };
                let conn = self
                    .builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service);
                drive(conn, &activity, self.idle, stop).await
            }
        };
        let phase = match closed {
            Closed::NoRequest => Some("first_request"),
            Closed::Idle => Some("idle"),
            Closed::ByItself | Closed::Shutdown => None,
        };
        if let Some(phase) = phase {
            metrics::counter!("latchkey_connections_timed_out_total", "phase" => phase)
                .increment(1);
            tracing::debug!(phase, "unused connection closed");
        }
        if let Err(e) = served {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// A response whose request stays in flight on its connection until sent.
type TrackedResponse = axum::http::Response<Tracked<axum::body::Body>>;

/// The router as a hyper service that tells handlers who the peer is, and
/// the connection's `activity` which requests are in flight.
fn with_peer(
    router: Router,
    peer: SocketAddr,
    activity: Activity,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = TrackedResponse,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<TrackedResponse, std::convert::Infallible>> + Send + 'static,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = activity.begin();
        let response = router.clone().oneshot(req);
        async move {
            let response = response.await?;
            Ok(response.map(|body| Tracked::new(body, busy)))
        }
    })
}

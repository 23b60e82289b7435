//! The webhook sender: POSTs signed events over HTTPS, guarded against SSRF
//! at connection time. Every name is resolved by our own resolver, which
//! drops the addresses the guard refuses (loopback, private, link-local,
//! reserved: core `webhooks::target`) unless private networks are allowed,
//! so a name that resolves elsewhere now than when it was saved (DNS
//! rebinding) cannot reach them; an address written in the URL is checked
//! the same way before connecting. Redirects are not followed (a 3xx is a
//! failed attempt), no proxy from the environment is used, every attempt is
//! bounded by the timeout, and at most 1 KiB of an answer's body is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::webhooks::target::{check_url, is_public};
use latchkey_core::webhooks::{bounded_error, DeliveryFailure, WebhookSender, MAX_ERROR};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

/// Resolves with the system resolver, keeping only allowed addresses.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err("the name resolves to no allowed (public) address".into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

impl HttpWebhookSender {
    /// A sender whose attempts each end within `timeout`; `allow_private`
    /// lets endpoints be plain HTTP on private networks (development only).
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("latchkey-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allow_private,
        })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), DeliveryFailure> {
        // Saved URLs passed this already; an address literal is checked again
        // here because it is never resolved.
        let url = check_url(url, self.allow_private)
            .map_err(|p| DeliveryFailure(format!("endpoint refused: {p}")))?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| DeliveryFailure(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut response = response;
        let mut text = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            text.extend_from_slice(&chunk);
            if text.len() >= MAX_ERROR {
                break;
            }
        }
        let body = String::from_utf8_lossy(&text);
        Err(DeliveryFailure(bounded_error(&format!(
            "HTTP {}: {}",
            status.as_u16(),
            body.trim()
        ))))
    }
}

/// A transport failure in a few words (no URL: it may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    bounded_error(&match std::error::Error::source(e) {
        Some(cause) => format!("{what}: {}", latchkey_core::causes::chain(cause)),
        None => what.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_at_connection_time() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(guarded.resolve(name).await.is_err(), "localhost resolved");
        let open = GuardedResolver {
            allow_private: true,
        };
        let name: Name = "localhost".parse().unwrap();
        let found: Vec<SocketAddr> = open.resolve(name).await.unwrap().collect();
        assert!(found.iter().all(|a| a.ip().is_loopback()) && !found.is_empty());
    }

    #[tokio::test]
    async fn a_private_target_is_refused_before_any_connection() {
        let sender = HttpWebhookSender::new(Duration::from_secs(1), false).unwrap();
        for url in [
            "http://127.0.0.1:9/hook",
            "https://127.0.0.1:9/hook",
            "https://169.254.169.254/",
        ] {
            let err = sender.post(url, &[], b"{}".to_vec()).await.unwrap_err();
            assert!(err.0.starts_with("endpoint refused"), "{url}: {err}");
        }
    }
}

//! Who is calling: the client IP (from the socket, or from forwarding headers only
//! when the socket peer is a configured trusted proxy), the user agent (bounded),
//! its parsed device, and the device fingerprint.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ipnet::IpNet;
use latchkey_core::session::{device_fingerprint, Device};

use crate::state::AppState;

/// Longest user agent kept; longer ones are cut (on a character boundary).
pub const MAX_USER_AGENT: usize = 512;

/// What the server knows about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's IP, if a socket peer is known.
    pub ip: Option<IpAddr>,
    /// The User-Agent header, bounded, control characters removed.
    pub user_agent: Option<String>,
    /// Parsed user agent.
    pub device: Device,
    /// [`device_fingerprint`] of `device`.
    pub fingerprint: String,
}

impl ClientInfo {
    /// The domain's view of the caller.
    pub fn context(&self) -> latchkey_core::auth::ClientContext {
        latchkey_core::auth::ClientContext {
            ip: self.ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
            device: self.device.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// The client IP: the socket peer, unless the peer is a trusted proxy; then the
/// rightmost address in `X-Forwarded-For` (or `Forwarded: for=`) that is not itself
/// a trusted proxy. Spoofed entries to the left of the first untrusted hop are
/// never believed.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("forwarded") {
        for element in value.to_str().unwrap_or_default().split(',') {
            for pair in element.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    if k.trim().eq_ignore_ascii_case("for") {
                        hops.extend(parse_hop(v));
                    }
                }
            }
        }
    }
    if hops.is_empty() {
        for value in headers.get_all("x-forwarded-for") {
            hops.extend(
                value
                    .to_str()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(parse_hop),
            );
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !trusted.iter().any(|net| net.contains(ip)))
            .unwrap_or(peer),
    )
}

/// The client IP as it may appear in logs (the PII rules, docs/http.md): an
/// IPv4 address with its last octet zeroed (`203.0.113.77` → `203.0.113.0`), an
/// IPv6 address cut to its /48 (`2001:db8:1:2::5` → `2001:db8:1::`). An
/// IPv4-mapped IPv6 address is masked as the IPv4 address it is. Enough to tell
/// networks apart, never one subscriber.
pub fn masked_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return masked_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
        }
    }
}

/// One forwarded hop: `1.2.3.4`, `1.2.3.4:5678`, `"[::1]:80"`, `2001:db8::1`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    raw.strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|ip| ip.parse().ok())
}

/// The parsed device of a user agent.
pub fn parse_device(user_agent: Option<&str>) -> Device {
    let parsed = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua));
    match parsed {
        Some(r) => Device {
            kind: r.category.to_owned(),
            os: r.os.to_owned(),
            browser: r.name.to_owned(),
        },
        None => Device {
            kind: "unknown".into(),
            os: "unknown".into(),
            browser: "unknown".into(),
        },
    }
}

fn bounded_user_agent(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let clean: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = client_ip(peer, &parts.headers, &state.config.trusted_proxies);
        let user_agent = bounded_user_agent(&parts.headers);
        let device = parse_device(user_agent.as_deref());
        let fingerprint = device_fingerprint(&device);
        Ok(Self {
            ip,
            user_agent,
            device,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[allow(clippy::unnecessary_wraps)] // compared with client_ip's Option
    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_are_ignored_from_untrusted_peers() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(client_ip(ip("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_right_to_left() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client forged 6.6.6.6; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.4"));
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("2001:db8::7"));
        // Nothing usable: the proxy itself.
        let h = headers(&[("x-forwarded-for", "garbage, 10.0.0.3")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn logged_ips_keep_only_the_network() {
        let masked = |s: &str| masked_ip(s.parse().unwrap()).to_string();
        assert_eq!(masked("203.0.113.77"), "203.0.113.0");
        assert_eq!(masked("10.1.2.255"), "10.1.2.0");
        assert_eq!(masked("2001:db8:1:2:3:4:5:6"), "2001:db8:1::");
        assert_eq!(masked("::1"), "::");
        assert_eq!(masked("::ffff:198.51.100.9"), "198.51.100.0");
        assert_eq!(masked("2001:db8:abcd:12::1"), "2001:db8:abcd::");
    }

    #[test]
    fn user_agents_are_parsed_and_fingerprinted_by_family() {
        let firefox = parse_device(Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
        ));
        assert_eq!(
            (
                firefox.kind.as_str(),
                firefox.os.as_str(),
                firefox.browser.as_str()
            ),
            ("pc", "Linux", "Firefox")
        );
        let newer = parse_device(Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
        ));
        assert_eq!(
            device_fingerprint(&firefox),
            device_fingerprint(&newer),
            "a browser update keeps the fingerprint"
        );
        let iphone = parse_device(Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"));
        assert_ne!(device_fingerprint(&firefox), device_fingerprint(&iphone));
        assert_eq!(parse_device(None).kind, "unknown");
    }
}

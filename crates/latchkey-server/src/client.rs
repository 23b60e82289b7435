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
    /// The network it is counted as (see [`client_network`]; IPv6 per
    /// `rate_limit.ipv6_prefix`).
    pub network: Option<IpNet>,
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
            network: self.network.map(|net| net.to_string()),
            user_agent: self.user_agent.clone(),
            device: self.device.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Which forwarding header a trusted proxy writes (`trusted_proxies_header`).
/// Only that one is read: a proxy that appends `X-Forwarded-For` passes a
/// client's own `Forwarded` through untouched, so believing both would let any
/// client choose its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, AWS ALB, most proxies).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
    /// `X-Real-IP: client` (one address, set by the proxy).
    XRealIp,
}

/// Whom the server believes about the client's address.
#[derive(Debug, Clone, Copy)]
pub struct ProxyTrust<'a> {
    /// Peers whose forwarding header is read (`trusted_proxies`).
    pub proxies: &'a [IpNet],
    /// The one header they write.
    pub header: ForwardedHeader,
}

impl ProxyTrust<'_> {
    fn trusts(&self, ip: &IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(ip))
    }
}

/// An address as one client: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4
/// address, so it can neither dodge a trust check nor get a second key.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The network one client is counted under: an IPv4 address itself, an IPv6
/// address by its `/ipv6_prefix` (a subscriber is given a whole /64, so
/// counting single IPv6 addresses counts nothing).
pub fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpNet {
    match canonical(ip) {
        IpAddr::V4(v4) => IpNet::V4(ipnet::Ipv4Net::from(v4)),
        IpAddr::V6(v6) => {
            let prefix = ipv6_prefix.min(128);
            ipnet::Ipv6Net::new(v6, prefix).map_or_else(
                |_| IpNet::V6(ipnet::Ipv6Net::from(v6)),
                |n| IpNet::V6(n.trunc()),
            )
        }
    }
}

/// The client IP: the socket peer, unless the peer is a trusted proxy; then
/// the rightmost address in the configured forwarding header that is not
/// itself a trusted proxy. Spoofed entries to the left of the first untrusted
/// hop, and every other forwarding header, are never believed. Addresses are
/// canonical (IPv4-mapped IPv6 as IPv4) before any trust check.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trust: ProxyTrust<'_>,
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if !trust.trusts(&peer) {
        return Some(peer);
    }
    // Each hop as written; `None` for one that names no address (`unknown`,
    // an obfuscated identifier, garbage). Empty list entries are no hops.
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    match trust.header {
        ForwardedHeader::Forwarded => {
            for value in headers.get_all("forwarded") {
                for element in value.to_str().unwrap_or_default().split(',') {
                    for pair in element.split(';') {
                        if let Some((k, v)) = pair.trim().split_once('=') {
                            if k.trim().eq_ignore_ascii_case("for") {
                                hops.push(parse_hop(v));
                            }
                        }
                    }
                }
            }
        }
        ForwardedHeader::XForwardedFor => {
            for value in headers.get_all("x-forwarded-for") {
                hops.extend(
                    value
                        .to_str()
                        .unwrap_or_default()
                        .split(',')
                        .filter(|hop| !hop.trim().is_empty())
                        .map(parse_hop),
                );
            }
        }
        ForwardedHeader::XRealIp => {
            // One value only: several (a client's own plus the proxy's) are
            // ambiguous and believed for nothing.
            let mut values = headers.get_all("x-real-ip").iter();
            if let (Some(value), None) = (values.next(), values.next()) {
                hops.push(parse_hop(value.to_str().unwrap_or_default()));
            }
        }
    }
    // Right to left, past trusted hops. A hop a trusted proxy wrote that
    // names no address ends the walk at the peer: what lies left of it was
    // written by the client and is believed for nothing.
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop.map(canonical) else {
            return Some(peer);
        };
        if !trust.trusts(&ip) {
            return Some(ip);
        }
    }
    Some(peer)
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
        let ip = client_ip(peer, &parts.headers, state.config.proxy_trust());
        let network = ip.map(|ip| client_network(ip, state.config.rate_limit.ipv6_prefix));
        let user_agent = bounded_user_agent(&parts.headers);
        let device = parse_device(user_agent.as_deref());
        let fingerprint = device_fingerprint(&device);
        Ok(Self {
            ip,
            network,
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

    fn trust(proxies: &[IpNet], header: ForwardedHeader) -> ProxyTrust<'_> {
        ProxyTrust { proxies, header }
    }

    #[test]
    fn forwarding_headers_are_ignored_from_untrusted_peers() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        let xff = ForwardedHeader::XForwardedFor;
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, trust(&[], xff)),
            ip("203.0.113.9")
        );
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, trust(&trusted, xff)),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_right_to_left() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = trust(&trusted, ForwardedHeader::XForwardedFor);
        // The client forged 6.6.6.6; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("198.51.100.4"));
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        let fwd = trust(&trusted, ForwardedHeader::Forwarded);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, fwd), ip("2001:db8::7"));
        // Nothing usable: the proxy itself.
        let h = headers(&[("x-forwarded-for", "garbage, 10.0.0.3")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("10.0.0.1"));
    }

    /// The attack: the proxy names its client `unknown` (or an obfuscated
    /// identifier); skipping that hop would believe what the client wrote
    /// to its left.
    #[test]
    fn a_hop_that_names_no_address_ends_the_walk_at_the_peer() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = trust(&trusted, ForwardedHeader::XForwardedFor);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, unknown")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("10.0.0.1"));
        let fwd = trust(&trusted, ForwardedHeader::Forwarded);
        let h = headers(&[("forwarded", "for=6.6.6.6, for=_hidden")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, fwd), ip("10.0.0.1"));
        // Empty list entries are no hops.
        let h = headers(&[("x-forwarded-for", "198.51.100.4, , 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("198.51.100.4"));
    }

    /// The attack: behind a proxy that appends only X-Forwarded-For, the
    /// client sends its own `Forwarded` (or `X-Real-IP`) to choose its address.
    #[test]
    fn only_the_configured_header_is_believed() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "7.7.7.7"),
            ("x-forwarded-for", "198.51.100.4"),
        ]);
        let xff = trust(&trusted, ForwardedHeader::XForwardedFor);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("198.51.100.4"));
        let fwd = trust(&trusted, ForwardedHeader::Forwarded);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, fwd), ip("6.6.6.6"));
        let real = trust(&trusted, ForwardedHeader::XRealIp);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, real), ip("7.7.7.7"));
        // Two X-Real-IP values: ambiguous, the peer.
        let h = headers(&[("x-real-ip", "7.7.7.7"), ("x-real-ip", "8.8.8.8")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, real), ip("10.0.0.1"));
        // With X-Forwarded-For configured, a request with only `Forwarded`
        // is the proxy's own.
        let h = headers(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, xff), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4_for_trust_and_keys() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = trust(&trusted, ForwardedHeader::XForwardedFor);
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.4, ::ffff:10.0.0.2")]);
        // A mapped peer is the trusted proxy; mapped hops are skipped or kept as IPv4.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &h, xff),
            ip("198.51.100.4")
        );
        // A mapped untrusted peer is itself, as IPv4.
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), &h, xff),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_network("::ffff:203.0.113.9".parse().unwrap(), 64),
            "203.0.113.9/32".parse::<IpNet>().unwrap()
        );
        let a = client_network("2001:db8:1:2::5".parse().unwrap(), 64);
        let b = client_network("2001:db8:1:2:ffff::1".parse().unwrap(), 64);
        assert_eq!(a, b, "one /64, one client");
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_ne!(a, client_network("2001:db8:1:3::5".parse().unwrap(), 64));
        assert_ne!(
            client_network("2001:db8:1:2::5".parse().unwrap(), 128),
            client_network("2001:db8:1:2::6".parse().unwrap(), 128)
        );
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

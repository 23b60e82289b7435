//! Where a webhook may point (SSRF guard). In production an endpoint must be
//! `https` and must not be, or resolve to, an address of this machine or of
//! a private, link-local (cloud metadata: 169.254.169.254), shared or
//! reserved network; the check runs when the webhook is saved and again on
//! the addresses resolved at each delivery (a name that resolved to a public
//! address at creation and to a private one later — DNS rebinding — is
//! refused then). Development may allow plain HTTP on private networks
//! (`webhooks.allow_private_networks`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest accepted endpoint URL.
pub const MAX_URL: usize = 2048;

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    /// Not an absolute URL, or longer than [`MAX_URL`].
    #[error("must be an absolute URL of at most 2048 characters")]
    Malformed,
    /// Not `https` (or `http` where private networks are allowed).
    #[error("must use https")]
    Scheme,
    /// Carries a user name or password.
    #[error("must not carry credentials")]
    Credentials,
    /// Names or resolves to a loopback, private, link-local or reserved address.
    #[error("must not point at a loopback, private, link-local or reserved address")]
    PrivateAddress,
}

/// Checks `text` as an endpoint URL; returns it parsed, without a fragment.
pub fn check_url(text: &str, allow_private: bool) -> Result<url::Url, UrlProblem> {
    if text.len() > MAX_URL {
        return Err(UrlProblem::Malformed);
    }
    let mut url = url::Url::parse(text.trim()).map_err(|_| UrlProblem::Malformed)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(UrlProblem::Scheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Credentials);
    }
    let host = url.host().ok_or(UrlProblem::Malformed)?;
    if !allow_private {
        let refused = match host {
            url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
        };
        if refused {
            return Err(UrlProblem::PrivateAddress);
        }
    }
    url.set_fragment(None);
    Ok(url)
}

/// Whether `ip` is an address on the public internet: not unspecified,
/// loopback, private, shared (CGNAT), link-local, multicast, broadcast,
/// documentation, benchmarking or reserved; an IPv4 address inside IPv6
/// (mapped, compatible, NAT64) is judged as the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..=127).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 88 && c == 99)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224;
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96).
    if (s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified())
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let octets = ip.octets();
        return is_public_v4(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only
    !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_private_metadata_and_loopback_targets() {
        for url in [
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1:8443/",
            "https://[::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://100.64.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://0.0.0.0/",
            "https://localhost/",
            "https://api.localhost./",
        ] {
            assert_eq!(
                check_url(url, false),
                Err(UrlProblem::PrivateAddress),
                "{url}"
            );
        }
    }

    #[test]
    fn production_takes_https_to_public_hosts_only() {
        let ok = check_url("https://hooks.example.com/latchkey?x=1#frag", false).unwrap();
        assert_eq!(ok.as_str(), "https://hooks.example.com/latchkey?x=1");
        assert!(check_url("https://8.8.8.8/", false).is_ok());
        assert!(check_url("https://[2606:4700::1111]/", false).is_ok());
        assert_eq!(
            check_url("http://hooks.example.com/", false),
            Err(UrlProblem::Scheme)
        );
        assert_eq!(
            check_url("ftp://hooks.example.com/", false),
            Err(UrlProblem::Scheme)
        );
        assert_eq!(
            check_url("file:///etc/passwd", true),
            Err(UrlProblem::Scheme)
        );
        assert_eq!(
            check_url("https://user:pw@hooks.example.com/", false),
            Err(UrlProblem::Credentials)
        );
        assert_eq!(check_url("not a url", false), Err(UrlProblem::Malformed));
        assert_eq!(check_url("/relative", false), Err(UrlProblem::Malformed));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(check_url(&long, false), Err(UrlProblem::Malformed));
    }

    #[test]
    fn development_may_allow_plain_http_on_loopback() {
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("https://10.0.0.1/hook", true).is_ok());
    }
}

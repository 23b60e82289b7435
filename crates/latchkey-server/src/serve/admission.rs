//! Which new connections a listener takes: at most `http.max_connections` open
//! at once, and at most `http.max_connections_per_ip` from one client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The listener holds `max_connections` already.
    Total,
    /// Its client address holds `max_connections_per_ip` already.
    PerIp,
}

impl Refused {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "max_connections",
            Self::PerIp => "max_connections_per_ip",
        }
    }
}

/// Counts a listener's open connections, in total and per client address.
///
/// Guarantees: neither cap is ever exceeded, even by concurrent admissions;
/// a connection's place is given back when its [`Admitted`] is dropped, however
/// the connection ends; memory is bounded by the open connections (an address
/// is forgotten when its last connection closes). Peers in `exempt` (trusted
/// proxies, which carry many clients) count only against the total.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    exempt: Vec<ipnet::IpNet>,
    /// IPv6 clients are counted by this prefix (`rate_limit.ipv6_prefix`).
    ipv6_prefix: u8,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<ipnet::IpNet, usize>,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    client: Option<ipnet::IpNet>,
}

impl Admission {
    /// Caps of `max_total` open connections and `max_per_ip` per client
    /// address (peers in `exempt` excepted; IPv6 grouped by `/ipv6_prefix`).
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        exempt: Vec<ipnet::IpNet>,
        ipv6_prefix: u8,
    ) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            exempt,
            ipv6_prefix,
            open: Mutex::new(Open::default()),
        })
    }

    /// Takes a connection from `peer`, or says which cap refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let peer = peer.to_canonical();
        let client = (!self.exempt.iter().any(|net| net.contains(&peer)))
            .then(|| crate::client::client_network(peer, self.ipv6_prefix));
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        if let Some(client) = client {
            let count = open.per_ip.entry(client).or_insert(0);
            if *count >= self.max_per_ip {
                return Err(Refused::PerIp);
            }
            *count += 1;
        }
        open.total += 1;
        metrics::gauge!("latchkey_connections_open").increment(1.0);
        Ok(Admitted {
            admission: Arc::clone(self),
            client,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(client) = self.client {
            if let Some(count) = open.per_ip.get_mut(&client) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.per_ip.remove(&client);
                }
            }
        }
        metrics::gauge!("latchkey_connections_open").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_per_ip_cap_refuses_the_next_connection_until_one_closes() {
        let admission = Admission::new(100, 2, Vec::new(), 64);
        let a = admission.admit(ip("192.0.2.1")).unwrap();
        let _b = admission.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.1")).unwrap_err(),
            Refused::PerIp
        );
        assert!(admission.admit(ip("192.0.2.2")).is_ok(), "another client");
        drop(a);
        assert!(admission.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn ipv4_mapped_addresses_and_one_ipv6_slash_64_are_one_client() {
        let admission = Admission::new(100, 2, Vec::new(), 64);
        let _a = admission.admit(ip("192.0.2.7")).unwrap();
        let _b = admission.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.7")).unwrap_err(),
            Refused::PerIp
        );
        let _c = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        let _d = admission.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:abcd::1")).unwrap_err(),
            Refused::PerIp
        );
        assert!(
            admission.admit(ip("2001:db8:1:3::1")).is_ok(),
            "another /64"
        );
    }

    #[test]
    fn the_total_cap_holds_and_trusted_proxies_count_only_against_it() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let admission = Admission::new(3, 1, vec![proxy], 64);
        let held: Vec<_> = (0..3)
            .map(|_| admission.admit(ip("10.1.2.3")).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("192.0.2.1")).unwrap_err(),
            Refused::Total
        );
        drop(held);
        assert_eq!(admission.open(), 0);
        assert!(admission.per_ip_is_empty());
    }

    #[test]
    fn concurrent_admissions_never_exceed_the_caps_and_all_places_come_back() {
        let admission = Admission::new(1000, 25, Vec::new(), 64);
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let admission = Arc::clone(&admission);
                    s.spawn(move || {
                        (0..100)
                            .filter_map(|_| admission.admit(ip("198.51.100.9")).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let held: Vec<_> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            held.len()
        });
        assert_eq!(admitted, 25);
        assert_eq!(admission.open(), 0);
        assert!(admission.per_ip_is_empty(), "forgotten when closed");
    }

    impl Admission {
        fn per_ip_is_empty(&self) -> bool {
            self.open.lock().unwrap().per_ip.is_empty()
        }
    }
}

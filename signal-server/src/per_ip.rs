//! Per-address limits: which address a limit counts against, and the count of open WebSocket
//! connections per address (checked at the upgrade, before the hub sees the connection).
//!
//! An IPv4 address counts as itself; an IPv6 address counts as its /64 prefix, because one host
//! usually holds a whole /64 and could otherwise take a fresh address per connection. An
//! IPv4-mapped IPv6 address counts as the IPv4 address. Loopback addresses are exempt unless
//! the configuration includes them: a reverse proxy on the same host makes every client look
//! like loopback.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The address a per-address limit counts `ip` against, or `None` when `ip` is exempt
/// (loopback, unless `include_loopback`).
pub fn limit_key(ip: IpAddr, include_loopback: bool) -> Option<IpAddr> {
    let ip = ip.to_canonical();
    if ip.is_loopback() && !include_loopback {
        return None;
    }
    Some(match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    })
}

/// Open connections per address, at most `max` each (0 = no limit).
#[derive(Debug)]
pub(crate) struct ConnectionsPerIp {
    max: usize,
    include_loopback: bool,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct IpSlot {
    owner: Arc<ConnectionsPerIp>,
    key: Option<IpAddr>,
}

impl ConnectionsPerIp {
    pub(crate) fn new(max: usize, include_loopback: bool) -> Arc<Self> {
        Arc::new(ConnectionsPerIp { max, include_loopback, open: Mutex::new(HashMap::new()) })
    }

    /// Count a connection from `ip`, or `None` if that address is at its limit.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let key = if self.max == 0 { None } else { limit_key(ip, self.include_loopback) };
        if let Some(key) = key {
            // The lock guards a counter update; a panic while holding it cannot leave the map
            // half-updated, so a poisoned lock is still usable.
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(key).or_insert(0);
            if *n >= self.max {
                return None;
            }
            *n += 1;
        }
        Some(IpSlot { owner: self.clone(), key })
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        limit_key(ip, self.include_loopback).and_then(|k| open.get(&k).copied()).unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_group_ipv6_by_64_and_unmap_ipv4() {
        assert_eq!(limit_key(ip("192.0.2.7"), false), Some(ip("192.0.2.7")));
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1"), false), Some(ip("2001:db8:1:2::")));
        assert_eq!(limit_key(ip("2001:db8:1:2:bbbb::9"), false), limit_key(ip("2001:db8:1:2::5"), false));
        assert_ne!(limit_key(ip("2001:db8:1:3::1"), false), limit_key(ip("2001:db8:1:2::1"), false));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7"), false), Some(ip("192.0.2.7")));
    }

    #[test]
    fn loopback_is_exempt_unless_included() {
        for lo in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(limit_key(ip(lo), false), None, "{lo}");
            assert!(limit_key(ip(lo), true).is_some(), "{lo}");
        }
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let limiter = ConnectionsPerIp::new(2, false);
        let a = ip("192.0.2.1");
        let s1 = limiter.try_acquire(a).unwrap();
        let _s2 = limiter.try_acquire(a).unwrap();
        assert!(limiter.try_acquire(a).is_none());
        // Another address has its own count; loopback is not counted at all.
        assert!(limiter.try_acquire(ip("192.0.2.2")).is_some());
        let lo: Vec<_> = (0..10).map(|_| limiter.try_acquire(ip("127.0.0.1")).unwrap()).collect();
        assert_eq!(lo.len(), 10);
        drop(s1);
        assert_eq!(limiter.count(a), 1);
        assert!(limiter.try_acquire(a).is_some());
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = ConnectionsPerIp::new(0, true);
        let slots: Vec<_> = (0..100).map(|_| limiter.try_acquire(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(slots.len(), 100);
    }
}

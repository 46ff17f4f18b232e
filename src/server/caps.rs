//! Connection caps and the listener's connection counters. A listener holds at most
//! `limits.max_connections` connections, and at most `limits.max_connections_per_ip` from one
//! TCP peer address (the connection exists before any header could name another client).
//! A connection over either cap is closed at accept: no TLS handshake, no HTTP parsing, so
//! refusing costs next to nothing when the caps matter most (a flood). Refusals and the
//! watchdog's closes are counted in `ConnectionStats`; exporting them is `observe`'s job.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::config::LimitsConfig;

/// What one listener counts about its connections. Shared with every gateway generation,
/// which renders it on `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections admitted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Closed at accept: the client IP already held `max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Closed at accept: the listener already held `max_connections`.
    pub refused_global: AtomicU64,
    /// Closed by the watchdog: nothing sent within `first_byte_timeout`.
    pub closed_first_byte: AtomicU64,
    /// Closed by the watchdog: a request head not complete within `header_read_timeout`.
    pub closed_header_read: AtomicU64,
    /// Closed by the watchdog: idle between requests for `idle_timeout`.
    pub closed_idle: AtomicU64,
    /// Closed by the watchdog: a write made no progress for `write_timeout`.
    pub closed_write: AtomicU64,
    /// Requests answered 408: the body did not arrive within `body_read_timeout`.
    pub body_timeouts: AtomicU64,
    /// Requests answered 400 and closed: a head line ended in a bare LF.
    pub flawed_heads: AtomicU64,
}

impl ConnectionStats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Why a connection was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    Global,
}

/// The caps of one listener and the connections it holds.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
    stats: Arc<ConnectionStats>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionCaps {
    pub fn new(limits: &LimitsConfig, stats: Arc<ConnectionStats>) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            open: Mutex::default(),
            stats,
        })
    }

    pub fn stats(&self) -> &Arc<ConnectionStats> {
        &self.stats
    }

    /// Admits a connection from `ip`, or says which cap it is over (and counts it). The
    /// permit gives the place back when dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        // An IPv4 client on a dual-stack socket is the same client as over IPv4.
        let ip = ip.to_canonical();
        let refusal = {
            let mut open = self.lock();
            let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
            if open.total >= self.max_total {
                Some(Refusal::Global)
            } else if from_ip >= self.max_per_ip {
                Some(Refusal::PerIp)
            } else {
                open.total += 1;
                open.per_ip.insert(ip, from_ip + 1);
                None
            }
        };
        let stats = &self.stats;
        match refusal {
            Some(refusal) => {
                ConnectionStats::inc(match refusal {
                    Refusal::PerIp => &stats.refused_per_ip,
                    Refusal::Global => &stats.refused_global,
                });
                Err(refusal)
            }
            None => {
                ConnectionStats::inc(&stats.accepted);
                ConnectionStats::inc(&stats.open);
                Ok(Permit {
                    caps: self.clone(),
                    ip,
                })
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The map stays consistent whatever panicked while holding it (no await, no
        // half-done update), so a poisoned lock is still good.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One admitted connection's place under the caps.
#[derive(Debug)]
pub struct Permit {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
        drop(open);
        self.caps.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(total: usize, per_ip: usize) -> Arc<ConnectionCaps> {
        let limits = LimitsConfig {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..LimitsConfig::default()
        };
        ConnectionCaps::new(&limits, Arc::default())
    }

    #[test]
    fn each_ip_is_capped_and_a_closed_connection_gives_its_place_back() {
        let caps = caps(10, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = caps.admit(a).unwrap();
        let _second = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), Refusal::PerIp);
        let _other = caps.admit(b).unwrap();
        drop(first);
        let _again = caps.admit(a).unwrap();
        let stats = caps.stats();
        assert_eq!(ConnectionStats::get(&stats.refused_per_ip), 1);
        assert_eq!(ConnectionStats::get(&stats.accepted), 4);
        assert_eq!(ConnectionStats::get(&stats.open), 3);
    }

    #[test]
    fn the_listener_is_capped_across_ips() {
        let caps = caps(2, 2);
        let _a = caps.admit([10, 0, 0, 1].into()).unwrap();
        let _b = caps.admit([10, 0, 0, 2].into()).unwrap();
        assert_eq!(
            caps.admit([10, 0, 0, 3].into()).unwrap_err(),
            Refusal::Global
        );
        assert_eq!(ConnectionStats::get(&caps.stats().refused_global), 1);
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_client() {
        let caps = caps(10, 1);
        let _v4 = caps.admit([10, 0, 0, 1].into()).unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(caps.admit(mapped).unwrap_err(), Refusal::PerIp);
    }
}

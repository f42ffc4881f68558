//! The pause before a failed login is answered, kept per client IP address.
//!
//! Modelled on Dovecot's `auth_penalty` (../shared/research/gateway-anchors.md §4): the first
//! failure from an address waits `auth.failure_delay_ms` (2 s), each further failure from it
//! doubles the wait, up to `auth.failure_delay_max_ms` (15 s). Reconnecting does not reset it,
//! which a per-connection delay would.
//!
//! A client that keeps retrying the *same* wrong credentials is misconfigured, not guessing: a
//! repeat does not escalate (it waits the current delay). Credentials are remembered only as a
//! keyed hash (HMAC-SHA-256 under a key drawn at start, truncated to 128 bits), never in the
//! clear, and the last [`REMEMBERED_KEYS`] per address are kept.
//!
//! Only failed logins are delayed; a correct login is answered at once whatever the address's
//! history, so a shared NAT address costs honest users nothing. IPv6 addresses count by their
//! /64 prefix (one host usually owns a whole /64). An address's record is forgotten
//! [`FORGET_AFTER`] after its last failure, and at most [`MAX_ADDRESSES`] are kept: beyond that,
//! a new address is answered after the base delay without being recorded.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an address's failures are remembered after its last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses tracked at once.
pub const MAX_ADDRESSES: usize = 65_536;
/// Distinct failing credentials remembered per address.
pub const REMEMBERED_KEYS: usize = 8;

/// A keyed hash of one user name and password pair; shows nothing in Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialKey([u8; 16]);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(..)")
    }
}

#[derive(Debug)]
struct Record {
    failures: u32,
    keys: VecDeque<CredentialKey>,
    last: Instant,
}

/// Failed-login delays per client address, shared by every listener.
pub struct AuthPenalty {
    base: Duration,
    max: Duration,
    hmac: ring::hmac::Key,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl std::fmt::Debug for AuthPenalty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPenalty")
            .field("base", &self.base)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The address a record is kept under: IPv4 as is, IPv6 by its /64 (an IPv4-mapped IPv6
/// address as the IPv4 address).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthPenalty {
    /// Delays starting at `base`, doubling to at most `max`.
    pub fn new(base: Duration, max: Duration) -> AuthPenalty {
        let rng = ring::rand::SystemRandom::new();
        let hmac = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // No system randomness: fall back to a key that is at least per-process.
            let seed = format!("{:?}{}", Instant::now(), std::process::id());
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.as_bytes())
        });
        AuthPenalty {
            base,
            max: max.max(base),
            hmac,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// From `auth.failure_delay_ms` and `auth.failure_delay_max_ms`.
    pub fn from_config(auth: &crate::config::AuthConfig) -> AuthPenalty {
        AuthPenalty::new(
            Duration::from_millis(auth.failure_delay_ms),
            Duration::from_millis(auth.failure_delay_max_ms),
        )
    }

    /// The keyed hash of a user name and password.
    pub fn key(&self, user: &str, password: &str) -> CredentialKey {
        let mut ctx = ring::hmac::Context::with_key(&self.hmac);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        CredentialKey(out)
    }

    /// The delay after `failures` counted failures.
    fn delay_for(&self, failures: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.max)
    }

    /// Records a failed login from `ip` and returns how long to wait before answering it.
    /// `key` identifies the credentials tried, when the gateway saw them (PLAIN, CIP LOGIN).
    pub fn failed(&self, ip: IpAddr, key: Option<&CredentialKey>) -> Duration {
        self.failed_at(ip, key, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, key: Option<&CredentialKey>, now: Instant) -> Duration {
        let Ok(mut records) = self.records.lock() else {
            return self.max;
        };
        let ip = bucket(ip);
        if records.len() >= MAX_ADDRESSES && !records.contains_key(&ip) {
            records.retain(|_, r| now.saturating_duration_since(r.last) < FORGET_AFTER);
            if records.len() >= MAX_ADDRESSES {
                return self.base;
            }
        }
        let record = records.entry(ip).or_insert_with(|| Record {
            failures: 0,
            keys: VecDeque::new(),
            last: now,
        });
        if now.saturating_duration_since(record.last) >= FORGET_AFTER {
            record.failures = 0;
            record.keys.clear();
        }
        record.last = now;
        let repeat = key.is_some_and(|k| record.keys.contains(k));
        if !repeat || record.failures == 0 {
            record.failures = record.failures.saturating_add(1);
        }
        if let Some(k) = key
            && !repeat
        {
            if record.keys.len() == REMEMBERED_KEYS {
                record.keys.pop_front();
            }
            record.keys.push_back(k.clone());
        }
        self.delay_for(record.failures)
    }

    /// Addresses currently recorded (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.records.lock().map(|r| r.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn penalty() -> AuthPenalty {
        AuthPenalty::new(Duration::from_secs(2), Duration::from_secs(15))
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn doubles_per_failure_up_to_the_cap() {
        let p = penalty();
        let t = Instant::now();
        let delays: Vec<u64> = (0..6)
            .map(|i| {
                let k = p.key("alice", &format!("guess{i}"));
                p.failed_at(A, Some(&k), t).as_secs()
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 15, 15, 15]);
    }

    #[test]
    fn addresses_are_separate_and_survive_reconnects() {
        let p = penalty();
        let t = Instant::now();
        assert_eq!(p.failed_at(A, None, t).as_secs(), 2);
        assert_eq!(p.failed_at(A, None, t).as_secs(), 4);
        assert_eq!(p.failed_at(B, None, t).as_secs(), 2);
        assert_eq!(p.failed_at(A, None, t).as_secs(), 8);
    }

    #[test]
    fn the_same_wrong_credentials_do_not_escalate() {
        let p = penalty();
        let t = Instant::now();
        let same = p.key("alice", "oldpassword");
        let delays: Vec<u64> = (0..5)
            .map(|_| p.failed_at(A, Some(&same), t).as_secs())
            .collect();
        assert_eq!(delays, [2, 2, 2, 2, 2]);
        // A different guess escalates from there; the old one still does not.
        assert_eq!(p.failed_at(A, Some(&p.key("alice", "x")), t).as_secs(), 4);
        assert_eq!(p.failed_at(A, Some(&same), t).as_secs(), 4);
        // Without a key (a SASL failure the gateway cannot fingerprint) every failure counts.
        assert_eq!(p.failed_at(A, None, t).as_secs(), 8);
    }

    #[test]
    fn user_and_password_boundaries_matter() {
        let p = penalty();
        assert_ne!(p.key("ab", "c"), p.key("a", "bc"));
        assert_eq!(p.key("a", "bc"), p.key("a", "bc"));
        assert_eq!(
            format!("{:?}", p.key("alice", "secret")),
            "CredentialKey(..)"
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let p = penalty();
        let t = Instant::now();
        assert_eq!(p.failed_at(A, None, t).as_secs(), 2);
        assert_eq!(p.failed_at(A, None, t).as_secs(), 4);
        let later = t + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(p.failed_at(A, None, later).as_secs(), 2);
    }

    #[test]
    fn ipv6_counts_by_prefix() {
        let p = penalty();
        let t = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(p.failed_at(one, None, t).as_secs(), 2);
        assert_eq!(p.failed_at(two, None, t).as_secs(), 4);
        assert_eq!(p.failed_at(other, None, t).as_secs(), 2);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(p.failed_at(mapped, None, t).as_secs(), 2);
        assert_eq!(p.failed_at(A, None, t).as_secs(), 4);
    }

    #[test]
    fn the_table_is_bounded() {
        let p = AuthPenalty::new(Duration::from_millis(1), Duration::from_millis(8));
        let t = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            p.failed_at(ip, None, t);
        }
        assert_eq!(p.tracked(), MAX_ADDRESSES);
    }
}

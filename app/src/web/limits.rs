//! Abuse limits: requests per client address and per account on the endpoints an attacker
//! would hammer (log-in, reset links, sign-ups), answered 429 with `Retry-After`; the client
//! address (behind trusted proxies, from `X-Forwarded-For`); and a per-user cap on admin
//! reads running at once.
//!
//! The counters live in this process (GCRA, `governor`): with several API processes each
//! allows its share. The one limit that must hold across processes — one reset e-mail per
//! account per `CAMPUS_RESET_COOLDOWN` — is enforced by the database.

use super::error::ApiError;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use poem::Request;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A limited action and what it is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Log-ins (API and admin screen) per client address.
    LoginIp,
    /// Log-ins per e-mail address tried.
    LoginAccount,
    /// Reset-link requests per client address.
    ResetIp,
    /// Reset-link requests per e-mail address.
    ResetAccount,
    /// New institutions per client address.
    SignupIp,
}

impl Limit {
    const ALL: [Limit; 5] = [
        Limit::LoginIp,
        Limit::LoginAccount,
        Limit::ResetIp,
        Limit::ResetAccount,
        Limit::SignupIp,
    ];

    fn name(self) -> &'static str {
        match self {
            Limit::LoginIp => "login-ip",
            Limit::LoginAccount => "login-account",
            Limit::ResetIp => "reset-ip",
            Limit::ResetAccount => "reset-account",
            Limit::SignupIp => "signup-ip",
        }
    }

    /// `(requests, per)` unless configured otherwise.
    fn default_rate(self) -> Rate {
        let (n, secs) = match self {
            Limit::LoginIp => (30, 60),
            Limit::LoginAccount => (10, 600),
            Limit::ResetIp => (30, 3600),
            Limit::ResetAccount => (3, 3600),
            Limit::SignupIp => (10, 3600),
        };
        Rate {
            requests: NonZeroU32::new(n).expect("non-zero default"),
            per: Duration::from_secs(secs),
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Limit::LoginIp | Limit::LoginAccount => "too many log-in attempts",
            Limit::ResetIp | Limit::ResetAccount => "too many password reset requests",
            Limit::SignupIp => "too many institutions created from this address",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    requests: NonZeroU32,
    per: Duration,
}

/// The configured limits (`CAMPUS_RATE_LIMITS`); `None` is off.
#[derive(Clone, PartialEq, Eq)]
pub struct RateLimits(HashMap<Limit, Option<Rate>>);

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for limit in Limit::ALL {
            match self.0.get(&limit).copied().flatten() {
                Some(r) => parts.push(format!("{}={}/{:?}", limit.name(), r.requests, r.per)),
                None => parts.push(format!("{}=off", limit.name())),
            }
        }
        f.write_str(&parts.join(","))
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits(
            Limit::ALL
                .into_iter()
                .map(|l| (l, Some(l.default_rate())))
                .collect(),
        )
    }
}

impl RateLimits {
    /// Every limit off (benchmarks, tests of other things).
    pub fn off() -> Self {
        RateLimits(Limit::ALL.into_iter().map(|l| (l, None)).collect())
    }

    /// Reads `name=N/duration` pairs (or `name=off`, or `off` alone) over the defaults.
    pub fn parse(raw: &str) -> Result<RateLimits, String> {
        let raw = raw.trim();
        if raw == "off" {
            return Ok(RateLimits::off());
        }
        let mut limits = RateLimits::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let names: Vec<_> = Limit::ALL.iter().map(|l| l.name()).collect();
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?}: write name=N/duration, e.g. login-ip=30/1m"))?;
            let limit = Limit::ALL
                .into_iter()
                .find(|l| l.name() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown limit {name:?}; the limits are {}",
                        names.join(", ")
                    )
                })?;
            let value = value.trim();
            let rate = if value == "off" {
                None
            } else {
                let (n, per) = value
                    .split_once('/')
                    .ok_or_else(|| format!("{entry:?}: write N/duration, e.g. 30/1m"))?;
                let requests = n
                    .trim()
                    .parse::<NonZeroU32>()
                    .map_err(|_| format!("{entry:?}: {n:?} is not a positive number"))?;
                let per = crate::config::parse_duration(per)?;
                if per.is_zero() {
                    return Err(format!("{entry:?}: the duration must be positive"));
                }
                Some(Rate { requests, per })
            };
            limits.0.insert(limit, rate);
        }
        Ok(limits)
    }
}

/// Proxies trusted to name the client in `X-Forwarded-For` (`CAMPUS_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Reads comma-separated addresses or CIDR ranges.
pub fn parse_proxies(raw: &str) -> Result<TrustedProxies, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{p:?} is not an IP address or CIDR range"))
        })
        .collect::<Result<_, _>>()
        .map(TrustedProxies)
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// right-most address of `X-Forwarded-For` that is not itself a trusted proxy (what a
    /// client writes to the left of it is not believed).
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
        Some(self.resolve(peer, req.headers()))
    }

    fn resolve(&self, peer: IpAddr, headers: &poem::http::HeaderMap) -> IpAddr {
        if !self.trusts(&peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>())
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        forwarded
            .iter()
            .rev()
            .find(|ip| !self.trusts(ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// The counters of every limit, and the admin read slots, of this process.
pub struct Limiter {
    limiters: HashMap<Limit, DefaultKeyedRateLimiter<String>>,
    proxies: TrustedProxies,
    admin_slots: usize,
    admin_running: Arc<Mutex<HashMap<u128, usize>>>,
    checks: std::sync::atomic::AtomicU64,
}

impl Limiter {
    pub fn new(limits: &RateLimits, proxies: TrustedProxies, admin_slots: usize) -> Self {
        let limiters = limits
            .0
            .iter()
            .filter_map(|(limit, rate)| {
                let rate = (*rate)?;
                let quota =
                    Quota::with_period(rate.per / rate.requests.get())?.allow_burst(rate.requests);
                Some((*limit, RateLimiter::keyed(quota)))
            })
            .collect();
        Limiter {
            limiters,
            proxies,
            admin_slots: admin_slots.max(1),
            admin_running: Arc::default(),
            checks: Default::default(),
        }
    }

    /// The client address of `req` as a counter key.
    pub fn client(&self, req: &Request) -> String {
        self.proxies
            .client_ip(req)
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }

    /// Counts one request against `limit` for `key`; 429 with `Retry-After` once it is spent.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), ApiError> {
        let Some(limiter) = self.limiters.get(&limit) else {
            return Ok(());
        };
        // Forget keys whose counters are full again, now and then, so memory stays bounded.
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 4096
            == 4095
        {
            for l in self.limiters.values() {
                l.retain_recent();
            }
        }
        limiter
            .check_key(&key.trim().to_lowercase())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                tracing::warn!(limit = limit.name(), "rate limit reached");
                ApiError::too_many(format!("{}; try again later", limit.refusal()), wait)
            })
    }

    /// Checks the per-address and the per-account limit of one request.
    pub fn check_both(
        &self,
        req: &Request,
        by_ip: Limit,
        by_account: Limit,
        account: &str,
    ) -> Result<(), ApiError> {
        self.check(by_ip, &self.client(req))?;
        self.check(by_account, account)
    }

    /// A slot for one admin read of `user`, held until dropped; 429 when the user already
    /// has `CAMPUS_ADMIN_CONCURRENCY` running.
    pub fn admin_read(&self, user: u128) -> Result<AdminReadSlot, ApiError> {
        let mut running = self.admin_running.lock().unwrap_or_else(|e| e.into_inner());
        let n = running.entry(user).or_insert(0);
        if *n >= self.admin_slots {
            return Err(ApiError::too_many(
                "too many admin requests of yours are still running",
                Duration::from_secs(1),
            ));
        }
        *n += 1;
        Ok(AdminReadSlot {
            user,
            running: self.admin_running.clone(),
        })
    }
}

/// One admin read in progress (see [`Limiter::admin_read`]).
pub struct AdminReadSlot {
    user: u128,
    running: Arc<Mutex<HashMap<u128, usize>>>,
}

impl Drop for AdminReadSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_over_the_defaults() {
        let l = RateLimits::parse("login-ip=5/1s, reset-account=off").unwrap();
        assert_eq!(
            l.0[&Limit::LoginIp],
            Some(Rate {
                requests: NonZeroU32::new(5).unwrap(),
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(l.0[&Limit::ResetAccount], None);
        assert_eq!(l.0[&Limit::SignupIp], Some(Limit::SignupIp.default_rate()));
        assert_eq!(RateLimits::parse("").unwrap(), RateLimits::default());
        assert_eq!(RateLimits::parse("off").unwrap(), RateLimits::off());
        for bad in [
            "login=5/1m",
            "login-ip=0/1m",
            "login-ip=5",
            "login-ip=5/1d",
            "x",
        ] {
            assert!(RateLimits::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spent_limit_says_when_to_come_back_and_other_keys_are_untouched() {
        let limits = RateLimits::parse("login-account=2/1h").unwrap();
        let limiter = Limiter::new(&limits, TrustedProxies::default(), 1);
        assert!(limiter.check(Limit::LoginAccount, "a@x.org").is_ok());
        assert!(limiter.check(Limit::LoginAccount, "A@X.org ").is_ok());
        match limiter.check(Limit::LoginAccount, "a@x.org") {
            Err(ApiError::TooManyRequests(body, retry_after)) => {
                assert_eq!(body.code, "rate_limited");
                // 2 per hour: the next one is free 30 minutes after the first.
                assert!((1..=1800).contains(&retry_after), "{retry_after}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check(Limit::LoginAccount, "b@x.org").is_ok());
        assert!(limiter.check(Limit::LoginIp, "a@x.org").is_ok());
    }

    #[test]
    fn admin_reads_are_capped_per_user_and_slots_come_back() {
        let limiter = Limiter::new(&RateLimits::off(), TrustedProxies::default(), 2);
        let a = limiter.admin_read(1).unwrap();
        let _b = limiter.admin_read(1).unwrap();
        assert!(matches!(
            limiter.admin_read(1),
            Err(ApiError::TooManyRequests(..))
        ));
        assert!(limiter.admin_read(2).is_ok());
        drop(a);
        assert!(limiter.admin_read(1).is_ok());
    }

    fn client(proxies: &TrustedProxies, peer: &str, forwarded: &str) -> String {
        let mut headers = poem::http::HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        proxies.resolve(peer.parse().unwrap(), &headers).to_string()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let proxy = parse_proxies("10.0.0.0/8, 192.168.1.1").unwrap();
        assert_eq!(client(&none, "203.0.113.9", "198.51.100.1"), "203.0.113.9");
        assert_eq!(client(&proxy, "203.0.113.9", "198.51.100.1"), "203.0.113.9");
        // Behind two trusted hops, with a forged left-most entry.
        let hops = "1.2.3.4, 198.51.100.7, 10.9.9.9";
        assert_eq!(client(&proxy, "10.1.2.3", hops), "198.51.100.7");
        assert_eq!(
            client(&proxy, "192.168.1.1", "198.51.100.8"),
            "198.51.100.8"
        );
        assert_eq!(client(&proxy, "10.1.2.3", "not an address"), "10.1.2.3");
        assert!(parse_proxies("10.0.0.0/8,nope").is_err());
    }
}

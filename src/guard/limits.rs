//! The rate limits of `[apps.limits]`: HTTP API requests per app, per client address and for
//! reads, and new WebSocket connections per client address (with the connections open at
//! once per address, [`open_connections`](super::open_connections)). Each limit is a GCRA (the
//! `governor` crate): exact under concurrency across the actix workers without a lock, with a
//! burst of one second's worth. A refusal says which limit and when to come back (whole
//! seconds, at least 1), for `Retry-After` and the RateLimit headers.
//!
//! Per-address limits key IPv4 clients by their address and IPv6 clients by their /64 (one
//! host gets a whole /64). Their maps are bounded: past [`MOST_TRACKED_ADDRESSES`], addresses
//! whose state has gone back to fresh are dropped, and if that is not enough the map starts
//! over (a flood of distinct addresses can reset per-address limits; the per-app limit still
//! holds). The clock is a parameter, so tests move time instead of sleeping. [`Limiter`] is
//! the local half; in a cluster the per-second limits are counted in Redis instead
//! ([`cluster`]).
//!
//! A connection's own limit, `max_client_events_per_second`, is the same GCRA held by the
//! connection ([`client_events`]). The daily message quota, `daily_messages`, counts
//! deliveries rather than requests, per UTC day, and outlives a restart ([`daily`]).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use tracing::warn;

use super::open_connections::{AddressSlot, OpenConnections};
use crate::config::LimitsConfig;

mod client_events;
mod cluster;
mod daily;

pub use client_events::ClientEventLimit;
pub use cluster::{Bucket, ClusterLimits, ClusterRates, FailOpen, RatesUnreachable};
pub use daily::{DailyQuota, DailyQuotas, utc_day};

/// Most client addresses one per-address limit keeps state for.
pub const MOST_TRACKED_ADDRESSES: usize = 65_536;

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// `api_requests_per_second`.
    App,
    /// `api_requests_per_second_per_ip`.
    Address,
    /// `read_requests_per_second`.
    Reads,
    /// `connections_per_second_per_ip`.
    Connections,
    /// `connections_per_ip` (connections open at once).
    OpenConnections,
    /// `events_per_second` (each channel of a trigger counted).
    Events,
    /// `daily_messages` (messages delivered per UTC day).
    Daily,
}

impl LimitScope {
    /// The name in answers and in the `RateLimit` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::App => "app",
            LimitScope::Address => "address",
            LimitScope::Reads => "reads",
            LimitScope::Connections => "connections",
            LimitScope::OpenConnections => "address",
            LimitScope::Events => "events",
            LimitScope::Daily => "daily",
        }
    }

    /// The limit's key in `[apps.limits]` (the metrics' `rule` label).
    pub fn key(self) -> &'static str {
        match self {
            LimitScope::App => "api_requests_per_second",
            LimitScope::Address => "api_requests_per_second_per_ip",
            LimitScope::Reads => "read_requests_per_second",
            LimitScope::Connections => "connections_per_second_per_ip",
            LimitScope::OpenConnections => "connections_per_ip",
            LimitScope::Events => "events_per_second",
            LimitScope::Daily => "daily_messages",
        }
    }

    /// The seconds the limit's quota is counted over (`w` of `RateLimit-Policy`).
    pub fn window_seconds(self) -> u64 {
        match self {
            LimitScope::Daily => 86_400,
            _ => 1,
        }
    }
}

/// A refusal by a rate limit; its message is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Which limit.
    pub scope: LimitScope,
    /// What it allows per window: requests, connections or events per second, messages per
    /// day (for `OpenConnections`, the connections allowed at once).
    pub quota: u32,
    /// Whole seconds until the client may try again (at least 1).
    pub retry_after: u64,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scope, rate) = (self.scope.as_str(), self.quota);
        match self.scope {
            LimitScope::App | LimitScope::Address | LimitScope::Reads => {
                write!(f, "rate limited ({scope}): {rate} requests per 1s")
            }
            LimitScope::Connections => {
                write!(f, "rate limited ({scope}): {rate} connections per 1s")
            }
            LimitScope::OpenConnections => {
                write!(f, "too many connections ({scope}): {rate} open at once")
            }
            LimitScope::Events => write!(f, "rate limited ({scope}): {rate} events per 1s"),
            LimitScope::Daily => {
                write!(
                    f,
                    "quota exceeded (daily messages): {rate} messages per day"
                )
            }
        }
    }
}

impl std::error::Error for Limited {}

/// An app's rate limits, wherever their counters live.
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Counts an HTTP API request from `address` (a `GET` when `read`).
    fn check_api(&self, address: Option<IpAddr>, read: bool) -> Result<(), Limited>;
    /// Counts a new WebSocket connection from `address`, and takes its place among the
    /// address's open connections (held until the connection ends).
    fn open_connection(&self, address: Option<IpAddr>) -> Result<Option<AddressSlot>, Limited>;
    /// Takes a new connection's place among the address's open connections only (its rate
    /// counted by the cluster).
    fn hold_open_connection(&self, address: Option<IpAddr>)
    -> Result<Option<AddressSlot>, Limited>;
    /// Counts `count` backend events (one per channel of a trigger), all or none.
    fn check_events(&self, count: usize) -> Result<(), Limited>;
    /// Refuses a publish at `now` once the messages delivered today (UTC) have reached
    /// `daily_messages`.
    fn check_daily(&self, now: SystemTime) -> Result<(), Limited>;
    /// The count of open connections per address, for an app with `connections_per_ip`.
    fn open_connections(&self) -> Option<&OpenConnections>;
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<C> =
    RateLimiter<ClientKey, DashMapStateStore<ClientKey>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A client address as the per-address limits key it: IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `address`.
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => ClientKey(address),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }

    /// The address it stands for (an IPv6 /64 as its first address).
    pub fn address(self) -> IpAddr {
        self.0
    }
}

/// One limit for everyone.
struct Shared<C: Clock> {
    limiter: Direct<C>,
    per_second: u32,
}

/// One limit per client address, its map bounded.
struct PerAddress<C: Clock> {
    limiter: ArcSwap<Keyed<C>>,
    per_second: u32,
    quota: Quota,
}

/// The limits of one app, counted in this process.
pub struct LocalLimiter<C: Clock = DefaultClock> {
    clock: C,
    api: Option<Shared<C>>,
    reads: Option<Shared<C>>,
    events: Option<Shared<C>>,
    api_per_address: Option<PerAddress<C>>,
    connections_per_address: Option<PerAddress<C>>,
    open_per_address: Option<OpenConnections>,
    daily: Option<Arc<DailyQuota>>,
}

impl<C: Clock> std::fmt::Debug for LocalLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |shared: &Option<Shared<C>>| shared.as_ref().map(|limit| limit.per_second);
        let per = |per: &Option<PerAddress<C>>| per.as_ref().map(|limit| limit.per_second);
        f.debug_struct("LocalLimiter")
            .field("api", &rate(&self.api))
            .field("reads", &rate(&self.reads))
            .field("events", &rate(&self.events))
            .field("api_per_address", &per(&self.api_per_address))
            .field(
                "connections_per_address",
                &per(&self.connections_per_address),
            )
            .field("daily", &self.daily)
            .finish()
    }
}

impl LocalLimiter {
    /// The limits `config` sets, on the real clock; `None` when it sets none.
    pub fn from_config(config: &LimitsConfig) -> Option<Self> {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone + Send + Sync> LocalLimiter<C> {
    /// The limits `config` sets, on `clock`; `None` when it sets none.
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Option<Self> {
        let shared = |rate: Option<NonZeroU32>| {
            rate.map(|rate| Shared {
                limiter: RateLimiter::direct_with_clock(Quota::per_second(rate), clock.clone()),
                per_second: rate.get(),
            })
        };
        let per_address = |rate: Option<NonZeroU32>| {
            rate.map(|rate| {
                let quota = Quota::per_second(rate);
                PerAddress {
                    limiter: ArcSwap::from_pointee(RateLimiter::dashmap_with_clock(
                        quota,
                        clock.clone(),
                    )),
                    per_second: rate.get(),
                    quota,
                }
            })
        };
        let limiter = LocalLimiter {
            api: shared(config.api_requests_per_second),
            reads: shared(config.read_requests_per_second),
            events: shared(config.events_per_second),
            api_per_address: per_address(config.api_requests_per_second_per_ip),
            connections_per_address: per_address(config.connections_per_second_per_ip),
            open_per_address: config
                .connections_per_ip
                .map(|most| OpenConnections::new(most.get())),
            daily: config
                .daily_messages
                .map(|per_day| Arc::new(DailyQuota::new(per_day, SystemTime::now()))),
            clock,
        };
        let any = limiter.api.is_some()
            || limiter.reads.is_some()
            || limiter.events.is_some()
            || limiter.api_per_address.is_some()
            || limiter.connections_per_address.is_some()
            || limiter.open_per_address.is_some()
            || limiter.daily.is_some();
        any.then_some(limiter)
    }

    /// The same limits, counting the open connections `previous` counts (the app's limiter
    /// before a reload), if both limit them.
    pub fn counting_open_connections_of(mut self, previous: Option<&OpenConnections>) -> Self {
        if let (Some(open), Some(previous)) = (&self.open_per_address, previous) {
            self.open_per_address = Some(previous.sharing(open.most()));
        }
        self
    }

    /// The same limits, counting delivered messages into `quota` (the app's, which outlives
    /// any one limiter) instead of a quota of their own.
    pub fn counting_into(mut self, quota: Arc<DailyQuota>) -> Self {
        self.daily = Some(quota);
        self
    }

    fn refusal(&self, scope: LimitScope, quota: u32, not_until: &NotUntil<C::Instant>) -> Limited {
        let wait = not_until.wait_time_from(self.clock.now());
        Limited {
            scope,
            quota,
            retry_after: whole_seconds(wait),
        }
    }

    fn check_shared(&self, limit: &Option<Shared<C>>, scope: LimitScope) -> Result<(), Limited> {
        let Some(limit) = limit else {
            return Ok(());
        };
        limit
            .limiter
            .check()
            .map_err(|not_until| self.refusal(scope, limit.per_second, &not_until))
    }

    fn check_address(
        &self,
        limit: &Option<PerAddress<C>>,
        address: Option<IpAddr>,
        scope: LimitScope,
    ) -> Result<(), Limited> {
        let (Some(limit), Some(address)) = (limit, address) else {
            return Ok(());
        };
        let limiter = limit.limiter.load();
        let checked = limiter.check_key(&ClientKey::of(address));
        if limiter.len() > MOST_TRACKED_ADDRESSES {
            limiter.retain_recent();
            if limiter.len() > MOST_TRACKED_ADDRESSES {
                warn!(
                    limit = scope.as_str(),
                    "more client addresses at once than a per-address limit tracks; it starts over"
                );
                limit
                    .limiter
                    .store(std::sync::Arc::new(RateLimiter::dashmap_with_clock(
                        limit.quota,
                        self.clock.clone(),
                    )));
            }
        }
        checked.map_err(|not_until| self.refusal(scope, limit.per_second, &not_until))
    }
}

impl<C: Clock + Clone + Send + Sync> Limiter for LocalLimiter<C>
where
    C::Instant: Send + Sync,
{
    fn check_api(&self, address: Option<IpAddr>, read: bool) -> Result<(), Limited> {
        self.check_address(&self.api_per_address, address, LimitScope::Address)?;
        self.check_shared(&self.api, LimitScope::App)?;
        if read {
            self.check_shared(&self.reads, LimitScope::Reads)?;
        }
        Ok(())
    }

    fn open_connection(&self, address: Option<IpAddr>) -> Result<Option<AddressSlot>, Limited> {
        self.check_address(
            &self.connections_per_address,
            address,
            LimitScope::Connections,
        )?;
        self.hold_open_connection(address)
    }

    fn hold_open_connection(
        &self,
        address: Option<IpAddr>,
    ) -> Result<Option<AddressSlot>, Limited> {
        match (&self.open_per_address, address) {
            (Some(open), Some(address)) => open.try_open(address).map(Some),
            _ => Ok(None),
        }
    }

    fn check_events(&self, count: usize) -> Result<(), Limited> {
        let (Some(limit), Some(count)) = (
            &self.events,
            NonZeroU32::new(u32::try_from(count).unwrap_or(u32::MAX)),
        ) else {
            return Ok(());
        };
        match limit.limiter.check_n(count) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                Err(self.refusal(LimitScope::Events, limit.per_second, &not_until))
            }
            // More events at once than a whole second allows: never, so try again in a second
            // with fewer.
            Err(_) => Err(Limited {
                scope: LimitScope::Events,
                quota: limit.per_second,
                retry_after: 1,
            }),
        }
    }

    fn check_daily(&self, now: SystemTime) -> Result<(), Limited> {
        match &self.daily {
            Some(daily) => daily.check(now),
            None => Ok(()),
        }
    }

    fn open_connections(&self) -> Option<&OpenConnections> {
        self.open_per_address.as_ref()
    }
}

/// `wait` in whole seconds, rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limits(text: &str) -> (LocalLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let config: LimitsConfig = toml::from_str(text).unwrap();
        let clock = FakeRelativeClock::default();
        (
            LocalLimiter::with_clock(&config, clock.clone()).unwrap(),
            clock,
        )
    }

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_app_limit_allows_its_rate_and_says_when_to_return() {
        let (limits, clock) = limits("api_requests_per_second = 4");
        for _ in 0..4 {
            assert_eq!(limits.check_api(None, false), Ok(()));
        }
        let refused = limits.check_api(None, false).unwrap_err();
        assert_eq!(refused.scope, LimitScope::App);
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.to_string(), "rate limited (app): 4 requests per 1s");
        clock.advance(Duration::from_millis(250));
        assert_eq!(limits.check_api(None, false), Ok(()), "one cell back");
        assert!(limits.check_api(None, false).is_err());
    }

    #[test]
    fn per_address_limits_key_ipv6_by_its_64() {
        let (limits, _clock) = limits("api_requests_per_second_per_ip = 1");
        assert_eq!(limits.check_api(address("192.0.2.1"), false), Ok(()));
        assert_eq!(limits.check_api(address("192.0.2.2"), false), Ok(()));
        assert_eq!(
            limits
                .check_api(address("192.0.2.1"), false)
                .unwrap_err()
                .scope,
            LimitScope::Address
        );
        assert_eq!(limits.check_api(address("2001:db8:1:2::1"), false), Ok(()));
        assert!(
            limits
                .check_api(address("2001:db8:1:2:ffff::9"), false)
                .is_err(),
            "the same /64"
        );
        assert_eq!(limits.check_api(address("2001:db8:1:3::1"), false), Ok(()));
        assert_eq!(limits.check_api(None, false), Ok(()), "no address, no key");
    }

    #[test]
    fn reads_have_their_own_limit_inside_the_apps() {
        let (limits, _clock) = limits("read_requests_per_second = 1\napi_requests_per_second = 3");
        assert_eq!(limits.check_api(None, true), Ok(()));
        assert_eq!(
            limits.check_api(None, true).unwrap_err().scope,
            LimitScope::Reads
        );
        assert_eq!(
            limits.check_api(None, false),
            Ok(()),
            "writes are not reads"
        );
        assert_eq!(
            limits.check_api(None, false).unwrap_err().scope,
            LimitScope::App
        );
    }

    #[test]
    fn connections_per_address_and_whole_seconds() {
        let (limits, clock) = limits("connections_per_second_per_ip = 2");
        let from = address("198.51.100.7");
        assert_eq!(limits.open_connection(from).map(drop), Ok(()));
        assert_eq!(limits.open_connection(from).map(drop), Ok(()));
        let refused = limits.open_connection(from).map(drop).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "rate limited (connections): 2 connections per 1s"
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(limits.open_connection(from).map(drop), Ok(()));
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn the_address_map_stays_bounded() {
        let (limits, _clock) = limits("api_requests_per_second_per_ip = 1");
        for n in 0..(MOST_TRACKED_ADDRESSES as u32 + 10) {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limits.check_api(Some(address), false);
        }
        let tracked = limits
            .api_per_address
            .as_ref()
            .unwrap()
            .limiter
            .load()
            .len();
        assert!(tracked <= MOST_TRACKED_ADDRESSES, "{tracked}");
    }

    #[test]
    fn nothing_set_is_no_limiter() {
        let config = LimitsConfig::default();
        assert!(LocalLimiter::from_config(&config).is_none());
    }

    #[test]
    fn racing_threads_get_exactly_the_burst() {
        let (limits, _clock) = limits("api_requests_per_second = 50");
        let limits = std::sync::Arc::new(limits);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limits = limits.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| limits.check_api(None, false).is_ok())
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .sum();
        assert_eq!(
            admitted, 50,
            "the clock does not move: exactly one second's burst"
        );
    }

    #[test]
    fn events_are_counted_per_channel_all_or_none() {
        let (limits, clock) = limits("events_per_second = 10");
        assert_eq!(limits.check_events(6), Ok(()));
        let refused = limits.check_events(6).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "rate limited (events): 10 events per 1s"
        );
        assert_eq!(
            limits.check_events(4),
            Ok(()),
            "the refused six took nothing"
        );
        assert!(
            limits.check_events(11).is_err(),
            "more than a second's worth"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.check_events(10), Ok(()));
    }
}

//! Rate limits counted for the whole cluster: with `[redis]`, an app's per-second limits
//! (`api_requests_per_second`, `…_per_ip`, `read_requests_per_second`, `events_per_second`,
//! `connections_per_second_per_ip`) are GCRA buckets in Redis, counted by one script per
//! request over Redis's clock ([`ClusterRates`], implemented by the Redis adapter), so a
//! client spreading its requests over the nodes gets the app's rate, not a rate per node.
//!
//! While Redis cannot be reached the limits **fail open**: requests are admitted and one log
//! line says so (another when counting works again). Refusing every request then would take
//! the whole API down with Redis (Sockudo once did exactly that to every handshake); the
//! security state that must hold (revocations, bans, lockdowns) fails closed instead, from
//! each node's last copy. `connections_per_ip` (connections open at once) and the per
//! connection `max_client_events_per_second` stay each node's own; `daily_messages` is
//! counted by the state store.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tracing::{info, warn};

use super::{ClientKey, LimitScope, Limited};
use crate::config::LimitsConfig;

/// One GCRA bucket to count a request in: `rate` per second with a burst of one second's
/// worth, as the local limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Its name within the app (`api`, `reads`, `events`, `api-ip:ADDR`, `connect-ip:ADDR`).
    pub name: String,
    /// Which limit it is, for the refusal.
    pub scope: LimitScope,
    /// Per second.
    pub rate: u32,
    /// What this request takes (events: one per channel).
    pub cost: u32,
}

/// Where the cluster counts (the Redis adapter).
#[async_trait]
pub trait ClusterRates: Send + Sync + std::fmt::Debug {
    /// Counts a request in every one of the app's `buckets`, all or none: `Ok(None)` when
    /// admitted, `Ok(Some((index, retry_ms)))` when `buckets[index]` refused it and has room
    /// again in `retry_ms`, `Err` when the count could not be made.
    async fn count(
        &self,
        app_id: &str,
        buckets: &[Bucket],
    ) -> Result<Option<(usize, u64)>, RatesUnreachable>;
}

/// The cluster's counters could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatesUnreachable;

/// An app's per-second limits, as buckets.
#[derive(Debug, Clone, Default)]
pub struct ClusterLimits {
    api: Option<NonZeroU32>,
    api_per_ip: Option<NonZeroU32>,
    reads: Option<NonZeroU32>,
    events: Option<NonZeroU32>,
    connections_per_ip: Option<NonZeroU32>,
}

impl ClusterLimits {
    /// The per-second limits of `config`.
    pub fn from_config(config: &LimitsConfig) -> Self {
        ClusterLimits {
            api: config.api_requests_per_second,
            api_per_ip: config.api_requests_per_second_per_ip,
            reads: config.read_requests_per_second,
            events: config.events_per_second,
            connections_per_ip: config.connections_per_second_per_ip,
        }
    }

    /// The buckets of an HTTP API request from `address` (a `GET` when `read`).
    pub fn api(&self, address: Option<IpAddr>, read: bool) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        if let (Some(rate), Some(address)) = (self.api_per_ip, address) {
            let name = format!("api-ip:{}", ClientKey::of(address).address());
            buckets.push(bucket(name, LimitScope::Address, rate, 1));
        }
        if let Some(rate) = self.api {
            buckets.push(bucket("api".into(), LimitScope::App, rate, 1));
        }
        if let (Some(rate), true) = (self.reads, read) {
            buckets.push(bucket("reads".into(), LimitScope::Reads, rate, 1));
        }
        buckets
    }

    /// The bucket of `count` backend events, or the refusal of more than a second allows.
    pub fn events(&self, count: usize) -> Result<Vec<Bucket>, Limited> {
        let Some(rate) = self.events else {
            return Ok(Vec::new());
        };
        let cost = u32::try_from(count).unwrap_or(u32::MAX);
        if cost == 0 {
            return Ok(Vec::new());
        }
        if cost > rate.get() {
            // Never admitted: try again in a second with fewer (as the local limit says).
            return Err(Limited {
                scope: LimitScope::Events,
                quota: rate.get(),
                retry_after: 1,
            });
        }
        Ok(vec![bucket(
            "events".into(),
            LimitScope::Events,
            rate,
            cost,
        )])
    }

    /// The bucket of a new WebSocket connection from `address`.
    pub fn connection(&self, address: Option<IpAddr>) -> Vec<Bucket> {
        match (self.connections_per_ip, address) {
            (Some(rate), Some(address)) => {
                let name = format!("connect-ip:{}", ClientKey::of(address).address());
                vec![bucket(name, LimitScope::Connections, rate, 1)]
            }
            _ => Vec::new(),
        }
    }
}

fn bucket(name: String, scope: LimitScope, rate: NonZeroU32, cost: u32) -> Bucket {
    Bucket {
        name,
        scope,
        rate: rate.get(),
        cost,
    }
}

/// Whether the cluster's counters were unreachable at the last count, so that going away
/// and coming back are logged once each.
#[derive(Debug, Default)]
pub struct FailOpen {
    open: AtomicBool,
}

impl FailOpen {
    /// What `counted` means for the request: admitted while the counters are unreachable.
    pub fn verdict(
        &self,
        buckets: &[Bucket],
        counted: Result<Option<(usize, u64)>, RatesUnreachable>,
    ) -> Result<(), Limited> {
        match counted {
            Err(RatesUnreachable) => {
                if !self.open.swap(true, Ordering::Relaxed) {
                    warn!(
                        "rate limits cannot be counted in Redis; admitting requests unlimited until it is back (fail open)"
                    );
                }
                Ok(())
            }
            Ok(refused) => {
                if self.open.swap(false, Ordering::Relaxed) {
                    info!("rate limits are counted in Redis again");
                }
                match refused.and_then(|(index, retry_ms)| Some((buckets.get(index)?, retry_ms))) {
                    Some((bucket, retry_ms)) => Err(Limited {
                        scope: bucket.scope,
                        quota: bucket.rate,
                        retry_after: retry_ms.div_ceil(1000).max(1),
                    }),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> ClusterLimits {
        ClusterLimits::from_config(&toml::from_str(text).unwrap())
    }

    #[test]
    fn an_api_request_counts_in_its_address_the_app_and_reads() {
        let limits = limits(
            "api_requests_per_second = 10\napi_requests_per_second_per_ip = 2\n\
             read_requests_per_second = 5\n",
        );
        let names = |buckets: Vec<Bucket>| -> Vec<String> {
            buckets.into_iter().map(|bucket| bucket.name).collect()
        };
        let v6 = "2001:db8::1".parse().ok();
        assert_eq!(
            names(limits.api(v6, true)),
            ["api-ip:2001:db8::", "api", "reads"],
            "IPv6 by its /64"
        );
        assert_eq!(names(limits.api(None, false)), ["api"]);
    }

    #[test]
    fn events_cost_one_per_channel_and_more_than_a_second_is_refused() {
        let limits = limits("events_per_second = 3\n");
        assert_eq!(limits.events(2).unwrap()[0].cost, 2);
        assert_eq!(limits.events(4).unwrap_err().retry_after, 1);
        assert!(limits.events(0).unwrap().is_empty());
        assert!(ClusterLimits::default().events(9).unwrap().is_empty());
    }

    #[test]
    fn a_refusal_names_its_bucket_and_rounds_up_and_unreachable_admits() {
        let limits = limits("api_requests_per_second = 10\napi_requests_per_second_per_ip = 2\n");
        let buckets = limits.api("192.0.2.1".parse().ok(), false);
        let fail_open = FailOpen::default();
        let refused = fail_open.verdict(&buckets, Ok(Some((1, 1))));
        assert_eq!(
            refused,
            Err(Limited {
                scope: LimitScope::App,
                quota: 10,
                retry_after: 1
            })
        );
        let refused = fail_open
            .verdict(&buckets, Ok(Some((0, 2_001))))
            .unwrap_err();
        assert_eq!(
            (refused.scope, refused.retry_after),
            (LimitScope::Address, 3)
        );
        assert_eq!(fail_open.verdict(&buckets, Ok(None)), Ok(()));
        assert_eq!(fail_open.verdict(&buckets, Err(RatesUnreachable)), Ok(()));
        assert!(fail_open.open.load(Ordering::Relaxed));
        assert_eq!(fail_open.verdict(&buckets, Ok(None)), Ok(()));
        assert!(!fail_open.open.load(Ordering::Relaxed));
    }
}

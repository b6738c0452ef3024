//! The cluster's rate-limit counters ([`ClusterRates`]): one GCRA bucket per limit (and per
//! client address for the per-address ones) at `P:app:A:rate:NAME`, counted by one script
//! per request (`rates.lua`) over Redis's clock, so the nodes' clocks do not matter and a
//! request is counted in all its buckets or none. A bucket expires once it is full again,
//! so idle addresses leave nothing behind. While Redis is away the count is not made and the
//! guard admits the request (fail open, see `guard::limits::cluster`).

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_redis::redis::Script;

use super::keys::Keys;
use super::link::Link;
use crate::guard::{Bucket, ClusterRates, RatesUnreachable};

/// Counts in Redis.
pub struct RedisRates {
    link: Arc<Link>,
    keys: Keys,
    script: Script,
}

impl std::fmt::Debug for RedisRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRates").finish_non_exhaustive()
    }
}

impl RedisRates {
    /// Counters on `link`, under `keys`' prefix.
    pub fn new(link: Arc<Link>, keys: Keys) -> Self {
        RedisRates {
            link,
            keys,
            script: Script::new(include_str!("rates.lua")),
        }
    }
}

#[async_trait]
impl ClusterRates for RedisRates {
    async fn count(
        &self,
        app_id: &str,
        buckets: &[Bucket],
    ) -> Result<Option<(usize, u64)>, RatesUnreachable> {
        let mut invocation = self.script.prepare_invoke();
        for bucket in buckets {
            // One second's worth at once, then one per interval (µs).
            let interval = 1_000_000 / u64::from(bucket.rate.max(1));
            invocation
                .key(self.keys.rate(app_id, &bucket.name))
                .arg(interval.max(1))
                .arg(bucket.rate)
                .arg(bucket.cost);
        }
        let (index, retry_ms): (usize, u64) = self
            .link
            .invoke(&invocation)
            .await
            .ok_or(RatesUnreachable)?;
        // Lua counts from 1; 0 is admitted.
        Ok(index.checked_sub(1).map(|index| (index, retry_ms)))
    }
}

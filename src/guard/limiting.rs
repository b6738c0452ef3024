//! The guard's rate-limit half, beside the rules in `mod.rs`: each admission asks the app's
//! limits, counted in this process ([`Limiter`](super::limits::Limiter)) or, in a cluster,
//! in Redis ([`ClusterRates`], failing open while Redis is away; see `limits::cluster`).
//! Async because the cluster's count is a round trip; an app without limits, or a single
//! node, never waits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::limits::{Bucket, ClusterRates};
use super::{AddressSlot, Guard, Limited};

impl Guard {
    /// Counts the per-second limits in the cluster from now on (the Redis adapter's
    /// counters); a second call changes nothing.
    pub fn count_across_cluster(&self, rates: Arc<dyn ClusterRates>) {
        let _ = self.cluster_rates.set(rates);
    }

    /// Counts an HTTP API request to `app_id` from `address` (a `GET` when `read`) against
    /// the app's `[apps.limits]`.
    pub async fn limit_api(
        &self,
        app_id: &str,
        address: Option<IpAddr>,
        read: bool,
    ) -> Result<(), Limited> {
        let limited = self.count_api(app_id, address, read).await;
        counted(app_id, limited)
    }

    async fn count_api(
        &self,
        app_id: &str,
        address: Option<IpAddr>,
        read: bool,
    ) -> Result<(), Limited> {
        let Some(app) = self.app(app_id) else {
            return Ok(());
        };
        let Some(limits) = &app.limits else {
            return Ok(());
        };
        match (self.cluster_rates.get(), &app.cluster_limits) {
            (Some(rates), Some(cluster)) => {
                self.count_in_cluster(rates, app_id, cluster.api(address, read))
                    .await
            }
            _ => limits.check_api(address, read),
        }
    }

    /// Admits a trigger of `count` backend events to `app_id` (one per channel of each
    /// trigger), all or none: refused once today's messages have reached `daily_messages`,
    /// then counted against `events_per_second`.
    pub async fn limit_events(&self, app_id: &str, count: usize) -> Result<(), Limited> {
        let limited = self.count_events(app_id, count).await;
        counted(app_id, limited)
    }

    async fn count_events(&self, app_id: &str, count: usize) -> Result<(), Limited> {
        let Some(app) = self.app(app_id) else {
            return Ok(());
        };
        let Some(limits) = &app.limits else {
            return Ok(());
        };
        limits.check_daily(SystemTime::now())?;
        match (self.cluster_rates.get(), &app.cluster_limits) {
            (Some(rates), Some(cluster)) => {
                self.count_in_cluster(rates, app_id, cluster.events(count)?)
                    .await
            }
            _ => limits.check_events(count),
        }
    }

    /// Admits a client event to `app_id` unless today's messages have reached
    /// `daily_messages`.
    pub fn limit_client_event(&self, app_id: &str) -> Result<(), Limited> {
        let rules = self.rules.load();
        let limited = match rules.apps.get(app_id).and_then(|app| app.limits.as_ref()) {
            Some(limits) => limits.check_daily(SystemTime::now()),
            None => Ok(()),
        };
        counted(app_id, limited)
    }

    /// Counts a new WebSocket connection to `app_id` from `address`, and takes its place among
    /// the address's open connections (the slot is held for the connection's lifetime; the
    /// connections open at once are each node's own).
    pub async fn limit_connection(
        &self,
        app_id: &str,
        address: Option<IpAddr>,
    ) -> Result<Option<AddressSlot>, Limited> {
        let limited = self.count_connection(app_id, address).await;
        counted(app_id, limited)
    }

    async fn count_connection(
        &self,
        app_id: &str,
        address: Option<IpAddr>,
    ) -> Result<Option<AddressSlot>, Limited> {
        let Some(app) = self.app(app_id) else {
            return Ok(None);
        };
        let Some(limits) = &app.limits else {
            return Ok(None);
        };
        match (self.cluster_rates.get(), &app.cluster_limits) {
            (Some(rates), Some(cluster)) => {
                self.count_in_cluster(rates, app_id, cluster.connection(address))
                    .await?;
                limits.hold_open_connection(address)
            }
            _ => limits.open_connection(address),
        }
    }

    /// Counts a request in the cluster's `buckets`; admitted while they cannot be reached.
    async fn count_in_cluster(
        &self,
        rates: &Arc<dyn ClusterRates>,
        app_id: &str,
        buckets: Vec<Bucket>,
    ) -> Result<(), Limited> {
        if buckets.is_empty() {
            return Ok(());
        }
        let counted = rates.count(app_id, &buckets).await;
        self.fail_open.verdict(&buckets, counted)
    }
}

/// `limited`, with a refusal counted for the metrics.
fn counted<T>(app_id: &str, limited: Result<T, Limited>) -> Result<T, Limited> {
    limited
        .inspect_err(|refusal| crate::metrics::global().limit_refused(app_id, refusal.scope.key()))
}

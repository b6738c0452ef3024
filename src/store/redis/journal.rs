//! The webhook journal on Redis: each owner's undelivered batches in a hash of their own
//! (id → batch), the owners in a set, and each owner's lease an expiring key; claiming a dead
//! owner's batches is one script (`claim_webhooks.lua`), so each has one claimer.

use std::time::Duration;

use deadpool_redis::redis;

use super::{RedisStore, json};
use crate::store::{JournaledBatch, StoreError};

/// Keeps `batches` under `owner`, in one step.
pub fn keep_webhooks(
    store: &RedisStore,
    owner: &str,
    batches: &[JournaledBatch],
) -> Result<(), StoreError> {
    if batches.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("SADD")
        .arg(store.key("webhook-owners"))
        .arg(owner)
        .ignore();
    let key = store.key(&format!("webhooks:{owner}"));
    for batch in batches {
        pipe.cmd("HSET")
            .arg(&key)
            .arg(&batch.id)
            .arg(json(batch))
            .ignore();
    }
    store.with(|connection| pipe.query::<()>(connection))
}

/// Forgets `owner`'s batches `ids`.
pub fn forget_webhooks(store: &RedisStore, owner: &str, ids: &[String]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    store.with(|connection| {
        redis::cmd("HDEL")
            .arg(store.key(&format!("webhooks:{owner}")))
            .arg(ids)
            .query::<()>(connection)
    })
}

/// Renews `owner`'s lease and takes over the batches of owners whose lease ran out.
pub fn claim_webhooks(
    store: &RedisStore,
    owner: &str,
    lease: Duration,
) -> Result<Vec<JournaledBatch>, StoreError> {
    let mut invocation = store.scripts.claim_webhooks.arg(&store.base);
    invocation
        .arg(owner)
        .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1));
    let claimed: Vec<String> = store.with(|connection| invocation.invoke(connection))?;
    Ok(claimed
        .iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect())
}

//! Brute-force bans on Redis: one sorted set, `[app, address]` → when the ban ends (ms), so
//! that a later end wins (`ZADD GT`) and bans over are dropped by score.

use std::time::SystemTime;

use deadpool_redis::redis;

use super::{RedisStore, field, millis, time};
use crate::store::{StoreError, StoredBan};

/// Records `bans` (an address's later end kept) and drops those over, in one step.
pub fn record(store: &RedisStore, bans: &[StoredBan]) -> Result<(), StoreError> {
    if bans.is_empty() {
        return Ok(());
    }
    let key = store.key("bans");
    let mut pipe = redis::pipe();
    pipe.atomic();
    for ban in bans {
        // GT: a later end wins, an earlier one changes nothing.
        pipe.cmd("ZADD")
            .arg(&key)
            .arg("GT")
            .arg(millis(ban.until))
            .arg(field(&ban.app_id, &ban.address.to_string()))
            .ignore();
    }
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(&key)
        .arg("-inf")
        .arg(millis(SystemTime::now()))
        .ignore();
    store.with(|connection| pipe.query::<()>(connection))
}

/// The bans in force at `now`.
pub fn bans(store: &RedisStore, now: SystemTime) -> Result<Vec<StoredBan>, StoreError> {
    let found: Vec<(String, u64)> = store.with(|connection| {
        redis::cmd("ZRANGE")
            .arg(store.key("bans"))
            .arg(format!("({}", millis(now)))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query(connection)
    })?;
    let mut bans = Vec::new();
    for (member, until) in found {
        let (app_id, address): (String, String) =
            serde_json::from_str(&member).map_err(|_| store.bad_value("ban"))?;
        if let Ok(address) = address.parse() {
            bans.push(StoredBan {
                app_id,
                address,
                until: time(until as f64),
            });
        }
    }
    Ok(bans)
}

//! The activity log and lockdowns on Redis, with the SQLite store's rules (see
//! `store::sqlite::activity`): one event per app, kind, address and window (repeats add to
//! its count), at most [`MOST_STORED_EVENTS`] in all, pruned oldest info first and unresolved
//! critical last. The writes are scripts (`record_events.lua`, `resolve_events.lua`,
//! `lock_down_if_due.lua`); a query reads the app's events and filters them here.

use std::time::SystemTime;

use serde::Deserialize;

use super::{RedisStore, millis, time};
use crate::activity::{ActivityEntry, EventKind, EventQuery, Severity, StoredEvent};
use crate::store::{MOST_STORED_EVENTS, Resolved, StoreError};

/// An event as the scripts write it.
#[derive(Deserialize)]
struct EventRecord {
    kind: String,
    severity: String,
    address: String,
    message: String,
    window: f64,
    first: f64,
    last: f64,
    count: f64,
    resolved: f64,
}

/// Adds `entries` and prunes, in one script.
pub fn record(store: &RedisStore, entries: &[ActivityEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut invocation = store.scripts.record_events.arg(&store.base);
    invocation.arg(MOST_STORED_EVENTS);
    for entry in entries {
        let address = entry.address.map(|a| a.to_string()).unwrap_or_default();
        invocation
            .arg(&entry.app_id)
            .arg(entry.kind.as_str())
            .arg(entry.kind.severity().as_str())
            .arg(address)
            .arg(&entry.message)
            .arg(millis(entry.window_start))
            .arg(millis(entry.first_seen))
            .arg(millis(entry.last_seen))
            .arg(entry.count);
    }
    store
        .with(|connection| invocation.invoke::<i64>(connection))
        .map(drop)
}

/// The events `query` asks for, newest first.
pub fn events(store: &RedisStore, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
    let key = store.key(&format!("events:{}", query.app_id));
    let all: Vec<(u64, String)> = store.with(|connection| {
        deadpool_redis::redis::cmd("HGETALL")
            .arg(key)
            .query(connection)
    })?;
    let least = query.min_severity.map_or(0, rank);
    let mut found = Vec::new();
    for (id, text) in all {
        let record: EventRecord =
            serde_json::from_str(&text).map_err(|_| store.bad_value("event"))?;
        // A kind this version does not know (written by a newer one) is skipped.
        let Some(kind) = EventKind::parse(&record.kind) else {
            continue;
        };
        let severity = Severity::parse(&record.severity).map_or(2, rank);
        let (first, last) = (time(record.first), time(record.last));
        let wanted = query.kind.is_none_or(|wanted| wanted == kind)
            && query.since.is_none_or(|since| last >= since)
            && query.until.is_none_or(|until| first < until)
            && (!query.unresolved_only || record.resolved <= 0.0)
            && severity >= least;
        if !wanted {
            continue;
        }
        let entry = ActivityEntry {
            app_id: query.app_id.clone(),
            kind,
            address: record.address.parse().ok(),
            message: record.message,
            window_start: time(record.window),
            first_seen: first,
            last_seen: last,
            count: record.count as u64,
        };
        let resolved_at = (record.resolved > 0.0).then(|| time(record.resolved));
        found.push(StoredEvent {
            id,
            entry,
            resolved_at,
        });
    }
    found.sort_by_key(|event| std::cmp::Reverse((event.entry.last_seen, event.id)));
    found.truncate(query.limit);
    Ok(found)
}

/// The order of severities, as queries compare them.
fn rank(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

/// Resolves the app's unresolved events (all, or the one with `id`), lifting its lockdown
/// when no unresolved critical event is left, in one script.
pub fn resolve(
    store: &RedisStore,
    app_id: &str,
    id: Option<u64>,
    at: SystemTime,
) -> Result<Resolved, StoreError> {
    let mut invocation = store.scripts.resolve_events.arg(&store.base);
    invocation
        .arg(app_id)
        .arg(id.map(|id| id.to_string()).unwrap_or_default())
        .arg(millis(at));
    let (events, lifted): (usize, i64) = store.with(|connection| invocation.invoke(connection))?;
    Ok(Resolved {
        events,
        lockdown_lifted: lifted > 0,
    })
}

/// Locks the app down if it is not and `threshold` distinct unresolved critical events were
/// last seen since `since`; whether it did, in one script.
pub fn lock_down_if_due(
    store: &RedisStore,
    app_id: &str,
    since: SystemTime,
    threshold: u64,
    at: SystemTime,
) -> Result<bool, StoreError> {
    let mut invocation = store.scripts.lock_down_if_due.arg(&store.base);
    invocation
        .arg(app_id)
        .arg(millis(since))
        .arg(threshold)
        .arg(millis(at));
    let locked: i64 = store.with(|connection| invocation.invoke(connection))?;
    Ok(locked == 1)
}

//! The activity log and lockdowns in SQLite: one row per app, kind, address and window
//! (repeats add to its count), at most [`MOST_STORED_EVENTS`] rows, and one row per app that
//! is locked down.
//!
//! Pruning drops the oldest info rows first, then warnings and resolved critical events, and
//! unresolved critical events last, so a flood of denials (already one row per address and
//! window) cannot push out what a lockdown is about, nor the bans and findings an admin reads.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{millis, time};
use crate::activity::{ActivityEntry, EventKind, EventQuery, Severity, StoredEvent};
use crate::store::{Lockdown, Resolved};

/// Most rows the activity log keeps.
pub const MOST_STORED_EVENTS: i64 = 10_000;

/// The tables, created when missing. An entry without an address has `''`, so that the
/// unique key holds (SQLite's unique keys let NULLs repeat).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    address TEXT NOT NULL,
    message TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    resolved_at_ms INTEGER,
    UNIQUE (app_id, kind, address, window_start_ms)
);
CREATE INDEX IF NOT EXISTS security_events_by_app ON security_events (app_id, last_seen_ms);
CREATE TABLE IF NOT EXISTS lockdowns (
    app_id TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL
);
";

/// Adds `entries` (counts added to their window's row), then prunes, in one transaction. A
/// resolved row seen again after its resolution is unresolved again: what happened since is
/// news to the admin (and counts toward a lockdown).
pub fn record(connection: &mut Connection, entries: &[ActivityEntry]) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    for entry in entries {
        let address = entry
            .address
            .map(|address| address.to_string())
            .unwrap_or_default();
        transaction.execute(
            "INSERT INTO security_events (app_id, kind, severity, address, message,
                 window_start_ms, first_seen_ms, last_seen_ms, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (app_id, kind, address, window_start_ms) DO UPDATE SET
                 count = count + excluded.count,
                 first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms),
                 last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms),
                 resolved_at_ms = CASE WHEN excluded.last_seen_ms > resolved_at_ms
                     THEN NULL ELSE resolved_at_ms END",
            params![
                entry.app_id,
                entry.kind.as_str(),
                entry.kind.severity().as_str(),
                address,
                entry.message,
                millis(entry.window_start),
                millis(entry.first_seen),
                millis(entry.last_seen),
                entry.count as i64,
            ],
        )?;
    }
    transaction.execute(
        "DELETE FROM security_events WHERE id IN (
             SELECT id FROM security_events
             ORDER BY CASE WHEN severity = 'critical' AND resolved_at_ms IS NULL THEN 2
                           WHEN severity = 'info' THEN 0 ELSE 1 END,
                      last_seen_ms, id
             LIMIT MAX(0, (SELECT COUNT(*) FROM security_events) - ?1))",
        params![MOST_STORED_EVENTS],
    )?;
    transaction.commit()
}

/// The events `query` asks for, newest first.
pub fn events(connection: &Connection, query: &EventQuery) -> rusqlite::Result<Vec<StoredEvent>> {
    let least = query.min_severity.map_or(0, rank);
    let mut statement = connection.prepare(
        "SELECT id, kind, address, message, window_start_ms, first_seen_ms, last_seen_ms, count,
                resolved_at_ms
         FROM security_events
         WHERE app_id = ?1 AND (?2 IS NULL OR kind = ?2)
           AND (?3 IS NULL OR last_seen_ms >= ?3) AND (?4 IS NULL OR first_seen_ms < ?4)
           AND (?5 = 0 OR resolved_at_ms IS NULL)
           AND CASE severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END >= ?6
         ORDER BY last_seen_ms DESC, id DESC
         LIMIT ?7",
    )?;
    let rows = statement.query_map(
        params![
            query.app_id,
            query.kind.map(EventKind::as_str),
            query.since.map(millis),
            query.until.map(millis),
            query.unresolved_only,
            least,
            query.limit as i64,
        ],
        |row| {
            let kind: String = row.get(1)?;
            let address: String = row.get(2)?;
            let entry = ActivityEntry {
                app_id: query.app_id.clone(),
                kind: EventKind::AuthFailure,
                address: address.parse().ok(),
                message: row.get(3)?,
                window_start: time(row.get(4)?),
                first_seen: time(row.get(5)?),
                last_seen: time(row.get(6)?),
                count: row.get::<_, i64>(7)? as u64,
            };
            let event = StoredEvent {
                id: row.get::<_, i64>(0)? as u64,
                entry,
                resolved_at: row.get::<_, Option<i64>>(8)?.map(time),
            };
            Ok((kind, event))
        },
    )?;
    let mut found = Vec::new();
    for row in rows {
        let (kind, mut event) = row?;
        // A kind this version does not know (written by a newer one) is skipped.
        if let Some(kind) = EventKind::parse(&kind) {
            event.entry.kind = kind;
            found.push(event);
        }
    }
    Ok(found)
}

/// The order of severities, as the query compares them.
fn rank(severity: Severity) -> i64 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

/// Marks the app's unresolved events resolved (all, or the one with `id`), and lifts its
/// lockdown if no unresolved critical event is left, in one transaction.
pub fn resolve(
    connection: &mut Connection,
    app_id: &str,
    id: Option<u64>,
    at: SystemTime,
) -> rusqlite::Result<Resolved> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let events = transaction.execute(
        "UPDATE security_events SET resolved_at_ms = ?3
         WHERE app_id = ?1 AND resolved_at_ms IS NULL AND (?2 IS NULL OR id = ?2)",
        params![app_id, id.map(|id| id as i64), millis(at)],
    )?;
    let critical_left: i64 = transaction.query_row(
        "SELECT COUNT(*) FROM security_events
         WHERE app_id = ?1 AND severity = 'critical' AND resolved_at_ms IS NULL",
        params![app_id],
        |row| row.get(0),
    )?;
    let lockdown_lifted = critical_left == 0
        && transaction.execute("DELETE FROM lockdowns WHERE app_id = ?1", params![app_id])? > 0;
    transaction.commit()?;
    Ok(Resolved {
        events,
        lockdown_lifted,
    })
}

/// Locks the app down at `at` if it is not, and `threshold` or more distinct critical events
/// (a kind from one source) last seen since `since` are unresolved; whether it did, in one
/// transaction.
pub fn lock_down_if_due(
    connection: &mut Connection,
    app_id: &str,
    since: SystemTime,
    threshold: u64,
    at: SystemTime,
) -> rusqlite::Result<bool> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let locked: Option<i64> = transaction
        .query_row(
            "SELECT since_ms FROM lockdowns WHERE app_id = ?1",
            params![app_id],
            |row| row.get(0),
        )
        .optional()?;
    if locked.is_some() {
        return Ok(false);
    }
    // Distinct events, not rows: one source repeating a kind over several windows is one, and
    // a revoked token is one however many addresses present it (its message names it), so
    // whoever saw a leaked token cannot lock the app by presenting it from a few addresses.
    let critical: i64 = transaction.query_row(
        "SELECT COUNT(DISTINCT kind || '|' ||
             CASE WHEN kind = 'revoked_token_used' THEN message ELSE address END)
         FROM security_events
         WHERE app_id = ?1 AND severity = 'critical' AND resolved_at_ms IS NULL
           AND last_seen_ms >= ?2",
        params![app_id, millis(since)],
        |row| row.get(0),
    )?;
    if (critical as u64) < threshold {
        return Ok(false);
    }
    transaction.execute(
        "INSERT INTO lockdowns (app_id, since_ms) VALUES (?1, ?2)",
        params![app_id, millis(at)],
    )?;
    transaction.commit()?;
    Ok(true)
}

/// Every app locked down.
pub fn lockdowns(connection: &Connection) -> rusqlite::Result<Vec<Lockdown>> {
    let mut statement = connection.prepare("SELECT app_id, since_ms FROM lockdowns")?;
    let rows = statement.query_map([], |row| {
        Ok(Lockdown {
            app_id: row.get(0)?,
            since: time(row.get(1)?),
        })
    })?;
    rows.collect()
}

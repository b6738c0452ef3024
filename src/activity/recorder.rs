//! Security events between the moment they happen and the state store: folded per app, kind,
//! address and [`WINDOW`](super::WINDOW) in memory, written as one structured log line the
//! first time each entry is seen, and handed to the sync ([`ActivityRecorder::take`]) as the
//! occurrences added since its last round. So a flood of denials costs one log line and one
//! stored row per address and window, and a request never waits on the store.
//!
//! The map is bounded: past [`MOST_PENDING`] entries, a new address's info events are folded
//! into its app and kind's entry without an address ("from many addresses"), of which there
//! are at most one per app, kind and window; warnings and critical events have
//! [`MOST_PENDING_GRAVE`] more places, so a flood of denials cannot fold away the events a
//! lockdown counts. Entries stay for their window (so a repeat is one entry) and are
//! forgotten once it has ended and they are flushed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::{info, warn};

use super::{ActivityEntry, EventKind, SecurityEvent, Severity, WINDOW, window_start};

/// Most info entries with an address kept in memory (those of the current window, and any
/// not yet flushed).
pub const MOST_PENDING: usize = 10_000;

/// Places beyond [`MOST_PENDING`] that only warnings and critical events may take.
pub const MOST_PENDING_GRAVE: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    app_id: String,
    kind: EventKind,
    address: Option<IpAddr>,
    window_start: SystemTime,
}

#[derive(Debug)]
struct Pending {
    entry: ActivityEntry,
    /// Occurrences not yet handed to the sync.
    unflushed: u64,
}

/// The security events recorded since the last sync.
#[derive(Debug, Default)]
pub struct ActivityRecorder {
    pending: Mutex<HashMap<EntryKey, Pending>>,
}

impl ActivityRecorder {
    /// Records `event`, which happened at `now`.
    pub fn record(&self, event: SecurityEvent, now: SystemTime) {
        self.record_count(event, 1, now);
    }

    /// Records `count` occurrences of `event` (counted elsewhere), the last at `now`.
    pub fn record_count(&self, event: SecurityEvent, count: u64, now: SystemTime) {
        if count == 0 {
            return;
        }
        crate::metrics::global().security_event(&event.app_id, event.kind.as_str(), count);
        let mut pending = self.lock();
        let mut key = EntryKey {
            app_id: event.app_id,
            kind: event.kind,
            address: event.address,
            window_start: window_start(now),
        };
        let room = match key.kind.severity() {
            Severity::Info => MOST_PENDING,
            Severity::Warning | Severity::Critical => MOST_PENDING + MOST_PENDING_GRAVE,
        };
        if key.address.is_some() && pending.len() >= room && !pending.contains_key(&key) {
            key.address = None;
        }
        if let Some(seen) = pending.get_mut(&key) {
            seen.entry.count += count;
            seen.entry.last_seen = seen.entry.last_seen.max(now);
            seen.unflushed += count;
            return;
        }
        let entry = ActivityEntry {
            app_id: key.app_id.clone(),
            kind: key.kind,
            address: key.address,
            message: event.message,
            window_start: key.window_start,
            first_seen: now,
            last_seen: now,
            count,
        };
        log(&entry);
        pending.insert(
            key,
            Pending {
                entry,
                unflushed: count,
            },
        );
    }

    /// The occurrences recorded since the last call, one entry per app, kind, address and
    /// window (`count` = the occurrences added); forgets the flushed entries of windows that
    /// ended before `now`.
    pub fn take(&self, now: SystemTime) -> Vec<ActivityEntry> {
        let mut pending = self.lock();
        let mut taken = Vec::new();
        for seen in pending.values_mut() {
            if seen.unflushed > 0 {
                taken.push(ActivityEntry {
                    count: seen.unflushed,
                    ..seen.entry.clone()
                });
                seen.unflushed = 0;
            }
        }
        let current = window_start(now);
        pending.retain(|key, seen| seen.unflushed > 0 || key.window_start >= current);
        taken
    }

    /// Whether nothing is waiting for the store.
    pub fn is_empty(&self) -> bool {
        self.lock().values().all(|seen| seen.unflushed == 0)
    }

    /// Puts back what [`take`](Self::take) gave, when the store could not keep it.
    pub fn restore(&self, entries: Vec<ActivityEntry>) {
        let mut pending = self.lock();
        for entry in entries {
            let key = EntryKey {
                app_id: entry.app_id.clone(),
                kind: entry.kind,
                address: entry.address,
                window_start: entry.window_start,
            };
            let count = entry.count;
            pending
                .entry(key)
                .and_modify(|seen| seen.unflushed += count)
                .or_insert(Pending {
                    entry,
                    unflushed: count,
                });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntryKey, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The structured log line of an entry's first occurrence.
fn log(entry: &ActivityEntry) {
    let address = entry.address.map(|address| address.to_string());
    let address = address.as_deref().unwrap_or("-");
    let (app, kind, message) = (&entry.app_id, entry.kind.as_str(), &entry.message);
    let window = WINDOW.as_secs();
    match entry.kind.severity() {
        Severity::Info => info!(
            target: "relay::security",
            app, kind, severity = "info", address, window, "security event: {message}"
        ),
        Severity::Warning => warn!(
            target: "relay::security",
            app, kind, severity = "warning", address, window, "security event: {message}"
        ),
        Severity::Critical => warn!(
            target: "relay::security",
            app, kind, severity = "critical", address, window, "security event: {message}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn denial(address: &str) -> SecurityEvent {
        SecurityEvent::new(
            "1",
            EventKind::AddressDenied,
            Some(address.parse().unwrap()),
            "address not in ip_allowlist",
        )
    }

    #[test]
    fn repeats_within_a_window_are_one_entry() {
        let recorder = ActivityRecorder::default();
        for second in 0..5 {
            recorder.record(denial("10.0.0.1"), at(6_000 + second));
        }
        recorder.record(denial("10.0.0.2"), at(6_001));
        let mut taken = recorder.take(at(6_010));
        taken.sort_by_key(|entry| entry.address);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].count, 5);
        assert_eq!(taken[0].first_seen, at(6_000));
        assert_eq!(taken[0].last_seen, at(6_004));
        assert_eq!(taken[1].count, 1);
        assert!(recorder.take(at(6_011)).is_empty(), "nothing new");
    }

    #[test]
    fn each_take_gives_the_occurrences_added_since_the_last() {
        let recorder = ActivityRecorder::default();
        recorder.record(denial("10.0.0.1"), at(6_000));
        assert_eq!(recorder.take(at(6_001))[0].count, 1);
        recorder.record(denial("10.0.0.1"), at(6_002));
        recorder.record(denial("10.0.0.1"), at(6_003));
        let taken = recorder.take(at(6_004));
        assert_eq!(taken[0].count, 2);
        assert_eq!(
            taken[0].first_seen,
            at(6_000),
            "the window's first occurrence"
        );
    }

    #[test]
    fn a_new_window_is_a_new_entry_and_old_ones_are_forgotten() {
        let recorder = ActivityRecorder::default();
        recorder.record(denial("10.0.0.1"), at(6_000));
        recorder.take(at(6_001));
        recorder.record(denial("10.0.0.1"), at(6_600));
        let taken = recorder.take(at(6_601));
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].window_start, at(6_600));
        assert_eq!(recorder.lock().len(), 1, "the past window's entry is gone");
    }

    #[test]
    fn the_map_stays_bounded_and_nothing_is_lost() {
        let recorder = ActivityRecorder::default();
        let extra = 50u32;
        for n in 0..(MOST_PENDING as u32 + extra) {
            let address = std::net::Ipv4Addr::from(0x0a00_0000 + n);
            let event = SecurityEvent::new(
                "1",
                EventKind::AuthFailure,
                Some(address.into()),
                "bad signature",
            );
            recorder.record(event, at(6_000));
        }
        assert_eq!(recorder.lock().len(), MOST_PENDING + 1);
        let taken = recorder.take(at(6_001));
        let total: u64 = taken.iter().map(|entry| entry.count).sum();
        assert_eq!(total, u64::from(MOST_PENDING as u32 + extra));
        let folded = taken.iter().find(|entry| entry.address.is_none()).unwrap();
        assert_eq!(folded.count, u64::from(extra));
    }

    #[test]
    fn a_flood_of_denials_cannot_fold_critical_events_away() {
        let recorder = ActivityRecorder::default();
        for n in 0..(MOST_PENDING as u32 + 10) {
            let address = std::net::Ipv4Addr::from(0x0a00_0000 + n);
            let event = SecurityEvent::new("1", EventKind::AuthFailure, Some(address.into()), "x");
            recorder.record(event, at(6_000));
        }
        for n in 1..=3 {
            let event = SecurityEvent::new(
                "1",
                EventKind::RevokedTokenUsed,
                Some(format!("192.0.2.{n}").parse().unwrap()),
                "revoked API token \"ci\" presented",
            );
            recorder.record(event, at(6_001));
        }
        let taken = recorder.take(at(6_002));
        let critical: Vec<_> = taken
            .iter()
            .filter(|entry| entry.kind == EventKind::RevokedTokenUsed)
            .collect();
        assert_eq!(critical.len(), 3, "each address its own entry");
        assert!(critical.iter().all(|entry| entry.address.is_some()));
    }

    #[test]
    fn restored_entries_come_back_at_the_next_take() {
        let recorder = ActivityRecorder::default();
        recorder.record(denial("10.0.0.1"), at(6_000));
        let taken = recorder.take(at(6_001));
        recorder.restore(taken);
        recorder.record(denial("10.0.0.1"), at(6_002));
        assert_eq!(recorder.take(at(6_003))[0].count, 2);
    }
}

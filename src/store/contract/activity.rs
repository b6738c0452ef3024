//! The activity log's contract: how repeats fold into one event, what a query returns, what
//! pruning drops first, and how resolutions and lockdowns behave.
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::activity::{ActivityEntry, EventQuery, StoredEvent};
use crate::activity::{EventKind, Severity, window_start};
use crate::store::{Lockdown, MOST_STORED_EVENTS, Resolved, Store};

pub fn second(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// `count` occurrences of `kind` for `app` from `address`, first and last seen at those
/// seconds, in the window of `first`.
pub fn entry(
    app: &str,
    kind: EventKind,
    address: Option<&str>,
    (first, last): (u64, u64),
    count: u64,
) -> ActivityEntry {
    ActivityEntry {
        app_id: app.to_owned(),
        kind,
        address: address.map(|text| text.parse::<IpAddr>().unwrap()),
        message: format!("{} seen", kind.as_str()),
        window_start: window_start(second(first)),
        first_seen: second(first),
        last_seen: second(last),
        count,
    }
}

fn all(store: &dyn Store, app: &str) -> Vec<StoredEvent> {
    store.events(&EventQuery::newest(app, usize::MAX)).unwrap()
}

/// The `(kind, count)` of each event, as returned.
fn kinds_and_counts(events: &[StoredEvent]) -> Vec<(EventKind, u64)> {
    events
        .iter()
        .map(|event| (event.entry.kind, event.entry.count))
        .collect()
}

pub fn repeats_in_one_window_add_up_into_one_row_across_record_calls(store: &dyn Store) {
    let address = Some("192.0.2.1");
    store
        .record_events(&[entry(
            "1",
            EventKind::AuthFailure,
            address,
            (1_300, 1_400),
            2,
        )])
        .unwrap();
    store
        .record_events(&[entry(
            "1",
            EventKind::AuthFailure,
            address,
            (1_210, 1_350),
            3,
        )])
        .unwrap();
    let events = all(store, "1");
    assert_eq!(events.len(), 1, "{events:?}");
    let stored = &events[0].entry;
    assert_eq!(stored.count, 5);
    assert_eq!(
        stored.first_seen,
        second(1_210),
        "the earlier first occurrence"
    );
    assert_eq!(stored.last_seen, second(1_400), "the later last occurrence");
    assert_eq!(stored.window_start, second(1_200));
    assert_eq!(stored.address, "192.0.2.1".parse::<IpAddr>().ok());
    assert_eq!(stored.message, "auth_failure seen");
    assert_eq!(events[0].resolved_at, None);
}

pub fn another_window_or_another_address_is_a_new_row(store: &dyn Store) {
    store
        .record_events(&[
            entry(
                "1",
                EventKind::AuthFailure,
                Some("192.0.2.1"),
                (100, 100),
                1,
            ),
            entry(
                "1",
                EventKind::AuthFailure,
                Some("192.0.2.1"),
                (700, 700),
                1,
            ),
            entry(
                "1",
                EventKind::AuthFailure,
                Some("2001:db8::1"),
                (110, 110),
                1,
            ),
            entry(
                "1",
                EventKind::AddressDenied,
                Some("192.0.2.1"),
                (120, 120),
                1,
            ),
        ])
        .unwrap();
    let events = all(store, "1");
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events.iter().all(|event| event.entry.count == 1));
    let windows: Vec<_> = events
        .iter()
        .map(|event| event.entry.window_start)
        .collect();
    assert_eq!(windows, [second(600), second(0), second(0), second(0)]);
}

pub fn an_entry_without_an_address_is_kept_and_folds_like_any_other(store: &dyn Store) {
    let from_many = entry("1", EventKind::AuthFailure, None, (100, 200), 4);
    store
        .record_events(std::slice::from_ref(&from_many))
        .unwrap();
    store.record_events(&[from_many]).unwrap();
    store
        .record_events(&[entry(
            "1",
            EventKind::AuthFailure,
            Some("192.0.2.1"),
            (150, 150),
            1,
        )])
        .unwrap();
    let events = all(store, "1");
    let addresses: Vec<_> = events.iter().map(|event| event.entry.address).collect();
    let known = "192.0.2.1".parse::<IpAddr>().ok();
    assert_eq!(addresses, [None, known], "{events:?}");
    assert_eq!(
        events[0].entry.count, 8,
        "one row for the entry without an address"
    );
}

/// App 1: an auth failure at 100 s, a ban at 700 s, a leaked token at 1 300 s (resolved), a
/// secret found at 1 900 s; app 2: a leaked token at 2 500 s.
fn history(store: &dyn Store) {
    store
        .record_events(&[
            entry(
                "1",
                EventKind::AuthFailure,
                Some("192.0.2.1"),
                (100, 110),
                3,
            ),
            entry(
                "1",
                EventKind::AddressBanned,
                Some("192.0.2.1"),
                (700, 700),
                1,
            ),
            entry("1", EventKind::TokenLeaked, None, (1_300, 1_300), 1),
            entry("1", EventKind::SecretFound, None, (1_900, 1_950), 2),
            entry("2", EventKind::TokenLeaked, None, (2_500, 2_500), 1),
        ])
        .unwrap();
    let leaked = all(store, "1")
        .into_iter()
        .find(|event| event.entry.kind == EventKind::TokenLeaked)
        .unwrap();
    let resolved = store
        .resolve_events("1", Some(leaked.id), second(3_000))
        .unwrap();
    assert_eq!(resolved.events, 1);
}

fn query(change: impl FnOnce(&mut EventQuery)) -> EventQuery {
    let mut query = EventQuery::newest("1", 100);
    change(&mut query);
    query
}

fn kinds(store: &dyn Store, query: &EventQuery) -> Vec<EventKind> {
    let events = store.events(query).unwrap();
    assert!(events.iter().all(|event| event.entry.app_id == "1"));
    events.into_iter().map(|event| event.entry.kind).collect()
}

pub fn queries_return_the_app_s_events_newest_first(store: &dyn Store) {
    history(store);
    let events = store.events(&query(|_| {})).unwrap();
    assert_eq!(
        kinds_and_counts(&events),
        [
            (EventKind::SecretFound, 2),
            (EventKind::TokenLeaked, 1),
            (EventKind::AddressBanned, 1),
            (EventKind::AuthFailure, 3),
        ],
        "app 2's event is not among them"
    );
    assert_eq!(events[1].resolved_at, Some(second(3_000)));
    let newest_two = kinds(store, &query(|query| query.limit = 2));
    assert_eq!(newest_two, [EventKind::SecretFound, EventKind::TokenLeaked]);
    assert!(
        store
            .events(&EventQuery::newest("3", 100))
            .unwrap()
            .is_empty()
    );
}

pub fn queries_filter_by_kind_severity_time_and_resolution(store: &dyn Store) {
    history(store);
    let by_kind = query(|query| query.kind = Some(EventKind::AddressBanned));
    assert_eq!(kinds(store, &by_kind), [EventKind::AddressBanned]);
    let warning_or_graver = query(|query| query.min_severity = Some(Severity::Warning));
    assert_eq!(
        kinds(store, &warning_or_graver),
        [
            EventKind::SecretFound,
            EventKind::TokenLeaked,
            EventKind::AddressBanned
        ]
    );
    let critical = query(|query| query.min_severity = Some(Severity::Critical));
    assert_eq!(kinds(store, &critical), [EventKind::TokenLeaked]);
    let info_or_graver = query(|query| query.min_severity = Some(Severity::Info));
    assert_eq!(kinds(store, &info_or_graver).len(), 4);
    let last_seen_since = query(|query| query.since = Some(second(1_950)));
    assert_eq!(
        kinds(store, &last_seen_since),
        [EventKind::SecretFound],
        "last seen at or after since"
    );
    let first_seen_before = query(|query| query.until = Some(second(700)));
    assert_eq!(
        kinds(store, &first_seen_before),
        [EventKind::AuthFailure],
        "first seen before until"
    );
    let between = query(|query| {
        query.since = Some(second(110));
        query.until = Some(second(1_301));
    });
    assert_eq!(
        kinds(store, &between),
        [
            EventKind::TokenLeaked,
            EventKind::AddressBanned,
            EventKind::AuthFailure
        ]
    );
    let unresolved = query(|query| query.unresolved_only = true);
    assert_eq!(
        kinds(store, &unresolved),
        [
            EventKind::SecretFound,
            EventKind::AddressBanned,
            EventKind::AuthFailure
        ]
    );
    let combined = query(|query| {
        query.min_severity = Some(Severity::Warning);
        query.unresolved_only = true;
        query.limit = 1;
    });
    assert_eq!(kinds(store, &combined), [EventKind::SecretFound]);
}

/// Events kept, in the two apps the pruning tests fill.
fn count_rows(store: &dyn Store) -> i64 {
    ["1", "2"]
        .iter()
        .map(|app| all(store, app).len() as i64)
        .sum()
}

pub fn pruning_keeps_the_bound_and_drops_info_rows_first(store: &dyn Store) {
    store
        .record_events(&[
            entry("1", EventKind::AuthFailure, None, (10, 10), 1),
            entry("1", EventKind::TokenLeaked, None, (20, 20), 1),
            entry("1", EventKind::RevokedTokenUsed, None, (30, 30), 1),
            entry("1", EventKind::ExpiredPairUsed, None, (40, 40), 1),
            entry("1", EventKind::AppSecretLeaked, None, (50, 50), 1),
        ])
        .unwrap();
    let resolved = all(store, "1")
        .into_iter()
        .find(|event| event.entry.kind == EventKind::AppSecretLeaked)
        .unwrap();
    store
        .resolve_events("1", Some(resolved.id), second(60))
        .unwrap();
    // A flood of newer denials, one window each: all of them newer than the five above.
    let flood = MOST_STORED_EVENTS as u64;
    let denials: Vec<_> = (0..flood + 2)
        .map(|n| {
            let at = 600 * (n + 1);
            entry(
                "2",
                EventKind::AddressDenied,
                Some("192.0.2.1"),
                (at, at),
                1,
            )
        })
        .collect();
    store.record_events(&denials).unwrap();
    assert_eq!(count_rows(store), MOST_STORED_EVENTS);
    let kept = all(store, "1");
    assert_eq!(
        kinds_and_counts(&kept),
        [
            (EventKind::AppSecretLeaked, 1),
            (EventKind::ExpiredPairUsed, 1),
            (EventKind::RevokedTokenUsed, 1),
            (EventKind::TokenLeaked, 1),
        ],
        "info goes first, even newer info: the critical events, resolved or not, stay"
    );
    let denied = all(store, "2");
    assert_eq!(denied.len() as i64, MOST_STORED_EVENTS - 4);
    let oldest_kept = denied.last().unwrap().entry.first_seen;
    assert_eq!(
        oldest_kept,
        second(600 * 7),
        "the six oldest denials went, after the older info row of app 1"
    );
}

pub fn pruning_drops_unresolved_critical_rows_last_but_still_keeps_the_bound(store: &dyn Store) {
    let critical: Vec<_> = (0..MOST_STORED_EVENTS as u64 + 1)
        .map(|n| {
            let at = 600 * (n + 1);
            entry("1", EventKind::TokenLeaked, None, (at, at), 1)
        })
        .collect();
    store.record_events(&critical).unwrap();
    assert_eq!(count_rows(store), MOST_STORED_EVENTS);
    let oldest = all(store, "1").last().unwrap().entry.first_seen;
    assert_eq!(oldest, second(1_200), "the oldest went");
}

pub fn a_repeat_after_a_resolution_reopens_its_row(store: &dyn Store) {
    let leaked = |last| {
        entry(
            "1",
            EventKind::RevokedTokenUsed,
            Some("192.0.2.1"),
            (100, last),
            1,
        )
    };
    store.record_events(&[leaked(110)]).unwrap();
    store.resolve_events("1", None, second(120)).unwrap();
    store.record_events(&[leaked(115)]).unwrap();
    let before = all(store, "1");
    assert_eq!(
        before[0].resolved_at,
        Some(second(120)),
        "an occurrence from before the resolution stays resolved"
    );
    store.record_events(&[leaked(130)]).unwrap();
    let after = all(store, "1");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].entry.count, 3);
    assert_eq!(
        after[0].resolved_at, None,
        "the revoked token was used again after the admin resolved it"
    );
}

/// App 1: two critical events and an info one; app 2: three critical events. Both locked down.
fn locked_down_apps(store: &dyn Store) {
    store
        .record_events(&[
            entry("1", EventKind::TokenLeaked, None, (100, 100), 1),
            entry("1", EventKind::RevokedTokenUsed, None, (110, 110), 1),
            entry("1", EventKind::KeyRotated, None, (120, 120), 1),
            entry("2", EventKind::TokenLeaked, None, (100, 100), 1),
            entry("2", EventKind::RevokedTokenUsed, None, (110, 110), 1),
            entry("2", EventKind::ExpiredPairUsed, None, (120, 120), 1),
        ])
        .unwrap();
    assert!(
        store
            .lock_down_if_due("1", second(0), 2, second(130))
            .unwrap()
    );
    assert!(
        store
            .lock_down_if_due("2", second(0), 3, second(130))
            .unwrap()
    );
}

fn locked_apps(store: &dyn Store) -> Vec<String> {
    let mut apps: Vec<_> = store
        .lockdowns()
        .unwrap()
        .into_iter()
        .map(|lockdown| lockdown.app_id)
        .collect();
    apps.sort();
    apps
}

fn id_of(store: &dyn Store, app: &str, kind: EventKind) -> u64 {
    all(store, app)
        .into_iter()
        .find(|event| event.entry.kind == kind)
        .unwrap()
        .id
}

pub fn resolving_one_event_lifts_the_lockdown_only_with_the_last_critical_one(store: &dyn Store) {
    locked_down_apps(store);
    let resolve = |id| store.resolve_events("1", Some(id), second(200)).unwrap();
    let first = resolve(id_of(store, "1", EventKind::TokenLeaked));
    assert_eq!(
        first,
        Resolved {
            events: 1,
            lockdown_lifted: false
        },
        "a critical event is left"
    );
    let info = resolve(id_of(store, "1", EventKind::KeyRotated));
    assert_eq!(info.events, 1);
    assert!(!info.lockdown_lifted);
    let other_app_s = resolve(id_of(store, "2", EventKind::TokenLeaked));
    assert_eq!(
        other_app_s.events, 0,
        "another app's event is not this app's to resolve"
    );
    assert_eq!(locked_apps(store), ["1", "2"]);
    let last = resolve(id_of(store, "1", EventKind::RevokedTokenUsed));
    assert_eq!(
        last,
        Resolved {
            events: 1,
            lockdown_lifted: true
        }
    );
    assert_eq!(locked_apps(store), ["2"], "app 2's lockdown is untouched");
    let again = resolve(id_of(store, "1", EventKind::RevokedTokenUsed));
    assert_eq!(
        again,
        Resolved {
            events: 0,
            lockdown_lifted: false
        },
        "already resolved"
    );
    assert!(
        all(store, "2")
            .iter()
            .all(|event| event.resolved_at.is_none()),
        "app 2's events are untouched"
    );
}

pub fn resolving_all_counts_the_unresolved_events_and_lifts_the_lockdown(store: &dyn Store) {
    locked_down_apps(store);
    store
        .resolve_events(
            "1",
            Some(id_of(store, "1", EventKind::KeyRotated)),
            second(150),
        )
        .unwrap();
    let resolved = store.resolve_events("1", None, second(200)).unwrap();
    assert_eq!(
        resolved,
        Resolved {
            events: 2,
            lockdown_lifted: true
        },
        "the two left unresolved"
    );
    assert_eq!(locked_apps(store), ["2"]);
    let events = all(store, "1");
    let times: Vec<_> = events.iter().map(|event| event.resolved_at).collect();
    assert_eq!(
        times,
        [Some(second(150)), Some(second(200)), Some(second(200))],
        "an earlier resolution keeps its time"
    );
    let nothing_left = store.resolve_events("1", None, second(300)).unwrap();
    assert_eq!(
        nothing_left,
        Resolved {
            events: 0,
            lockdown_lifted: false
        }
    );
    let unlocked_app = store.resolve_events("3", None, second(300)).unwrap();
    assert!(!unlocked_app.lockdown_lifted);
}

pub fn a_lockdown_comes_at_the_threshold_once(store: &dyn Store) {
    let critical = |kind, at| entry("1", kind, Some("192.0.2.1"), (at, at), 1);
    store
        .record_events(&[
            critical(EventKind::TokenLeaked, 4_000),
            critical(EventKind::RevokedTokenUsed, 4_010),
            entry("1", EventKind::AddressBanned, None, (4_020, 4_020), 9),
            entry("1", EventKind::AuthFailure, None, (4_030, 4_030), 50),
        ])
        .unwrap();
    let due = |at| store.lock_down_if_due("1", second(3_600), 3, second(at));
    assert!(
        !due(4_100).unwrap(),
        "two critical events, however many others"
    );
    assert!(store.lockdowns().unwrap().is_empty());
    store
        .record_events(&[critical(EventKind::ExpiredPairUsed, 4_200)])
        .unwrap();
    assert!(due(4_300).unwrap(), "the third critical event");
    assert!(!due(4_400).unwrap(), "already locked down: announced once");
    assert_eq!(
        store.lockdowns().unwrap(),
        [Lockdown {
            app_id: "1".into(),
            since: second(4_300)
        }]
    );
}

pub fn old_or_resolved_critical_events_do_not_count_toward_a_lockdown(store: &dyn Store) {
    let critical = |app, kind, at| entry(app, kind, None, (at, at), 1);
    store
        .record_events(&[
            critical("old", EventKind::TokenLeaked, 100),
            critical("old", EventKind::RevokedTokenUsed, 4_000),
            critical("old", EventKind::ExpiredPairUsed, 4_010),
            critical("resolved", EventKind::TokenLeaked, 4_000),
            critical("resolved", EventKind::RevokedTokenUsed, 4_010),
            critical("resolved", EventKind::ExpiredPairUsed, 4_020),
        ])
        .unwrap();
    let leaked = id_of(store, "resolved", EventKind::TokenLeaked);
    store
        .resolve_events("resolved", Some(leaked), second(4_030))
        .unwrap();
    let since = second(3_600);
    assert!(
        !store
            .lock_down_if_due("old", since, 3, second(4_100))
            .unwrap(),
        "one was last seen before since"
    );
    assert!(
        !store
            .lock_down_if_due("resolved", since, 3, second(4_100))
            .unwrap(),
        "one is resolved"
    );
    assert!(store.lockdowns().unwrap().is_empty());
}

pub fn a_lockdown_counts_distinct_events_not_repeats(store: &dyn Store) {
    let blocked = |address, at| {
        let kind = EventKind::CredentialsFromBlockedAddress;
        entry("1", kind, Some(address), (at, at), 1)
    };
    let revoked = |address, at| {
        let mut revoked = entry("1", EventKind::RevokedTokenUsed, Some(address), (at, at), 1);
        revoked.message = "revoked API token \"ci\" presented".to_owned();
        revoked
    };
    // One backend over three windows; one revoked token from three addresses.
    store
        .record_events(&[
            blocked("192.0.2.1", 4_000),
            blocked("192.0.2.1", 4_600),
            blocked("192.0.2.1", 5_200),
            revoked("192.0.2.7", 4_000),
            revoked("192.0.2.8", 4_000),
            revoked("192.0.2.9", 4_000),
        ])
        .unwrap();
    let due = |at| store.lock_down_if_due("1", second(3_600), 3, second(at));
    assert!(!due(5_300).unwrap(), "two distinct events");
    store.record_events(&[blocked("192.0.2.2", 5_400)]).unwrap();
    assert!(due(5_500).unwrap(), "a second blocked source is the third");
}

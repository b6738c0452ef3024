//! `relay security events | resolve`: the activity log for an admin. `events` prints an app's
//! stored security events as a table, newest first, filtered by kind, severity, age and
//! resolution; `resolve` marks the app's unresolved events (all, or one) resolved, which lifts
//! an `auto_lockdown` once no unresolved critical event is left (running servers read that back
//! within `store::SYNC_INTERVAL`).
//!
//! Both only read an existing state store: without its file nothing has been recorded, and
//! making an empty one would only leave a file behind.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::activity::{EventKind, EventQuery, Severity, StoredEvent};
use crate::config::Config;
use crate::store::{self, StoreError};

/// Rows `relay security events` prints unless `--limit` says.
pub const DEFAULT_LIMIT: usize = 50;

/// Most rows `--limit` may ask for.
pub const MOST_LIMIT: usize = 1_000;

/// Why a `relay security` command failed.
#[derive(Debug, thiserror::Error)]
pub enum SecurityCliError {
    /// No app has the id.
    #[error("no app with id {0:?} in the configuration")]
    UnknownApp(String),
    /// A `--kind` that is not a kind of security event.
    #[error("unknown kind {name:?}; kinds are: {}", EventKind::ALL.map(EventKind::as_str).join(", "))]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// A `--severity` that is not a severity.
    #[error("unknown severity {0:?}; severities are: info, warning, critical")]
    UnknownSeverity(String),
    /// A `--since` that is not a duration.
    #[error("--since {0:?} is not a duration like 1h, 30m, 7d or 3600")]
    BadDuration(String),
    /// A `--limit` of zero or over [`MOST_LIMIT`].
    #[error("--limit {0} is out of range: 1 to {MOST_LIMIT}")]
    BadLimit(usize),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `relay security events` was asked for, as typed on the command line.
#[derive(Debug)]
pub struct EventsRequest<'a> {
    /// The app id.
    pub app: &'a str,
    /// Only this kind.
    pub kind: Option<&'a str>,
    /// Only this severity or graver.
    pub severity: Option<&'a str>,
    /// Only events last seen within this long (`1h`, `30m`, `7d`, seconds).
    pub since: Option<&'a str>,
    /// Only unresolved events.
    pub unresolved: bool,
    /// At most this many rows.
    pub limit: usize,
}

/// The lines of `relay security events`: a table of the events `request` asks for, newest
/// first, or one line saying there are none.
pub fn events(
    config: &Config,
    request: &EventsRequest<'_>,
    now: SystemTime,
) -> Result<Vec<String>, SecurityCliError> {
    let query = parse_query(config, request, now)?;
    let Some(store) = store::open_existing(config)? else {
        return Ok(vec![
            "no security events are recorded (no state store yet)".to_owned(),
        ]);
    };
    let found = store.events(&query)?;
    if found.is_empty() {
        return Ok(vec![format!(
            "no security events of app {} match",
            request.app
        )]);
    }
    Ok(table(&found))
}

/// The lines of `relay security resolve`: how many events were resolved and whether the
/// app's lockdown was lifted.
pub fn resolve(
    config: &Config,
    app: &str,
    event_id: Option<u64>,
    now: SystemTime,
) -> Result<Vec<String>, SecurityCliError> {
    find_app(config, app)?;
    let Some(store) = store::open_existing(config)? else {
        return Ok(vec![
            "nothing to resolve: no security events are recorded (no state store yet)".to_owned(),
        ]);
    };
    let resolved = store.resolve_events(app, event_id, now)?;
    let mut lines = vec![match (event_id, resolved.events) {
        (Some(id), 0) => format!("app {app} has no unresolved event {id}"),
        (Some(id), _) => format!("resolved event {id} of app {app}"),
        (None, 0) => format!("app {app} has no unresolved events"),
        (None, 1) => format!("resolved 1 event of app {app}"),
        (None, count) => format!("resolved {count} events of app {app}"),
    }];
    if resolved.lockdown_lifted {
        lines.push(format!(
            "app {app} is no longer locked down; running servers pick this up within seconds"
        ));
    }
    Ok(lines)
}

/// The store query `request` stands for, refusing an unknown app, kind or severity and a bad
/// duration or limit.
fn parse_query(
    config: &Config,
    request: &EventsRequest<'_>,
    now: SystemTime,
) -> Result<EventQuery, SecurityCliError> {
    find_app(config, request.app)?;
    let kind = request
        .kind
        .map(|name| {
            EventKind::parse(name)
                .ok_or_else(|| SecurityCliError::UnknownKind { name: name.into() })
        })
        .transpose()?;
    let min_severity = request
        .severity
        .map(|name| {
            Severity::parse(name).ok_or_else(|| SecurityCliError::UnknownSeverity(name.into()))
        })
        .transpose()?;
    let since = request
        .since
        .map(|text| parse_age(text).map(|age| now.checked_sub(age).unwrap_or(UNIX_EPOCH)))
        .transpose()?;
    if !(1..=MOST_LIMIT).contains(&request.limit) {
        return Err(SecurityCliError::BadLimit(request.limit));
    }
    Ok(EventQuery {
        kind,
        min_severity,
        since,
        unresolved_only: request.unresolved,
        ..EventQuery::newest(request.app, request.limit)
    })
}

/// `1h`, `30m`, `7d`, `45s` or plain seconds, not zero.
fn parse_age(text: &str) -> Result<Duration, SecurityCliError> {
    crate::config::parse_duration(text)
        .filter(|age| !age.is_zero())
        .ok_or_else(|| SecurityCliError::BadDuration(text.to_owned()))
}

fn find_app(config: &Config, app: &str) -> Result<(), SecurityCliError> {
    if config.apps.iter().any(|found| found.id.as_str() == app) {
        Ok(())
    } else {
        Err(SecurityCliError::UnknownApp(app.to_owned()))
    }
}

const HEADER: [&str; 8] = [
    "ID",
    "LAST SEEN",
    "SEVERITY",
    "KIND",
    "ADDRESS",
    "COUNT",
    "RESOLVED",
    "MESSAGE",
];

/// A header and one row per event, each column as wide as its widest cell (the message, last,
/// is not padded).
fn table(events: &[StoredEvent]) -> Vec<String> {
    let rows: Vec<[String; 8]> = events.iter().map(row).collect();
    let header = HEADER.map(str::to_owned);
    let mut widths = [0; 8];
    for cells in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|cells| {
            let (message, padded) = cells.split_last().expect("eight columns");
            let mut line: String = padded
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}  "))
                .collect();
            line.push_str(message);
            line
        })
        .collect()
}

fn row(event: &StoredEvent) -> [String; 8] {
    let entry = &event.entry;
    [
        event.id.to_string(),
        time(entry.last_seen),
        entry.kind.severity().as_str().to_owned(),
        entry.kind.as_str().to_owned(),
        entry
            .address
            .map_or_else(|| "-".to_owned(), |address| address.to_string()),
        entry.count.to_string(),
        event
            .resolved_at
            .map_or_else(|| "unresolved".to_owned(), time),
        entry.message.clone(),
    ]
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{ActivityEntry, window_start};
    use crate::store::{SqliteStore, Store};

    const CONFIG: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n\
        [[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n\
        [store]\npath = \"state.db\"\n";

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    /// The config in `dir` (its store: `dir/state.db`).
    fn config(dir: &tempfile::TempDir) -> Config {
        Config::from_toml(CONFIG, &dir.path().join("config.toml")).unwrap()
    }

    fn entry(app: &str, kind: EventKind, address: Option<&str>, last: &str) -> ActivityEntry {
        ActivityEntry {
            app_id: app.to_owned(),
            kind,
            address: address.map(|text| text.parse().unwrap()),
            message: format!("{} for the test", kind.as_str()),
            window_start: window_start(at(last)),
            first_seen: at(last),
            last_seen: at(last),
            count: 1,
        }
    }

    /// App 1: an auth failure (3 of them) at 10:00, a leaked token at 10:30, a ban at 11:00;
    /// app 2: a leaked token.
    fn recorded(dir: &tempfile::TempDir) {
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let failures = ActivityEntry {
            count: 3,
            ..entry(
                "1",
                EventKind::AuthFailure,
                Some("192.0.2.7"),
                "2026-12-01T10:00:00Z",
            )
        };
        store
            .record_events(&[
                failures,
                entry("1", EventKind::TokenLeaked, None, "2026-12-01T10:30:00Z"),
                entry(
                    "1",
                    EventKind::AddressBanned,
                    Some("2001:db8::1"),
                    "2026-12-01T11:00:00Z",
                ),
                entry("2", EventKind::TokenLeaked, None, "2026-12-01T10:45:00Z"),
            ])
            .unwrap();
    }

    fn request(app: &str) -> EventsRequest<'_> {
        EventsRequest {
            app,
            kind: None,
            severity: None,
            since: None,
            unresolved: false,
            limit: DEFAULT_LIMIT,
        }
    }

    const NOW: &str = "2026-12-01T11:10:00Z";

    #[test]
    fn events_are_a_table_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        recorded(&dir);
        let lines = events(&config(&dir), &request("1"), at(NOW)).unwrap();
        assert_eq!(
            lines,
            [
                "ID  LAST SEEN             SEVERITY  KIND            ADDRESS      COUNT  RESOLVED    MESSAGE",
                "3   2026-12-01T11:00:00Z  warning   address_banned  2001:db8::1  1      unresolved  address_banned for the test",
                "2   2026-12-01T10:30:00Z  critical  token_leaked    -            1      unresolved  token_leaked for the test",
                "1   2026-12-01T10:00:00Z  info      auth_failure    192.0.2.7    3      unresolved  auth_failure for the test",
            ]
        );
    }

    /// The kinds of the rows of `lines` (the fourth column), header left out.
    fn kinds(lines: &[String]) -> Vec<&str> {
        lines
            .iter()
            .skip(1)
            .map(|line| line.split_whitespace().nth(3).unwrap())
            .collect()
    }

    #[test]
    fn events_are_filtered_by_kind_severity_age_resolution_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        recorded(&dir);
        let config = config(&dir);
        let list = |request: EventsRequest<'_>| events(&config, &request, at(NOW)).unwrap();
        let by_kind = list(EventsRequest {
            kind: Some("auth_failure"),
            ..request("1")
        });
        assert_eq!(kinds(&by_kind), ["auth_failure"]);
        let graver = list(EventsRequest {
            severity: Some("warning"),
            ..request("1")
        });
        assert_eq!(kinds(&graver), ["address_banned", "token_leaked"]);
        let recent = list(EventsRequest {
            since: Some("45m"),
            ..request("1")
        });
        assert_eq!(kinds(&recent), ["address_banned", "token_leaked"]);
        let in_seconds = list(EventsRequest {
            since: Some("900"),
            ..request("1")
        });
        assert_eq!(kinds(&in_seconds), ["address_banned"]);
        let newest = list(EventsRequest {
            limit: 1,
            ..request("1")
        });
        assert_eq!(kinds(&newest), ["address_banned"]);
        let other_app = list(request("2"));
        assert_eq!(kinds(&other_app), ["token_leaked"]);
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        store.resolve_events("1", Some(3), at(NOW)).unwrap();
        let unresolved = list(EventsRequest {
            unresolved: true,
            ..request("1")
        });
        assert_eq!(kinds(&unresolved), ["token_leaked", "auth_failure"]);
        let all = list(request("1"));
        assert!(all[1].contains("  2026-12-01T11:10:00Z  "), "{all:?}");
        let none = list(EventsRequest {
            kind: Some("origin_denied"),
            ..request("1")
        });
        assert_eq!(none, ["no security events of app 1 match"]);
    }

    #[test]
    fn bad_filters_and_unknown_apps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        let refused = |request: EventsRequest<'_>| {
            events(&config, &request, at(NOW)).unwrap_err().to_string()
        };
        assert_eq!(
            refused(request("9")),
            "no app with id \"9\" in the configuration"
        );
        let kind = refused(EventsRequest {
            kind: Some("everything"),
            ..request("1")
        });
        assert!(
            kind.starts_with("unknown kind \"everything\"; kinds are: auth_failure, "),
            "{kind}"
        );
        let severity = refused(EventsRequest {
            severity: Some("grave"),
            ..request("1")
        });
        assert_eq!(
            severity,
            "unknown severity \"grave\"; severities are: info, warning, critical"
        );
        let since = refused(EventsRequest {
            since: Some("yesterday"),
            ..request("1")
        });
        assert_eq!(
            since,
            "--since \"yesterday\" is not a duration like 1h, 30m, 7d or 3600"
        );
        for limit in [0, MOST_LIMIT + 1] {
            let error = refused(EventsRequest {
                limit,
                ..request("1")
            });
            assert_eq!(error, format!("--limit {limit} is out of range: 1 to 1000"));
        }
        let unknown = resolve(&config, "9", None, at(NOW)).unwrap_err();
        assert!(matches!(unknown, SecurityCliError::UnknownApp(_)));
    }

    #[test]
    fn resolving_says_how_many_and_whether_the_lockdown_was_lifted() {
        let dir = tempfile::tempdir().unwrap();
        recorded(&dir);
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let hour_ago = at("2026-12-01T10:10:00Z");
        assert!(store.lock_down_if_due("1", hour_ago, 1, at(NOW)).unwrap());
        let config = config(&dir);
        let resolving = |id| resolve(&config, "1", id, at(NOW)).unwrap();
        assert_eq!(resolving(Some(1)), ["resolved event 1 of app 1"]);
        assert_eq!(resolving(Some(1)), ["app 1 has no unresolved event 1"]);
        assert_eq!(
            resolving(Some(4)),
            ["app 1 has no unresolved event 4"],
            "app 2's event"
        );
        assert_eq!(
            resolving(None),
            [
                "resolved 2 events of app 1",
                "app 1 is no longer locked down; running servers pick this up within seconds",
            ]
        );
        assert_eq!(resolving(None), ["app 1 has no unresolved events"]);
        assert!(store.lockdowns().unwrap().is_empty());
    }

    #[test]
    fn without_a_store_file_nothing_is_recorded_and_no_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir);
        let listed = events(&config, &request("1"), at(NOW)).unwrap();
        assert_eq!(
            listed,
            ["no security events are recorded (no state store yet)"]
        );
        let resolved = resolve(&config, "1", None, at(NOW)).unwrap();
        assert_eq!(
            resolved,
            ["nothing to resolve: no security events are recorded (no state store yet)"]
        );
        assert!(!dir.path().join("state.db").exists());
    }
}

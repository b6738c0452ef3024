//! The SQLite store's tests: each opens a file of its own in a temporary folder.
use super::*;

fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("state.db")).unwrap()
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[test]
fn revocations_are_kept_once_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(&dir);
    assert!(first.revoke_token("1", "ci", at(5)).unwrap());
    assert!(
        !first.revoke_token("1", "ci", at(6)).unwrap(),
        "already revoked"
    );
    drop(first);
    let again = store(&dir);
    let revoked = again.revoked_tokens().unwrap();
    assert_eq!(
        revoked,
        vec![RevokedToken {
            app_id: "1".into(),
            name: "ci".into()
        }]
    );
}

#[test]
fn uses_add_up_and_keep_the_latest_time_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let token_use = |count, ms, address: &str| TokenUse {
        app_id: "1".into(),
        name: "ci".into(),
        count,
        last_used: at(ms),
        last_address: address.parse().ok(),
    };
    store
        .record_token_uses(&[token_use(3, 100, "192.0.2.1")])
        .unwrap();
    store
        .record_token_uses(&[token_use(2, 50, "192.0.2.2")])
        .unwrap();
    let uses = store.token_uses("1").unwrap();
    assert_eq!(uses, vec![token_use(5, 100, "192.0.2.1")]);
    assert!(store.token_uses("2").unwrap().is_empty());
}

#[test]
fn two_handles_on_one_file_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&path).unwrap();
                for n in 0..50 {
                    store
                        .revoke_token("1", &format!("t{writer}-{n}"), at(n))
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(
        SqliteStore::open(&path)
            .unwrap()
            .revoked_tokens()
            .unwrap()
            .len(),
        100
    );
}

fn rotation<'a>(based_on: Option<u64>, secret: &'a str, at_ms: u64) -> Rotation<'a> {
    Rotation {
        app_id: "1",
        based_on,
        replaced: ("k", "config-secret"),
        new_key: "k",
        new_secret: secret,
        at: at(at_ms),
        replaced_valid_until: at(at_ms + 1000),
        reason: RotationReason::Scheduled,
    }
}

#[test]
fn rotations_keep_the_replaced_pair_and_refuse_a_stale_base() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    assert_eq!(
        store.rotate(&rotation(None, "s1", 10)).unwrap(),
        Rotated::Done(1)
    );
    assert_eq!(
        store.rotate(&rotation(None, "lost", 20)).unwrap(),
        Rotated::Conflict,
        "based on config.toml's pair, which is no longer current"
    );
    assert_eq!(
        store.rotate(&rotation(Some(1), "s2", 30)).unwrap(),
        Rotated::Done(2)
    );
    let pairs = store.credentials().unwrap();
    let summary: Vec<_> = pairs
        .iter()
        .map(|pair| {
            (
                pair.generation,
                pair.secret.as_str(),
                pair.valid_until,
                pair.reason,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "config-secret", Some(at(1010)), RotationReason::Config),
            (1, "s1", Some(at(1030)), RotationReason::Scheduled),
            (2, "s2", None, RotationReason::Scheduled),
        ]
    );
    assert!(!format!("{pairs:?}").contains("s1"), "Debug hides secrets");
}

#[test]
fn a_schedule_starts_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    assert_eq!(store.rotation_schedule("1").unwrap(), None);
    assert_eq!(store.rotation_schedule_start("1", at(5)).unwrap(), at(5));
    drop(store);
    let again = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(again.rotation_schedule_start("1", at(9)).unwrap(), at(5));
    assert_eq!(again.rotation_schedule("1").unwrap(), Some(at(5)));
}

#[cfg(unix)]
#[test]
fn a_new_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    store(&dir);
    let mode = std::fs::metadata(dir.path().join("state.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn pair_uses_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let pair_use = |count, ms, via: &str| PairUse {
        app_id: "1".into(),
        pair: "generation 1".into(),
        count,
        last_used: at(ms),
        last_address: None,
        last_via: via.into(),
    };
    store
        .record_pair_uses(&[pair_use(2, 100, "sign-in")])
        .unwrap();
    store
        .record_pair_uses(&[pair_use(1, 50, "HTTP API")])
        .unwrap();
    assert_eq!(
        store.pair_uses("1").unwrap(),
        vec![pair_use(3, 100, "sign-in")]
    );
}

#[test]
fn daily_messages_add_up_per_app_and_day_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let daily = |app: &str, day, count| DailyMessages {
        app_id: app.into(),
        day,
        count,
    };
    let first = store(&dir);
    first
        .record_daily_messages(&[daily("1", 20_000, 3), daily("2", 20_000, 7)])
        .unwrap();
    first
        .record_daily_messages(&[daily("1", 20_000, 4), daily("1", 20_001, 1)])
        .unwrap();
    drop(first);
    let again = store(&dir);
    let mut day = again.daily_messages(20_000).unwrap();
    day.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    assert_eq!(day, vec![daily("1", 20_000, 7), daily("2", 20_000, 7)]);
    assert_eq!(
        again.daily_messages(20_001).unwrap(),
        vec![daily("1", 20_001, 1)]
    );
    assert!(again.daily_messages(19_999).unwrap().is_empty());
}

//! The SQLite store's tests: each opens a file of its own in a temporary folder. The
//! contract every store keeps runs here on a file; what follows is the file's own: what
//! survives reopening it, two processes writing at once, its permissions.
use super::*;
use crate::activity::EventKind;
use crate::store::contract::{TestStore, activity, store_contract_tests};

store_contract_tests!({
    let dir = tempfile::tempdir().unwrap();
    TestStore::new(store(&dir), dir)
});

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

#[test]
fn a_schedule_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        store(&dir).rotation_schedule_start("1", at(5)).unwrap(),
        at(5)
    );
    let again = store(&dir);
    assert_eq!(again.rotation_schedule_start("1", at(9)).unwrap(), at(5));
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

#[test]
fn a_lockdown_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(&dir);
    first
        .record_events(&[activity::entry(
            "1",
            EventKind::TokenLeaked,
            None,
            (100, 100),
            1,
        )])
        .unwrap();
    assert!(
        first
            .lock_down_if_due("1", activity::second(0), 1, activity::second(200))
            .unwrap()
    );
    drop(first);
    let again = store(&dir);
    assert_eq!(
        again.lockdowns().unwrap(),
        [Lockdown {
            app_id: "1".into(),
            since: activity::second(200)
        }]
    );
    assert!(
        !again
            .lock_down_if_due("1", activity::second(0), 1, activity::second(300))
            .unwrap()
    );
    assert_eq!(
        again
            .resolve_events("1", None, activity::second(400))
            .unwrap(),
        Resolved {
            events: 1,
            lockdown_lifted: true
        }
    );
    drop(again);
    assert!(store(&dir).lockdowns().unwrap().is_empty());
}

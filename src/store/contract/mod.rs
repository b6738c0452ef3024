//! What every [`Store`] must do, written once and run against each implementation by
//! [`store_contract_tests!`]: the SQLite file (`sqlite/tests.rs`) and a private
//! redis-server (`redis/tests.rs`). What only one of them has (reopening a file, its
//! permissions) is tested beside it.

pub mod activity;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    DailyMessages, JournaledBatch, PairUse, RevokedToken, Rotated, Rotation, RotationReason, Store,
    StoredBan, TokenUse,
};

/// A `#[test]` for each contract test, on a fresh store from `$open` (an expression whose
/// value is a [`TestStore`]).
macro_rules! store_contract_tests {
    ($open:expr) => {
        $crate::store::contract::store_contract_tests!(@in $crate::store::contract; open_for_contract();
            revocations_are_kept_once,
            uses_add_up_and_keep_the_latest_time_and_address,
            rotations_keep_the_replaced_pair_and_refuse_a_stale_base,
            a_schedule_starts_once,
            pair_uses_add_up,
            daily_messages_add_up_per_app_and_day,
            bans_keep_the_later_end_and_end,
            a_dead_owners_webhooks_are_claimed_once);
        mod activity_contract {
            $crate::store::contract::store_contract_tests!(
                @in $crate::store::contract::activity; super::open_for_contract();
                repeats_in_one_window_add_up_into_one_row_across_record_calls,
                another_window_or_another_address_is_a_new_row,
                an_entry_without_an_address_is_kept_and_folds_like_any_other,
                queries_return_the_app_s_events_newest_first,
                queries_filter_by_kind_severity_time_and_resolution,
                pruning_keeps_the_bound_and_drops_info_rows_first,
                pruning_drops_unresolved_critical_rows_last_but_still_keeps_the_bound,
                a_repeat_after_a_resolution_reopens_its_row,
                resolving_one_event_lifts_the_lockdown_only_with_the_last_critical_one,
                resolving_all_counts_the_unresolved_events_and_lifts_the_lockdown,
                a_lockdown_comes_at_the_threshold_once,
                old_or_resolved_critical_events_do_not_count_toward_a_lockdown,
                a_lockdown_counts_distinct_events_not_repeats);
        }
        fn open_for_contract() -> $crate::store::contract::TestStore {
            $open
        }
    };
    (@in $module:path; $open:expr; $($name:ident),+) => {
        $(
            #[test]
            fn $name() {
                use $module as tests;
                let store = $open;
                tests::$name(&*store);
            }
        )+
    };
}
pub(crate) use store_contract_tests;

/// A store for one test, with what must outlive it (a temporary folder, a redis-server),
/// dropped after it.
pub struct TestStore {
    store: Box<dyn Store>,
    _keep: Box<dyn std::any::Any>,
}

impl TestStore {
    /// `store`, keeping `keep` until it is dropped.
    pub fn new(store: impl Store + 'static, keep: impl std::any::Any) -> Self {
        TestStore {
            store: Box::new(store),
            _keep: Box::new(keep),
        }
    }
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

pub fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn revocations_are_kept_once(store: &dyn Store) {
    assert!(store.revoke_token("1", "ci", at(5)).unwrap());
    assert!(
        !store.revoke_token("1", "ci", at(6)).unwrap(),
        "already revoked"
    );
    assert!(
        store.revoke_token("2", "ci", at(7)).unwrap(),
        "another app's token"
    );
    let mut revoked = store.revoked_tokens().unwrap();
    revoked.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    let token = |app: &str| RevokedToken {
        app_id: app.into(),
        name: "ci".into(),
    };
    assert_eq!(revoked, vec![token("1"), token("2")]);
}

pub fn a_schedule_starts_once(store: &dyn Store) {
    assert_eq!(store.rotation_schedule("1").unwrap(), None);
    assert_eq!(store.rotation_schedule_start("1", at(5)).unwrap(), at(5));
    assert_eq!(store.rotation_schedule_start("1", at(9)).unwrap(), at(5));
    assert_eq!(store.rotation_schedule("1").unwrap(), Some(at(5)));
    assert_eq!(store.rotation_schedule("2").unwrap(), None);
}

pub fn daily_messages_add_up_per_app_and_day(store: &dyn Store) {
    let daily = |app: &str, day, count| DailyMessages {
        app_id: app.into(),
        day,
        count,
    };
    store
        .record_daily_messages(&[daily("1", 20_000, 3), daily("2", 20_000, 7)])
        .unwrap();
    store
        .record_daily_messages(&[daily("1", 20_000, 4), daily("1", 20_001, 1)])
        .unwrap();
    let mut day = store.daily_messages(20_000).unwrap();
    day.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    assert_eq!(day, vec![daily("1", 20_000, 7), daily("2", 20_000, 7)]);
    assert_eq!(
        store.daily_messages(20_001).unwrap(),
        vec![daily("1", 20_001, 1)]
    );
    assert!(store.daily_messages(19_999).unwrap().is_empty());
}

pub fn uses_add_up_and_keep_the_latest_time_and_address(store: &dyn Store) {
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

pub fn rotations_keep_the_replaced_pair_and_refuse_a_stale_base(store: &dyn Store) {
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

pub fn pair_uses_add_up(store: &dyn Store) {
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

pub fn bans_keep_the_later_end_and_end(store: &dyn Store) {
    let ban = |app: &str, address: &str, until| StoredBan {
        app_id: app.into(),
        address: address.parse().unwrap(),
        until,
    };
    // Ends far from the real clock, since recording drops the bans over by it; whole
    // milliseconds, as the stores keep them.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let soon = at(now_ms) + Duration::from_secs(600);
    let later = soon + Duration::from_secs(600);
    store
        .record_bans(&[ban("1", "192.0.2.1", later), ban("2", "2001:db8::", soon)])
        .unwrap();
    store.record_bans(&[ban("1", "192.0.2.1", soon)]).unwrap();
    let mut found = store.bans(soon - Duration::from_secs(1)).unwrap();
    found.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    assert_eq!(
        found,
        [ban("1", "192.0.2.1", later), ban("2", "2001:db8::", soon)],
        "the later end kept"
    );
    assert_eq!(store.bans(soon).unwrap(), [ban("1", "192.0.2.1", later)]);
    assert!(store.bans(later).unwrap().is_empty());
    let over = SystemTime::now() - Duration::from_secs(1);
    store.record_bans(&[ban("3", "192.0.2.3", over)]).unwrap();
    let all = store.bans(UNIX_EPOCH).unwrap();
    assert!(all.iter().all(|b| b.app_id != "3"), "over: dropped");
}

pub fn a_dead_owners_webhooks_are_claimed_once(store: &dyn Store) {
    let batch = |id: &str| JournaledBatch {
        app_id: "1".into(),
        endpoint: 0,
        id: id.into(),
        events: vec![format!("{{\"name\":\"{id}\"}}")],
        channels: vec!["news".into()],
        accepted_ms: 1_796_000_000_000,
    };
    let live = Duration::from_secs(60);
    assert!(store.claim_webhooks("a", live).unwrap().is_empty());
    store.keep_webhooks("a", &[batch("1"), batch("2")]).unwrap();
    store.forget_webhooks("a", &["1".into()]).unwrap();
    assert!(
        store.claim_webhooks("b", live).unwrap().is_empty(),
        "a's lease is live"
    );
    // a's lease runs out: it renews it with one already over when the claim below comes.
    store.claim_webhooks("a", Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(store.claim_webhooks("b", live).unwrap(), [batch("2")]);
    assert!(
        store.claim_webhooks("c", live).unwrap().is_empty(),
        "claimed once: b's now, under b's live lease"
    );
    store.forget_webhooks("b", &["2".into()]).unwrap();
    store.claim_webhooks("b", Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert!(
        store.claim_webhooks("c", live).unwrap().is_empty(),
        "delivered: gone"
    );
}

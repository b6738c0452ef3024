//! `daily_messages`: an app's quota of messages delivered per UTC day, as Pusher's plans have.
//! A message counts once for each subscriber it is delivered to (a publish to nobody counts
//! nothing), and the count starts again from 0 at 00:00 UTC.
//!
//! The check comes before a publish ([`DailyQuota::check`]): a publish admitted while the
//! count is under the quota is delivered in full, even if that takes the count past the
//! quota, and the publishes after it are refused until midnight. The hub adds each publish's
//! local recipients with one atomic add ([`DailyQuota::count`]); apps without the quota have
//! nothing to add to. The day and its count share one `AtomicU64`, so an add need not know
//! the day: the first check or sync after midnight starts the new day with a compare-and-swap
//! (a publish admitted just before midnight may be counted on the new day).
//!
//! The count outlives a restart: each sync takes what was counted since the last one, per day
//! ([`DailyQuota::take_unflushed`]), for the store to add to its rows, and gives it back when
//! the store fails; at start-up the store's count of today is loaded ([`DailyQuota::load`]).
//! Every method takes the time, so tests cross midnight without waiting. Each node counts its
//! own deliveries: nodes sharing a store add up there, but read each other's counts only at
//! start-up.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{LimitScope, Limited, whole_seconds};
use crate::store::DailyMessages;

/// Seconds in a UTC day (UTC days have no leap seconds in Unix time).
const DAY_SECONDS: u64 = 86_400;

/// Bits of the shared word that hold the count; the day is above them. 2^40 messages in a day
/// is far beyond any quota (a `u32`), so adds never spill into the day.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The UTC day of `now`: days since 1970-01-01.
pub fn utc_day(now: SystemTime) -> u64 {
    since_epoch(now).as_secs() / DAY_SECONDS
}

/// Whole seconds from `now` to the next 00:00 UTC (1 to 86,400).
fn seconds_until_midnight(now: SystemTime) -> u64 {
    let since = since_epoch(now);
    let next = Duration::from_secs((utc_day(now) + 1) * DAY_SECONDS);
    whole_seconds(next - since)
}

fn since_epoch(now: SystemTime) -> Duration {
    now.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Messages delivered on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// Days since 1970-01-01.
    pub day: u64,
    /// Messages delivered.
    pub count: u64,
}

/// One app's quota and its count of messages delivered today.
#[derive(Debug)]
pub struct DailyQuota {
    /// The limit (never 0; a reload may change it).
    per_day: AtomicU32,
    /// The day counted (above [`COUNT_BITS`]) and its messages delivered so far.
    today: AtomicU64,
    /// What the store has been told; only the sync and the start of a day change it, and a
    /// day starts only under this lock.
    flush: Mutex<Flush>,
}

#[derive(Debug, Default)]
struct Flush {
    /// How much of today's count the store already has.
    stored: u64,
    /// Counts the store is owed: the rest of days that ended, and what a failed sync gave back.
    owed: Vec<DayCount>,
}

fn pack(day: u64, count: u64) -> u64 {
    (day << COUNT_BITS) | (count & COUNT_MASK)
}

fn unpack(word: u64) -> DayCount {
    DayCount {
        day: word >> COUNT_BITS,
        count: word & COUNT_MASK,
    }
}

impl DailyQuota {
    /// At most `per_day` messages delivered per UTC day, none counted yet on the day of `now`.
    pub fn new(per_day: NonZeroU32, now: SystemTime) -> Self {
        DailyQuota {
            per_day: AtomicU32::new(per_day.get()),
            today: AtomicU64::new(pack(utc_day(now), 0)),
            flush: Mutex::default(),
        }
    }

    /// Makes the limit `per_day` from now on (a reload); today's count stays.
    pub fn set_per_day(&self, per_day: NonZeroU32) {
        self.per_day.store(per_day.get(), Ordering::Relaxed);
    }

    /// Counts `delivered` messages (one publish's local recipients): one atomic add, none for
    /// a publish that reached nobody.
    pub fn count(&self, delivered: usize) {
        if delivered > 0 {
            self.today.fetch_add(delivered as u64, Ordering::Relaxed);
        }
    }

    /// Admits a publish at `now` unless today's count has reached the quota; the refusal says
    /// how long until midnight UTC.
    pub fn check(&self, now: SystemTime) -> Result<(), Limited> {
        let per_day = self.per_day.load(Ordering::Relaxed);
        if self.delivered_on(utc_day(now)) < u64::from(per_day) {
            return Ok(());
        }
        Err(Limited {
            scope: LimitScope::Daily,
            quota: per_day,
            retry_after: seconds_until_midnight(now),
        })
    }

    /// The count of `day`, starting that day if the word still counts an earlier one.
    fn delivered_on(&self, day: u64) -> u64 {
        let counted = unpack(self.today.load(Ordering::Acquire));
        // A clock stepped back across midnight keeps counting the later day.
        if counted.day >= day {
            return counted.count;
        }
        let mut flush = self.lock();
        self.start_day(day, &mut flush);
        unpack(self.today.load(Ordering::Acquire)).count
    }

    /// Moves the word on to `day` at 0, owing the store the rest of the day that ended.
    fn start_day(&self, day: u64, flush: &mut Flush) {
        let mut word = self.today.load(Ordering::Acquire);
        loop {
            let ended = unpack(word);
            if ended.day >= day {
                return;
            }
            match self.today.compare_exchange_weak(
                word,
                pack(day, 0),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let unflushed = ended.count.saturating_sub(flush.stored);
                    if unflushed > 0 {
                        flush.owed.push(DayCount {
                            day: ended.day,
                            count: unflushed,
                        });
                    }
                    flush.stored = 0;
                    return;
                }
                // An add (or another day's start) came between: look again.
                Err(current) => word = current,
            }
        }
    }

    /// What the store has not been told yet, per day, as of `now`; from here on it counts as
    /// told (see [`give_back`](Self::give_back)).
    pub fn take_unflushed(&self, now: SystemTime) -> Vec<DayCount> {
        let mut flush = self.lock();
        self.start_day(utc_day(now), &mut flush);
        let today = unpack(self.today.load(Ordering::Acquire));
        let mut counts = std::mem::take(&mut flush.owed);
        let unflushed = today.count.saturating_sub(flush.stored);
        flush.stored = today.count;
        if unflushed > 0 {
            counts.push(DayCount {
                day: today.day,
                count: unflushed,
            });
        }
        counts
    }

    /// Owes the store `counts` again (taken, but the store could not record them).
    pub fn give_back(&self, counts: impl IntoIterator<Item = DayCount>) {
        self.lock().owed.extend(counts);
    }

    /// Brings today's count up to `stored`, the store's count of a day, when that day is today
    /// at `now` (an earlier day's count is spent): what the store holds beyond what this
    /// process flushed there (the count before a restart, other nodes' deliveries) is added,
    /// and not flushed again. Reading the same count twice adds nothing.
    pub fn load(&self, stored: DayCount, now: SystemTime) {
        let day = utc_day(now);
        if stored.day != day {
            return;
        }
        let mut flush = self.lock();
        self.start_day(day, &mut flush);
        if unpack(self.today.load(Ordering::Acquire)).day != day {
            return;
        }
        // Any count from u32::MAX up has reached every quota; the cap keeps the day's bits.
        let count = stored.count.min(u64::from(u32::MAX));
        let beyond = count.saturating_sub(flush.stored);
        self.today.fetch_add(beyond, Ordering::AcqRel);
        flush.stored += beyond;
    }

    fn lock(&self) -> MutexGuard<'_, Flush> {
        // The flush state is two plain values, valid whatever a panicking holder did.
        self.flush
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every app's daily quota, by app id: what the hub counts into and the sync flushes. An
/// app's quota, once made, stays for the process's life (a reload changes its limit, never
/// its count).
#[derive(Debug, Default)]
pub struct DailyQuotas {
    apps: RwLock<HashMap<String, Arc<DailyQuota>>>,
}

impl DailyQuotas {
    /// Adds `app_id`'s quota (or puts it back).
    pub fn insert(&self, app_id: &str, quota: Arc<DailyQuota>) {
        self.write().insert(app_id.to_owned(), quota);
    }

    /// `app_id`'s quota, if it has had one.
    pub fn get(&self, app_id: &str) -> Option<Arc<DailyQuota>> {
        self.read().get(app_id).cloned()
    }

    /// The quotas by app id (the hub's copy).
    pub fn by_app(&self) -> HashMap<String, Arc<DailyQuota>> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<DailyQuota>>> {
        self.apps
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<DailyQuota>>> {
        self.apps
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// What every app counted since the last call, per day, for the store to add.
    pub fn take_unflushed(&self, now: SystemTime) -> Vec<DailyMessages> {
        self.read()
            .iter()
            .flat_map(|(app_id, quota)| {
                quota
                    .take_unflushed(now)
                    .into_iter()
                    .map(|counted| DailyMessages {
                        app_id: app_id.clone(),
                        day: counted.day,
                        count: counted.count,
                    })
            })
            .collect()
    }

    /// Gives back what [`take_unflushed`](Self::take_unflushed) took when the store could not
    /// record it.
    pub fn give_back(&self, counts: Vec<DailyMessages>) {
        for counted in counts {
            if let Some(quota) = self.get(&counted.app_id) {
                quota.give_back([DayCount {
                    day: counted.day,
                    count: counted.count,
                }]);
            }
        }
    }

    /// Loads the store's counts (of apps that still have a quota) into today's, at `now`.
    pub fn load(&self, stored: &[DailyMessages], now: SystemTime) {
        for counted in stored {
            if let Some(quota) = self.get(&counted.app_id) {
                let day = DayCount {
                    day: counted.day,
                    count: counted.count,
                };
                quota.load(day, now);
            }
        }
    }

    /// Whether no app has a daily quota.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` into UTC day `day`.
    fn at(day: u64, seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(day * DAY_SECONDS + seconds)
    }

    const DAY: u64 = 20_454;

    /// A quota made on `DAY`.
    fn quota(per_day: u32) -> DailyQuota {
        DailyQuota::new(NonZeroU32::new(per_day).unwrap(), at(DAY, 0))
    }

    #[test]
    fn a_publish_is_admitted_until_the_count_reaches_the_quota() {
        let quota = quota(5);
        let noon = at(DAY, 12 * 3600);
        assert_eq!(quota.check(noon), Ok(()));
        quota.count(0);
        quota.count(4);
        assert_eq!(quota.check(noon), Ok(()), "4 of 5");
        quota.count(4);
        let refused = quota.check(noon).unwrap_err();
        assert_eq!(
            refused,
            Limited {
                scope: LimitScope::Daily,
                quota: 5,
                retry_after: 12 * 3600,
            }
        );
        assert_eq!(
            refused.to_string(),
            "quota exceeded (daily messages): 5 messages per day"
        );
    }

    #[test]
    fn the_count_starts_from_zero_at_midnight_utc() {
        let quota = quota(3);
        quota.count(3);
        let last_second = at(DAY, DAY_SECONDS - 1) + Duration::from_millis(500);
        assert_eq!(quota.check(last_second).unwrap_err().retry_after, 1);
        assert_eq!(quota.check(at(DAY + 1, 0)), Ok(()), "a new day");
        quota.count(2);
        assert_eq!(quota.check(at(DAY + 1, 1)), Ok(()), "2 of 3 today");
        quota.count(1);
        let refused = quota.check(at(DAY + 1, 1)).unwrap_err();
        assert_eq!(refused.retry_after, DAY_SECONDS - 1);
    }

    #[test]
    fn retry_after_is_whole_seconds_until_midnight() {
        assert_eq!(seconds_until_midnight(at(DAY, 0)), DAY_SECONDS);
        let just_after = at(DAY, 0) + Duration::from_millis(1);
        assert_eq!(seconds_until_midnight(just_after), DAY_SECONDS);
        assert_eq!(seconds_until_midnight(at(DAY, DAY_SECONDS - 1)), 1);
        assert_eq!(utc_day(at(DAY, DAY_SECONDS - 1)), DAY);
        assert_eq!(utc_day(at(DAY + 1, 0)), DAY + 1);
    }

    #[test]
    fn a_clock_stepped_back_across_midnight_keeps_the_later_day() {
        let quota = quota(2);
        quota.check(at(DAY + 1, 5)).unwrap();
        quota.count(2);
        assert!(quota.check(at(DAY, DAY_SECONDS - 1)).is_err());
    }

    #[test]
    fn each_sync_takes_only_what_was_counted_since_the_last() {
        let quota = quota(100);
        let morning = at(DAY, 3600);
        quota.count(3);
        quota.count(4);
        let first = quota.take_unflushed(morning);
        assert_eq!(first, [DayCount { day: DAY, count: 7 }]);
        assert!(quota.take_unflushed(morning).is_empty(), "nothing new");
        quota.count(2);
        assert_eq!(
            quota.take_unflushed(morning),
            [DayCount { day: DAY, count: 2 }]
        );
    }

    #[test]
    fn the_rest_of_a_day_that_ended_is_still_flushed_to_that_day() {
        let quota = quota(100);
        quota.count(5);
        quota.take_unflushed(at(DAY, 20));
        quota.count(3);
        quota.check(at(DAY + 1, 1)).unwrap();
        quota.count(1);
        assert_eq!(
            quota.take_unflushed(at(DAY + 1, 2)),
            [
                DayCount { day: DAY, count: 3 },
                DayCount {
                    day: DAY + 1,
                    count: 1
                }
            ]
        );
    }

    #[test]
    fn a_failed_sync_gives_its_counts_back_for_the_next() {
        let quota = quota(100);
        quota.count(6);
        let taken = quota.take_unflushed(at(DAY, 10));
        quota.give_back(taken);
        quota.count(1);
        let again = quota.take_unflushed(at(DAY, 12));
        let total: u64 = again.iter().map(|counted| counted.count).sum();
        assert_eq!(total, 7);
        assert!(again.iter().all(|counted| counted.day == DAY));
    }

    #[test]
    fn todays_stored_count_is_added_on_load_and_not_flushed_again() {
        let quota = quota(10);
        let now = at(DAY, 600);
        quota.load(DayCount { day: DAY, count: 8 }, now);
        assert_eq!(quota.check(now), Ok(()), "8 of 10");
        quota.count(2);
        assert!(quota.check(now).is_err(), "8 stored + 2 here");
        assert_eq!(
            quota.take_unflushed(now),
            [DayCount { day: DAY, count: 2 }],
            "the store has the 8 already"
        );
    }

    #[test]
    fn loading_the_store_again_adds_only_what_others_delivered() {
        let quota = quota(100);
        let now = at(DAY, 600);
        quota.count(5);
        let flushed = quota.take_unflushed(now);
        assert_eq!(flushed, [DayCount { day: DAY, count: 5 }]);
        quota.count(1);
        // The store holds this node's 5 and another node's 20.
        quota.load(
            DayCount {
                day: DAY,
                count: 25,
            },
            now,
        );
        quota.load(
            DayCount {
                day: DAY,
                count: 25,
            },
            now,
        );
        assert_eq!(quota.delivered_on(DAY), 26, "25 stored, 1 not yet flushed");
        assert_eq!(
            quota.take_unflushed(now),
            [DayCount { day: DAY, count: 1 }],
            "only this node's new delivery is flushed"
        );
    }

    #[test]
    fn an_earlier_days_stored_count_is_not_loaded() {
        let quota = quota(10);
        quota.load(
            DayCount {
                day: DAY - 1,
                count: 50,
            },
            at(DAY, 5),
        );
        assert_eq!(quota.check(at(DAY, 5)), Ok(()));
        assert!(quota.take_unflushed(at(DAY, 5)).is_empty());
    }

    #[test]
    fn racing_counts_all_land() {
        let quota = Arc::new(quota(u32::MAX));
        let now = at(DAY, 1);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let quota = &quota;
                scope.spawn(move || (0..1000).for_each(|_| quota.count(3)));
            }
        });
        assert_eq!(
            quota.take_unflushed(now),
            [DayCount {
                day: DAY,
                count: 12_000
            }]
        );
    }

    #[test]
    fn quotas_by_app_name_their_app_in_what_the_store_is_given() {
        let quotas = DailyQuotas::default();
        let one = Arc::new(quota(10));
        quotas.insert("1", one.clone());
        quotas.insert("2", Arc::new(quota(10)));
        let now = at(DAY, 9);
        quotas.load(
            &[DailyMessages {
                app_id: "2".into(),
                day: DAY,
                count: 10,
            }],
            now,
        );
        one.count(4);
        let taken = quotas.take_unflushed(now);
        assert_eq!(
            taken,
            [DailyMessages {
                app_id: "1".into(),
                day: DAY,
                count: 4
            }]
        );
        quotas.give_back(taken.clone());
        assert_eq!(quotas.take_unflushed(now), taken);
        assert!(
            quotas.get("2").unwrap().check(now).is_err(),
            "2 loaded its 10"
        );
    }
}

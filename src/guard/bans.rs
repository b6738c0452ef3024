//! Brute-force bans (`ban_after_failures` in `[apps.security]`), fail2ban-style: an app counts
//! authentication failures per client address (IPv6 by its /64) in a window from the first;
//! at the threshold the address is banned from the app, first for `ban_time`, each further
//! ban twice as long as the one before, at most `ban_max_time`. An address that stays clean
//! for `ban_max_time` after its last ban starts over. A pure state machine: every call takes
//! `now`, so tests move time instead of sleeping.
//!
//! Addresses in the app's `ip_allowlist` or among its trusted proxies are never banned (the
//! guard does not ask); an unknown address is never counted. The map is bounded by
//! [`MOST_TRACKED_ADDRESSES`]: when it is full, addresses that no longer matter (neither
//! banned, counting, nor remembered for the next ban's length) are forgotten, in one sweep at
//! most every [`SWEEP_INTERVAL`] (so a flood of new addresses does not make every failure
//! scan the map under its lock); if that is not enough, an address that is counting but not
//! banned is forgotten to make room, so a new address is always counted and a full table
//! never stops the bans.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limits::{ClientKey, MOST_TRACKED_ADDRESSES};

/// Least time between two sweeps of a full map.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How an app bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanRule {
    /// Failures that ban.
    pub after_failures: u32,
    /// Within this long from the first.
    pub window: Duration,
    /// The first ban's length.
    pub first_ban: Duration,
    /// The longest ban.
    pub longest_ban: Duration,
}

/// An address is banned from the app; its message is safe to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Address banned after repeated authentication failures; retry in {retry_after} s")]
pub struct Banned {
    /// Whole seconds until the ban ends (at least 1).
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
    /// Bans so far (the next is `first_ban * 2^bans`).
    bans: u32,
}

/// One app's failure counts and bans.
#[derive(Debug)]
pub struct Bans {
    /// A reload may change it; the records stay.
    rule: std::sync::RwLock<BanRule>,
    records: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    by_client: HashMap<ClientKey, Record>,
    last_sweep: Option<Instant>,
    /// Bans made here and not yet taken for the state store (so other nodes adopt them),
    /// at most [`MOST_TRACKED_ADDRESSES`]: past that a ban holds here only.
    made: Vec<(ClientKey, Instant)>,
}

impl Bans {
    /// No failures yet.
    pub fn new(rule: BanRule) -> Self {
        Bans {
            rule: std::sync::RwLock::new(rule),
            records: Mutex::new(Records::default()),
        }
    }

    /// The rule these records follow.
    pub fn rule(&self) -> BanRule {
        *self
            .rule
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Follows `rule` from now on (a reload); the failures counted and the bans made stay.
    pub fn set_rule(&self, rule: BanRule) {
        *self
            .rule
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = rule;
    }

    /// Whether `client` is banned at `now`.
    pub fn check(&self, client: ClientKey, now: Instant) -> Result<(), Banned> {
        let records = self.lock();
        match records
            .by_client
            .get(&client)
            .and_then(|record| record.banned_until)
        {
            Some(until) if until > now => Err(Banned {
                retry_after: whole_seconds(until - now),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `client` at `now`; the ban's length if this one bans it.
    pub fn failed(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        let rule = self.rule();
        let mut records = self.lock();
        let record = records.record_of(client, &rule, now);
        if record.banned_until.is_some_and(|until| until > now) {
            return None;
        }
        if let Some(until) = record.banned_until
            && now.duration_since(until) >= rule.longest_ban
        {
            record.bans = 0;
        }
        if now.duration_since(record.window_start) >= rule.window {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures += 1;
        if record.failures < rule.after_failures {
            return None;
        }
        let length = rule
            .first_ban
            .saturating_mul(2u32.saturating_pow(record.bans.min(31)))
            .min(rule.longest_ban);
        record.banned_until = Some(now + length);
        record.bans += 1;
        record.failures = 0;
        record.window_start = now;
        if records.made.len() < MOST_TRACKED_ADDRESSES {
            records.made.push((client, now + length));
        }
        Some(length)
    }

    /// The bans made here since the last call: each client and when its ban ends.
    pub fn take_made(&self) -> Vec<(ClientKey, Instant)> {
        std::mem::take(&mut self.lock().made)
    }

    /// Puts back a ban [`Self::take_made`] gave (the store could not take it), within the
    /// same bound.
    pub fn give_back(&self, client: ClientKey, until: Instant) {
        let mut records = self.lock();
        if records.made.len() < MOST_TRACKED_ADDRESSES {
            records.made.push((client, until));
        }
    }

    /// Bans `client` until `until`, a ban another node made (from the state store), unless
    /// it is banned longer already. The next ban here is at least twice as long.
    pub fn adopt(&self, client: ClientKey, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        let rule = self.rule();
        let mut records = self.lock();
        let record = records.record_of(client, &rule, now);
        if record.banned_until.is_none_or(|banned| banned < until) {
            record.banned_until = Some(until);
            record.bans = record.bans.max(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Records {
    /// `client`'s record, a fresh one (room made for it) if it has none.
    fn record_of(&mut self, client: ClientKey, rule: &BanRule, now: Instant) -> &mut Record {
        if !self.by_client.contains_key(&client) {
            self.make_room(rule, now);
        }
        self.by_client.entry(client).or_insert(Record {
            failures: 0,
            window_start: now,
            banned_until: None,
            bans: 0,
        })
    }

    /// Room for one more address, when the map is full.
    fn make_room(&mut self, rule: &BanRule, now: Instant) {
        if self.by_client.len() < MOST_TRACKED_ADDRESSES {
            return;
        }
        let swept_lately = self
            .last_sweep
            .is_some_and(|last| now.duration_since(last) < SWEEP_INTERVAL);
        if !swept_lately {
            self.last_sweep = Some(now);
            self.by_client.retain(|_, record| record.matters(rule, now));
        }
        if self.by_client.len() >= MOST_TRACKED_ADDRESSES {
            let counting = self
                .by_client
                .iter()
                .find(|(_, record)| record.banned_until.is_none_or(|until| until <= now))
                .map(|(client, _)| *client);
            if let Some(client) = counting {
                self.by_client.remove(&client);
            }
        }
    }
}

impl Record {
    /// Whether forgetting it would change anything: banned, counting, or remembered for the
    /// next ban's growth.
    fn matters(&self, rule: &BanRule, now: Instant) -> bool {
        let counting = self.failures > 0 && now.duration_since(self.window_start) < rule.window;
        let remembered = self
            .banned_until
            .is_some_and(|until| until > now || now.duration_since(until) < rule.longest_ban);
        counting || remembered
    }
}

/// Whole seconds in `duration`, rounded up, at least 1.
fn whole_seconds(duration: Duration) -> u64 {
    (duration.as_secs() + u64::from(duration.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn bans() -> Bans {
        Bans::new(BanRule {
            after_failures: 5,
            window: 10 * MINUTE,
            first_ban: 10 * MINUTE,
            longest_ban: 60 * MINUTE,
        })
    }

    fn client(text: &str) -> ClientKey {
        ClientKey::of(text.parse().unwrap())
    }

    #[test]
    fn five_failures_in_the_window_ban_for_ten_minutes() {
        let (bans, start, who) = (bans(), Instant::now(), client("192.0.2.1"));
        for n in 0..4 {
            assert_eq!(bans.failed(who, start + Duration::from_secs(n)), None);
            assert!(bans.check(who, start).is_ok());
        }
        let at = start + Duration::from_secs(4);
        assert_eq!(bans.failed(who, at), Some(10 * MINUTE));
        assert_eq!(
            bans.check(who, at),
            Err(Banned { retry_after: 600 }),
            "whole seconds left"
        );
        assert!(bans.check(client("192.0.2.2"), at).is_ok(), "per address");
        assert!(bans.check(who, at + 10 * MINUTE).is_ok(), "the ban expires");
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_ban() {
        let (bans, start, who) = (bans(), Instant::now(), client("192.0.2.1"));
        for n in 0..20 {
            assert_eq!(
                bans.failed(who, start + n * 3 * MINUTE),
                None,
                "failure {n}"
            );
        }
    }

    #[test]
    fn bans_double_up_to_the_longest_and_reset_after_a_clean_spell() {
        let (bans, who) = (bans(), client("2001:db8::1"));
        let mut now = Instant::now();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let mut banned = None;
            for _ in 0..5 {
                banned = bans.failed(who, now);
            }
            let length = banned.expect("the fifth failure bans");
            lengths.push(length.as_secs() / 60);
            now += length;
        }
        assert_eq!(lengths, [10, 20, 40, 60]);
        now += 60 * MINUTE;
        let mut banned = None;
        for _ in 0..5 {
            banned = bans.failed(who, now);
        }
        assert_eq!(banned, Some(10 * MINUTE), "a clean hour starts over");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let (bans, now) = (bans(), Instant::now());
        for n in 1..=5 {
            bans.failed(client(&format!("2001:db8:0:1::{n}")), now);
        }
        assert!(bans.check(client("2001:db8:0:1::99"), now).is_err());
        assert!(bans.check(client("2001:db8:0:2::1"), now).is_ok());
    }

    #[test]
    fn failures_while_banned_do_not_extend_the_ban() {
        let (bans, now, who) = (bans(), Instant::now(), client("192.0.2.1"));
        for _ in 0..5 {
            bans.failed(who, now);
        }
        for _ in 0..50 {
            assert_eq!(bans.failed(who, now + MINUTE), None);
        }
        assert!(bans.check(who, now + 10 * MINUTE).is_ok());
    }

    #[test]
    fn the_map_stays_bounded() {
        let (bans, now) = (bans(), Instant::now());
        for n in 0..(MOST_TRACKED_ADDRESSES as u32 + 10) {
            bans.failed(ClientKey::of(std::net::Ipv4Addr::from(n).into()), now);
        }
        assert_eq!(bans.lock().by_client.len(), MOST_TRACKED_ADDRESSES);
        let later = now + 11 * MINUTE;
        let fresh = ClientKey::of("198.51.100.1".parse().unwrap());
        bans.failed(fresh, later);
        assert_eq!(
            bans.lock().by_client.len(),
            1,
            "stale counts were forgotten"
        );
    }

    #[test]
    fn a_full_map_of_counting_addresses_still_bans_a_new_one() {
        let (bans, now) = (bans(), Instant::now());
        for n in 0..MOST_TRACKED_ADDRESSES as u32 {
            bans.failed(ClientKey::of(std::net::Ipv4Addr::from(n).into()), now);
        }
        let guesser = ClientKey::of("198.51.100.1".parse().unwrap());
        let mut banned = None;
        for n in 0..5 {
            banned = bans.failed(guesser, now + Duration::from_secs(n));
        }
        assert_eq!(
            banned,
            Some(10 * MINUTE),
            "counted although every place was taken"
        );
        assert!(bans.check(guesser, now + MINUTE).is_err());
        assert!(bans.lock().by_client.len() <= MOST_TRACKED_ADDRESSES);
    }

    #[test]
    fn bans_made_here_are_taken_once_and_adopted_bans_hold_without_being_retaken() {
        let (bans, start, who) = (bans(), Instant::now(), client("192.0.2.1"));
        for n in 0..5 {
            bans.failed(who, start + Duration::from_secs(n));
        }
        let made = bans.take_made();
        assert_eq!(made, [(who, start + Duration::from_secs(4) + 10 * MINUTE)]);
        assert!(bans.take_made().is_empty(), "taken once");
        bans.give_back(made[0].0, made[0].1);
        assert_eq!(bans.take_made(), made, "given back, taken again");

        let (adopting, elsewhere) = (super::tests::bans(), client("192.0.2.9"));
        let until = start + 10 * MINUTE;
        adopting.adopt(elsewhere, until, start);
        assert_eq!(
            adopting.check(elsewhere, start),
            Err(Banned { retry_after: 600 })
        );
        adopting.adopt(elsewhere, start + MINUTE, start);
        assert_eq!(
            adopting.check(elsewhere, start),
            Err(Banned { retry_after: 600 }),
            "a shorter ban does not shorten it"
        );
        assert!(adopting.check(elsewhere, until).is_ok(), "it ends");
        assert!(adopting.take_made().is_empty(), "not made here");
        adopting.adopt(client("192.0.2.10"), start, start + MINUTE);
        assert!(
            adopting.check(client("192.0.2.10"), start + MINUTE).is_ok(),
            "already over"
        );
    }
}

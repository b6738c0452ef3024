//! Which events are due, and when: `channel_vacated` and `member_removed` wait out the vacate
//! delay and are cancelled (together with the matching `channel_occupied`/`member_added`) when
//! the channel or user comes back in time, and a burst of cache misses on one channel becomes a
//! single `cache_miss`. Pure state: time comes in as arguments.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::WebhookEvent;
use crate::protocol::ChannelName;

/// How long one channel's `cache_miss` stands for the misses that follow it.
pub const CACHE_MISS_DEDUP_WINDOW: Duration = Duration::from_secs(1);

/// Most departures waiting out the delay; beyond that a departure is sent at once (it only
/// loses the chance of being cancelled).
const MAX_DELAYED: usize = 64 * 1024;

/// What a delayed event is waiting on: a channel, or a user in a presence channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Channel(ChannelName),
    Member(ChannelName, String),
}

#[derive(Debug)]
struct Delayed {
    due: Instant,
    generation: u64,
    event: WebhookEvent,
}

/// Delays, cancels and de-duplicates events before they are sent.
#[derive(Debug)]
pub struct Lifecycle {
    delay: Duration,
    /// Subjects whose leave is waiting, with the generation of the waiting timer.
    pending: HashMap<Subject, u64>,
    /// Timers in due order (every delay is the same, so arrival order is due order).
    timers: VecDeque<Delayed>,
    next_generation: u64,
    /// The last `cache_miss` sent per channel, swept once per window so that it holds only
    /// the channels that missed in the last two windows.
    recent_misses: HashMap<ChannelName, Instant>,
    next_miss_sweep: Option<Instant>,
}

impl Lifecycle {
    /// Leaves wait `delay` before they are sent.
    pub fn new(delay: Duration) -> Self {
        Lifecycle {
            delay,
            pending: HashMap::new(),
            timers: VecDeque::new(),
            next_generation: 0,
            recent_misses: HashMap::new(),
            next_miss_sweep: None,
        }
    }

    /// Takes an event that happened at `now`; returns it if it is to be sent now.
    pub fn accept(&mut self, event: WebhookEvent, now: Instant) -> Option<WebhookEvent> {
        match &event {
            WebhookEvent::ChannelOccupied { .. } | WebhookEvent::MemberAdded { .. } => {
                (!self.cancel_departure(&event)).then_some(event)
            }
            WebhookEvent::ChannelVacated { .. } | WebhookEvent::MemberRemoved { .. } => {
                self.delay_departure(event, now)
            }
            WebhookEvent::CacheMiss { channel } => self.first_miss(channel, now).then_some(event),
            WebhookEvent::ClientEvent { .. } | WebhookEvent::SubscriptionCount { .. } => {
                Some(event)
            }
        }
    }

    /// The delayed leaves that are due at `now` and were not cancelled.
    pub fn due(&mut self, now: Instant) -> Vec<WebhookEvent> {
        let mut due = Vec::new();
        while self.timers.front().is_some_and(|timer| timer.due <= now) {
            let Some(timer) = self.timers.pop_front() else {
                break;
            };
            let subject = subject_of(&timer.event);
            if self.pending.get(&subject) == Some(&timer.generation) {
                self.pending.remove(&subject);
                due.push(timer.event);
            }
        }
        due
    }

    /// Every delayed leave that was not cancelled, due or not (at shutdown).
    pub fn take_all(&mut self) -> Vec<WebhookEvent> {
        let pending = std::mem::take(&mut self.pending);
        self.timers
            .drain(..)
            .filter(|timer| pending.get(&subject_of(&timer.event)) == Some(&timer.generation))
            .map(|timer| timer.event)
            .collect()
    }

    /// When the next delayed leave falls due, if one is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.front().map(|timer| timer.due)
    }

    /// Holds a departure back for the delay; returns it to be sent at once when too many
    /// are already waiting.
    fn delay_departure(&mut self, event: WebhookEvent, now: Instant) -> Option<WebhookEvent> {
        if self.timers.len() >= MAX_DELAYED {
            return Some(event);
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        self.pending.insert(subject_of(&event), generation);
        self.timers.push_back(Delayed {
            due: now + self.delay,
            generation,
            event,
        });
        None
    }

    /// Cancels the waiting departure that `arrival` undoes; true if there was one. A channel
    /// joined and left over and over cancels its newest timer each time, which is dropped at
    /// once so that churn does not pile timers up.
    fn cancel_departure(&mut self, arrival: &WebhookEvent) -> bool {
        let Some(generation) = self.pending.remove(&subject_of(arrival)) else {
            return false;
        };
        if self
            .timers
            .back()
            .is_some_and(|timer| timer.generation == generation)
        {
            self.timers.pop_back();
        }
        true
    }

    fn first_miss(&mut self, channel: &ChannelName, now: Instant) -> bool {
        if self.next_miss_sweep.is_none_or(|sweep| sweep <= now) {
            self.recent_misses
                .retain(|_, at| now.duration_since(*at) < CACHE_MISS_DEDUP_WINDOW);
            self.next_miss_sweep = Some(now + CACHE_MISS_DEDUP_WINDOW);
        }
        match self.recent_misses.get(channel) {
            Some(at) if now.duration_since(*at) < CACHE_MISS_DEDUP_WINDOW => false,
            _ => {
                self.recent_misses.insert(channel.clone(), now);
                true
            }
        }
    }
}

fn subject_of(event: &WebhookEvent) -> Subject {
    match event {
        WebhookEvent::MemberAdded { channel, user_id }
        | WebhookEvent::MemberRemoved { channel, user_id } => {
            Subject::Member(channel.clone(), user_id.clone())
        }
        other => Subject::Channel(other.channel().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(3);

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    fn occupied(name: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied {
            channel: channel(name),
        }
    }

    fn vacated(name: &str) -> WebhookEvent {
        WebhookEvent::ChannelVacated {
            channel: channel(name),
        }
    }

    fn member(added: bool, user: &str) -> WebhookEvent {
        let (channel, user_id) = (channel("presence-p"), user.to_owned());
        if added {
            WebhookEvent::MemberAdded { channel, user_id }
        } else {
            WebhookEvent::MemberRemoved { channel, user_id }
        }
    }

    #[test]
    fn a_vacate_waits_out_the_delay() {
        let start = Instant::now();
        let mut lifecycle = Lifecycle::new(DELAY);
        assert_eq!(lifecycle.accept(occupied("c"), start), Some(occupied("c")));
        assert_eq!(lifecycle.accept(vacated("c"), start), None);
        assert_eq!(lifecycle.next_due(), Some(start + DELAY));
        assert!(
            lifecycle
                .due(start + DELAY - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(lifecycle.due(start + DELAY), vec![vacated("c")]);
        assert_eq!(lifecycle.next_due(), None);
    }

    #[test]
    fn coming_back_within_the_delay_cancels_both_the_vacate_and_the_occupy() {
        let start = Instant::now();
        let mut lifecycle = Lifecycle::new(DELAY);
        lifecycle.accept(vacated("c"), start);
        assert_eq!(
            lifecycle.accept(occupied("c"), start + Duration::from_secs(1)),
            None
        );
        assert!(lifecycle.due(start + DELAY * 2).is_empty());
        // A later vacate gets its own full delay, unaffected by the cancelled timer.
        let later = start + Duration::from_secs(2);
        lifecycle.accept(vacated("c"), later);
        assert!(lifecycle.due(start + DELAY).is_empty());
        assert_eq!(lifecycle.due(later + DELAY), vec![vacated("c")]);
    }

    #[test]
    fn churn_on_one_channel_leaves_no_timers_behind() {
        let start = Instant::now();
        let mut lifecycle = Lifecycle::new(DELAY);
        for _ in 0..100 {
            lifecycle.accept(vacated("c"), start);
            lifecycle.accept(occupied("c"), start);
        }
        assert_eq!(lifecycle.next_due(), None);
    }

    #[test]
    fn take_all_gives_the_waiting_departures_at_once() {
        let start = Instant::now();
        let mut lifecycle = Lifecycle::new(DELAY);
        lifecycle.accept(vacated("a"), start);
        lifecycle.accept(vacated("b"), start);
        lifecycle.accept(occupied("b"), start);
        assert_eq!(lifecycle.take_all(), vec![vacated("a")]);
        assert_eq!(lifecycle.next_due(), None);
    }

    #[test]
    fn member_removals_are_delayed_and_cancelled_per_user() {
        let start = Instant::now();
        let mut lifecycle = Lifecycle::new(DELAY);
        lifecycle.accept(member(false, "a"), start);
        lifecycle.accept(member(false, "b"), start);
        assert_eq!(lifecycle.accept(member(true, "a"), start), None);
        assert_eq!(
            lifecycle.accept(member(true, "c"), start),
            Some(member(true, "c"))
        );
        assert_eq!(lifecycle.due(start + DELAY), vec![member(false, "b")]);
    }

    #[test]
    fn misses_on_one_channel_within_the_window_become_one() {
        let start = Instant::now();
        let mut lifecycle = Lifecycle::new(DELAY);
        let miss = |name: &str| WebhookEvent::CacheMiss {
            channel: channel(name),
        };
        assert!(lifecycle.accept(miss("cache-a"), start).is_some());
        assert!(lifecycle.accept(miss("cache-a"), start).is_none());
        assert!(lifecycle.accept(miss("cache-b"), start).is_some());
        let after = start + CACHE_MISS_DEDUP_WINDOW;
        assert!(lifecycle.accept(miss("cache-a"), after).is_some());
        // Channels that stopped missing are forgotten.
        assert!(lifecycle.accept(miss("cache-c"), after).is_some());
        let later = after + CACHE_MISS_DEDUP_WINDOW * 2;
        assert!(lifecycle.accept(miss("cache-c"), later).is_some());
        assert_eq!(lifecycle.recent_misses.len(), 1);
    }
}

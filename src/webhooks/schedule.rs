//! The order in which one endpoint's batches go out: several at once, yet the events of one
//! channel in the order they happened, retries included.
//!
//! Every batch held (waiting, in flight or waiting out a retry backoff) stands in the line of
//! each channel it carries. A batch may be sent only when it is first in all of its lines, so
//! a batch being retried holds back only the channels it carries, never the whole endpoint,
//! and a batch waiting out its backoff holds no in-flight slot. Of the batches that may go,
//! the oldest goes first.
//!
//! The endpoint's health sets the slots: `concurrency` while it answers, one while it fails
//! (from the start until its first 2xx, and after any failure until the next 2xx), so a
//! receiver that is down or hanging gets one probe at a time rather than a pile of stuck
//! requests.
//!
//! A pure state machine: it takes `now` and does no I/O; the delivery task sends what it says.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::WebhookBatch;
use crate::protocol::ChannelName;

/// The first retry waits this long; each later one twice as long as the one before.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const LONGEST_RETRY: Duration = Duration::from_secs(60);

/// Names one batch while the schedule holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// What became of a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// It goes again once this moment has passed.
    RetryAt(Instant),
    /// Its `retry_for` is spent: the batch is out of the schedule.
    GaveUp(WebhookBatch),
}

#[derive(Debug)]
enum Stage {
    /// Behind another batch in one of its channels' lines.
    Queued,
    /// First in all its lines, waiting for a slot.
    Ready,
    InFlight,
    BackingOff,
}

#[derive(Debug)]
struct Held {
    batch: WebhookBatch,
    stage: Stage,
    /// When its first attempt started.
    first_sent: Option<Instant>,
    /// The wait after its next failure.
    next_wait: Duration,
}

/// One endpoint's batches, in the order they may be sent.
#[derive(Debug)]
pub struct Schedule {
    concurrency: usize,
    capacity: usize,
    retry_for: Duration,
    answering: bool,
    next_ticket: u64,
    held: BTreeMap<Ticket, Held>,
    lines: HashMap<ChannelName, VecDeque<Ticket>>,
    ready: BTreeSet<Ticket>,
    backing_off: BTreeSet<(Instant, Ticket)>,
    in_flight: usize,
}

impl Schedule {
    /// A schedule of at most `capacity` batches (at least 1), `concurrency` in flight while the
    /// endpoint answers (at least 1), each retried for `retry_for`.
    pub fn new(concurrency: usize, capacity: usize, retry_for: Duration) -> Self {
        Schedule {
            concurrency: concurrency.max(1),
            capacity: capacity.max(1),
            retry_for,
            answering: false,
            next_ticket: 0,
            held: BTreeMap::new(),
            lines: HashMap::new(),
            ready: BTreeSet::new(),
            backing_off: BTreeSet::new(),
            in_flight: 0,
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether it holds as many batches as it may.
    pub fn is_full(&self) -> bool {
        self.held.len() >= self.capacity
    }

    /// Takes `batch` behind everything before it; a full schedule gives it back.
    pub fn push(&mut self, batch: WebhookBatch) -> Result<(), WebhookBatch> {
        if self.is_full() {
            return Err(batch);
        }
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        for channel in batch.channels() {
            self.lines
                .entry(channel.clone())
                .or_default()
                .push_back(ticket);
        }
        let held = Held {
            batch,
            stage: Stage::Queued,
            first_sent: None,
            next_wait: FIRST_RETRY,
        };
        self.held.insert(ticket, held);
        self.promote_if_first(ticket);
        Ok(())
    }

    /// The next batch to send at `now`, if a slot is free and one may go; it is in flight
    /// until [`succeeded`](Self::succeeded) or [`failed`](Self::failed) is called with its
    /// ticket.
    pub fn next_to_send(&mut self, now: Instant) -> Option<(Ticket, &WebhookBatch)> {
        self.end_due_backoffs(now);
        let slots = if self.answering { self.concurrency } else { 1 };
        if self.in_flight >= slots {
            return None;
        }
        let ticket = self.ready.pop_first()?;
        let held = self.held.get_mut(&ticket)?;
        self.in_flight += 1;
        held.stage = Stage::InFlight;
        held.first_sent.get_or_insert(now);
        Some((ticket, &held.batch))
    }

    /// The receiver accepted the batch of `ticket`, which leaves the schedule (returned).
    pub fn succeeded(&mut self, ticket: Ticket) -> Option<WebhookBatch> {
        self.answering = true;
        self.in_flight = self.in_flight.saturating_sub(1);
        self.release(ticket)
    }

    /// The attempt for `ticket` failed at `now`: it waits out its backoff (holding its
    /// channels, not a slot), or is given up once the wait would take it past `retry_for`.
    pub fn failed(&mut self, ticket: Ticket, now: Instant) -> Option<AfterFailure> {
        self.answering = false;
        self.in_flight = self.in_flight.saturating_sub(1);
        let held = self.held.get_mut(&ticket)?;
        let wait = held.next_wait;
        let first_sent = held.first_sent.unwrap_or(now);
        if now.saturating_duration_since(first_sent) + wait > self.retry_for {
            return self.release(ticket).map(AfterFailure::GaveUp);
        }
        let at = now + wait;
        held.stage = Stage::BackingOff;
        held.next_wait = (wait * 2).min(LONGEST_RETRY);
        self.backing_off.insert((at, ticket));
        Some(AfterFailure::RetryAt(at))
    }

    /// When the earliest backoff ends.
    pub fn next_wake(&self) -> Option<Instant> {
        self.backing_off.first().map(|(at, _)| *at)
    }

    fn end_due_backoffs(&mut self, now: Instant) {
        while let Some(&(at, ticket)) = self.backing_off.first() {
            if at > now {
                break;
            }
            self.backing_off.pop_first();
            if let Some(held) = self.held.get_mut(&ticket) {
                held.stage = Stage::Ready;
                self.ready.insert(ticket);
            }
        }
    }

    /// Takes `ticket` out of the schedule and out of its lines; the batches now first in all
    /// of theirs become ready.
    fn release(&mut self, ticket: Ticket) -> Option<WebhookBatch> {
        let held = self.held.remove(&ticket)?;
        let mut next = Vec::new();
        for channel in held.batch.channels() {
            let Some(line) = self.lines.get_mut(channel) else {
                continue;
            };
            debug_assert_eq!(line.front(), Some(&ticket), "only a line's first is sent");
            line.pop_front();
            match line.front() {
                Some(&following) => next.push(following),
                None => {
                    self.lines.remove(channel);
                }
            }
        }
        for following in next {
            self.promote_if_first(following);
        }
        Some(held.batch)
    }

    /// Makes a queued batch ready when it is first in every line it stands in.
    fn promote_if_first(&mut self, ticket: Ticket) {
        let Some(held) = self.held.get_mut(&ticket) else {
            return;
        };
        if !matches!(held.stage, Stage::Queued) {
            return;
        }
        let first_everywhere = held.batch.channels().iter().all(|channel| {
            self.lines
                .get(channel)
                .is_some_and(|line| line.front() == Some(&ticket))
        });
        if first_everywhere {
            held.stage = Stage::Ready;
            self.ready.insert(ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::webhooks::Batcher;

    const RETRY_FOR: Duration = Duration::from_secs(10);

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    /// A batch of one event named `label` on each of `channels`.
    fn batch(label: &str, channels: &[&str]) -> WebhookBatch {
        let mut batcher = Batcher::new(Duration::from_secs(1), 100);
        let now = Instant::now();
        for name in channels {
            let _ = batcher.push(Arc::from(label), channel(name), now);
        }
        batcher.take().unwrap()
    }

    fn label(batch: &WebhookBatch) -> String {
        batch.body(0)
    }

    /// Takes what may be sent at `now`, as (ticket, first event's text).
    fn send_all(schedule: &mut Schedule, now: Instant) -> Vec<(Ticket, String)> {
        std::iter::from_fn(|| {
            schedule
                .next_to_send(now)
                .map(|(ticket, batch)| (ticket, label(batch)))
        })
        .collect()
    }

    /// A schedule that has seen its endpoint answer, with its concurrency open.
    fn answering(concurrency: usize) -> Schedule {
        let mut schedule = Schedule::new(concurrency, 100, RETRY_FOR);
        schedule.push(batch("warm-up", &["warm-up"])).unwrap();
        let (ticket, _) = schedule.next_to_send(Instant::now()).unwrap();
        schedule.succeeded(ticket);
        schedule
    }

    #[test]
    fn an_endpoint_that_has_not_answered_yet_gets_one_request_at_a_time() {
        let mut schedule = Schedule::new(8, 100, RETRY_FOR);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            schedule.push(batch(name, &[name])).unwrap();
        }
        let first = send_all(&mut schedule, now);
        assert_eq!(first.len(), 1);
        schedule.succeeded(first[0].0);
        assert_eq!(
            send_all(&mut schedule, now).len(),
            2,
            "answering: all slots"
        );
    }

    #[test]
    fn batches_of_other_channels_go_out_together_up_to_the_concurrency() {
        let mut schedule = answering(2);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            schedule.push(batch(name, &[name])).unwrap();
        }
        let sent = send_all(&mut schedule, now);
        assert_eq!(sent.len(), 2);
        assert!(
            sent[0].1.contains("[a]") && sent[1].1.contains("[b]"),
            "{sent:?}"
        );
        schedule.succeeded(sent[1].0);
        let next = send_all(&mut schedule, now);
        assert!(next.len() == 1 && next[0].1.contains("[c]"), "{next:?}");
    }

    #[test]
    fn a_channel_s_next_batch_waits_for_the_one_before_it_even_through_retries() {
        let mut schedule = answering(8);
        let start = Instant::now();
        schedule.push(batch("first", &["a"])).unwrap();
        schedule.push(batch("second", &["a"])).unwrap();
        schedule.push(batch("other", &["b"])).unwrap();
        let sent = send_all(&mut schedule, start);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].1.contains("first") && sent[1].1.contains("other"));
        let retry = schedule.failed(sent[0].0, start);
        assert_eq!(retry, Some(AfterFailure::RetryAt(start + FIRST_RETRY)));
        assert_eq!(schedule.next_wake(), Some(start + FIRST_RETRY));
        schedule.succeeded(sent[1].0);
        assert!(send_all(&mut schedule, start).is_empty(), "second waits");
        let again = send_all(&mut schedule, start + FIRST_RETRY);
        assert!(
            again.len() == 1 && again[0].1.contains("first"),
            "{again:?}"
        );
        schedule.succeeded(again[0].0);
        let next = send_all(&mut schedule, start + FIRST_RETRY);
        assert!(next.len() == 1 && next[0].1.contains("second"), "{next:?}");
    }

    #[test]
    fn a_batch_backing_off_holds_its_channels_but_no_slot() {
        let mut schedule = answering(1);
        let now = Instant::now();
        schedule.push(batch("a1", &["a"])).unwrap();
        schedule.push(batch("b1", &["b"])).unwrap();
        let sent = send_all(&mut schedule, now);
        assert_eq!(sent.len(), 1);
        schedule.failed(sent[0].0, now);
        // Failing: one slot, and it is free while a1 waits out its backoff.
        let next = send_all(&mut schedule, now);
        assert!(next.len() == 1 && next[0].1.contains("b1"), "{next:?}");
    }

    #[test]
    fn a_batch_of_several_channels_waits_for_each_of_their_lines() {
        let mut schedule = answering(8);
        let now = Instant::now();
        schedule.push(batch("a1", &["a"])).unwrap();
        schedule.push(batch("b1", &["b"])).unwrap();
        schedule.push(batch("ab", &["a", "b"])).unwrap();
        schedule.push(batch("c1", &["c"])).unwrap();
        let sent = send_all(&mut schedule, now);
        let labels: Vec<&str> = sent.iter().map(|(_, text)| text.as_str()).collect();
        assert_eq!(labels.len(), 3, "a1, b1 and c1, not ab: {labels:?}");
        assert!(labels.iter().all(|text| !text.contains("ab")));
        schedule.succeeded(sent[0].0);
        assert!(
            send_all(&mut schedule, now).is_empty(),
            "b1 still in flight"
        );
        schedule.succeeded(sent[1].0);
        let both_done = send_all(&mut schedule, now);
        assert!(both_done.len() == 1 && both_done[0].1.contains("ab"));
    }

    #[test]
    fn retries_double_their_wait_and_give_up_when_retry_for_is_spent() {
        let mut schedule = Schedule::new(1, 10, Duration::from_secs(4));
        let start = Instant::now();
        schedule.push(batch("a1", &["a"])).unwrap();
        let (ticket, _) = schedule.next_to_send(start).unwrap();
        let first = schedule.failed(ticket, start);
        assert_eq!(first, Some(AfterFailure::RetryAt(start + FIRST_RETRY)));
        let at = start + FIRST_RETRY;
        let (ticket, _) = schedule.next_to_send(at).unwrap();
        let second = schedule.failed(ticket, at);
        assert_eq!(second, Some(AfterFailure::RetryAt(at + FIRST_RETRY * 2)));
        let at = at + FIRST_RETRY * 2;
        let (ticket, _) = schedule.next_to_send(at).unwrap();
        // 3 s spent, and the next wait of 4 s would pass retry_for.
        assert!(matches!(
            schedule.failed(ticket, at),
            Some(AfterFailure::GaveUp(_))
        ));
        assert!(schedule.is_empty());
        assert_eq!(schedule.next_wake(), None);
    }

    #[test]
    fn a_full_schedule_gives_the_batch_back_and_a_given_up_one_frees_its_channel() {
        let mut schedule = Schedule::new(1, 2, Duration::ZERO);
        let now = Instant::now();
        schedule.push(batch("a1", &["a"])).unwrap();
        schedule.push(batch("a2", &["a"])).unwrap();
        assert!(schedule.push(batch("a3", &["a"])).is_err());
        let (ticket, _) = schedule.next_to_send(now).unwrap();
        assert!(matches!(
            schedule.failed(ticket, now),
            Some(AfterFailure::GaveUp(_))
        ));
        let next = send_all(&mut schedule, now);
        assert!(next.len() == 1 && next[0].1.contains("a2"), "{next:?}");
    }
}

//! Batching: events bound for one endpoint are gathered for up to a window, or until a batch
//! is full, and then sent in one request. A zero window sends each event on its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::ChannelName;
use crate::store::JournaledBatch;

/// Serialized events that go out in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookBatch {
    id: WebhookId,
    events: Vec<Arc<str>>,
    /// The channels its events are about, each once: the delivery keeps each channel's
    /// batches in order.
    channels: Vec<ChannelName>,
}

/// A batch's id, sent as `X-Relay-Webhook-Id` with every attempt to deliver it: delivery is at
/// least once (a receiver that answers after its timeout gets the batch again), and the id is
/// how it recognises the repeat. 128 random bits, so ids from other nodes or restarts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookId(u128);

impl WebhookId {
    fn random() -> Self {
        WebhookId(rand::random())
    }
}

impl std::fmt::Display for WebhookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl WebhookBatch {
    /// The id every attempt to deliver this batch carries.
    pub fn id(&self) -> WebhookId {
        self.id
    }

    /// The request body, `{"time_ms":…,"events":[…]}`, stamped `time_ms`.
    pub fn body(&self, time_ms: u64) -> String {
        let length: usize = self.events.iter().map(|event| event.len() + 1).sum();
        let mut body = String::with_capacity(length + 40);
        body.push_str("{\"time_ms\":");
        body.push_str(&time_ms.to_string());
        body.push_str(",\"events\":[");
        for (index, event) in self.events.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            body.push_str(event);
        }
        body.push_str("]}");
        body
    }

    /// The channels its events are about, each once.
    pub fn channels(&self) -> &[ChannelName] {
        &self.channels
    }

    /// How many events it carries.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The batch as the journal keeps it, bound for `endpoint` of `app_id`.
    pub fn to_journal(&self, app_id: &str, endpoint: usize) -> JournaledBatch {
        JournaledBatch {
            app_id: app_id.to_owned(),
            endpoint,
            id: self.id.to_string(),
            events: self.events.iter().map(|event| event.to_string()).collect(),
            channels: self
                .channels
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            accepted_ms: super::now_ms(),
        }
    }

    /// The batch the journal kept, with its id; `None` if the entry is not one (a channel
    /// name or id this version cannot read).
    pub fn from_journal(kept: &JournaledBatch) -> Option<Self> {
        let id = u128::from_str_radix(&kept.id, 16).ok()?;
        let channels = kept
            .channels
            .iter()
            .map(|name| ChannelName::parse(name, usize::MAX).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(WebhookBatch {
            id: WebhookId(id),
            events: kept
                .events
                .iter()
                .map(|event| Arc::from(event.as_str()))
                .collect(),
            channels,
        })
    }
}

/// Gathers one endpoint's events into batches.
#[derive(Debug)]
pub struct Batcher {
    window: Duration,
    max_events: usize,
    open: Vec<Arc<str>>,
    /// The open batch's channels, each once.
    seen: HashSet<ChannelName>,
    due: Option<Instant>,
}

impl Batcher {
    /// Batches close `window` after their first event, or at `max_events` (at least 1).
    pub fn new(window: Duration, max_events: usize) -> Self {
        Batcher {
            window,
            max_events: max_events.max(1),
            open: Vec::new(),
            seen: HashSet::new(),
            due: None,
        }
    }

    /// Adds a serialized event about `channel` at `now`; returns a batch when one is complete.
    pub fn push(
        &mut self,
        event: Arc<str>,
        channel: ChannelName,
        now: Instant,
    ) -> Option<WebhookBatch> {
        self.open.push(event);
        self.seen.insert(channel);
        if self.window.is_zero() || self.open.len() >= self.max_events {
            return self.take();
        }
        self.due.get_or_insert(now + self.window);
        None
    }

    /// The open batch, if its window has closed by `now`.
    pub fn take_due(&mut self, now: Instant) -> Option<WebhookBatch> {
        self.due
            .is_some_and(|due| due <= now)
            .then(|| self.take())?
    }

    /// When the open batch's window closes.
    pub fn next_due(&self) -> Option<Instant> {
        self.due
    }

    /// The open batch, whatever its window.
    pub fn take(&mut self) -> Option<WebhookBatch> {
        self.due = None;
        if self.open.is_empty() {
            return None;
        }
        Some(WebhookBatch {
            id: WebhookId::random(),
            events: std::mem::take(&mut self.open),
            channels: self.seen.drain().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    #[test]
    fn without_a_window_each_event_is_its_own_batch() {
        let mut batcher = Batcher::new(Duration::ZERO, 100);
        let batch = batcher
            .push(event(r#"{"a":1}"#), channel("c"), Instant::now())
            .unwrap();
        assert_eq!(batch.body(7), r#"{"time_ms":7,"events":[{"a":1}]}"#);
        assert_eq!(batcher.next_due(), None);
    }

    #[test]
    fn a_window_gathers_events_until_it_closes_or_the_batch_is_full() {
        let start = Instant::now();
        let window = Duration::from_millis(50);
        let mut batcher = Batcher::new(window, 3);
        assert!(batcher.push(event("1"), channel("x"), start).is_none());
        assert!(
            batcher
                .push(event("2"), channel("y"), start + window / 2)
                .is_none()
        );
        assert_eq!(batcher.next_due(), Some(start + window));
        assert!(batcher.take_due(start + window / 2).is_none());
        let batch = batcher.take_due(start + window).unwrap();
        assert_eq!(batch.body(1), r#"{"time_ms":1,"events":[1,2]}"#);
        let mut channels = batch.channels().to_vec();
        channels.sort();
        assert_eq!(channels, [channel("x"), channel("y")]);
        assert!(batcher.take_due(start + window * 2).is_none());
        for n in ["3", "4"] {
            assert!(batcher.push(event(n), channel("z"), start).is_none());
        }
        let full = batcher.push(event("5"), channel("z"), start).unwrap();
        assert_eq!(full.len(), 3);
        assert_eq!(full.channels(), [channel("z")], "each channel once");
        assert_eq!(batcher.next_due(), None);
        assert_ne!(batch.id(), full.id(), "each batch has its own id");
        assert_eq!(full.id().to_string().len(), 32);
    }

    #[test]
    fn a_journaled_batch_comes_back_with_its_id() {
        let mut batcher = Batcher::new(Duration::ZERO, 10);
        let batch = batcher
            .push(event("{}"), channel("news"), Instant::now())
            .unwrap();
        let kept = batch.to_journal("1", 2);
        assert_eq!((kept.app_id.as_str(), kept.endpoint), ("1", 2));
        assert_eq!(WebhookBatch::from_journal(&kept), Some(batch));
        let unreadable = JournaledBatch {
            id: "not hex".into(),
            ..kept
        };
        assert_eq!(WebhookBatch::from_journal(&unreadable), None);
    }
}

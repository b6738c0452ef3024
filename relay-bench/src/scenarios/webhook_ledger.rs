//! What the `webhooks` scenario's receiver got, checked against what its clients did.
//!
//! Each client owns its channels alone and subscribes to and leaves each of them once per
//! round, so every channel must see exactly `channel_occupied`, `channel_vacated`,
//! `channel_occupied`, … twice per round, in that order. An event of the same kind as the one
//! before it on its channel (or a first one that is `channel_vacated`) is out of order; what a
//! channel still lacks at the end is lost; anything past its last round is unexpected. A
//! request that repeats an `X-Relay-Webhook-Id` already seen is a retry of a batch the
//! receiver already has, so its events are not counted again.

use std::collections::HashSet;

use hyper::header::HeaderValue;
use serde_json::Value;
use tokio::time::Instant;

use crate::report::Latencies;
use crate::webhook_receiver::{Arrival, WebhookRequest};

/// The channels of one run: `bench-wh-<run>-<client>-<channel>`. The run id keeps events
/// for channels of an earlier run against the same server from counting in this one.
#[derive(Debug, Clone)]
pub struct ChannelNames {
    prefix: String,
    clients: usize,
    per_client: usize,
}

impl ChannelNames {
    /// The names for `clients` clients of `per_client` channels each, in run `run`.
    pub fn new(run: u32, clients: usize, per_client: usize) -> Self {
        ChannelNames {
            prefix: format!("bench-wh-{run:08x}-"),
            clients,
            per_client,
        }
    }

    /// The channels of client `client`, in order.
    pub fn of_client(&self, client: usize) -> Vec<String> {
        (0..self.per_client)
            .map(|channel| format!("{}{client}-{channel}", self.prefix))
            .collect()
    }

    /// How many channels the run has.
    pub fn count(&self) -> usize {
        self.clients * self.per_client
    }

    /// The index (`client × per_client + channel`) of a channel of this run.
    fn index(&self, name: &str) -> Option<usize> {
        let (client, channel) = name.strip_prefix(&self.prefix)?.split_once('-')?;
        let (client, channel): (usize, usize) = (client.parse().ok()?, channel.parse().ok()?);
        (client < self.clients && channel < self.per_client)
            .then_some(client * self.per_client + channel)
    }
}

/// What went wrong, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Requests whose key or signature was wrong.
    pub bad_signatures: usize,
    /// Requests that could not be read or are not `{"events":[{"name","channel"}…]}`.
    pub malformed: usize,
    /// Events of another kind, for a channel not of this run, or past a channel's last round.
    pub unexpected: usize,
    /// Events of the same kind as the one before them on their channel.
    pub out_of_order: usize,
}

/// One channel's progress through occupied, vacated, occupied, …
#[derive(Debug, Default)]
struct ChannelLog {
    /// How many of its expected events arrived.
    received: usize,
    /// Whether the last one was `channel_occupied`; `None` before the first.
    last_occupied: Option<bool>,
    /// When each `channel_occupied` arrived, one per round.
    occupied_at: Vec<Instant>,
}

/// Everything the receiver got, checked as it arrives.
#[derive(Debug)]
pub struct Ledger {
    names: ChannelNames,
    rounds: usize,
    channels: Vec<ChannelLog>,
    seen_ids: HashSet<HeaderValue>,
    /// Requests taken, retries included.
    pub requests: usize,
    /// Requests that repeated a batch already taken.
    pub duplicate_requests: usize,
    /// Expected events that arrived (in order or not).
    pub received: usize,
    /// What went wrong.
    pub faults: Faults,
    /// When the last request arrived.
    pub last_at: Option<Instant>,
    /// The first unreadable or malformed request, to show.
    pub first_malformed: Option<String>,
}

impl Ledger {
    /// A ledger for `names`' channels, each going through `rounds` rounds.
    pub fn new(names: ChannelNames, rounds: usize) -> Self {
        let channels = (0..names.count())
            .map(|_| ChannelLog {
                received: 0,
                last_occupied: None,
                occupied_at: Vec::with_capacity(rounds),
            })
            .collect();
        Ledger {
            names,
            rounds,
            channels,
            seen_ids: HashSet::new(),
            requests: 0,
            duplicate_requests: 0,
            received: 0,
            faults: Faults::default(),
            last_at: None,
            first_malformed: None,
        }
    }

    /// Events the run must deliver: occupied and vacated, per channel and round.
    pub fn expected(&self) -> usize {
        2 * self.rounds * self.channels.len()
    }

    /// Whether every expected event has arrived.
    pub fn is_complete(&self) -> bool {
        self.received == self.expected()
    }

    /// Expected events that have not arrived.
    pub fn lost(&self) -> usize {
        self.expected() - self.received
    }

    /// Takes one arrival.
    pub fn record(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::Request(request) => self.record_request(request),
            Arrival::Unreadable(reason) => {
                self.requests += 1;
                self.malformed(reason);
            }
        }
    }

    fn record_request(&mut self, request: WebhookRequest) {
        self.requests += 1;
        self.last_at = Some(request.at);
        if !request.authentic {
            self.faults.bad_signatures += 1;
        }
        if let Some(id) = request.id
            && !self.seen_ids.insert(id)
        {
            self.duplicate_requests += 1;
            return;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            self.malformed(String::from_utf8_lossy(&request.body).into_owned());
            return;
        };
        let Some(events) = body["events"].as_array() else {
            self.malformed(body.to_string());
            return;
        };
        for event in events {
            match (event["name"].as_str(), event["channel"].as_str()) {
                (Some(name), Some(channel)) => self.record_event(name, channel, request.at),
                _ => self.malformed(event.to_string()),
            }
        }
    }

    /// Takes one event of a request that arrived at `at`.
    fn record_event(&mut self, name: &str, channel: &str, at: Instant) {
        let occupied = match name {
            "channel_occupied" => true,
            "channel_vacated" => false,
            _ => {
                self.faults.unexpected += 1;
                return;
            }
        };
        let Some(log) = self
            .names
            .index(channel)
            .map(|index| &mut self.channels[index])
        else {
            self.faults.unexpected += 1;
            return;
        };
        if log.received == 2 * self.rounds {
            self.faults.unexpected += 1;
            return;
        }
        if log.last_occupied.unwrap_or(false) == occupied {
            self.faults.out_of_order += 1;
        }
        log.last_occupied = Some(occupied);
        log.received += 1;
        self.received += 1;
        if occupied {
            log.occupied_at.push(at);
        }
    }

    fn malformed(&mut self, what: String) {
        self.faults.malformed += 1;
        self.first_malformed.get_or_insert(what);
    }

    /// From each subscribe to the arrival of the `channel_occupied` it caused (the n-th
    /// subscribe of a channel caused its n-th, when none was lost); `sent[client]` holds that
    /// client's subscribe times, round after round, each round in channel order.
    pub fn occupied_latencies(&self, sent: &[Vec<Instant>]) -> Latencies {
        let per_client = self.names.per_client;
        let mut latencies = Latencies::with_capacity(self.received / 2 + 1);
        for (client, times) in sent.iter().enumerate() {
            for (position, subscribed) in times.iter().enumerate() {
                let (round, channel) = (position / per_client, position % per_client);
                let log = &self.channels[client * per_client + channel];
                if let Some(arrived) = log.occupied_at.get(round) {
                    latencies.record(arrived.saturating_duration_since(*subscribed));
                }
            }
        }
        latencies
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn names() -> ChannelNames {
        ChannelNames::new(0xab, 2, 2)
    }

    fn request(body: &str, id: Option<&'static str>, at: Instant) -> Arrival {
        Arrival::Request(WebhookRequest {
            at,
            body: Bytes::from(body.to_owned()),
            authentic: true,
            id: id.map(HeaderValue::from_static),
        })
    }

    fn event(name: &str, channel: &str) -> String {
        format!(r#"{{"time_ms":1,"events":[{{"name":"{name}","channel":"{channel}"}}]}}"#)
    }

    #[test]
    fn channel_names_are_of_this_run_only() {
        let names = names();
        assert_eq!(
            names.of_client(1),
            ["bench-wh-000000ab-1-0", "bench-wh-000000ab-1-1"]
        );
        assert_eq!(names.index("bench-wh-000000ab-1-1"), Some(3));
        assert_eq!(
            names.index("bench-wh-000000ab-2-0"),
            None,
            "no third client"
        );
        assert_eq!(names.index("bench-wh-000000ac-0-0"), None, "another run");
        assert_eq!(names.index("bench-wh-000000ab-0"), None);
    }

    #[test]
    fn a_run_in_order_is_complete() {
        let mut ledger = Ledger::new(names(), 2);
        let now = Instant::now();
        for channel in ["bench-wh-000000ab-0-0", "bench-wh-000000ab-0-1"] {
            for name in ["channel_occupied", "channel_vacated"].repeat(2) {
                ledger.record(request(&event(name, channel), None, now));
            }
        }
        assert_eq!(
            (ledger.received, ledger.lost()),
            (8, 8),
            "client 1 sent nothing"
        );
        assert!(!ledger.is_complete());
        for channel in ["bench-wh-000000ab-1-0", "bench-wh-000000ab-1-1"] {
            for name in ["channel_occupied", "channel_vacated"].repeat(2) {
                ledger.record(request(&event(name, channel), None, now));
            }
        }
        assert!(ledger.is_complete());
        assert_eq!(ledger.faults, Faults::default());
        assert_eq!(ledger.requests, 16);
    }

    #[test]
    fn events_out_of_turn_are_counted_and_extra_rounds_are_unexpected() {
        let mut ledger = Ledger::new(names(), 2);
        let channel = "bench-wh-000000ab-0-0";
        let now = Instant::now();
        let mut take = |name: &str| ledger.record(request(&event(name, channel), None, now));
        // A swapped first pair, then a vacated lost between two occupied.
        for name in ["channel_vacated", "channel_occupied", "channel_occupied"] {
            take(name);
        }
        take("channel_vacated");
        take("channel_occupied");
        assert_eq!(ledger.faults.out_of_order, 2);
        assert_eq!(
            (ledger.received, ledger.faults.unexpected),
            (4, 1),
            "past two rounds"
        );
        let lost = ledger.lost();
        assert_eq!(lost, 16 - 4);
    }

    #[test]
    fn a_batch_counts_each_event_and_a_retried_batch_counts_once() {
        let mut ledger = Ledger::new(names(), 1);
        let body = r#"{"time_ms":1,"events":[
            {"name":"channel_occupied","channel":"bench-wh-000000ab-0-0"},
            {"name":"channel_vacated","channel":"bench-wh-000000ab-0-0"},
            {"name":"member_added","channel":"bench-wh-000000ab-0-0","user_id":"u"}]}"#;
        let now = Instant::now();
        ledger.record(request(body, Some("id-1"), now));
        ledger.record(request(body, Some("id-1"), now));
        assert_eq!((ledger.requests, ledger.duplicate_requests), (2, 1));
        assert_eq!(ledger.received, 2);
        assert_eq!(ledger.faults.unexpected, 1);
        ledger.record(request("not json", None, now));
        ledger.record(Arrival::Unreadable("cut off".into()));
        assert_eq!(ledger.faults.malformed, 2);
        assert_eq!(ledger.first_malformed.as_deref(), Some("not json"));
    }

    #[test]
    fn latency_runs_from_each_subscribe_to_its_occupied() {
        let mut ledger = Ledger::new(ChannelNames::new(1, 1, 2), 2);
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        // Round 0: channels 0 and 1 subscribed at 0 and 1 ms; round 1 at 10 and 11 ms.
        let sent = vec![vec![ms(0), ms(1), ms(10), ms(11)]];
        let arrivals = [
            ("channel_occupied", 0, 5),
            ("channel_occupied", 1, 4),
            ("channel_vacated", 0, 6),
            ("channel_vacated", 1, 6),
            ("channel_occupied", 1, 13),
            ("channel_occupied", 0, 17),
        ];
        for (name, channel, at) in arrivals {
            let channel = format!("bench-wh-00000001-0-{channel}");
            ledger.record(request(&event(name, &channel), None, ms(at)));
        }
        let latencies = ledger.occupied_latencies(&sent);
        assert_eq!(latencies.as_micros(), [5000, 3000, 7000, 2000]);
    }
}

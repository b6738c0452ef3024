//! The seven webhook events, as Pusher sends them, and sets of their kinds.

use serde::Serialize;

use crate::protocol::ChannelName;

/// One webhook event; serializes to the object Pusher puts in a webhook's `events` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// The channel got its first subscriber, cluster-wide.
    ChannelOccupied {
        /// The channel.
        channel: ChannelName,
    },
    /// The channel lost its last subscriber, cluster-wide (sent after the vacate delay).
    ChannelVacated {
        /// The channel.
        channel: ChannelName,
    },
    /// A user's first connection joined a presence channel.
    MemberAdded {
        /// The presence channel.
        channel: ChannelName,
        /// The user's id.
        user_id: String,
    },
    /// A user's last connection left a presence channel (sent after the vacate delay).
    MemberRemoved {
        /// The presence channel.
        channel: ChannelName,
        /// The user's id.
        user_id: String,
    },
    /// A client sent a `client-*` event.
    ClientEvent {
        /// The channel it was sent on.
        channel: ChannelName,
        /// The event name.
        event: String,
        /// The event's data: the string the client sent, or the JSON text of anything else.
        data: String,
        /// The sender's socket id.
        socket_id: String,
        /// The sender's user id, on presence channels only.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A subscriber to a cache channel found no cached event.
    CacheMiss {
        /// The cache channel.
        channel: ChannelName,
    },
    /// A non-presence channel's subscription count changed.
    SubscriptionCount {
        /// The channel.
        channel: ChannelName,
        /// Connections subscribed, cluster-wide.
        subscription_count: usize,
    },
}

impl WebhookEvent {
    /// Which of the seven kinds this is.
    pub fn kind(&self) -> EventKind {
        match self {
            WebhookEvent::ChannelOccupied { .. } => EventKind::ChannelOccupied,
            WebhookEvent::ChannelVacated { .. } => EventKind::ChannelVacated,
            WebhookEvent::MemberAdded { .. } => EventKind::MemberAdded,
            WebhookEvent::MemberRemoved { .. } => EventKind::MemberRemoved,
            WebhookEvent::ClientEvent { .. } => EventKind::ClientEvent,
            WebhookEvent::CacheMiss { .. } => EventKind::CacheMiss,
            WebhookEvent::SubscriptionCount { .. } => EventKind::SubscriptionCount,
        }
    }

    /// The channel the event is about.
    pub fn channel(&self) -> &ChannelName {
        match self {
            WebhookEvent::ChannelOccupied { channel }
            | WebhookEvent::ChannelVacated { channel }
            | WebhookEvent::MemberAdded { channel, .. }
            | WebhookEvent::MemberRemoved { channel, .. }
            | WebhookEvent::ClientEvent { channel, .. }
            | WebhookEvent::CacheMiss { channel }
            | WebhookEvent::SubscriptionCount { channel, .. } => channel,
        }
    }
}

/// The kind of a webhook event, as named in `config.toml` (`events = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `channel_occupied`.
    ChannelOccupied,
    /// `channel_vacated`.
    ChannelVacated,
    /// `member_added`.
    MemberAdded,
    /// `member_removed`.
    MemberRemoved,
    /// `client_event`.
    ClientEvent,
    /// `cache_miss`.
    CacheMiss,
    /// `subscription_count`.
    SubscriptionCount,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        EventKind::ChannelOccupied,
        EventKind::ChannelVacated,
        EventKind::MemberAdded,
        EventKind::MemberRemoved,
        EventKind::ClientEvent,
        EventKind::CacheMiss,
        EventKind::SubscriptionCount,
    ];

    /// The name Pusher (and `config.toml`) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ChannelOccupied => "channel_occupied",
            EventKind::ChannelVacated => "channel_vacated",
            EventKind::MemberAdded => "member_added",
            EventKind::MemberRemoved => "member_removed",
            EventKind::ClientEvent => "client_event",
            EventKind::CacheMiss => "cache_miss",
            EventKind::SubscriptionCount => "subscription_count",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of event kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventKinds(u8);

impl EventKinds {
    /// Every kind.
    pub fn all() -> Self {
        EventKind::ALL.into_iter().collect()
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The union of two sets.
    pub fn union(self, other: EventKinds) -> Self {
        EventKinds(self.0 | other.0)
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: EventKind) {
        self.0 |= kind.bit();
    }
}

impl FromIterator<EventKind> for EventKinds {
    fn from_iter<I: IntoIterator<Item = EventKind>>(kinds: I) -> Self {
        let mut set = EventKinds::default();
        for kind in kinds {
            set.insert(kind);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    #[test]
    fn events_serialize_as_pusher_sends_them() {
        let occupied = WebhookEvent::ChannelOccupied {
            channel: channel("c"),
        };
        assert_eq!(
            serde_json::to_string(&occupied).unwrap(),
            r#"{"name":"channel_occupied","channel":"c"}"#
        );
        let client = WebhookEvent::ClientEvent {
            channel: channel("private-c"),
            event: "client-x".into(),
            data: "{}".into(),
            socket_id: "1.2".into(),
            user_id: None,
        };
        assert_eq!(
            serde_json::to_string(&client).unwrap(),
            r#"{"name":"client_event","channel":"private-c","event":"client-x","data":"{}","socket_id":"1.2"}"#
        );
        let count = WebhookEvent::SubscriptionCount {
            channel: channel("c"),
            subscription_count: 3,
        };
        assert_eq!(
            serde_json::to_string(&count).unwrap(),
            r#"{"name":"subscription_count","channel":"c","subscription_count":3}"#
        );
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("channel_existence"), None);
        let set: EventKinds = [EventKind::CacheMiss].into_iter().collect();
        assert!(set.contains(EventKind::CacheMiss));
        assert!(!set.contains(EventKind::ClientEvent));
        assert!(EventKinds::all().contains(EventKind::SubscriptionCount));
    }
}

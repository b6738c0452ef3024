//! The seven webhook events, as Pusher sends them (their kinds are `protocol`'s).

use serde::Serialize;

use crate::protocol::{ChannelName, WebhookKind};

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
    pub fn kind(&self) -> WebhookKind {
        match self {
            WebhookEvent::ChannelOccupied { .. } => WebhookKind::ChannelOccupied,
            WebhookEvent::ChannelVacated { .. } => WebhookKind::ChannelVacated,
            WebhookEvent::MemberAdded { .. } => WebhookKind::MemberAdded,
            WebhookEvent::MemberRemoved { .. } => WebhookKind::MemberRemoved,
            WebhookEvent::ClientEvent { .. } => WebhookKind::ClientEvent,
            WebhookEvent::CacheMiss { .. } => WebhookKind::CacheMiss,
            WebhookEvent::SubscriptionCount { .. } => WebhookKind::SubscriptionCount,
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
}

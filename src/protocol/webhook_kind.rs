//! The names of Pusher's webhook events (`channel_occupied`, …) as kinds, and sets of them:
//! wire vocabulary that `config` (`events = [...]`), the hub and the webhooks share, so it
//! lives here rather than in `webhooks`, which `config` must not import.

/// The kind of a webhook event, as named in `config.toml` (`events = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
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

impl WebhookKind {
    /// Every kind.
    pub const ALL: [WebhookKind; 7] = [
        WebhookKind::ChannelOccupied,
        WebhookKind::ChannelVacated,
        WebhookKind::MemberAdded,
        WebhookKind::MemberRemoved,
        WebhookKind::ClientEvent,
        WebhookKind::CacheMiss,
        WebhookKind::SubscriptionCount,
    ];

    /// The name Pusher (and `config.toml`) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::ChannelOccupied => "channel_occupied",
            WebhookKind::ChannelVacated => "channel_vacated",
            WebhookKind::MemberAdded => "member_added",
            WebhookKind::MemberRemoved => "member_removed",
            WebhookKind::ClientEvent => "client_event",
            WebhookKind::CacheMiss => "cache_miss",
            WebhookKind::SubscriptionCount => "subscription_count",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<WebhookKind> {
        WebhookKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of event kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookKinds(u8);

impl WebhookKinds {
    /// Every kind.
    pub fn all() -> Self {
        WebhookKind::ALL.into_iter().collect()
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: WebhookKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The union of two sets.
    pub fn union(self, other: WebhookKinds) -> Self {
        WebhookKinds(self.0 | other.0)
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: WebhookKind) {
        self.0 |= kind.bit();
    }
}

impl FromIterator<WebhookKind> for WebhookKinds {
    fn from_iter<I: IntoIterator<Item = WebhookKind>>(kinds: I) -> Self {
        let mut set = WebhookKinds::default();
        for kind in kinds {
            set.insert(kind);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in WebhookKind::ALL {
            assert_eq!(WebhookKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(WebhookKind::parse("channel_existence"), None);
        let set: WebhookKinds = [WebhookKind::CacheMiss].into_iter().collect();
        assert!(set.contains(WebhookKind::CacheMiss));
        assert!(!set.contains(WebhookKind::ClientEvent));
        assert!(WebhookKinds::all().contains(WebhookKind::SubscriptionCount));
    }
}

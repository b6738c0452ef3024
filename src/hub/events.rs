//! What the hub reports to its adapter: the transitions of this node's state (a channel's
//! first and last local subscriber, a presence user's first and last local socket), cache
//! misses and counted subscriptions.
//!
//! The hub decides none of the webhooks these may lead to: with one node a local transition
//! is the cluster's, but with several only the adapter knows whether another node still has
//! the channel or the user. Each report is made under the lock that orders it against the
//! opposite transition, so an adapter that raises a webhook from it raises them in the order
//! they happened. Reports must not block: push to a queue, never wait.

use crate::protocol::ChannelName;

/// Receives the hub's reports; every method defaults to ignoring it.
pub trait HubEvents {
    /// `channel` got its first subscriber on this node.
    fn channel_occupied(&self, _channel: &ChannelName) {}

    /// `channel` lost its last subscriber on this node.
    fn channel_vacated(&self, _channel: &ChannelName) {}

    /// `channel` has `count` subscribers on this node now (after each one joining or
    /// leaving, 0 included), reported in the order of the changes.
    fn subscribers_changed(&self, _channel: &ChannelName, _count: usize) {}

    /// A subscriber of the cache channel `channel` found no cached event.
    fn cache_missed(&self, _channel: &ChannelName) {}

    /// `user_key` joined the presence channel `channel` with its first socket on this node.
    fn member_added(&self, _channel: &ChannelName, _user_key: &str) {}

    /// `user_key` left the presence channel `channel` with its last socket on this node.
    fn member_removed(&self, _channel: &ChannelName, _user_key: &str) {}

    /// `channel`'s subscribers on this node were told it has `count` subscribers.
    fn subscription_counted(&self, _channel: &ChannelName, _count: usize) {}
}

/// Ignores every report (tests, and callers with nothing to raise).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unreported;

impl HubEvents for Unreported {}

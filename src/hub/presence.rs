//! The in-memory presence roster: which users are in which presence channel, through which
//! sockets. A user is a member while at least one of their sockets is subscribed, so
//! `member_added` and `member_removed` fire per user, not per connection (the multi-tab rule).
//!
//! A join subscribes the socket, takes the member snapshot and announces the newcomer in one
//! step under the roster's lock (a leave likewise), so every other member is either in a
//! joiner's `subscription_succeeded` or announced to it afterwards, never both and never
//! neither. Announcing is only a non-blocking push into outboxes, so the lock stays short.
//! A user's first and last socket are reported to the adapter ([`HubEvents`]) under that lock
//! too; whether that is `member_added`/`member_removed` for the cluster is the adapter's call.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{AppChannels, HubEvents, Outbox};
use crate::protocol::{ChannelName, PresenceMember, SocketId, frames};

/// The outcome of a presence join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceJoin {
    /// Joined; `first_connection` is true when the user was not a member before, and
    /// `subscription_data` is the `subscription_succeeded` payload (including the joiner),
    /// which has already been queued to the joiner, ahead of any later member event.
    Joined {
        /// Whether this socket made the user a member (so `member_added` is due).
        first_connection: bool,
        /// `{"presence":{"ids":…,"hash":…,"count":…}}`.
        subscription_data: String,
    },
    /// The channel already has the maximum number of distinct users.
    Full,
}

#[derive(Debug)]
struct Member {
    member: PresenceMember,
    sockets: Vec<SocketId>,
}

/// Presence members of every channel of one app.
#[derive(Debug, Default)]
pub struct PresenceRoster {
    channels: Mutex<HashMap<ChannelName, HashMap<String, Member>>>,
}

impl PresenceRoster {
    /// Subscribes `socket` (delivering to `outbox`) as a connection of `member`, and
    /// announces `member_added` to the channel's other subscribers on the user's first
    /// connection (reported to `events`). Idempotent for a socket already joined.
    #[allow(clippy::too_many_arguments)] // one ordered step needs all of them
    pub fn join(
        &self,
        subscriptions: &AppChannels,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        member: &PresenceMember,
        max_members: usize,
        events: &dyn HubEvents,
    ) -> PresenceJoin {
        let mut channels = self.lock();
        let users = channels.entry(channel.clone()).or_default();
        let first_connection = if let Some(existing) = users.get_mut(&member.user_key) {
            if !existing.sockets.contains(&socket) {
                existing.sockets.push(socket);
            }
            false
        } else if users.len() >= max_members {
            if users.is_empty() {
                channels.remove(channel);
            }
            return PresenceJoin::Full;
        } else {
            users.insert(
                member.user_key.clone(),
                Member {
                    member: member.clone(),
                    sockets: vec![socket],
                },
            );
            true
        };
        let subscription_data = subscription_data(users);
        let greeting = frames::subscription_succeeded(channel.as_str(), &subscription_data);
        subscriptions.subscribe(channel, socket, outbox.clone(), Some(&greeting), events);
        if first_connection {
            let frame = frames::member_added(
                channel.as_str(),
                &member.user_id_json,
                member.user_info.as_deref(),
            );
            subscriptions.deliver(channel.as_str(), &frame, Some(socket));
            events.member_added(channel, &member.user_key);
        }
        PresenceJoin::Joined {
            first_connection,
            subscription_data,
        }
    }

    /// Unsubscribes `socket` from `user_key`'s connections; when that was the user's last one,
    /// announces `member_removed` (to the others, and to `events` ahead of the channel's
    /// vacancy) and returns true.
    pub fn leave(
        &self,
        subscriptions: &AppChannels,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
        events: &dyn HubEvents,
    ) -> bool {
        let mut channels = self.lock();
        let gone = Self::forget_socket(&mut channels, channel, socket, user_key);
        if let Some(gone) = &gone {
            let frame = frames::member_removed(channel.as_str(), &gone.member.user_id_json);
            subscriptions.deliver(channel.as_str(), &frame, Some(socket));
            events.member_removed(channel, user_key);
        }
        subscriptions.unsubscribe(channel.as_str(), socket, events);
        gone.is_some()
    }

    /// Removes `socket` from the member's connections; returns the member when it was the
    /// last one, dropping the channel once no member is left.
    fn forget_socket(
        channels: &mut HashMap<ChannelName, HashMap<String, Member>>,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Option<Member> {
        let users = channels.get_mut(channel)?;
        let member = users.get_mut(user_key)?;
        member.sockets.retain(|s| *s != socket);
        if !member.sockets.is_empty() {
            return None;
        }
        let gone = users.remove(user_key);
        if users.is_empty() {
            channels.remove(channel);
        }
        gone
    }

    /// The user ids (string form) present in `channel`.
    pub fn user_keys(&self, channel: &str) -> Vec<String> {
        self.lock()
            .get(channel)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelName, HashMap<String, Member>>> {
        // A poisoned lock only means a panic elsewhere; the maps are still consistent.
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Serialize)]
struct SubscriptionData<'a> {
    presence: PresenceData<'a>,
}

#[derive(Serialize)]
struct PresenceData<'a> {
    ids: Vec<&'a RawValue>,
    hash: HashMap<&'a str, Option<&'a RawValue>>,
    count: usize,
}

fn subscription_data(users: &HashMap<String, Member>) -> String {
    presence_subscription_data(users.iter().map(|(key, m)| {
        (
            key.as_str(),
            &*m.member.user_id_json,
            m.member.user_info.as_deref(),
        )
    }))
}

/// The `subscription_succeeded` payload of a presence channel with `members` (user key, user
/// id as sent, user info), `{"presence":{"ids":…,"hash":…,"count":…}}`.
pub fn presence_subscription_data<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a RawValue, Option<&'a RawValue>)>,
) -> String {
    let mut ids = Vec::new();
    let mut hash = HashMap::new();
    for (key, id, info) in members {
        ids.push(id);
        hash.insert(key, info);
    }
    let data = SubscriptionData {
        presence: PresenceData {
            count: ids.len(),
            ids,
            hash,
        },
    };
    serde_json::to_string(&data).expect("raw JSON always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::tests::Recorded;
    use crate::hub::{TestOutbox, Unreported};
    use serde_json::{Value, json};

    fn member(channel_data: &str) -> PresenceMember {
        PresenceMember::parse(channel_data, 1024).unwrap()
    }

    fn channel() -> ChannelName {
        ChannelName::parse("presence-room", 164).unwrap()
    }

    fn joined(outcome: PresenceJoin) -> (bool, Value) {
        match outcome {
            PresenceJoin::Joined {
                first_connection,
                subscription_data,
            } => (
                first_connection,
                serde_json::from_str(&subscription_data).unwrap(),
            ),
            PresenceJoin::Full => panic!("unexpected Full"),
        }
    }

    /// A roster with its app's subscriptions, and helpers to join as a fresh socket.
    #[derive(Default)]
    struct Room {
        roster: PresenceRoster,
        subscriptions: AppChannels,
    }

    impl Room {
        fn join(&self, who: &PresenceMember, max: usize) -> (SocketId, TestOutbox, PresenceJoin) {
            let socket = SocketId::random();
            let queue = TestOutbox::new(16);
            let outcome = self.roster.join(
                &self.subscriptions,
                &channel(),
                socket,
                queue.outbox(),
                who,
                max,
                &Unreported,
            );
            if let PresenceJoin::Joined {
                subscription_data, ..
            } = &outcome
            {
                // The joiner's greeting is queued first, with the snapshot it was given.
                let greeting = next_event(&queue).expect("subscription_succeeded queued");
                assert_eq!(greeting["event"], "pusher_internal:subscription_succeeded");
                assert_eq!(greeting["data"], subscription_data.as_str());
            }
            (socket, queue, outcome)
        }

        fn leave(&self, socket: SocketId, user_key: &str) -> bool {
            self.roster.leave(
                &self.subscriptions,
                &channel(),
                socket,
                user_key,
                &Unreported,
            )
        }
    }

    #[test]
    fn members_are_reported_per_user_and_the_member_before_the_vacancy() {
        let subscriptions = AppChannels::default();
        let events = Recorded::default();
        let roster = PresenceRoster::default();
        let alice = PresenceMember::parse(r#"{"user_id":"alice"}"#, 1024).unwrap();
        let (first, second) = (SocketId::random(), SocketId::random());
        let queue = TestOutbox::new(16);
        for socket in [first, second] {
            roster.join(
                &subscriptions,
                &channel(),
                socket,
                queue.outbox(),
                &alice,
                10,
                &events,
            );
        }
        assert_eq!(
            events.take(),
            ["occupied presence-room", "member_added presence-room alice"]
        );
        assert!(!roster.leave(&subscriptions, &channel(), first, "alice", &events));
        assert!(events.take().is_empty());
        assert!(roster.leave(&subscriptions, &channel(), second, "alice", &events));
        assert_eq!(
            events.take(),
            [
                "member_removed presence-room alice",
                "vacated presence-room"
            ]
        );
    }

    fn next_event(queue: &TestOutbox) -> Option<Value> {
        queue
            .next_text()
            .map(|frame| serde_json::from_str(&frame).unwrap())
    }

    #[test]
    fn second_tab_of_a_user_is_not_a_new_member() {
        let room = Room::default();
        let alice = member(r#"{"user_id":"a","user_info":{"n":1}}"#);
        let (_observer, seen, _) = room.join(&member(r#"{"user_id":"o"}"#), 100);
        let (s1, _rx1, outcome) = room.join(&alice, 100);
        let (first, data) = joined(outcome);
        assert!(first);
        assert_eq!(data["presence"]["hash"]["a"], json!({"n":1}));
        assert_eq!(data["presence"]["count"], 2);
        assert_eq!(
            next_event(&seen).unwrap()["event"],
            "pusher_internal:member_added"
        );
        let (s2, _rx2, outcome) = room.join(&alice, 100);
        let (first, data) = joined(outcome);
        assert!(!first);
        assert_eq!(data["presence"]["count"], 2);
        assert!(next_event(&seen).is_none(), "a second tab is not announced");
        assert!(!room.leave(s1, "a"));
        assert!(next_event(&seen).is_none(), "the user is still there");
        assert!(room.leave(s2, "a"));
        assert_eq!(
            next_event(&seen).unwrap()["event"],
            "pusher_internal:member_removed"
        );
        assert_eq!(room.roster.user_keys("presence-room"), vec!["o"]);
    }

    #[test]
    fn a_joiner_is_not_announced_to_itself_and_sees_itself_in_the_snapshot() {
        let room = Room::default();
        let (_, rx, outcome) = room.join(&member(r#"{"user_id":"a"}"#), 100);
        let (_, data) = joined(outcome);
        assert_eq!(data["presence"]["ids"], json!(["a"]));
        assert!(next_event(&rx).is_none());
        assert_eq!(room.subscriptions.subscriber_count("presence-room"), 1);
    }

    #[test]
    fn the_member_limit_counts_users_not_sockets() {
        let room = Room::default();
        let alice = member(r#"{"user_id":1}"#);
        let bob = member(r#"{"user_id":2}"#);
        joined(room.join(&alice, 1).2);
        joined(room.join(&alice, 1).2);
        assert_eq!(room.join(&bob, 1).2, PresenceJoin::Full);
        assert_eq!(
            room.subscriptions.subscriber_count("presence-room"),
            2,
            "a refused join does not subscribe"
        );
    }

    #[test]
    fn numeric_ids_stay_numbers_and_missing_info_is_null() {
        let room = Room::default();
        let (_, data) = joined(room.join(&member(r#"{"user_id":10}"#), 100).2);
        assert_eq!(
            data,
            json!({"presence":{"ids":[10],"hash":{"10":null},"count":1}})
        );
    }
}

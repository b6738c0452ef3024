//! The in-memory presence roster: which users are in which presence channel, through which
//! sockets. A user is a member while at least one of their sockets is subscribed, so
//! `member_added` and `member_removed` fire per user, not per connection (the multi-tab rule).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::protocol::{ChannelName, PresenceMember, SocketId};

/// The outcome of a presence join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceJoin {
    /// Joined; `first_connection` is true when the user was not a member before, and
    /// `subscription_data` is the `subscription_succeeded` payload (including the joiner).
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
    /// Adds `socket` as a connection of `member`; idempotent for a socket already joined.
    pub fn join(
        &self,
        channel: &ChannelName,
        socket: SocketId,
        member: &PresenceMember,
        max_members: usize,
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
        PresenceJoin::Joined {
            first_connection,
            subscription_data: subscription_data(users),
        }
    }

    /// Removes `socket` from `user_key`'s connections; true when that was the user's last one
    /// (so `member_removed` is due).
    pub fn leave(&self, channel: &str, socket: SocketId, user_key: &str) -> bool {
        let mut channels = self.lock();
        let Some(users) = channels.get_mut(channel) else {
            return false;
        };
        let Some(member) = users.get_mut(user_key) else {
            return false;
        };
        member.sockets.retain(|s| *s != socket);
        let gone = member.sockets.is_empty();
        if gone {
            users.remove(user_key);
            if users.is_empty() {
                channels.remove(channel);
            }
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
    let data = SubscriptionData {
        presence: PresenceData {
            ids: users.values().map(|m| &*m.member.user_id_json).collect(),
            hash: users
                .iter()
                .map(|(key, m)| (key.as_str(), m.member.user_info.as_deref()))
                .collect(),
            count: users.len(),
        },
    };
    serde_json::to_string(&data).expect("raw JSON always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn second_tab_of_a_user_is_not_a_new_member() {
        let roster = PresenceRoster::default();
        let alice = member(r#"{"user_id":"a","user_info":{"n":1}}"#);
        let (s1, s2) = (SocketId::random(), SocketId::random());
        let (first, data) = joined(roster.join(&channel(), s1, &alice, 100));
        assert!(first);
        assert_eq!(
            data,
            json!({"presence":{"ids":["a"],"hash":{"a":{"n":1}},"count":1}})
        );
        let (first, data) = joined(roster.join(&channel(), s2, &alice, 100));
        assert!(!first);
        assert_eq!(data["presence"]["count"], 1);
        assert!(!roster.leave("presence-room", s1, "a"));
        assert!(roster.leave("presence-room", s2, "a"));
        assert!(roster.user_keys("presence-room").is_empty());
    }

    #[test]
    fn the_member_limit_counts_users_not_sockets() {
        let roster = PresenceRoster::default();
        let alice = member(r#"{"user_id":1}"#);
        let bob = member(r#"{"user_id":2}"#);
        joined(roster.join(&channel(), SocketId::random(), &alice, 1));
        joined(roster.join(&channel(), SocketId::random(), &alice, 1));
        assert_eq!(
            roster.join(&channel(), SocketId::random(), &bob, 1),
            PresenceJoin::Full
        );
    }

    #[test]
    fn numeric_ids_stay_numbers_and_missing_info_is_null() {
        let roster = PresenceRoster::default();
        let (_, data) = joined(roster.join(
            &channel(),
            SocketId::random(),
            &member(r#"{"user_id":10}"#),
            100,
        ));
        assert_eq!(
            data,
            json!({"presence":{"ids":[10],"hash":{"10":null},"count":1}})
        );
    }
}

//! A presence channel's roster as Redis holds it ([`Roster`], read by a join or a refresh),
//! and as this node's subscribers of the channel know it ([`KnownMembers`]).
//!
//! Every local subscriber of a presence channel got the roster at a known place in the
//! channel's stream (its join's marker) and every member event after it, so they all know
//! the same members: those of the last roster read, changed by each member event delivered
//! since. The subscriptions registry keeps that knowledge beside the stream, in stream order.
//! Events that never reached this node (its pub/sub connection was lost, or its buffer was
//! full) leave it behind the cluster's; a roster read at a marker later shows what was
//! missed, and [`KnownMembers::reconcile`] gives the member events that make up for it:
//! members it holds that are not known are told at once, but known ones it lacks are told
//! gone only once the roster can be trusted to be whole ([`Reconcile`]: after a Redis restart,
//! each node writes its members back when it reconnects, and a reader must not announce as
//! gone a member that is only not written back yet).
//!
//! Only user ids are kept (at most `max_presence_members` per channel, 128 bytes of key
//! each): `member_removed` needs the id, and `member_added` takes its user info from the
//! roster read.

use std::collections::{HashMap, HashSet};

use bytestring::ByteString;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::hub::presence_subscription_data;
use crate::protocol::{PresenceMember, frames};

/// A roster as read from Redis: each user's key with its id and info as the client sent them.
#[derive(Debug, Default)]
pub struct Roster {
    members: Vec<RosterMember>,
}

#[derive(Debug)]
struct RosterMember {
    key: String,
    id: Box<RawValue>,
    info: Option<Box<RawValue>>,
}

/// A member as the roster keeps it: `[user_id, user_info]`.
type Stored = (Box<RawValue>, Option<Box<RawValue>>);

impl Roster {
    /// The roster in `HGETALL`'s answer (user key, stored member pairs); an entry that does
    /// not parse (not written by Relay) is left out.
    pub fn parse(flat: impl IntoIterator<Item = String>) -> Self {
        let mut flat = flat.into_iter();
        let mut members = Vec::with_capacity(flat.size_hint().0 / 2);
        while let (Some(key), Some(stored)) = (flat.next(), flat.next()) {
            if let Ok((id, info)) = serde_json::from_str::<Stored>(&stored) {
                let info = info.filter(|info| info.get() != "null");
                members.push(RosterMember { key, id, info });
            }
        }
        Roster { members }
    }

    /// The `subscription_succeeded` payload of this roster.
    pub fn subscription_data(&self) -> String {
        presence_subscription_data(
            self.members
                .iter()
                .map(|member| (member.key.as_str(), &*member.id, member.info.as_deref())),
        )
    }
}

/// The members this node's subscribers of one presence channel know: user key → user id.
#[derive(Debug, Default)]
pub struct KnownMembers {
    ids: HashMap<String, Box<RawValue>>,
}

/// A member event frame, as far as the knowledge needs it.
#[derive(Deserialize)]
struct MemberFrame {
    event: String,
    data: String,
}

impl KnownMembers {
    /// What subscribers greeted with `roster` know.
    pub fn new(roster: &Roster) -> Self {
        let ids = roster
            .members
            .iter()
            .map(|m| (m.key.clone(), m.id.clone()))
            .collect();
        KnownMembers { ids }
    }

    /// Takes in `frame`, delivered to the channel's subscribers, if it is a member event.
    pub fn hear(&mut self, frame: &str) {
        let Ok(MemberFrame { event, data }) = serde_json::from_str(frame) else {
            return;
        };
        let added = match event.as_str() {
            "pusher_internal:member_added" => true,
            "pusher_internal:member_removed" => false,
            _ => return,
        };
        let Ok(member) = PresenceMember::parse(&data, usize::MAX) else {
            return;
        };
        if added {
            self.ids.insert(member.user_key, member.user_id_json);
        } else {
            self.ids.remove(&member.user_key);
        }
    }

    /// The member events (on `channel`) that turn what is known into `roster`, read at the
    /// current place in the stream, which is known from then on. Unless `removals`, members
    /// known and missing from `roster` are kept (and not told): see [`Reconcile`].
    pub fn reconcile(
        &mut self,
        channel: &str,
        roster: &Roster,
        reconcile: Reconcile,
    ) -> Vec<ByteString> {
        // Usually every member is known already: then this only looks each one up.
        let mut frames = Vec::new();
        let mut found = 0;
        for member in &roster.members {
            if self.ids.contains_key(&member.key) {
                found += 1;
                continue;
            }
            let info = member.info.as_deref();
            frames.push(frames::member_added(channel, &member.id, info));
            self.ids.insert(member.key.clone(), member.id.clone());
        }
        let missing = self.ids.len() > found + frames.len();
        if reconcile == Reconcile::Full && missing {
            let listed: HashSet<&str> = roster.members.iter().map(|m| m.key.as_str()).collect();
            self.ids.retain(|key, id| {
                let kept = listed.contains(key.as_str());
                if !kept {
                    frames.push(frames::member_removed(channel, id));
                }
                kept
            });
        }
        frames
    }
}

/// How far a roster read is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reconcile {
    /// Members in the roster are there; one missing may only not be written back yet (Redis
    /// restarted empty, and its node has not rewritten its share), so it is not told gone.
    AddsOnly,
    /// The roster is the cluster's: every live node has had `node_timeout` to write its
    /// share back since the loss (a node silent longer is dead and cleaned up anyway).
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &str, id: &str, info: &str) -> [String; 2] {
        [key.to_owned(), format!("[{id},{info}]")]
    }

    #[test]
    fn a_stored_roster_reads_back_into_the_greeting() {
        let mut flat: Vec<String> = stored("7", "7", r#"{"name":"x"}"#).into();
        flat.extend(stored("u", r#""u""#, "null"));
        flat.extend(["foreign".to_owned(), "not json".to_owned()]);
        let data: serde_json::Value =
            serde_json::from_str(&Roster::parse(flat).subscription_data()).unwrap();
        assert_eq!(data["presence"]["count"], 2);
        assert_eq!(data["presence"]["hash"]["7"]["name"], "x");
        assert_eq!(data["presence"]["hash"]["u"], serde_json::Value::Null);
        let mut ids = data["presence"]["ids"].as_array().unwrap().clone();
        ids.sort_by_key(|id| id.to_string());
        assert_eq!(ids, vec![serde_json::json!("u"), serde_json::json!(7)]);
    }

    #[test]
    fn reconciling_tells_exactly_what_was_missed() {
        let channel = "presence-room";
        let id = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        let mut known = KnownMembers::default();
        let first: Vec<String> = [stored("a", r#""a""#, "null"), stored("b", "2", "null")]
            .concat()
            .to_vec();
        assert_eq!(
            known
                .reconcile(channel, &Roster::parse(first), Reconcile::Full)
                .len(),
            2
        );
        // Heard in the stream: c joined, a left; a count announcement changes nothing.
        known.hear(&frames::member_added(channel, &id(r#""c""#), None));
        known.hear(&frames::member_removed(channel, &id(r#""a""#)));
        known.hear(r#"{"event":"pusher_internal:subscription_count","data":"{}"}"#);
        // Missed: b left and d joined.
        let now: Vec<String> = [
            stored("c", r#""c""#, "null"),
            stored("d", r#""d""#, r#"{"n":1}"#),
        ]
        .concat()
        .to_vec();
        let added = known.reconcile(channel, &Roster::parse(now.clone()), Reconcile::AddsOnly);
        let d = frames::member_added(channel, &id(r#""d""#), Some(&id(r#"{"n":1}"#)));
        assert_eq!(added, [d], "b may only be not written back yet");
        let removed = known.reconcile(channel, &Roster::parse(now.clone()), Reconcile::Full);
        assert_eq!(
            removed,
            [frames::member_removed(channel, &id("2"))],
            "d told already"
        );
        assert!(
            known
                .reconcile(channel, &Roster::parse(now), Reconcile::Full)
                .is_empty()
        );
    }
}

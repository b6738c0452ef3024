//! Who is signed in on this node: the connections of each user (so that they can all be
//! terminated at once), and the connections watching each user (watchlists), so that a user
//! going online or offline is told to its watchers. Every change and the announcement it
//! causes happen under one lock, so watchers see transitions in the order they happened.
//!
//! In a cluster the transitions are the cluster's: the adapter records connections quietly
//! ([`SignedInUsers::add_quiet`]) and tells watchers what Redis announces
//! ([`SignedInUsers::tell_watchers`]). A watcher registered before its first state is known
//! is pending: the latest state it is told of each user meanwhile waits behind that state
//! ([`SignedInUsers::watch_pending`], [`SignedInUsers::watch_ready`]); one entry per watched
//! user, so a pending watcher holds no more than its watchlist however many transitions come.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{EndRequest, Outbox};
use crate::protocol::{SocketId, frames};

/// One app's signed-in connections and watchlists on this node.
#[derive(Debug, Default)]
pub struct SignedInUsers {
    state: Mutex<State>,
}

impl State {
    /// What `user_id`'s watchers were told, if it has watchers.
    fn watched_told(&mut self, user_id: &str) -> Option<&mut Told> {
        if !self.watchers.contains_key(user_id) {
            return None;
        }
        Some(self.told.entry(user_id.to_owned()).or_default())
    }

    /// Tells `user_id`'s watchers that it is online (or offline), and records it; a pending
    /// watcher keeps it as the user's latest state.
    fn tell_state(&mut self, user_id: &str, online: bool) {
        if let Some(told) = self.watched_told(user_id) {
            told.online = Some(online);
        }
        let Some(watchers) = self.watchers.get(user_id) else {
            return;
        };
        let frame = if online {
            frames::watchlist_events(&[user_id], &[])
        } else {
            frames::watchlist_events(&[], &[user_id])
        };
        for (socket, outbox) in watchers {
            match self.pending.get_mut(socket) {
                Some(held) => {
                    held.insert(user_id.to_owned(), online);
                }
                None => {
                    outbox.push(frame.clone());
                }
            }
        }
    }

    /// Records `socket` of `user_id`; whether it is the user's first connection here.
    fn add_connection(&mut self, user_id: &str, socket: SocketId, outbox: &Outbox) -> bool {
        let sockets = self.connections.entry(user_id.to_owned()).or_default();
        sockets.insert(socket, outbox.clone());
        sockets.len() == 1
    }

    /// Forgets `socket` of `user_id`; whether it was the user's last connection here.
    fn remove_connection(&mut self, user_id: &str, socket: SocketId) -> bool {
        let Some(sockets) = self.connections.get_mut(user_id) else {
            return false;
        };
        if sockets.remove(&socket).is_none() || !sockets.is_empty() {
            return false;
        }
        self.connections.remove(user_id);
        true
    }
}

#[derive(Debug, Default)]
struct State {
    /// Signed-in connections by user id, each with its outbox (which can ask it to end).
    connections: HashMap<String, HashMap<SocketId, Outbox>>,
    /// Watching connections by watched user id.
    watchers: HashMap<String, HashMap<SocketId, Outbox>>,
    /// Watchers whose first state is not queued yet, with the latest state they were told
    /// meanwhile of each watched user (online or not).
    pending: HashMap<SocketId, HashMap<String, bool>>,
    /// By watched user id: the state its watchers were last told (online or not), and how
    /// many announcements were heard for it.
    told: HashMap<String, Told>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Told {
    online: Option<bool>,
    heard: u64,
}

impl SignedInUsers {
    /// Records that `socket` (delivering to `outbox`) is signed in as `user_id`; when this
    /// makes the user online (its first connection), its watchers are told. `true` then.
    pub fn add(&self, user_id: &str, socket: SocketId, outbox: &Outbox) -> bool {
        let mut state = self.lock();
        let online = state.add_connection(user_id, socket, outbox);
        if online {
            state.tell_state(user_id, true);
        }
        online
    }

    /// Records `socket` (delivering to `outbox`) as signed in as `user_id`, telling no one;
    /// `true` when it is the user's first connection here.
    pub fn add_quiet(&self, user_id: &str, socket: SocketId, outbox: &Outbox) -> bool {
        self.lock().add_connection(user_id, socket, outbox)
    }

    /// Forgets `socket` of `user_id`, telling no one; `true` when it was the user's last here.
    pub fn remove_quiet(&self, user_id: &str, socket: SocketId) -> bool {
        self.lock().remove_connection(user_id, socket)
    }

    /// Each signed-in user with its connections on this node.
    pub fn connection_counts(&self) -> Vec<(String, usize)> {
        let state = self.lock();
        let counts = state.connections.iter();
        counts
            .map(|(id, sockets)| (id.clone(), sockets.len()))
            .collect()
    }

    /// Tells `user_id`'s watchers that the user came online (or went offline), as the
    /// cluster announced.
    pub fn tell_watchers(&self, user_id: &str, online: bool) {
        let mut state = self.lock();
        if let Some(told) = state.watched_told(user_id) {
            told.heard += 1;
        }
        state.tell_state(user_id, online);
    }

    /// How many announcements were heard for `user_id` so far; pass it to
    /// [`SignedInUsers::refresh`] with a state read afterwards.
    pub fn heard(&self, user_id: &str) -> u64 {
        self.lock().told.get(user_id).map_or(0, |told| told.heard)
    }

    /// Tells `user_id`'s watchers its state `online`, read from the cluster after `heard`
    /// announcements were heard, unless they were told it already or an announcement heard
    /// since (which is at least as new as the reading) told them.
    pub fn refresh(&self, user_id: &str, online: bool, heard: u64) {
        let mut state = self.lock();
        let Some(told) = state.watched_told(user_id) else {
            return;
        };
        if told.heard == heard && told.online != Some(online) {
            state.tell_state(user_id, online);
        }
    }

    /// Whether `user_id` has a connection on this node.
    pub fn is_signed_in(&self, user_id: &str) -> bool {
        self.lock().connections.contains_key(user_id)
    }

    /// Whether a connection of this node watches `user_id`.
    pub fn is_watched(&self, user_id: &str) -> bool {
        self.lock().watchers.contains_key(user_id)
    }

    /// Registers `socket` (delivering to `outbox`) as a watcher of each of `user_ids` whose
    /// state is still to be read: what it is told until [`SignedInUsers::watch_ready`] waits.
    pub fn watch_pending(&self, socket: SocketId, outbox: &Outbox, user_ids: &[String]) {
        let mut state = self.lock();
        state.pending.insert(socket, HashMap::new());
        for id in user_ids {
            let watchers = state.watchers.entry(id.clone()).or_default();
            watchers.insert(socket, outbox.clone());
        }
    }

    /// Queues a pending watcher's first state (`online` and `offline` users), then the latest
    /// state it was told meanwhile of each user (read after the state was, or already in it:
    /// at worst told twice, never left stale).
    pub fn watch_ready(
        &self,
        socket: SocketId,
        outbox: &Outbox,
        online: &[&str],
        offline: &[&str],
    ) {
        let mut state = self.lock();
        outbox.push(frames::watchlist_events(online, offline));
        for (users, is_online) in [(online, true), (offline, false)] {
            for user_id in users {
                // An announcement heard already is at least as new as this reading.
                if let Some(told) = state.watched_told(user_id) {
                    told.online.get_or_insert(is_online);
                }
            }
        }
        let held = state.pending.remove(&socket).unwrap_or_default();
        if !held.is_empty() {
            let now = |online: bool| -> Vec<&str> {
                let users = held.iter().filter(|(_, state)| **state == online);
                users.map(|(id, _)| id.as_str()).collect()
            };
            outbox.push(frames::watchlist_events(&now(true), &now(false)));
        }
    }

    /// Forgets `socket` (when it closes); when this makes the user offline, its watchers are
    /// told. `true` then.
    pub fn remove(&self, user_id: &str, socket: SocketId) -> bool {
        let mut state = self.lock();
        let offline = state.remove_connection(user_id, socket);
        if offline {
            state.tell_state(user_id, false);
        }
        offline
    }

    /// Tells every connection signed in as `user_id` to close (each forgets itself as it
    /// does); returns how many there were.
    pub fn terminate(&self, user_id: &str) -> usize {
        let state = self.lock();
        let Some(sockets) = state.connections.get(user_id) else {
            return 0;
        };
        for outbox in sockets.values() {
            outbox.request_end(EndRequest::Terminated);
        }
        sockets.len()
    }

    /// Registers `socket` (delivering to `outbox`) as a watcher of each of `user_ids`, and
    /// queues who of them is online and who offline, before any later change.
    pub fn watch(&self, socket: SocketId, outbox: &Outbox, user_ids: &[String]) {
        let mut state = self.lock();
        let (online, offline): (Vec<&str>, Vec<&str>) = user_ids
            .iter()
            .map(String::as_str)
            .partition(|id| state.connections.contains_key(*id));
        outbox.push(frames::watchlist_events(&online, &offline));
        for id in user_ids {
            state
                .watchers
                .entry(id.clone())
                .or_default()
                .insert(socket, outbox.clone());
        }
    }

    /// Removes `socket` as a watcher of each of `user_ids`.
    pub fn unwatch(&self, socket: SocketId, user_ids: &[String]) {
        let mut state = self.lock();
        state.pending.remove(&socket);
        for id in user_ids {
            if let Some(watchers) = state.watchers.get_mut(id) {
                watchers.remove(&socket);
                if watchers.is_empty() {
                    state.watchers.remove(id);
                    state.told.remove(id);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::hub::TestOutbox;

    /// The `events` of the next watchlist frame in `queue`.
    fn next_events(queue: &TestOutbox) -> Value {
        let frame: Value = serde_json::from_str(&queue.next_text().expect("a frame")).unwrap();
        assert_eq!(frame["event"], "pusher_internal:watchlist_events");
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        data["events"].clone()
    }

    #[test]
    fn a_user_is_online_from_its_first_connection_to_its_last() {
        let users = SignedInUsers::default();
        let queue = TestOutbox::new(1);
        let (a1, a2) = (SocketId::random(), SocketId::random());
        assert!(users.add("alice", a1, queue.outbox()));
        assert!(!users.add("alice", a2, queue.outbox()));
        assert!(!users.remove("alice", a1));
        assert!(users.remove("alice", a2));
        assert!(!users.remove("alice", a2), "already gone");
    }

    #[test]
    fn terminating_a_user_asks_only_that_users_connections_to_end() {
        let users = SignedInUsers::default();
        let (a1, a2, b) = (SocketId::random(), SocketId::random(), SocketId::random());
        let queues: Vec<TestOutbox> = (0..3).map(|_| TestOutbox::new(1)).collect();
        users.add("alice", a1, queues[0].outbox());
        users.add("alice", a2, queues[1].outbox());
        users.add("bob", b, queues[2].outbox());
        users.remove("alice", a2);
        assert_eq!(users.terminate("alice"), 1);
        assert_eq!(queues[0].end_request(), Some(EndRequest::Terminated));
        assert_eq!(
            queues[1].end_request(),
            None,
            "a closed connection is untouched"
        );
        assert_eq!(queues[2].end_request(), None);
        // The terminated connection forgets itself as it closes, which makes alice offline.
        assert!(users.remove("alice", a1));
    }

    #[test]
    fn a_watcher_gets_the_state_then_every_transition_until_it_unwatches() {
        let users = SignedInUsers::default();
        let session = TestOutbox::new(8);
        let watcher = TestOutbox::new(8);
        let (watching, alice) = (SocketId::random(), SocketId::random());
        users.add("bob", SocketId::random(), session.outbox());
        let watched = ["alice".to_owned(), "bob".to_owned()];
        users.watch(watching, watcher.outbox(), &watched);
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "online", "user_ids": ["bob"]}, {"name": "offline", "user_ids": ["alice"]}])
        );
        users.add("alice", alice, session.outbox());
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "online", "user_ids": ["alice"]}])
        );
        users.remove("alice", alice);
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "offline", "user_ids": ["alice"]}])
        );
        users.unwatch(watching, &watched);
        users.add("alice", alice, session.outbox());
        assert_eq!(watcher.next_text(), None);
    }

    #[test]
    fn a_pending_watcher_gets_its_state_first_then_what_it_heard_meanwhile() {
        let users = SignedInUsers::default();
        let watcher = TestOutbox::new(8);
        let watching = SocketId::random();
        let watched = ["alice".to_owned()];
        users.watch_pending(watching, watcher.outbox(), &watched);
        users.tell_watchers("alice", true);
        assert_eq!(watcher.next_text(), None, "held until the state is queued");
        users.watch_ready(watching, watcher.outbox(), &[], &["alice"]);
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "offline", "user_ids": ["alice"]}])
        );
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "online", "user_ids": ["alice"]}])
        );
        users.tell_watchers("alice", false);
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "offline", "user_ids": ["alice"]}])
        );
        // Quiet records tell no one; the cluster's announcements do.
        assert!(users.add_quiet("alice", SocketId::random(), watcher.outbox()));
        assert_eq!(watcher.next_text(), None);
        assert!(users.is_signed_in("alice") && users.is_watched("alice"));
    }

    #[test]
    fn a_pending_watcher_holds_only_the_latest_state_of_each_user() {
        let users = SignedInUsers::default();
        let watcher = TestOutbox::new(8);
        let watching = SocketId::random();
        let watched = ["alice".to_owned(), "bob".to_owned()];
        users.watch_pending(watching, watcher.outbox(), &watched);
        for round in 0..1000 {
            users.tell_watchers("alice", round % 2 == 0);
        }
        users.tell_watchers("bob", true);
        users.watch_ready(watching, watcher.outbox(), &[], &["alice", "bob"]);
        next_events(&watcher);
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "online", "user_ids": ["bob"]}, {"name": "offline", "user_ids": ["alice"]}])
        );
        assert_eq!(watcher.next_text(), None);
    }

    #[test]
    fn a_refresh_tells_watchers_only_a_state_they_were_not_told() {
        let users = SignedInUsers::default();
        let watcher = TestOutbox::new(8);
        let watching = SocketId::random();
        users.watch_pending(watching, watcher.outbox(), &["alice".to_owned()]);
        users.watch_ready(watching, watcher.outbox(), &["alice"], &[]);
        next_events(&watcher);
        let heard = users.heard("alice");
        users.refresh("alice", true, heard);
        assert_eq!(watcher.next_text(), None, "told already");
        // An offline announcement missed while the connection was down: the refresh tells it.
        users.refresh("alice", false, heard);
        assert_eq!(
            next_events(&watcher),
            json!([{"name": "offline", "user_ids": ["alice"]}])
        );
        // A reading older than an announcement heard since is dropped.
        let heard = users.heard("alice");
        users.tell_watchers("alice", true);
        next_events(&watcher);
        users.refresh("alice", false, heard);
        assert_eq!(watcher.next_text(), None, "the announcement is newer");
        // Unwatched users are not refreshed.
        users.unwatch(watching, &["alice".to_owned()]);
        users.refresh("alice", false, users.heard("alice"));
        assert_eq!(watcher.next_text(), None);
    }
}

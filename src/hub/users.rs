//! Who is signed in on this node: the connections of each user (so that they can all be
//! terminated at once), and the connections watching each user (watchlists), so that a user
//! going online or offline is told to its watchers.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{EndRequest, Outbox};
use crate::protocol::SocketId;

/// One app's signed-in connections and watchlists on this node.
#[derive(Debug, Default)]
pub struct SignedInUsers {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Signed-in connections by user id, each with its outbox (which can ask it to end).
    connections: HashMap<String, HashMap<SocketId, Outbox>>,
    /// Watching connections by watched user id.
    watchers: HashMap<String, HashMap<SocketId, Outbox>>,
}

impl SignedInUsers {
    /// Records that `socket` (delivering to `outbox`) is signed in as `user_id`. `true` when
    /// this made the user online (its first connection).
    pub fn add(&self, user_id: &str, socket: SocketId, outbox: &Outbox) -> bool {
        let mut state = self.lock();
        let sockets = state.connections.entry(user_id.to_owned()).or_default();
        sockets.insert(socket, outbox.clone());
        sockets.len() == 1
    }

    /// Forgets `socket` (when it closes). `true` when this made the user offline.
    pub fn remove(&self, user_id: &str, socket: SocketId) -> bool {
        let mut state = self.lock();
        let Some(sockets) = state.connections.get_mut(user_id) else {
            return false;
        };
        if sockets.remove(&socket).is_none() {
            return false;
        }
        if sockets.is_empty() {
            state.connections.remove(user_id);
            return true;
        }
        false
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

    /// Which of `user_ids` are signed in on this node.
    pub fn online<'a>(&self, user_ids: &'a [String]) -> Vec<&'a str> {
        let state = self.lock();
        user_ids
            .iter()
            .filter(|id| state.connections.contains_key(id.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// Registers `socket` (delivering to `outbox`) as a watcher of each of `user_ids`.
    pub fn watch(&self, socket: SocketId, outbox: &Outbox, user_ids: &[String]) {
        let mut state = self.lock();
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
        for id in user_ids {
            if let Some(watchers) = state.watchers.get_mut(id) {
                watchers.remove(&socket);
                if watchers.is_empty() {
                    state.watchers.remove(id);
                }
            }
        }
    }

    /// Pushes `frame` to every connection watching `user_id`.
    pub fn tell_watchers(&self, user_id: &str, frame: &bytestring::ByteString) {
        let state = self.lock();
        if let Some(watchers) = state.watchers.get(user_id) {
            for outbox in watchers.values() {
                outbox.push(frame.clone());
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
    use bytestring::ByteString;

    use super::*;
    use crate::hub::TestOutbox;

    #[test]
    fn a_user_is_online_from_its_first_connection_to_its_last() {
        let users = SignedInUsers::default();
        let queue = TestOutbox::new(1);
        let (a1, a2) = (SocketId::random(), SocketId::random());
        assert!(users.add("alice", a1, queue.outbox()));
        assert!(!users.add("alice", a2, queue.outbox()));
        let ids = ["alice".to_owned(), "bob".to_owned()];
        assert_eq!(users.online(&ids), vec!["alice"]);
        assert!(!users.remove("alice", a1));
        assert!(users.remove("alice", a2));
        assert!(!users.remove("alice", a2), "already gone");
        assert!(users.online(&ids).is_empty());
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
    fn watchers_hear_about_the_users_they_watch_until_they_unwatch() {
        let users = SignedInUsers::default();
        let queue = TestOutbox::new(8);
        let watcher = SocketId::random();
        let watched = ["alice".to_owned()];
        users.watch(watcher, queue.outbox(), &watched);
        users.tell_watchers("alice", &ByteString::from_static("a"));
        users.tell_watchers("bob", &ByteString::from_static("b"));
        assert_eq!(queue.next_text().as_deref(), Some("a"));
        assert_eq!(queue.next_text(), None);
        users.unwatch(watcher, &watched);
        users.tell_watchers("alice", &ByteString::from_static("a"));
        assert_eq!(queue.next_text(), None);
    }
}

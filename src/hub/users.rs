//! The connections of this node signed in as each user, so that they can all be terminated
//! at once (`POST users/{id}/terminate_connections`).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use crate::protocol::SocketId;

/// One app's signed-in connections by user id; each holds a token its connection watches.
#[derive(Debug, Default)]
pub struct SignedInUsers {
    users: Mutex<HashMap<String, HashMap<SocketId, CancellationToken>>>,
}

impl SignedInUsers {
    /// Records that `socket` is signed in as `user_id`; cancelling `terminate` ends it.
    pub fn add(&self, user_id: &str, socket: SocketId, terminate: CancellationToken) {
        self.lock()
            .entry(user_id.to_owned())
            .or_default()
            .insert(socket, terminate);
    }

    /// Forgets `socket` (when it closes).
    pub fn remove(&self, user_id: &str, socket: SocketId) {
        let mut users = self.lock();
        if let Some(sockets) = users.get_mut(user_id) {
            sockets.remove(&socket);
            if sockets.is_empty() {
                users.remove(user_id);
            }
        }
    }

    /// Tells every connection signed in as `user_id` to close; returns how many there were.
    pub fn terminate(&self, user_id: &str) -> usize {
        let sockets = self.lock().remove(user_id).unwrap_or_default();
        for token in sockets.values() {
            token.cancel();
        }
        sockets.len()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<SocketId, CancellationToken>>> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_a_user_cancels_only_that_users_connections() {
        let users = SignedInUsers::default();
        let (a1, a2, b) = (SocketId::random(), SocketId::random(), SocketId::random());
        let tokens: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
        users.add("alice", a1, tokens[0].clone());
        users.add("alice", a2, tokens[1].clone());
        users.add("bob", b, tokens[2].clone());
        users.remove("alice", a2);
        assert_eq!(users.terminate("alice"), 1);
        assert!(tokens[0].is_cancelled());
        assert!(
            !tokens[1].is_cancelled(),
            "a closed connection is not touched"
        );
        assert!(!tokens[2].is_cancelled());
        assert_eq!(users.terminate("alice"), 0);
    }
}

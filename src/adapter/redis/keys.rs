//! The names of everything Relay keeps in Redis, under the cluster's prefix `P`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:nodes` | sorted set | node id → its last heartbeat (Redis time, ms) |
//! | `P:node:N:apps` | set | the apps node `N` has state of (what a cleanup visits) |
//! | `P:app:A:channels` | hash | channel → subscribers cluster-wide |
//! | `P:app:A:channels:N` | hash | channel → subscribers on node `N` |
//! | `P:app:A:connections` | string | connections cluster-wide (apps with a quota) |
//! | `P:app:A:node-connections` | hash | node → its connections |
//! | `P:app:A:vacating:C` | string | the token of channel `C`'s waiting `channel_vacated` |
//! | `P:app:A:count-quiet:C` | string (expiring) | channel `C`'s quiet window after a count announced above 100 |
//! | `P:vacating` | sorted set | waiting vacates `A\nC\ntoken` → when they are due (ms) |
//! | `P:vacate-seq` | string | the last token given out |
//! | `P:app:A:presence:C` | hash | presence channel `C`'s members: user id → `[user_id, user_info]` |
//! | `P:app:A:presence:C:sockets` | hash | user id → the user's connections in `C`, cluster-wide |
//! | `P:app:A:presence:C:farewells` | hash | user id → the `member_removed` message published when the user leaves |
//! | `P:app:A:presence:C:node:N` | set | node `N`'s connections in `C`: `socket id\nuser id` |
//! | `P:app:A:users` | hash | signed-in user id → connections cluster-wide (apps with watchlists) |
//! | `P:app:A:users:N` | hash | signed-in user id → connections on node `N` |
//! | `P:app:A:cache:C` | hash (expiring) | cache channel `C`'s last event: `frame`, `data` |
//! | `P:node:N:presence` | set | the presence channels node `N` holds connections in: `A\nC` |
//! | `P:app:A:rate:NAME` | string (expiring) | a rate-limit bucket's theoretical arrival time (µs): `api`, `reads`, `events`, `api-ip:ADDR`, `connect-ip:ADDR` |
//! | `P:store:…` | | the state store (see `store::redis`) |
//!
//! Pub/sub channels are named `P:A:channel` (a namespace of their own in Redis). A node's own
//! entries are overwritten with its local truth whenever it changes and after every
//! reconnection, and the cluster-wide entries move by the same difference in the same
//! script, so the two never disagree. The scripts build some names themselves (a dead
//! node's), which a single Redis allows; Redis Cluster would need hash tags (part 2).

/// Key names for one cluster prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix, as the scripts that build names need it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    pub fn node_apps(&self, node: &str) -> String {
        format!("{}:node:{node}:apps", self.prefix)
    }

    pub fn channels(&self, app_id: &str) -> String {
        format!("{}:app:{app_id}:channels", self.prefix)
    }

    pub fn node_channels(&self, app_id: &str, node: &str) -> String {
        format!("{}:app:{app_id}:channels:{node}", self.prefix)
    }

    pub fn vacating(&self) -> String {
        format!("{}:vacating", self.prefix)
    }

    pub fn connections(&self, app_id: &str) -> String {
        format!("{}:app:{app_id}:connections", self.prefix)
    }

    pub fn node_connections(&self, app_id: &str) -> String {
        format!("{}:app:{app_id}:node-connections", self.prefix)
    }

    /// The roster of the presence channel `channel`; its other keys add a suffix to it.
    pub fn presence(&self, app_id: &str, channel: &str) -> String {
        format!("{}:app:{app_id}:presence:{channel}", self.prefix)
    }

    pub fn node_presence(&self, app_id: &str, channel: &str, node: &str) -> String {
        format!("{}:node:{node}", self.presence(app_id, channel))
    }

    pub fn users(&self, app_id: &str) -> String {
        format!("{}:app:{app_id}:users", self.prefix)
    }

    pub fn node_users(&self, app_id: &str, node: &str) -> String {
        format!("{}:{node}", self.users(app_id))
    }

    pub fn cache(&self, app_id: &str, channel: &str) -> String {
        format!("{}:app:{app_id}:cache:{channel}", self.prefix)
    }

    /// A rate-limit bucket of `app_id` (its name says which limit and, for the per-address
    /// ones, which address).
    pub fn rate(&self, app_id: &str, name: &str) -> String {
        format!("{}:app:{app_id}:rate:{name}", self.prefix)
    }

    pub fn node_presence_channels(&self, node: &str) -> String {
        format!("{}:node:{node}:presence", self.prefix)
    }

    /// The pub/sub channel of `channel` of `app_id`. Pusher channel names hold no `:`, so the
    /// name is unambiguous whatever the app id.
    pub fn pubsub(&self, app_id: &str, channel: &str) -> String {
        format!("{}:{app_id}:{channel}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_table_and_the_scripts() {
        let keys = Keys::new("relay");
        assert_eq!(keys.nodes(), "relay:nodes");
        assert_eq!(keys.node_apps("n1"), "relay:node:n1:apps");
        assert_eq!(keys.channels("7"), "relay:app:7:channels");
        assert_eq!(keys.node_channels("7", "n1"), "relay:app:7:channels:n1");
        assert_eq!(keys.connections("7"), "relay:app:7:connections");
        assert_eq!(keys.node_connections("7"), "relay:app:7:node-connections");
        assert_eq!(keys.pubsub("7", "news"), "relay:7:news");
        assert_eq!(
            keys.presence("7", "presence-a"),
            "relay:app:7:presence:presence-a"
        );
        assert_eq!(
            keys.node_presence("7", "presence-a", "n1"),
            "relay:app:7:presence:presence-a:node:n1"
        );
        assert_eq!(keys.node_presence_channels("n1"), "relay:node:n1:presence");
        assert_eq!(keys.cache("7", "cache-a"), "relay:app:7:cache:cache-a");
        assert_eq!(keys.users("7"), "relay:app:7:users");
        assert_eq!(keys.node_users("7", "n1"), "relay:app:7:users:n1");
        assert_eq!(
            keys.rate("7", "api-ip:192.0.2.1"),
            "relay:app:7:rate:api-ip:192.0.2.1"
        );
    }
}

//! Making up for what a node's pub/sub connection missed: when a channel is subscribed again
//! after the connection was lost, what was published on it meanwhile never arrives. The
//! subscriptions registry queues the state such a channel carries ([`Refresh`]); this task
//! reads it again from Redis, one refresh at a time, and tells the local clients what
//! changed: a watched user's online state ([`watchlists::refresh_watched`]) and a presence
//! channel's members ([`ClusterPresence::refresh_roster`]).
//!
//! A roster is read twice. At once, members that joined meanwhile are told; a member missing
//! from it may only not be written back yet (Redis restarted empty, and the member's node
//! rewrites its share as it reconnects), so members that left are told by a second read one
//! `node_timeout` later, when every live node has written its share back (a node silent
//! longer is dead, and its members are removed by its clean-up anyway).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::keys::Keys;
use super::link::Link;
use super::presence::ClusterPresence;
use super::roster::Reconcile;
use super::subscriptions::{Refresh, Subscriptions};
use super::watchlists;
use crate::hub::Hub;
use crate::protocol::ChannelName;

/// What the task reads and tells with.
pub(super) struct CatchUp {
    pub subscriptions: Arc<Subscriptions>,
    pub link: Arc<Link>,
    pub keys: Keys,
    pub hub: Arc<Hub>,
    pub presence: Arc<ClusterPresence>,
    pub node_timeout: Duration,
}

impl CatchUp {
    /// Until `stop`: does each refresh as it falls due.
    pub(super) async fn run(self, stop: CancellationToken) {
        // Second roster reads by (app id, channel), when due; bounded by the channels.
        let mut full_reads: HashMap<(String, ChannelName), Instant> = HashMap::new();
        loop {
            let next = full_reads.values().min().copied();
            let due = tokio::select! {
                due = self.subscriptions.refreshes() => due,
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    let (ready, later): (HashMap<_, _>, HashMap<_, _>) =
                        std::mem::take(&mut full_reads)
                            .into_iter()
                            .partition(|(_, at)| *at <= now);
                    full_reads = later;
                    for (app_id, channel) in ready.into_keys() {
                        self.read_roster(&app_id, &channel, Reconcile::Full).await;
                    }
                    continue;
                }
                () = stop.cancelled() => return,
            };
            for refresh in due {
                match refresh {
                    Refresh::Watched { app_id, user_id } => {
                        let (link, keys) = (&self.link, &self.keys);
                        watchlists::refresh_watched(link, keys, &self.hub, &app_id, &user_id).await;
                    }
                    Refresh::Roster { app_id, channel } => {
                        self.read_roster(&app_id, &channel, Reconcile::AddsOnly)
                            .await;
                        // Put off again by a later loss.
                        let at = Instant::now() + self.node_timeout;
                        full_reads.insert((app_id, channel), at);
                    }
                }
            }
        }
    }

    /// Reads `channel`'s roster for its local subscribers, if it has any here.
    async fn read_roster(&self, app_id: &str, channel: &ChannelName, reconcile: Reconcile) {
        if self.hub.app(app_id).subscriber_count(channel.as_str()) > 0 {
            self.presence
                .refresh_roster(app_id, channel, reconcile)
                .await;
        }
    }
}

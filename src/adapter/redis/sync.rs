//! The task that keeps this node's share of the cluster's state in Redis, and the cluster
//! free of dead nodes.
//!
//! - **Writes**: whenever the hub reports a change ([`NodeShare`]), the latest counts of the
//!   changed channels and connections go to Redis in one script per app; the script tells
//!   which changes were the cluster's transitions, and this node raises
//!   `channel_occupied`/`channel_vacated` for exactly those (once per cluster).
//! - **Re-establishing**: after every (re)connection to Redis, and when a heartbeat finds this
//!   node missing (Redis restarted empty, or the node was taken for dead), it writes its
//!   whole share again, replacing what Redis held for it (presence connections included).
//! - **Subscription counts**: for apps that want them, once a change of this node's
//!   subscribers is written, a script announces the channel's cluster-wide count to every
//!   node's subscribers, in the stream's order (throttled above 100 subscribers as Pusher does,
//!   in Redis, so across nodes); this node raises the webhook, and announces a change made
//!   inside a quiet window once the window is over. A claim (counted before the socket is
//!   greeted) announces nothing: the socket's own report follows and announces once it can
//!   hear it. A dead node's clean-up announces the counts it lowers.
//! - **Signed-in users** of apps with watchlists: each node writes its connection count of
//!   each user as it changes (coalesced like the channel counts), and the script that moves
//!   a user's cluster-wide count tells the user's watchers on every node when that takes the
//!   user online or offline; a dead node's clean-up takes its users offline.
//! - **Heartbeats** every `heartbeat_interval`; a node silent for `node_timeout` minus one
//!   interval is dead (the survivors look once per interval, so it is gone within
//!   `node_timeout` of its last beat) and is cleaned up: its presence members leave (announced
//!   to the other nodes' clients, `member_removed` raised here), its counts leave the cluster's,
//!   and the channels that leaves empty are vacated (webhooks raised here). The clean-up script
//!   re-checks the silence and removes the node atomically, so of all the nodes that notice,
//!   exactly one does it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use super::envelope::NodeId;
use super::keys::Keys;
use super::link::Link;
use super::presence::ClusterPresence;
use super::scripts::Scripts;
use super::share::{AppChanges, NodeShare};
use crate::hub::Hub;
use crate::protocol::{ChannelKind, ChannelName, WebhookKind};
use crate::webhooks::{WebhookEvent, WebhookSinks};

/// How long a stopping node may take to leave the cluster.
const LEAVE_LIMIT: Duration = Duration::from_secs(2);

/// What the task works with.
pub struct ClusterState {
    pub node: NodeId,
    pub keys: Keys,
    pub link: Arc<Link>,
    pub scripts: Arc<Scripts>,
    pub share: Arc<NodeShare>,
    pub presence: Arc<ClusterPresence>,
    pub hub: Arc<Hub>,
    pub webhooks: WebhookSinks,
    pub heartbeat_interval: Duration,
    pub node_timeout: Duration,
    /// Each app's `webhook_vacate_delay_ms` (absent: none).
    pub vacate_delays: Arc<HashMap<String, Duration>>,
    /// The apps with `enable_subscription_count`.
    pub counted_apps: Arc<HashSet<String>>,
    /// The apps with `enable_watchlist_events`, whose signed-in users are counted in Redis.
    pub watchlist_apps: Arc<HashSet<String>>,
    /// Channels (app id, name) with an announcement of their count waiting for the end of a
    /// quiet window.
    pub scheduled_counts: Arc<Mutex<HashSet<(String, String)>>>,
}

impl ClusterState {
    /// Runs until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut reachable = self.link.watch_reachable();
        let mut heartbeat = tokio::time::interval(self.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rewrite_all = true;
        loop {
            let mut beat = false;
            tokio::select! {
                () = self.share.changed() => {}
                _ = heartbeat.tick() => beat = true,
                changed = reachable.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Back: beat at once, so the node is in the cluster before it writes.
                    rewrite_all = true;
                    beat = true;
                }
                () = stop.cancelled() => {
                    if self.link.reachable() {
                        let _ = tokio::time::timeout(LEAVE_LIMIT, self.leave()).await;
                    }
                    return;
                }
            }
            if !self.link.reachable() {
                // Written again in full once Redis is back.
                let taken = self.share.take();
                self.share.written(taken.upto);
                rewrite_all = true;
                continue;
            }
            if beat {
                match self.heartbeat().await {
                    Some(missing) => rewrite_all |= missing,
                    None => continue,
                }
            }
            rewrite_all |= self.share.take_rewrite();
            let taken = self.share.take();
            let written = if rewrite_all {
                let counts = self.write_apps(self.whole_share(), true).await;
                // The changes taken are in the whole share; their announcements are still due.
                for (app_id, changes) in &taken.apps {
                    self.announce_counts(app_id, &changes.announce).await;
                }
                counts && self.presence.sync_all().await
            } else {
                self.write_apps(taken.apps, false).await
            };
            self.share.written(taken.upto);
            // A failed write is repaired by writing everything once Redis answers again.
            rewrite_all = !written;
        }
    }

    /// Beats, and cleans up the nodes found dead; `Some(true)` when this node was missing.
    async fn heartbeat(&self) -> Option<bool> {
        let node = self.node.to_string();
        let silence = self.node_timeout.saturating_sub(self.heartbeat_interval);
        let timeout_ms = silence.as_millis().to_string();
        let answer: Vec<String> = self
            .link
            .invoke(
                self.scripts
                    .heartbeat
                    .key(self.keys.nodes())
                    .arg(&node)
                    .arg(&timeout_ms),
            )
            .await?;
        let mut answer = answer.into_iter();
        let missing = answer.next().as_deref() == Some("1");
        for dead in answer.filter(|dead| *dead != node) {
            self.clean_up(&dead, &timeout_ms).await;
        }
        self.sweep_vacates().await;
        Some(missing)
    }

    /// Raises the waiting vacates whose node did not confirm them in time (it died, or left).
    async fn sweep_vacates(&self) {
        let grace_ms = (2 * self.heartbeat_interval).as_millis() as u64;
        let overdue: Option<Vec<String>> = self
            .link
            .invoke(
                self.scripts
                    .sweep_vacates
                    .key(self.keys.vacating())
                    .arg(self.keys.prefix())
                    .arg(grace_ms),
            )
            .await;
        for pair in overdue.unwrap_or_default().chunks(2) {
            if let [app_id, channel] = pair {
                self.raise_transition(app_id, "v", channel, "");
            }
        }
    }

    /// Takes this node out of the cluster as a clean-up would once it is dead, so a graceful
    /// stop does not leave its counts behind for `node_timeout`; its waiting vacates are
    /// raised by the others' sweeps.
    async fn leave(&self) {
        // A negative silence: the node counts as silent already.
        self.clean_up(&self.node.to_string(), "-1").await;
    }

    async fn clean_up(&self, dead: &str, timeout_ms: &str) {
        let started = std::time::Instant::now();
        let mut script = self.scripts.clean_up_node.prepare_invoke();
        script
            .key(self.keys.nodes())
            .arg(dead)
            .arg(timeout_ms)
            .arg(self.keys.prefix());
        for (app_id, delay) in self.vacate_delays.iter() {
            script
                .arg(app_id)
                .arg(delay.as_millis() as u64)
                .arg(self.counted_flag(app_id));
        }
        let vacated: Option<Option<Vec<String>>> = self.link.invoke(&script).await;
        // None: another node did it (or Redis failed; the next heartbeat tries again).
        let Some(Some(vacated)) = vacated else {
            return;
        };
        if dead == self.node.to_string() {
            tracing::info!(vacated = vacated.len() / 4, "left the cluster");
        } else {
            tracing::warn!(
                node = dead,
                vacated = vacated.len() / 4,
                took_ms = started.elapsed().as_millis() as u64,
                "removed a node that stopped heartbeating, and its connections"
            );
        }
        for quadruple in vacated.chunks(4) {
            if let [app_id, kind, channel, detail] = quadruple {
                self.raise_transition(app_id, kind, channel, detail);
            }
        }
    }

    /// This node's whole share, read from the hub: every app it has state of.
    fn whole_share(&self) -> HashMap<String, AppChanges> {
        self.hub
            .app_ids()
            .into_iter()
            .map(|app_id| {
                let channels = self.hub.app(&app_id).occupied_channels();
                let changes = AppChanges {
                    channels: channels
                        .into_iter()
                        .filter(|(channel, _)| channel.kind() != ChannelKind::ServerToUser)
                        .collect(),
                    connections: true,
                    // Restored, not changed: nothing new to announce.
                    announce: Default::default(),
                    // Written whole for a replace.
                    users: Default::default(),
                };
                (app_id, changes)
            })
            .collect()
    }

    /// Writes `apps`' changes (replacing all the node held for them, when `replace`);
    /// whether it all went.
    async fn write_apps(&self, apps: HashMap<String, AppChanges>, replace: bool) -> bool {
        let mut written = true;
        for (app_id, changes) in apps {
            written &= self.write(&app_id, &changes, replace).await;
        }
        written
    }

    async fn write(&self, app_id: &str, changes: &AppChanges, replace: bool) -> bool {
        let node = self.node.to_string();
        let node_apps = self.keys.node_apps(&node);
        if !changes.channels.is_empty() || replace {
            let mut script = self.scripts.sync_channels.prepare_invoke();
            script
                .key(self.keys.node_channels(app_id, &node))
                .key(self.keys.channels(app_id))
                .key(&node_apps)
                .key(self.keys.nodes())
                .arg(app_id)
                .arg(if replace { "1" } else { "0" })
                .arg(&node)
                .arg(self.keys.prefix())
                .arg(self.vacate_delay(app_id).as_millis() as u64);
            for (channel, count) in &changes.channels {
                script.arg(channel.as_str()).arg(count);
            }
            let Some(answer) = self.link.invoke::<Vec<String>>(&script).await else {
                return false;
            };
            let Some((registered, transitions)) = answer.split_first() else {
                return false;
            };
            if registered == "1" && !replace {
                self.share.request_rewrite();
            }
            for triple in transitions.chunks(3) {
                if let [kind, channel, token] = triple {
                    self.raise_transition(app_id, kind, channel, token);
                }
            }
        }
        if self.watchlist_apps.contains(app_id)
            && (replace || !changes.users.is_empty())
            && !self.write_users(app_id, &changes.users, replace).await
        {
            return false;
        }
        self.announce_counts(app_id, &changes.announce).await;
        if changes.connections {
            let count = self.hub.app(app_id).connection_count();
            let registered: Option<i64> = self
                .link
                .invoke(
                    self.scripts
                        .sync_connections
                        .key(self.keys.connections(app_id))
                        .key(self.keys.node_connections(app_id))
                        .key(&node_apps)
                        .key(self.keys.nodes())
                        .arg(&node)
                        .arg(count)
                        .arg(app_id),
                )
                .await;
            match registered {
                None => return false,
                Some(1) if !replace => self.share.request_rewrite(),
                Some(_) => {}
            }
        }
        true
    }

    /// Writes this node's connection counts of `users` of `app_id` (of all its signed-in
    /// users, when `replace`); whether it went.
    async fn write_users(&self, app_id: &str, users: &HashSet<String>, replace: bool) -> bool {
        let node = self.node.to_string();
        let signed_in = self.hub.app(app_id).users().connection_counts();
        let mut script = self.scripts.sync_users.prepare_invoke();
        script
            .key(self.keys.node_users(app_id, &node))
            .key(self.keys.node_apps(&node))
            .key(self.keys.nodes())
            .arg(&node)
            .arg(app_id)
            .arg(self.keys.prefix())
            .arg(if replace { "1" } else { "0" });
        let counts: HashMap<&str, usize> = signed_in
            .iter()
            .map(|(user, count)| (user.as_str(), *count))
            .collect();
        if replace {
            for (user, count) in &counts {
                script.arg(*user).arg(count);
            }
        } else {
            for user in users {
                script
                    .arg(user)
                    .arg(counts.get(user.as_str()).copied().unwrap_or(0));
            }
        }
        match self.link.invoke::<i64>(&script).await {
            None => false,
            Some(registered) => {
                if registered == 1 && !replace {
                    self.share.request_rewrite();
                }
                true
            }
        }
    }

    /// `1` when `app_id` announces subscription counts, as the scripts take it.
    fn counted_flag(&self, app_id: &str) -> &'static str {
        if self.counted_apps.contains(app_id) {
            "1"
        } else {
            "0"
        }
    }

    fn vacate_delay(&self, app_id: &str) -> Duration {
        self.vacate_delays.get(app_id).copied().unwrap_or_default()
    }

    /// Raises the webhook of a cluster-wide transition: `o`ccupied at once, `r`e-occupied
    /// not at all (its vacate is cancelled, as on one node), `v`acated once its delay is over
    /// and no node has re-occupied the channel meanwhile (`token` confirms that), a `m`ember
    /// (the user id in `token`) removed by a clean-up, a subscription `c`ount announced (the
    /// count in `token`, or `later:<ms>`: announce it again then).
    fn raise_transition(&self, app_id: &str, kind: &str, channel: &str, token: &str) {
        // Names come back as this node (or another) wrote them; a foreign one is skipped.
        let Ok(channel) = ChannelName::parse(channel, usize::MAX) else {
            return;
        };
        match kind {
            "o" => self
                .webhooks
                .emit(app_id, WebhookKind::ChannelOccupied, || {
                    WebhookEvent::ChannelOccupied { channel }
                }),
            "v" if token.is_empty() => {
                self.webhooks.emit(app_id, WebhookKind::ChannelVacated, || {
                    WebhookEvent::ChannelVacated { channel }
                })
            }
            "v" => self.confirm_vacate_later(app_id, channel, token),
            "c" => match token.strip_prefix("later:") {
                Some(wait) => {
                    let wait = Duration::from_millis(wait.parse().unwrap_or(1));
                    self.announce_count_later(app_id, channel, wait);
                }
                None => raise_count(&self.webhooks, app_id, channel, token),
            },
            "m" => self.webhooks.emit(app_id, WebhookKind::MemberRemoved, || {
                WebhookEvent::MemberRemoved {
                    channel,
                    user_id: token.to_owned(),
                }
            }),
            _ => {}
        }
    }

    /// Announces the cluster-wide counts of `channels` of `app_id`, when the app wants counts.
    async fn announce_counts(&self, app_id: &str, channels: &HashSet<ChannelName>) {
        if self.counted_apps.contains(app_id) {
            for channel in channels {
                self.announce_count(app_id, channel).await;
            }
        }
    }

    /// Announces `channel`'s cluster-wide count as it is now (or once its quiet window is
    /// over), after this node's change to it is written.
    async fn announce_count(&self, app_id: &str, channel: &ChannelName) {
        if matches!(
            channel.kind(),
            ChannelKind::Presence | ChannelKind::ServerToUser
        ) {
            return;
        }
        let announced: Option<Vec<String>> = self
            .link
            .invoke(
                self.scripts
                    .announce_count
                    .key(self.keys.channels(app_id))
                    .arg(app_id)
                    .arg(channel.as_str())
                    .arg(self.keys.prefix()),
            )
            .await;
        if let Some([kind, name, detail]) = announced.as_deref() {
            self.raise_transition(app_id, kind, name, detail);
        }
    }

    /// Announces `channel`'s count once its quiet window is over (in `wait`), with the count
    /// as it is then; one waiting announcement per channel.
    fn announce_count_later(&self, app_id: &str, channel: ChannelName, wait: Duration) {
        let waiting = (app_id.to_owned(), channel.as_str().to_owned());
        if !lock(&self.scheduled_counts).insert(waiting.clone()) {
            return;
        }
        let link = self.link.clone();
        let scripts = self.scripts.clone();
        let webhooks = self.webhooks.clone();
        let scheduled = self.scheduled_counts.clone();
        let channels = self.keys.channels(app_id);
        let prefix = self.keys.prefix().to_owned();
        tokio::spawn(async move {
            let mut wait = wait;
            loop {
                tokio::time::sleep(wait).await;
                // A change from now on schedules its own announcement if this one is too early.
                lock(&scheduled).remove(&waiting);
                let (app_id, name) = (&waiting.0, &waiting.1);
                let announced: Option<Vec<String>> = link
                    .invoke(
                        scripts
                            .announce_count
                            .key(&channels)
                            .arg(app_id)
                            .arg(name)
                            .arg(&prefix),
                    )
                    .await;
                let Some([_, _, detail]) = announced.as_deref() else {
                    return;
                };
                match detail.strip_prefix("later:") {
                    // Another node announced meanwhile: wait for its window, unless a change
                    // scheduled that already.
                    Some(left) if lock(&scheduled).insert(waiting.clone()) => {
                        wait = Duration::from_millis(left.parse().unwrap_or(1));
                    }
                    Some(_) => return,
                    None => return raise_count(&webhooks, app_id, channel.clone(), detail),
                }
            }
        });
    }

    fn confirm_vacate_later(&self, app_id: &str, channel: ChannelName, token: &str) {
        let vacated_at = Instant::now();
        let delay = self.vacate_delay(app_id);
        let link = self.link.clone();
        let scripts = self.scripts.clone();
        let webhooks = self.webhooks.clone();
        let waiting = self.keys.vacating();
        let prefix = self.keys.prefix().to_owned();
        let entry = format!("{app_id}\n{}\n{token}", channel.as_str());
        let app_id = app_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep_until(vacated_at + delay).await;
            let confirmed: Option<i64> = link
                .invoke(
                    scripts
                        .confirm_vacate
                        .key(&waiting)
                        .arg(&entry)
                        .arg(&prefix),
                )
                .await;
            // Without Redis the vacate stands: nothing can have cancelled it.
            if confirmed != Some(0) {
                // Dated when it happened, so the sink's own delay is already over.
                webhooks.emit_at(
                    app_id.as_str(),
                    WebhookKind::ChannelVacated,
                    vacated_at,
                    || WebhookEvent::ChannelVacated { channel },
                );
            }
        });
    }
}

/// Raises the `subscription_count` webhook of an announced `count`.
fn raise_count(webhooks: &WebhookSinks, app_id: &str, channel: ChannelName, count: &str) {
    if let Ok(subscription_count) = count.parse() {
        webhooks.emit(app_id, WebhookKind::SubscriptionCount, || {
            WebhookEvent::SubscriptionCount {
                channel,
                subscription_count,
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

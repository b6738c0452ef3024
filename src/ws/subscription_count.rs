//! Subscription counts (app opt-in `enable_subscription_count`, as at Pusher, where the
//! `subscription_count` webhook also needs it): after a connection joins or leaves a
//! non-presence channel, every subscriber of that channel gets
//! `pusher_internal:subscription_count` with its cluster-wide count, and so do the webhook
//! endpoints that want it, as often as [`CountThrottle`] allows. The adapter counts at the
//! moment it delivers, so announcements racing on two workers cannot leave an older count
//! last.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};
use tracing::warn;

use super::connection::Connection;
use crate::hub::{Announce, CountThrottle};
use crate::protocol::{ChannelKind, ChannelName};
use crate::state::ServerState;

impl Connection {
    /// Announces `channel`'s new subscription count, if the app asked for counts.
    pub(super) async fn announce_subscription_count(&self, channel: &ChannelName) {
        let counted = !matches!(
            channel.kind(),
            ChannelKind::Presence | ChannelKind::ServerToUser
        );
        if !self.app.enable_subscription_count || !counted {
            return;
        }
        let announcer = CountAnnouncer {
            state: self.state.clone(),
            app_id: self.app.id.clone(),
        };
        let throttle = self.channels.count_throttle().clone();
        // The count the throttle decides on; the announcement counts again when it delivers,
        // so at worst one announcement above 100 is not followed by a quiet window.
        let Some(count) = announcer.count(channel).await else {
            return;
        };
        match throttle.on_change(channel, count, Instant::now()) {
            Announce::Now => announcer.announce(channel).await,
            Announce::At(when) => {
                let delayed = announcer.announce_later(channel.clone(), throttle, when);
                actix_web::rt::spawn(delayed);
            }
            Announce::AlreadyScheduled => {}
        }
    }
}

/// Tells one app's channel subscribers (and webhook endpoints) a channel's count.
struct CountAnnouncer {
    state: Arc<ServerState>,
    app_id: String,
}

impl CountAnnouncer {
    /// The announcement at the end of a quiet window: the count as it is then.
    async fn announce_later(
        self,
        channel: ChannelName,
        throttle: Arc<CountThrottle>,
        when: Instant,
    ) {
        sleep_until(when).await;
        throttle.on_scheduled_sent(&channel, Instant::now());
        self.announce(&channel).await;
    }

    async fn count(&self, channel: &ChannelName) -> Option<usize> {
        match self
            .state
            .adapter
            .subscription_count(&self.app_id, channel)
            .await
        {
            Ok(count) => Some(count),
            Err(error) => {
                warn!(app = %self.app_id, %channel, %error, "subscription count unavailable");
                None
            }
        }
    }

    async fn announce(&self, channel: &ChannelName) {
        let announced = self
            .state
            .adapter
            .announce_subscription_count(&self.app_id, channel);
        if let Err(error) = announced.await {
            warn!(app = %self.app_id, %channel, %error, "subscription count not announced");
        }
    }
}

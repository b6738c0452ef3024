//! Subscription counts (app opt-in `enable_subscription_count`, as at Pusher, where the
//! `subscription_count` webhook also needs it): after a connection joins or leaves a
//! non-presence channel, every subscriber of that channel gets
//! `pusher_internal:subscription_count` with its cluster-wide count, and so do the webhook
//! endpoints that want it, as often as [`CountThrottle`] allows.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};
use tracing::warn;

use super::connection::Connection;
use crate::hub::{Announce, AppChannels, CountThrottle};
use crate::protocol::{ChannelKind, ChannelName, frames};
use crate::server::ServerState;
use crate::webhooks::{EventKind, WebhookEvent};

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
            channels: self.channels.clone(),
            app_id: self.app.id.clone(),
        };
        let throttle = self.channels.count_throttle().clone();
        let Some(count) = announcer.count(channel).await else {
            return;
        };
        match throttle.on_change(channel, count, Instant::now()) {
            Announce::Now => announcer.announce(channel, count).await,
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
    channels: Arc<AppChannels>,
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
        if let Some(count) = self.count(&channel).await {
            self.announce(&channel, count).await;
        }
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

    async fn announce(&self, channel: &ChannelName, count: usize) {
        self.channels
            .emit_webhook(EventKind::SubscriptionCount, || {
                WebhookEvent::SubscriptionCount {
                    channel: channel.clone(),
                    subscription_count: count,
                }
            });
        let frame = frames::subscription_count(channel.as_str(), count);
        let published = self
            .state
            .adapter
            .publish(&self.app_id, channel, frame, None);
        if let Err(error) = published.await {
            warn!(app = %self.app_id, %channel, %error, "subscription count not published");
        }
    }
}

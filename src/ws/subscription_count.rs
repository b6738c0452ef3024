//! `pusher_internal:subscription_count` (app opt-in `enable_subscription_count`): after a
//! connection joins or leaves a non-presence channel, every subscriber of that channel is told
//! its cluster-wide subscription count, as often as [`CountThrottle`] allows.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};
use tracing::warn;

use super::connection::Connection;
use crate::hub::{Announce, CountThrottle};
use crate::protocol::{ChannelKind, ChannelName, frames};
use crate::server::ServerState;

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
        let throttle = self.channels.count_throttle().clone();
        let Some(count) = count(&self.state, &self.app.id, channel).await else {
            return;
        };
        match throttle.on_change(channel, count, Instant::now()) {
            Announce::Now => publish(&self.state, &self.app.id, channel, count).await,
            Announce::At(when) => {
                let delayed = announce_later(
                    self.state.clone(),
                    self.app.id.clone(),
                    channel.clone(),
                    throttle,
                    when,
                );
                actix_web::rt::spawn(delayed);
            }
            Announce::AlreadyScheduled => {}
        }
    }
}

/// The announcement at the end of a quiet window: the count as it is then.
async fn announce_later(
    state: Arc<ServerState>,
    app_id: String,
    channel: ChannelName,
    throttle: Arc<CountThrottle>,
    when: Instant,
) {
    sleep_until(when).await;
    throttle.on_scheduled_sent(&channel, Instant::now());
    if let Some(count) = count(&state, &app_id, &channel).await {
        publish(&state, &app_id, &channel, count).await;
    }
}

async fn count(state: &ServerState, app_id: &str, channel: &ChannelName) -> Option<usize> {
    match state.adapter.subscription_count(app_id, channel).await {
        Ok(count) => Some(count),
        Err(error) => {
            warn!(app = %app_id, %channel, %error, "subscription count unavailable");
            None
        }
    }
}

async fn publish(state: &ServerState, app_id: &str, channel: &ChannelName, count: usize) {
    let frame = frames::subscription_count(channel.as_str(), count);
    if let Err(error) = state.adapter.publish(app_id, channel, frame, None).await {
        warn!(app = %app_id, %channel, %error, "subscription count not published");
    }
}

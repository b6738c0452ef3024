//! Subscription counts on one node (app opt-in `enable_subscription_count`, as at Pusher,
//! where the `subscription_count` webhook also needs it): after a socket joins or leaves a
//! non-presence channel, every subscriber of that channel gets
//! `pusher_internal:subscription_count`, and so do the webhook endpoints that want it, as
//! often as [`CountThrottle`] allows. The hub counts at the moment it delivers, so
//! announcements racing on two workers cannot leave an older count last.

use std::sync::Arc;

use tokio::time::{Instant, sleep_until};

use super::raised::RaisedWebhooks;
use crate::apps::App;
use crate::hub::{Announce, AppChannels};
use crate::protocol::{ChannelKind, ChannelName};
use crate::webhooks::WebhookSinks;

/// Whether a change of `channel`'s subscribers is announced for `app`.
pub(super) fn is_counted(app: &App, channel: &ChannelName) -> bool {
    app.enable_subscription_count
        && !matches!(
            channel.kind(),
            ChannelKind::Presence | ChannelKind::ServerToUser
        )
}

/// Announces that `channel` of `app_id` changed, now or at the end of its quiet window.
pub(super) fn count_changed(
    app_id: &str,
    channels: &Arc<AppChannels>,
    sinks: &WebhookSinks,
    channel: &ChannelName,
) {
    let throttle = channels.count_throttle();
    // The count the throttle decides on; the announcement counts again when it delivers,
    // so at worst one announcement above 100 is not followed by a quiet window.
    let count = channels.subscriber_count(channel.as_str());
    match throttle.on_change(channel, count, Instant::now()) {
        Announce::Now => {
            let raised = RaisedWebhooks {
                app_id,
                sinks,
                share: None,
            };
            channels.announce_subscription_count(channel, &raised);
        }
        Announce::At(when) => {
            let later = announce_at(
                when,
                app_id.to_owned(),
                channels.clone(),
                sinks.clone(),
                channel.clone(),
            );
            tokio::spawn(later);
        }
        Announce::AlreadyScheduled => {}
    }
}

/// The announcement at the end of a quiet window: the count as it is then.
async fn announce_at(
    when: Instant,
    app_id: String,
    channels: Arc<AppChannels>,
    sinks: WebhookSinks,
    channel: ChannelName,
) {
    sleep_until(when).await;
    channels
        .count_throttle()
        .on_scheduled_sent(&channel, Instant::now());
    let raised = RaisedWebhooks {
        app_id: &app_id,
        sinks: &sinks,
        share: None,
    };
    channels.announce_subscription_count(&channel, &raised);
}

//! The webhooks an adapter raises for the hub's reports: with one node every local
//! transition is the cluster's, so each report becomes its Pusher webhook event (occupancy
//! of the internal `#server-to-user-` channels excepted). In a cluster, occupancy is the
//! cluster's to decide: the local counts go to the node's [`ClusterShare`] instead, and
//! whoever sees the cluster-wide transition raises the webhook.

use super::ClusterShare;
use crate::hub::HubEvents;
use crate::protocol::{ChannelKind, ChannelName, WebhookKind};
use crate::webhooks::{WebhookEvent, WebhookSinks};

/// Raises one app's webhooks for the reports it is handed (borrowed for one hub call).
#[derive(Clone, Copy)]
pub(super) struct RaisedWebhooks<'a> {
    pub app_id: &'a str,
    pub sinks: &'a WebhookSinks,
    /// Where a cluster node's local counts go; `None` on a single node.
    pub share: Option<&'a dyn ClusterShare>,
}

impl RaisedWebhooks<'_> {
    fn emit(&self, kind: WebhookKind, event: impl FnOnce() -> WebhookEvent) {
        self.sinks.emit(self.app_id, kind, event);
    }
}

/// Whether a channel's occupancy is reported: every channel but the internal
/// `#server-to-user-` ones.
fn has_lifecycle_webhooks(channel: &ChannelName) -> bool {
    channel.kind() != ChannelKind::ServerToUser
}

impl HubEvents for RaisedWebhooks<'_> {
    fn channel_occupied(&self, channel: &ChannelName) {
        if self.share.is_none() && has_lifecycle_webhooks(channel) {
            self.emit(WebhookKind::ChannelOccupied, || {
                WebhookEvent::ChannelOccupied {
                    channel: channel.clone(),
                }
            });
        }
    }

    fn channel_vacated(&self, channel: &ChannelName) {
        if self.share.is_none() && has_lifecycle_webhooks(channel) {
            self.emit(WebhookKind::ChannelVacated, || {
                WebhookEvent::ChannelVacated {
                    channel: channel.clone(),
                }
            });
        }
    }

    fn subscribers_changed(&self, channel: &ChannelName, count: usize) {
        if let Some(share) = self.share
            && has_lifecycle_webhooks(channel)
        {
            share.channel_changed(self.app_id, channel, count);
        }
    }

    fn cache_missed(&self, channel: &ChannelName) {
        self.emit(WebhookKind::CacheMiss, || WebhookEvent::CacheMiss {
            channel: channel.clone(),
        });
    }

    fn member_added(&self, channel: &ChannelName, user_key: &str) {
        self.emit(WebhookKind::MemberAdded, || WebhookEvent::MemberAdded {
            channel: channel.clone(),
            user_id: user_key.to_owned(),
        });
    }

    fn member_removed(&self, channel: &ChannelName, user_key: &str) {
        self.emit(WebhookKind::MemberRemoved, || WebhookEvent::MemberRemoved {
            channel: channel.clone(),
            user_id: user_key.to_owned(),
        });
    }

    fn subscription_counted(&self, channel: &ChannelName, count: usize) {
        self.emit(WebhookKind::SubscriptionCount, || {
            WebhookEvent::SubscriptionCount {
                channel: channel.clone(),
                subscription_count: count,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::protocol::WebhookKinds;
    use crate::webhooks::{WebhookSink, raised_names};

    #[test]
    fn reports_become_webhooks_but_user_channels_stay_internal() {
        let (sink, mut queue) = WebhookSink::for_test(WebhookKinds::all());
        let sinks = WebhookSinks::new(HashMap::from([("1".to_owned(), sink)]));
        let raised = RaisedWebhooks {
            app_id: "1",
            sinks: &sinks,
            share: None,
        };
        let news = ChannelName::parse("presence-news", 164).unwrap();
        let user = ChannelName::server_to_user("u").unwrap();
        raised.channel_occupied(&user);
        raised.channel_occupied(&news);
        raised.member_added(&news, "u");
        raised.subscription_counted(&news, 2);
        raised.member_removed(&news, "u");
        raised.channel_vacated(&news);
        raised.channel_vacated(&user);
        assert_eq!(
            raised_names(&mut queue),
            [
                "channel_occupied",
                "member_added",
                "subscription_count",
                "member_removed",
                "channel_vacated"
            ]
        );
        let other = RaisedWebhooks {
            app_id: "2",
            sinks: &sinks,
            share: None,
        };
        other.channel_occupied(&news);
        assert!(
            queue.try_recv().is_err(),
            "an app without endpoints raises nothing"
        );
    }
}

//! `pusher:subscribe` and `pusher:unsubscribe`.
//!
//! Checks run in the reference's order: channel name, then signature (constant time), then
//! `channel_data`, then limits (the channels one connection may hold, the members of a
//! presence channel), so nothing a client sends is parsed before it is authorised.
//! Every refusal is a channel-scoped `pusher:subscription_error` plus a `pusher:error`, and the
//! connection stays open.

use super::connection::{Connection, Ending};
use crate::apps::{AuthError, Via};
use crate::hub::PresenceJoin;
use crate::protocol::frames::{self, SubscribeRequest, SubscriptionErrorKind};
use crate::protocol::signature::{channel_string_to_sign, presence_string_to_sign};
use crate::protocol::{ChannelKind, ChannelName, PresenceMember, PresenceMemberError};

/// Why a subscription is refused, as the client is told.
struct Refusal {
    kind: SubscriptionErrorKind,
    message: String,
}

impl Refusal {
    fn new(kind: SubscriptionErrorKind, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            message: message.into(),
        }
    }
}

impl From<AuthError> for Refusal {
    fn from(error: AuthError) -> Self {
        Refusal::new(SubscriptionErrorKind::Auth, error.to_string())
    }
}

impl From<PresenceMemberError> for Refusal {
    fn from(error: PresenceMemberError) -> Self {
        let kind = match error {
            PresenceMemberError::UserInfoTooLarge { .. } => SubscriptionErrorKind::LimitReached,
            _ => SubscriptionErrorKind::BadRequest,
        };
        Refusal::new(kind, error.to_string())
    }
}

/// The refusal of a subscription the cluster cannot take now (the client may retry).
fn unavailable() -> Refusal {
    Refusal::new(
        SubscriptionErrorKind::Unavailable,
        "subscriptions are temporarily unavailable",
    )
}

impl Connection {
    /// Handles `pusher:subscribe`.
    pub(super) async fn subscribe(&mut self, request: SubscribeRequest) -> Result<(), Ending> {
        let max_len = self.app.limits.max_channel_name_length;
        let channel = match ChannelName::parse(&request.channel, max_len) {
            Ok(channel) => channel,
            Err(error) => {
                let refusal = Refusal::new(SubscriptionErrorKind::BadRequest, error.to_string());
                return self.refuse(&request.channel, refusal);
            }
        };
        let newly_joined = !self.subscriptions.contains_key(&channel);
        let max_channels = self.app.limits.max_channels_per_connection;
        let joined = match self.authorize(&channel, &request) {
            Ok(_) if newly_joined && self.channel_count() >= max_channels => {
                let message =
                    format!("too many channels on one connection (at most {max_channels})");
                Err(Refusal::new(SubscriptionErrorKind::LimitReached, message))
            }
            Ok(None) => self.join(channel.clone()).await?,
            Ok(Some(member)) => self.join_presence(channel.clone(), member).await,
            Err(refusal) => Err(refusal),
        };
        match joined {
            // `subscription_succeeded` is already queued, ahead of any event on the channel.
            Ok(()) => Ok(()),
            Err(refusal) => self.refuse(channel.as_str(), refusal),
        }
    }

    /// Handles `pusher:unsubscribe`; unknown channels are ignored, as Pusher does.
    pub(super) async fn unsubscribe(&mut self, channel: &str) -> Result<(), Ending> {
        // The only user channel a connection holds is its own, which it keeps while signed in:
        // sendToUser must reach it.
        let user_channel = self
            .subscriptions
            .get_key_value(channel)
            .is_some_and(|(name, _)| name.kind() == ChannelKind::ServerToUser);
        if !user_channel && let Some((channel, member)) = self.subscriptions.remove_entry(channel) {
            self.leave(channel, member).await;
        }
        Ok(())
    }

    /// The channels this connection subscribed to (its own user channel, joined by signing
    /// in, is not one of them).
    fn channel_count(&self) -> usize {
        self.subscriptions
            .len()
            .saturating_sub(usize::from(self.user.is_some()))
    }

    /// Checks the signature for the channel's kind; for presence, returns the member.
    fn authorize(
        &self,
        channel: &ChannelName,
        request: &SubscribeRequest,
    ) -> Result<Option<PresenceMember>, Refusal> {
        let socket_id = self.socket_id.to_string();
        let auth = request.auth.as_deref();
        match channel.kind() {
            ChannelKind::Public => Ok(None),
            ChannelKind::ServerToUser => {
                // `server_to_user_id` is always `Some` on this kind of channel.
                if self.user.as_deref() == channel.server_to_user_id() {
                    Ok(None)
                } else {
                    Err(Refusal::new(
                        SubscriptionErrorKind::Auth,
                        "only a connection signed in as this user may subscribe",
                    ))
                }
            }
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                let signed = channel_string_to_sign(&socket_id, channel.as_str());
                self.check_client_auth(auth, &signed, Via::ChannelAuth)
                    .map_err(|message| Refusal::new(SubscriptionErrorKind::Auth, message))?;
                Ok(None)
            }
            ChannelKind::Presence => {
                let channel_data = request.channel_data.as_deref().ok_or_else(|| {
                    Refusal::new(
                        SubscriptionErrorKind::BadRequest,
                        "channel_data is required for presence channels",
                    )
                })?;
                let signed = presence_string_to_sign(&socket_id, channel.as_str(), channel_data);
                self.check_client_auth(auth, &signed, Via::ChannelAuth)
                    .map_err(|message| Refusal::new(SubscriptionErrorKind::Auth, message))?;
                let max_info = self.app.limits.max_presence_member_size;
                Ok(Some(PresenceMember::parse(channel_data, max_info)?))
            }
        }
    }

    /// Subscribes to a non-presence channel through the adapter, which queues
    /// `subscription_succeeded` with the subscription (so that no event of the channel can
    /// overtake it); re-subscribing is acknowledged again. The outer error ends the
    /// connection; the inner one refuses the subscription.
    async fn join(&mut self, channel: ChannelName) -> Result<Result<(), Refusal>, Ending> {
        let greeting = frames::subscription_succeeded(channel.as_str(), "{}");
        if self.subscriptions.contains_key(&channel) {
            return self.send(greeting).map(Ok);
        }
        let subscribed = self
            .state
            .adapter
            .subscribe(
                &self.app,
                &channel,
                self.socket_id,
                self.outbox(),
                Some(&greeting),
            )
            .await;
        if let Err(error) = subscribed {
            tracing::warn!(app = %self.app.id, %channel, %error, "subscription failed");
            return Ok(Err(unavailable()));
        }
        self.subscriptions.insert(channel, None);
        Ok(Ok(()))
    }

    /// Joins a presence channel through the adapter, which subscribes the socket, queues its
    /// `subscription_succeeded` and announces the member to the others in one ordered step.
    async fn join_presence(
        &mut self,
        channel: ChannelName,
        member: PresenceMember,
    ) -> Result<(), Refusal> {
        // A re-subscription keeps the identity the socket first joined with.
        let member = match self.subscriptions.get(&channel) {
            Some(Some(existing)) => existing.clone(),
            _ => member,
        };
        let max_members = self.app.limits.max_presence_members;
        let outcome = self
            .state
            .adapter
            .join_presence(&self.app, &channel, self.socket_id, self.outbox(), &member)
            .await;
        match outcome {
            Ok(PresenceJoin::Joined { .. }) => {
                self.subscriptions.insert(channel, Some(member));
                Ok(())
            }
            Ok(PresenceJoin::Full) => {
                let message = format!("presence channel is full ({max_members} members)");
                Err(Refusal::new(SubscriptionErrorKind::LimitReached, message))
            }
            Err(error) => {
                tracing::warn!(app = %self.app.id, %channel, %error, "presence join failed");
                Err(unavailable())
            }
        }
    }

    fn refuse(&self, channel: &str, refusal: Refusal) -> Result<(), Ending> {
        let channel = ChannelName::quote(channel, self.app.limits.max_channel_name_length);
        self.send(frames::subscription_error(
            &channel,
            refusal.kind,
            &refusal.message,
        ))?;
        let message = format!("Subscription to {channel} refused: {}", refusal.message);
        self.send_error(None, &message)
    }
}

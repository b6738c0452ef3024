//! Client events (`client-*`): sent by one member of a private or presence channel to the
//! others, never echoed to the sender. On presence channels Relay sets `user_id` from the
//! sender's authorised `channel_data`; whatever the client put there is not forwarded. The
//! app's channel schemas, then its `secret_scanning`, apply to the data as to an HTTP API
//! event's; the schemas see the data as the JSON value the client sent. A refusal is a
//! `pusher:error` to the sender only, and the connection stays open; over the connection's
//! `max_client_events_per_second` (a GCRA of `guard::limits`), or once the app's
//! `daily_messages` are spent for the day, its code is 4301.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::connection::{Connection, Ending};
use crate::guard::PayloadSource;
use crate::protocol::WebhookKind;
use crate::protocol::frames::{self, ClientEvent};
use crate::protocol::{ChannelKind, ChannelName, CloseCode};
use crate::webhooks::WebhookEvent;

impl Connection {
    /// Handles a `client-*` event: checks, then publishes to the channel's other subscribers.
    pub(super) async fn client_event(&mut self, event: ClientEvent) -> Result<(), Ending> {
        if let Err(message) = self.check_client_event(&event) {
            return self.send_error(None, &message);
        }
        if self.state.guard.refuses_for_lockdown(&self.app.id) {
            let message = format!("Client event rejected: {}", super::LOCKED_DOWN);
            return self.send_error(None, &message);
        }
        let code = CloseCode::ClientEventRateLimit;
        if !self.client_events.try_spend() {
            return self.send_error(Some(code.as_u16()), code.message());
        }
        if let Err(limited) = self.state.guard.limit_client_event(&self.app.id) {
            let message = format!("Client event rejected: {limited}");
            return self.send_error(Some(code.as_u16()), &message);
        }
        let Some((channel, member)) = self.subscriptions.get_key_value(event.channel.as_str())
        else {
            return Ok(());
        };
        let checked = self.state.guard.check_schemas(
            &self.app.id,
            std::slice::from_ref(channel),
            &event.event,
            event.data.get(),
        );
        if let Err(violation) = checked {
            return self.send_error(None, &format!("Client event rejected: {violation}"));
        }
        let inspected = self.state.guard.inspect_payload(
            &self.app,
            channel,
            event.data.get(),
            PayloadSource::ClientEvent,
        );
        let redacted = match inspected {
            Ok(Cow::Borrowed(_)) => None,
            // Redaction keeps JSON JSON, and a client event's data is JSON.
            Ok(Cow::Owned(redacted)) => RawValue::from_string(redacted).ok(),
            Err(found) => {
                let message = format!(
                    "Client event rejected: {found} ({})",
                    found.detectors.join(", ")
                );
                return self.send_error(None, &message);
            }
        };
        let data = redacted.as_deref().unwrap_or(&event.data);
        let user_id = member.as_ref().map(|member| member.user_key.as_str());
        let frame = frames::client_event(&event.event, channel.as_str(), data, user_id);
        let webhooks = &self.state.webhooks;
        webhooks.emit(&self.app.id, WebhookKind::ClientEvent, || {
            WebhookEvent::ClientEvent {
                channel: channel.clone(),
                event: event.event.clone(),
                data: webhook_data(data),
                socket_id: self.socket_id.to_string(),
                user_id: user_id.map(str::to_owned),
            }
        });
        let channel = channel.clone();
        self.publish(&channel, frame, Some(self.socket_id)).await;
        Ok(())
    }

    fn check_client_event(&self, event: &ClientEvent) -> Result<(), String> {
        if !self.app.enable_client_messages {
            return Err("Client events are not enabled for this app".to_owned());
        }
        let max_name = self.app.limits.max_event_name_length;
        if event.event.len() > max_name {
            return Err(format!(
                "Client event name is longer than {max_name} characters"
            ));
        }
        let Some((channel, _)) = self.subscriptions.get_key_value(event.channel.as_str()) else {
            let max_len = self.app.limits.max_channel_name_length;
            return Err(format!(
                "Client event rejected: not subscribed to {}",
                ChannelName::quote(&event.channel, max_len)
            ));
        };
        match channel.kind() {
            ChannelKind::Private | ChannelKind::Presence => {}
            ChannelKind::Public | ChannelKind::ServerToUser => {
                return Err(
                    "Client events are only allowed on private and presence channels".to_owned(),
                );
            }
            ChannelKind::PrivateEncrypted => {
                return Err("Client events are not supported on encrypted channels".to_owned());
            }
        }
        let max = self.app.limits.max_event_size;
        if event.data.get().len() > max {
            return Err(format!("Client event data is larger than {max} bytes"));
        }
        Ok(())
    }
}

/// A client event's `data` as the webhook carries it: a string as is, anything else as its
/// JSON text (Pusher's webhook `data` is always a string).
fn webhook_data(data: &RawValue) -> String {
    serde_json::from_str::<String>(data.get()).unwrap_or_else(|_| data.get().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_data_is_always_a_string() {
        let text = RawValue::from_string(r#""typing""#.to_owned()).unwrap();
        assert_eq!(webhook_data(&text), "typing");
        let object = RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap();
        assert_eq!(webhook_data(&object), r#"{"a":1}"#);
    }
}

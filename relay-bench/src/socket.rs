//! A lean Pusher WebSocket client.
//!
//! Setup frames (handshake, subscription replies, member events) are parsed as JSON; the
//! measured hot path ([`PusherSocket::next_text`]) hands back the raw bytes of each message,
//! sliced from the read buffer, so that a scenario can find its marker with a substring search
//! instead of a full parse per message.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::BenchError;
use crate::target::Target;
use crate::wire::WireSocket;

/// One Pusher protocol event received from the server.
#[derive(Debug)]
pub struct Event {
    /// The event name.
    pub event: String,
    /// The channel, for channel events.
    pub channel: Option<String>,
    /// `data`, decoded once more when the server sent it as a JSON string.
    pub data: Value,
}

impl Event {
    /// Parses a frame; `data` that is a JSON string holding JSON is decoded too.
    pub fn parse(text: &[u8]) -> Result<Self, BenchError> {
        let shown = || String::from_utf8_lossy(text).into_owned();
        let mut frame: Value = serde_json::from_slice(text)
            .map_err(|_| BenchError::Protocol(format!("frame is not JSON: {}", shown())))?;
        let event = frame["event"]
            .as_str()
            .ok_or_else(|| BenchError::Protocol(format!("frame without event: {}", shown())))?
            .to_owned();
        let channel = frame["channel"].as_str().map(str::to_owned);
        let data = match frame["data"].take() {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            other => other,
        };
        Ok(Event {
            event,
            channel,
            data,
        })
    }
}

/// A connected Pusher client.
pub struct PusherSocket {
    ws: WireSocket,
    socket_id: String,
}

impl PusherSocket {
    /// Opens `/app/{key}?protocol=7` and waits for `pusher:connection_established`.
    pub async fn connect(target: &Target) -> Result<Self, BenchError> {
        let ws = WireSocket::connect(&target.host, target.port, &target.ws_path()).await?;
        let mut socket = PusherSocket {
            ws,
            socket_id: String::new(),
        };
        let established = socket.next_event().await?;
        if established.event != "pusher:connection_established" {
            return Err(BenchError::Protocol(format!(
                "expected pusher:connection_established first, got {}",
                established.event
            )));
        }
        socket.socket_id = established.data["socket_id"]
            .as_str()
            .ok_or_else(|| BenchError::Protocol("connection_established without socket_id".into()))?
            .to_owned();
        Ok(socket)
    }

    /// The socket id the server assigned.
    pub fn socket_id(&self) -> &str {
        &self.socket_id
    }

    /// Sends `pusher:subscribe` (the reply is read separately).
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<(), BenchError> {
        let mut data = json!({ "channel": channel });
        if let Some(auth) = auth {
            data["auth"] = json!(auth);
        }
        if let Some(channel_data) = channel_data {
            data["channel_data"] = json!(channel_data);
        }
        self.send_json(&json!({"event": "pusher:subscribe", "data": data}))
            .await
    }

    /// Sends `pusher:unsubscribe` (the server does not answer it).
    pub async fn unsubscribe(&mut self, channel: &str) -> Result<(), BenchError> {
        self.send_json(&json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
            .await
    }

    /// Subscribes and waits for `pusher_internal:subscription_succeeded`; returns its data.
    pub async fn subscribe_and_wait(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<Value, BenchError> {
        self.subscribe(channel, auth, channel_data).await?;
        loop {
            let event = self.next_event().await?;
            if event.event == "pusher_internal:subscription_succeeded"
                && event.channel.as_deref() == Some(channel)
            {
                return Ok(event.data);
            }
        }
    }

    /// Sends a client event on `channel`.
    pub async fn trigger_client_event(
        &mut self,
        channel: &str,
        event: &str,
        data: &str,
    ) -> Result<(), BenchError> {
        self.send_json(&json!({"event": event, "channel": channel, "data": data}))
            .await
    }

    /// The next text message, raw. WebSocket pings are answered by the wire layer.
    pub async fn next_text(&mut self) -> Result<Bytes, BenchError> {
        self.ws.next_text().await
    }

    /// The next protocol event: answers `pusher:ping`, fails on `pusher:error` and
    /// `pusher:subscription_error`.
    pub async fn next_event(&mut self) -> Result<Event, BenchError> {
        loop {
            let text = self.next_text().await?;
            if let Some(event) = self.handle(&text).await? {
                return Ok(event);
            }
        }
    }

    /// Handles a frame the hot path did not recognise: `None` for a ping it answered.
    pub async fn handle(&mut self, text: &[u8]) -> Result<Option<Event>, BenchError> {
        let event = Event::parse(text)?;
        match event.event.as_str() {
            "pusher:ping" => {
                self.send_json(&json!({"event": "pusher:pong", "data": {}}))
                    .await?;
                Ok(None)
            }
            "pusher:error" | "pusher:subscription_error" => Err(BenchError::Protocol(format!(
                "server sent {}",
                String::from_utf8_lossy(text)
            ))),
            _ => Ok(Some(event)),
        }
    }

    /// Closes the connection politely (errors are irrelevant at this point).
    pub async fn close(self) {
        self.ws.close().await;
    }

    async fn send_json(&mut self, frame: &Value) -> Result<(), BenchError> {
        self.ws.send_text(&frame.to_string()).await
    }
}

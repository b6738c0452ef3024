//! The JSON frames exchanged over the WebSocket.
//!
//! Incoming text is parsed into a [`ClientMessage`]; outgoing frames are built by the
//! functions at the bottom, each returning the serialized text once so a broadcast can share
//! the same bytes with every subscriber. The `data` encoding follows the reference table:
//! channel and `pusher_internal:*` events carry a JSON *string*; `pusher:error` an object;
//! client events whatever the sender sent, forwarded byte for byte.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::SocketId;

/// Why an incoming frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is not a JSON object with a string `event`.
    #[error("Invalid message: expected a JSON object with an \"event\" string")]
    NotAnEvent,
    /// A `pusher:*` event whose `data` lacks a required field or has the wrong type.
    #[error("Invalid {event} message: {problem}")]
    InvalidData {
        /// The event name.
        event: &'static str,
        /// What is wrong, for the client.
        problem: &'static str,
    },
    /// A `pusher:*` event Relay does not know.
    #[error("Unsupported event: {0}")]
    UnknownEvent(String),
}

impl FrameError {
    /// The same error, quoting at most `max_event_name_length` bytes of an unknown event's
    /// name.
    pub fn quoting_at_most(self, max_event_name_length: usize) -> Self {
        match self {
            FrameError::UnknownEvent(name) => FrameError::UnknownEvent(
                super::echo::quote(&name, max_event_name_length).into_owned(),
            ),
            other => other,
        }
    }
}

/// A message a client may send.
#[derive(Debug)]
pub enum ClientMessage {
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong`.
    Pong,
    /// `pusher:subscribe`.
    Subscribe(SubscribeRequest),
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel to leave (unvalidated).
        channel: String,
    },
    /// A `client-*` event for other subscribers of a channel.
    ClientEvent(ClientEvent),
    /// `pusher:signin`.
    Signin(SigninRequest),
}

/// The fields of a `pusher:signin`.
#[derive(Debug, Deserialize)]
pub struct SigninRequest {
    /// `<key>:<signature>` over `socket_id::user::user_data`.
    pub auth: String,
    /// The user's data, the exact string that was signed.
    pub user_data: String,
}

/// The fields of a `pusher:subscribe`.
#[derive(Debug, Deserialize)]
pub struct SubscribeRequest {
    /// The channel name (unvalidated).
    pub channel: String,
    /// `<key>:<signature>` for private and presence channels.
    #[serde(default)]
    pub auth: Option<String>,
    /// Presence channel data, the exact string that was signed.
    #[serde(default)]
    pub channel_data: Option<String>,
}

#[derive(Deserialize)]
struct UnsubscribeRequest {
    channel: String,
}

/// A `client-*` event as received.
#[derive(Debug)]
pub struct ClientEvent {
    /// The event name, starting with `client-`.
    pub event: String,
    /// The target channel (unvalidated).
    pub channel: String,
    /// The payload exactly as sent; forwarded unchanged.
    pub data: Box<RawValue>,
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

impl ClientMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        if !super::starts_as_object(text) {
            return Err(FrameError::NotAnEvent);
        }
        let envelope: Envelope = serde_json::from_str(text).map_err(|_| FrameError::NotAnEvent)?;
        match envelope.event.as_str() {
            "pusher:ping" => Ok(ClientMessage::Ping),
            "pusher:pong" => Ok(ClientMessage::Pong),
            "pusher:subscribe" => {
                let request = decode_data(envelope.data.as_deref(), "pusher:subscribe")?;
                Ok(ClientMessage::Subscribe(request))
            }
            "pusher:signin" => {
                let request = decode_data(envelope.data.as_deref(), "pusher:signin")?;
                Ok(ClientMessage::Signin(request))
            }
            "pusher:unsubscribe" => {
                let request: UnsubscribeRequest =
                    decode_data(envelope.data.as_deref(), "pusher:unsubscribe")?;
                Ok(ClientMessage::Unsubscribe {
                    channel: request.channel,
                })
            }
            name if name.starts_with("client-") => {
                let invalid = |problem| FrameError::InvalidData {
                    event: "client",
                    problem,
                };
                let channel = envelope
                    .channel
                    .ok_or_else(|| invalid("\"channel\" is required"))?;
                let data = envelope
                    .data
                    .ok_or_else(|| invalid("\"data\" is required"))?;
                Ok(ClientMessage::ClientEvent(ClientEvent {
                    event: envelope.event,
                    channel,
                    data,
                }))
            }
            _ => Err(FrameError::UnknownEvent(envelope.event)),
        }
    }
}

/// Decodes a `pusher:*` event's `data`, which pusher-js sends as an object and some clients as
/// a JSON string holding the object.
fn decode_data<T: for<'de> Deserialize<'de>>(
    data: Option<&RawValue>,
    event: &'static str,
) -> Result<T, FrameError> {
    let invalid = |problem| FrameError::InvalidData { event, problem };
    let raw = data.ok_or_else(|| invalid("\"data\" is required"))?.get();
    let inner;
    let object = if raw.starts_with('"') {
        // A raw value starting with a quote is a valid JSON string.
        inner = serde_json::from_str::<String>(raw).unwrap_or_default();
        inner.as_str()
    } else {
        raw
    };
    if !super::starts_as_object(object) {
        return Err(invalid(expected_fields(event)));
    }
    serde_json::from_str(object).map_err(|_| invalid(expected_fields(event)))
}

/// What a `pusher:*` event's `data` must hold, for the error a client gets.
fn expected_fields(event: &str) -> &'static str {
    match event {
        "pusher:signin" => "\"data\" must be an object with \"auth\" and \"user_data\" strings",
        _ => "\"data\" must be an object with a \"channel\" string",
    }
}

#[derive(Serialize)]
struct Outgoing<'a, D: Serialize> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn serialize<D: Serialize>(frame: &Outgoing<'_, D>) -> ByteString {
    // Serializing plain strings and already-valid raw JSON cannot fail.
    ByteString::from(serde_json::to_string(frame).expect("frames always serialize"))
}

fn frame<D: Serialize>(event: &str, channel: Option<&str>, data: Option<D>) -> ByteString {
    serialize(&Outgoing {
        event,
        channel,
        data,
        user_id: None,
    })
}

/// `pusher:connection_established`, the first frame of every connection.
pub fn connection_established(socket_id: SocketId, activity_timeout: u64) -> ByteString {
    let data = format!(r#"{{"socket_id":"{socket_id}","activity_timeout":{activity_timeout}}}"#);
    frame("pusher:connection_established", None, Some(data))
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: Option<u16>,
    message: &'a str,
}

/// `pusher:error` with an optional code; `data` is an object.
pub fn error(code: Option<u16>, message: &str) -> ByteString {
    frame("pusher:error", None, Some(ErrorData { code, message }))
}

/// `pusher:pong`, the answer to a client's `pusher:ping`.
pub fn pong() -> ByteString {
    ByteString::from_static(r#"{"event":"pusher:pong","data":{}}"#)
}

/// `pusher:ping`, sent to a client that has been silent for its activity timeout.
pub fn ping() -> ByteString {
    ByteString::from_static(r#"{"event":"pusher:ping","data":{}}"#)
}

/// `pusher_internal:subscription_succeeded` with `data` (a JSON document, sent as a string).
pub fn subscription_succeeded(channel: &str, data: &str) -> ByteString {
    frame(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        Some(data),
    )
}

/// The category of a failed subscription, as pusher-js reports it to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionErrorKind {
    /// Bad or missing signature (HTTP-like status 401).
    Auth,
    /// Malformed request or channel name (400).
    BadRequest,
    /// A presence limit was reached (403).
    LimitReached,
    /// Cluster state could not be reached (503); the client may retry.
    Unavailable,
}

#[derive(Serialize)]
struct SubscriptionErrorData<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: &'a str,
    status: u16,
}

/// Channel-scoped `pusher:subscription_error`, which `channel.bind('pusher:subscription_error')`
/// receives in pusher-js.
pub fn subscription_error(channel: &str, kind: SubscriptionErrorKind, message: &str) -> ByteString {
    let (kind, status) = match kind {
        SubscriptionErrorKind::Auth => ("AuthError", 401),
        SubscriptionErrorKind::BadRequest => ("BadRequest", 400),
        SubscriptionErrorKind::LimitReached => ("LimitReached", 403),
        SubscriptionErrorKind::Unavailable => ("Unavailable", 503),
    };
    let data = SubscriptionErrorData {
        kind,
        error: message,
        status,
    };
    frame("pusher:subscription_error", Some(channel), Some(data))
}

#[derive(Serialize)]
struct MemberData<'a> {
    user_id: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_info: Option<&'a RawValue>,
}

fn member_event(
    event: &str,
    channel: &str,
    user_id: &RawValue,
    user_info: Option<&RawValue>,
) -> ByteString {
    let data = serde_json::to_string(&MemberData { user_id, user_info })
        .expect("raw JSON always serializes");
    frame(event, Some(channel), Some(data))
}

/// `pusher_internal:member_added`, sent to the other members when a user first joins.
pub fn member_added(channel: &str, user_id: &RawValue, user_info: Option<&RawValue>) -> ByteString {
    member_event("pusher_internal:member_added", channel, user_id, user_info)
}

/// `pusher_internal:member_removed`, sent when a user's last connection leaves.
pub fn member_removed(channel: &str, user_id: &RawValue) -> ByteString {
    member_event("pusher_internal:member_removed", channel, user_id, None)
}

/// A client event as forwarded to the other subscribers; `user_id` on presence channels only.
pub fn client_event(
    event: &str,
    channel: &str,
    data: &RawValue,
    user_id: Option<&str>,
) -> ByteString {
    serialize(&Outgoing {
        event,
        channel: Some(channel),
        data: Some(data),
        user_id,
    })
}

/// Tells a watcher which watched users are online and which offline (empty groups omitted).
pub fn watchlist_events(online: &[&str], offline: &[&str]) -> ByteString {
    #[derive(Serialize)]
    struct Group<'a> {
        name: &'static str,
        user_ids: &'a [&'a str],
    }
    #[derive(Serialize)]
    struct Events<'a> {
        events: Vec<Group<'a>>,
    }
    let events = [("online", online), ("offline", offline)]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(name, user_ids)| Group { name, user_ids })
        .collect();
    let data = serde_json::to_string(&Events { events }).expect("string lists always serialize");
    frame("pusher_internal:watchlist_events", None, Some(data))
}

/// Confirms a sign-in, echoing the `user_data` that was signed.
pub fn signin_success(user_data: &str) -> ByteString {
    #[derive(Serialize)]
    struct Data<'a> {
        user_data: &'a str,
    }
    frame("pusher:signin_success", None, Some(Data { user_data }))
}

/// A channel's subscription count, sent to its subscribers (pusher-js keeps it in
/// `channel.subscriptionCount`).
pub fn subscription_count(channel: &str, count: usize) -> ByteString {
    let data = format!(r#"{{"subscription_count":{count}}}"#);
    frame(
        "pusher_internal:subscription_count",
        Some(channel),
        Some(data),
    )
}

/// Tells a subscriber of a cache channel that nothing is cached.
pub fn cache_miss(channel: &str) -> ByteString {
    frame::<&str>("pusher:cache_miss", Some(channel), None)
}

/// A channel event triggered by a backend; `data` is the API's string, sent verbatim.
pub fn channel_event(event: &str, channel: &str, data: &str) -> ByteString {
    frame(event, Some(channel), Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn as_json(frame: &ByteString) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    #[test]
    fn connection_established_carries_a_string_payload() {
        let id = SocketId::parse("1.2").unwrap();
        let v = as_json(&connection_established(id, 120));
        assert_eq!(v["event"], "pusher:connection_established");
        assert_eq!(v["data"], r#"{"socket_id":"1.2","activity_timeout":120}"#);
    }

    #[test]
    fn errors_carry_an_object_payload() {
        let v = as_json(&error(Some(4301), "slow down"));
        assert_eq!(v["data"], json!({"code": 4301, "message": "slow down"}));
        assert_eq!(as_json(&error(None, "x"))["data"]["code"], Value::Null);
    }

    #[test]
    fn subscribe_accepts_object_or_string_data() {
        let object = r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":"k:s"}}"#;
        let string = r#"{"event":"pusher:subscribe","data":"{\"channel\":\"a\"}"}"#;
        for text in [object, string] {
            let ClientMessage::Subscribe(req) = ClientMessage::parse(text).unwrap() else {
                panic!("not a subscribe: {text}");
            };
            assert_eq!(req.channel, "a");
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert_eq!(
            ClientMessage::parse("{").unwrap_err(),
            FrameError::NotAnEvent
        );
        assert_eq!(
            ClientMessage::parse("[1]").unwrap_err(),
            FrameError::NotAnEvent
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"pusher:subscribe"}"#),
            Err(FrameError::InvalidData { .. })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"pusher:subscribe","data":{"channel":5}}"#),
            Err(FrameError::InvalidData { .. })
        ));
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:nope"}"#).unwrap_err(),
            FrameError::UnknownEvent("pusher:nope".into())
        );
    }

    #[test]
    fn arrays_are_not_read_as_objects() {
        for text in [r#"["pusher:ping"]"#, r#"["client-x","private-a",{"a":1}]"#] {
            assert_eq!(
                ClientMessage::parse(text).unwrap_err(),
                FrameError::NotAnEvent
            );
        }
        for text in [
            r#"{"event":"pusher:subscribe","data":["private-a"]}"#,
            r#"{"event":"pusher:subscribe","data":"[\"presence-a\",\"k:s\",\"x\"]"}"#,
            r#"{"event":"pusher:signin","data":["k:s","{}"]}"#,
        ] {
            assert!(
                matches!(
                    ClientMessage::parse(text),
                    Err(FrameError::InvalidData { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn client_events_forward_data_byte_for_byte() {
        let text = r#"{"event":"client-x","channel":"private-a","data":{"b": 1,"a":[2]}}"#;
        let ClientMessage::ClientEvent(ev) = ClientMessage::parse(text).unwrap() else {
            panic!("not a client event");
        };
        let out = client_event(&ev.event, &ev.channel, &ev.data, Some("7"));
        assert_eq!(
            &*out,
            r#"{"event":"client-x","channel":"private-a","data":{"b": 1,"a":[2]},"user_id":"7"}"#
        );
    }

    #[test]
    fn member_events_keep_the_user_id_type() {
        let id = RawValue::from_string("10".into()).unwrap();
        let v = as_json(&member_removed("presence-a", &id));
        assert_eq!(v["data"], r#"{"user_id":10}"#);
    }
}

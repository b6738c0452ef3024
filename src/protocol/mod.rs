//! The Pusher wire protocol (version 7), as pure functions and types with no I/O.
//!
//! This module owns everything a client can observe about the format: channel names and their
//! kinds, socket ids, the frames exchanged over the WebSocket, presence `channel_data`, the HMAC
//! signatures that authorise subscriptions, and the error and close codes. Keeping it free of
//! I/O makes it the easiest place to test (and, later, to fuzz).

pub mod channel;
pub mod codes;
pub mod echo;
pub mod frames;
pub mod http_signature;
pub mod presence;
pub mod signature;
pub mod socket_id;
pub mod user;
pub mod webhook_kind;

pub use channel::{ChannelKind, ChannelName, ChannelNameError};
pub use codes::CloseCode;
pub use presence::{PresenceMember, PresenceMemberError};
pub use socket_id::SocketId;
pub use user::{UserData, UserDataError};
pub use webhook_kind::{WebhookKind, WebhookKinds};

/// Whether `json` is (at most) a JSON object: serde also reads a struct from an array of its
/// fields, which the protocol never sends, so each parser of an object checks this first.
fn starts_as_object(json: &str) -> bool {
    json.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

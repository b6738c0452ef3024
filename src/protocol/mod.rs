//! The Pusher wire protocol (version 7), as pure functions and types with no I/O.
//!
//! This module owns everything a client can observe about the format: channel names and their
//! kinds, socket ids, the frames exchanged over the WebSocket, presence `channel_data`, the HMAC
//! signatures that authorise subscriptions, and the error and close codes. Keeping it free of
//! I/O makes it the easiest place to test (and, later, to fuzz).

pub mod channel;
pub mod codes;
pub mod frames;
pub mod http_signature;
pub mod presence;
pub mod signature;
pub mod socket_id;
pub mod user;

pub use channel::{ChannelKind, ChannelName, ChannelNameError};
pub use codes::CloseCode;
pub use presence::{PresenceMember, PresenceMemberError};
pub use socket_id::SocketId;
pub use user::{UserData, UserDataError};

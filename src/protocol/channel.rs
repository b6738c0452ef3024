//! Channel names: the naming rules, and the kind of channel a name denotes.
//!
//! A name is parsed once at the edge into a [`ChannelName`]; inner code never sees an invalid
//! one. The kind is decided by *anchored* prefixes only (`private-`, `presence-`, …): peers that
//! match prefixes anywhere in the name have let `private-cache-*` through without a signature.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Prefix of private channels (HMAC-authorised).
const PRIVATE_PREFIX: &str = "private-";
/// Prefix of end-to-end encrypted private channels; the server only forwards their payloads.
const ENCRYPTED_PREFIX: &str = "private-encrypted-";
/// Prefix of presence channels (authorised, with member lists).
const PRESENCE_PREFIX: &str = "presence-";
/// Every cache-channel variant starts its base kind's prefix with this.
const CACHE_MARKER: &str = "cache-";
/// The channel of the connections signed in as one user, followed by the user id.
const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";
/// Longest user id in a `#server-to-user-` name (the HTTP API's limit for user ids); these
/// names are not held to the app's channel-name limit.
const MAX_USER_ID_LENGTH: usize = 200;

/// What a channel is, which decides how a subscription is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// No authorisation.
    Public,
    /// `private-*`: signature over `socket_id:channel`.
    Private,
    /// `private-encrypted-*`: authorised like private; payloads are opaque to the server.
    PrivateEncrypted,
    /// `presence-*`: signature over `socket_id:channel:channel_data`, with a member list.
    Presence,
    /// `#server-to-user-<id>`: every connection signed in as the user, and only those.
    ServerToUser,
}

impl ChannelKind {
    /// Whether subscribing needs a valid `auth` signature.
    pub fn requires_auth(self) -> bool {
        !matches!(self, ChannelKind::Public)
    }
}

/// Why a string is not a valid channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than the app allows.
    #[error("channel name is longer than {max} characters")]
    TooLong {
        /// The configured maximum length.
        max: usize,
    },
    /// The name contains a character outside `[A-Za-z0-9_\-=@,.;]`.
    #[error("channel name may contain only A-Z, a-z, 0-9 and _ - = @ , . ;")]
    InvalidCharacter,
    /// The name starts with `#` but is not `#server-to-user-<id>`.
    #[error("channel names starting with # are reserved")]
    Reserved,
}

/// A validated channel name; cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// Parses a client- or API-supplied name, enforcing the charset and `max_len`.
    pub fn parse(name: &str, max_len: usize) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        let (checked, max_len) = match name.strip_prefix('#') {
            None => (name, max_len),
            Some(_) => {
                let user_id = name
                    .strip_prefix(SERVER_TO_USER_PREFIX)
                    .filter(|user_id| !user_id.is_empty())
                    .ok_or(ChannelNameError::Reserved)?;
                (user_id, MAX_USER_ID_LENGTH)
            }
        };
        if checked.len() > max_len {
            return Err(ChannelNameError::TooLong { max: max_len });
        }
        if !checked.bytes().all(is_channel_name_byte) {
            return Err(ChannelNameError::InvalidCharacter);
        }
        Ok(ChannelName(Arc::from(name)))
    }

    /// Whether some valid name starts with `prefix` (a configured channel prefix): channel-name
    /// characters only, and `#` only as the start of `#server-to-user-`.
    pub fn may_begin_with(prefix: &str) -> bool {
        if !prefix.starts_with('#') {
            return prefix.bytes().all(is_channel_name_byte);
        }
        SERVER_TO_USER_PREFIX.starts_with(prefix)
            || prefix
                .strip_prefix(SERVER_TO_USER_PREFIX)
                .is_some_and(|user_id| user_id.bytes().all(is_channel_name_byte))
    }

    /// `name` as an error may quote it: exactly when it is within the length a valid name
    /// may have (`max_len`, or the user-id limit for `#server-to-user-` names), cut otherwise.
    pub fn quote(name: &str, max_len: usize) -> std::borrow::Cow<'_, str> {
        let limit = if name.starts_with(SERVER_TO_USER_PREFIX) {
            SERVER_TO_USER_PREFIX.len() + MAX_USER_ID_LENGTH
        } else {
            max_len
        };
        super::echo::quote(name, limit)
    }

    /// The `#server-to-user-<id>` channel of a signed-in user (ids follow the channel-name
    /// character rules, as the official SDKs require).
    pub fn server_to_user(user_id: &str) -> Result<Self, ChannelNameError> {
        Self::parse(&format!("{SERVER_TO_USER_PREFIX}{user_id}"), usize::MAX)
    }

    /// The user id of a `#server-to-user-<id>` channel.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.as_str().strip_prefix(SERVER_TO_USER_PREFIX)
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind of channel, from anchored prefixes.
    pub fn kind(&self) -> ChannelKind {
        let name = self.as_str();
        if name.starts_with(SERVER_TO_USER_PREFIX) {
            ChannelKind::ServerToUser
        } else if name.starts_with(ENCRYPTED_PREFIX) {
            ChannelKind::PrivateEncrypted
        } else if name.starts_with(PRIVATE_PREFIX) {
            ChannelKind::Private
        } else if name.starts_with(PRESENCE_PREFIX) {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// Whether this is a cache channel (`cache-`, `private-cache-`, `private-encrypted-cache-`,
    /// `presence-cache-`).
    pub fn is_cache(&self) -> bool {
        let name = self.as_str();
        ["", PRIVATE_PREFIX, ENCRYPTED_PREFIX, PRESENCE_PREFIX]
            .iter()
            .any(|base| {
                name.strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with(CACHE_MARKER))
            })
    }
}

fn is_channel_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<ChannelName, ChannelNameError> {
        ChannelName::parse(name, 164)
    }

    #[test]
    fn kinds_come_from_anchored_prefixes() {
        assert_eq!(parse("news").unwrap().kind(), ChannelKind::Public);
        assert_eq!(parse("private-a").unwrap().kind(), ChannelKind::Private);
        assert_eq!(
            parse("private-encrypted-a").unwrap().kind(),
            ChannelKind::PrivateEncrypted
        );
        assert_eq!(parse("presence-a").unwrap().kind(), ChannelKind::Presence);
        assert_eq!(parse("my-private-a").unwrap().kind(), ChannelKind::Public);
        assert_eq!(
            parse("cache-private-a").unwrap().kind(),
            ChannelKind::Public
        );
    }

    #[test]
    fn private_cache_channels_still_require_auth() {
        let name = parse("private-cache-a").unwrap();
        assert!(name.is_cache());
        assert!(name.kind().requires_auth());
        assert!(parse("presence-cache-a").unwrap().kind().requires_auth());
    }

    #[test]
    fn server_to_user_channels_are_the_only_hash_names() {
        let name = parse("#server-to-user-42").unwrap();
        assert_eq!(name.kind(), ChannelKind::ServerToUser);
        assert_eq!(name.server_to_user_id(), Some("42"));
        assert_eq!(ChannelName::server_to_user("42").unwrap(), name);
        assert_eq!(parse("#server-to-user-"), Err(ChannelNameError::Reserved));
        assert_eq!(parse("#other"), Err(ChannelNameError::Reserved));
        assert_eq!(
            parse("#server-to-user-a b"),
            Err(ChannelNameError::InvalidCharacter)
        );
        assert_eq!(
            parse("server-to-user-42").unwrap().kind(),
            ChannelKind::Public
        );
        // The user id, not the whole name, is held to 200 characters.
        assert!(parse(&format!("#server-to-user-{}", "u".repeat(200))).is_ok());
        assert_eq!(
            parse(&format!("#server-to-user-{}", "u".repeat(201))),
            Err(ChannelNameError::TooLong { max: 200 })
        );
    }

    #[test]
    fn a_prefix_may_begin_a_name_only_with_name_characters() {
        for good in [
            "orders-",
            "a.b;c=d@e,f_",
            "#server-",
            "#server-to-user-",
            "#server-to-user-4",
        ] {
            assert!(ChannelName::may_begin_with(good), "{good}");
        }
        for bad in ["orders ", "a/b", "a#", "é", "#other", "#server-to-user-a b"] {
            assert!(!ChannelName::may_begin_with(bad), "{bad}");
        }
    }

    #[test]
    fn cache_detection_is_anchored() {
        assert!(parse("cache-a").unwrap().is_cache());
        assert!(parse("private-encrypted-cache-a").unwrap().is_cache());
        assert!(!parse("news-cache-a").unwrap().is_cache());
        assert!(!parse("private-news-cache-a").unwrap().is_cache());
    }

    #[test]
    fn names_follow_the_charset_and_length_rules() {
        assert!(parse("a-Z_0=9@,.;").is_ok());
        assert_eq!(parse(""), Err(ChannelNameError::Empty));
        assert_eq!(parse("a b"), Err(ChannelNameError::InvalidCharacter));
        assert_eq!(parse("é"), Err(ChannelNameError::InvalidCharacter));
        assert_eq!(parse("#private-1"), Err(ChannelNameError::Reserved));
        assert!(parse(&"a".repeat(164)).is_ok());
        assert_eq!(
            parse(&"a".repeat(165)),
            Err(ChannelNameError::TooLong { max: 164 })
        );
    }
}

//! Presence `channel_data`: who a presence subscriber says they are.
//!
//! `user_id` may be a JSON string or number (the docs' own example uses `10`); members are
//! keyed by its string form, and the original JSON is echoed back so clients see the type
//! they sent.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Longest user id accepted, in bytes (Pusher's published limit).
pub const MAX_USER_ID_LENGTH: usize = 128;

/// Why `channel_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceMemberError {
    /// Not a JSON object with a `user_id`.
    #[error("channel_data must be a JSON object with a user_id")]
    Malformed,
    /// `user_id` is neither a non-empty string nor a number.
    #[error("user_id must be a non-empty string or a number")]
    InvalidUserId,
    /// `user_id` is longer than [`MAX_USER_ID_LENGTH`].
    #[error("user_id is longer than 128 characters")]
    UserIdTooLong,
    /// `user_info` is larger than the app allows.
    #[error("user_info is larger than {max} bytes")]
    UserInfoTooLarge {
        /// The configured maximum, in bytes.
        max: usize,
    },
}

/// One presence member as announced by a subscriber.
#[derive(Debug, Clone)]
pub struct PresenceMember {
    /// The user id as a string: the key members are grouped by.
    pub user_key: String,
    /// The user id exactly as the client sent it (a JSON string or number).
    pub user_id_json: Box<RawValue>,
    /// The `user_info` JSON as sent, if any.
    pub user_info: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ChannelData {
    user_id: Box<RawValue>,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
}

impl PresenceMember {
    /// Parses `channel_data` (the exact signed string), enforcing the user-info size limit.
    pub fn parse(channel_data: &str, max_info_bytes: usize) -> Result<Self, PresenceMemberError> {
        if !super::starts_as_object(channel_data) {
            return Err(PresenceMemberError::Malformed);
        }
        let data: ChannelData =
            serde_json::from_str(channel_data).map_err(|_| PresenceMemberError::Malformed)?;
        let user_key = user_key(&data.user_id)?;
        if user_key.len() > MAX_USER_ID_LENGTH {
            return Err(PresenceMemberError::UserIdTooLong);
        }
        let user_info = data.user_info.filter(|info| info.get() != "null");
        if let Some(info) = &user_info
            && info.get().len() > max_info_bytes
        {
            return Err(PresenceMemberError::UserInfoTooLarge {
                max: max_info_bytes,
            });
        }
        Ok(PresenceMember {
            user_key,
            user_id_json: data.user_id,
            user_info,
        })
    }
}

fn user_key(user_id: &RawValue) -> Result<String, PresenceMemberError> {
    match serde_json::from_str::<serde_json::Value>(user_id.get()) {
        Ok(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        Ok(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(PresenceMemberError::InvalidUserId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_user_ids_keep_their_json_type() {
        let m = PresenceMember::parse(r#"{"user_id":10,"user_info":{"name":"A"}}"#, 1024).unwrap();
        assert_eq!(m.user_key, "10");
        assert_eq!(m.user_id_json.get(), "10");
        assert_eq!(m.user_info.unwrap().get(), r#"{"name":"A"}"#);
    }

    #[test]
    fn string_user_ids_and_missing_info() {
        let m = PresenceMember::parse(r#"{"user_id":"u1"}"#, 1024).unwrap();
        assert_eq!(m.user_key, "u1");
        assert_eq!(m.user_id_json.get(), r#""u1""#);
        assert!(m.user_info.is_none());
    }

    #[test]
    fn bad_channel_data_is_refused() {
        let parse = |s: &str| PresenceMember::parse(s, 16).unwrap_err();
        assert_eq!(parse("not json"), PresenceMemberError::Malformed);
        assert_eq!(parse(r#"{"user_info":{}}"#), PresenceMemberError::Malformed);
        assert_eq!(
            parse(r#"{"user_id":""}"#),
            PresenceMemberError::InvalidUserId
        );
        assert_eq!(
            parse(r#"{"user_id":[1]}"#),
            PresenceMemberError::InvalidUserId
        );
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert_eq!(parse(&long), PresenceMemberError::UserIdTooLong);
        assert_eq!(
            parse(r#"{"user_id":"a","user_info":{"name":"0123456789abcdef"}}"#),
            PresenceMemberError::UserInfoTooLarge { max: 16 }
        );
    }
}

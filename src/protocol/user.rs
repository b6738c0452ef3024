//! `user_data` of a `pusher:signin`: the signed-in user's id, and the parts Relay checks.

use serde::Deserialize;
use serde_json::Value;

/// The most ids a watchlist may hold; the rest are dropped (with `pusher:error` 4302).
pub const MAX_WATCHLIST: usize = 100;

/// Why `user_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// Not a JSON object.
    #[error("user_data must be a JSON object")]
    NotAnObject,
    /// `id` is missing, not a string, or empty.
    #[error("user_data must have a non-empty string \"id\"")]
    MissingId,
    /// `watchlist` is not a list of strings.
    #[error("user_data \"watchlist\" must be a list of user ids")]
    BadWatchlist,
}

/// A parsed `user_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The user id (a string, as pusher-js requires).
    pub id: String,
    /// The watched user ids, at most [`MAX_WATCHLIST`].
    pub watchlist: Vec<String>,
    /// Whether ids beyond [`MAX_WATCHLIST`] were dropped.
    pub watchlist_truncated: bool,
}

#[derive(Deserialize)]
struct Raw {
    id: Option<Value>,
    watchlist: Option<Value>,
}

impl UserData {
    /// Parses the exact `user_data` string that was signed.
    pub fn parse(user_data: &str) -> Result<Self, UserDataError> {
        if !super::starts_as_object(user_data) {
            return Err(UserDataError::NotAnObject);
        }
        let raw: Raw = serde_json::from_str(user_data).map_err(|_| UserDataError::NotAnObject)?;
        let id = match raw.id {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => return Err(UserDataError::MissingId),
        };
        let mut watchlist = match raw.watchlist {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .into_iter()
                .map(|id| match id {
                    Value::String(id) => Ok(id),
                    _ => Err(UserDataError::BadWatchlist),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(UserDataError::BadWatchlist),
        };
        let watchlist_truncated = watchlist.len() > MAX_WATCHLIST;
        watchlist.truncate(MAX_WATCHLIST);
        Ok(UserData {
            id,
            watchlist,
            watchlist_truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_must_be_a_non_empty_string() {
        let user = UserData::parse(r#"{"id":"42","user_info":{"name":"A"}}"#).unwrap();
        assert_eq!(user.id, "42");
        assert!(user.watchlist.is_empty());
        for bad in [r#"{"id":42}"#, r#"{"id":""}"#, r#"{"name":"x"}"#] {
            assert_eq!(UserData::parse(bad), Err(UserDataError::MissingId), "{bad}");
        }
        assert_eq!(UserData::parse("[1]"), Err(UserDataError::NotAnObject));
        assert_eq!(UserData::parse("not json"), Err(UserDataError::NotAnObject));
    }

    #[test]
    fn a_watchlist_keeps_its_first_100_ids() {
        let ids: Vec<String> = (0..105).map(|i| format!("u{i}")).collect();
        let text = serde_json::json!({"id": "me", "watchlist": ids}).to_string();
        let user = UserData::parse(&text).unwrap();
        assert_eq!(user.watchlist.len(), MAX_WATCHLIST);
        assert_eq!(user.watchlist[99], "u99");
        assert!(user.watchlist_truncated);
        assert_eq!(
            UserData::parse(r#"{"id":"me","watchlist":[1]}"#),
            Err(UserDataError::BadWatchlist)
        );
    }
}

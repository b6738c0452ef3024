//! The `info` attributes a caller may ask about a channel (`user_count`,
//! `subscription_count`, `cache`), and how their values are gathered through the adapter.

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::ApiError;
use crate::protocol::{ChannelKind, ChannelName};
use crate::state::ServerState;

/// The attributes requested through `info=a,b`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Distinct users (presence channels).
    pub user_count: bool,
    /// Subscribed connections.
    pub subscription_count: bool,
    /// The cached event (cache channels).
    pub cache: bool,
}

impl Attributes {
    /// Parses a comma-separated `info` value; unknown attributes are a 400.
    pub fn parse(info: Option<&str>) -> Result<Self, ApiError> {
        let mut attributes = Attributes::default();
        for name in info
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match name {
                "user_count" => attributes.user_count = true,
                "subscription_count" => attributes.subscription_count = true,
                "cache" => attributes.cache = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Unknown info attribute \"{other}\""
                    )));
                }
            }
        }
        Ok(attributes)
    }

    /// Whether nothing was requested.
    pub fn is_empty(self) -> bool {
        self == Attributes::default()
    }

    /// Refuses `cache`, which cannot apply where this is called.
    pub fn without_cache(self) -> Result<Self, ApiError> {
        if self.cache {
            return Err(ApiError::bad_request(
                "info=cache is only available for a single cache channel",
            ));
        }
        Ok(self)
    }

    /// The requested values for `channel`: `user_count` only on presence channels, `cache`
    /// (the last event's `data` and the seconds it has left) only on cache channels holding one.
    pub async fn values(
        self,
        state: &ServerState,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Map<String, Value>, ApiError> {
        let mut values = Map::new();
        if self.user_count && channel.kind() == ChannelKind::Presence {
            let users = state.adapter.presence_members(app_id, channel).await?;
            values.insert("user_count".to_owned(), json!(users.len()));
        }
        if self.subscription_count {
            let count = state.adapter.subscription_count(app_id, channel).await?;
            values.insert("subscription_count".to_owned(), json!(count));
        }
        if self.cache && channel.is_cache() {
            if let Some(cached) = state.adapter.cached_event(app_id, channel).await? {
                let ttl = cached.ttl_left(Instant::now()).as_secs();
                values.insert(
                    "cache".to_owned(),
                    json!({ "data": cached.data, "ttl": ttl }),
                );
            }
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_attributes_and_refuses_others() {
        let attributes = Attributes::parse(Some("user_count, subscription_count")).unwrap();
        assert!(attributes.user_count && attributes.subscription_count && !attributes.cache);
        assert!(Attributes::parse(None).unwrap().is_empty());
        assert!(Attributes::parse(Some("members")).is_err());
    }
}

//! `GET channels`, `GET channels/{channel_name}` and `GET channels/{channel_name}/users`.
//! Answers come from the adapter, so they are cluster-wide once a cluster adapter exists.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::info::Attributes;
use super::{ApiError, SignedRequest};
use crate::protocol::{ChannelKind, ChannelName};
use crate::state::ServerState;

/// `GET /apps/{app_id}/channels`: occupied channels, optionally filtered by prefix. Users'
/// `#server-to-user-` channels are not listed.
pub async fn list(
    request: SignedRequest,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let prefix = request.query_param("filter_by_prefix").unwrap_or("");
    let attributes = Attributes::parse(request.query_param("info"))?.without_cache()?;
    if attributes.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::bad_request(
            "info=user_count requires filter_by_prefix=presence-",
        ));
    }
    let app_id = &request.app.id;
    let mut channels = Map::new();
    for occupied in state.adapter.occupied_channels(app_id).await? {
        let hidden = occupied.name.kind() == ChannelKind::ServerToUser;
        if hidden || !occupied.name.as_str().starts_with(prefix) {
            continue;
        }
        let values = attributes.values(&state, app_id, &occupied.name).await?;
        channels.insert(occupied.name.to_string(), Value::Object(values));
    }
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}

/// `GET /apps/{app_id}/channels/{channel_name}`: `occupied`, plus the requested attributes.
pub async fn show(
    request: SignedRequest,
    path: web::Path<(String, String)>,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let channel = parse_channel(&request, &path.1)?;
    let attributes = Attributes::parse(request.query_param("info"))?;
    let presence = channel.kind() == ChannelKind::Presence;
    if attributes.user_count && !presence {
        return Err(ApiError::bad_request(
            "info=user_count applies to presence channels only",
        ));
    }
    if attributes.subscription_count && presence {
        return Err(ApiError::bad_request(
            "info=subscription_count applies to non-presence channels only",
        ));
    }
    if attributes.cache && !channel.is_cache() {
        return Err(ApiError::bad_request(
            "info=cache applies to cache channels only",
        ));
    }
    let app_id = &request.app.id;
    let subscriptions = state.adapter.subscription_count(app_id, &channel).await?;
    let mut body = attributes.values(&state, app_id, &channel).await?;
    body.insert("occupied".to_owned(), json!(subscriptions > 0));
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /apps/{app_id}/channels/{channel_name}/users`: one entry per user of a presence channel.
pub async fn users(
    request: SignedRequest,
    path: web::Path<(String, String)>,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let channel = parse_channel(&request, &path.1)?;
    if channel.kind() != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "Users are only available for presence channels",
        ));
    }
    let users: Vec<Value> = state
        .adapter
        .presence_members(&request.app.id, &channel)
        .await?
        .into_iter()
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

fn parse_channel(request: &SignedRequest, name: &str) -> Result<ChannelName, ApiError> {
    let max_len = request.app.limits.max_channel_name_length;
    ChannelName::parse(name, max_len).map_err(|error| {
        let name = ChannelName::quote(name, max_len);
        ApiError::bad_request(format!("Invalid channel \"{name}\": {error}"))
    })
}

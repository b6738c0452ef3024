//! `POST events` and `POST batch_events`: validate everything first (fields, channel schemas,
//! secret scanning; in a batch every event, so one refusal publishes nothing), then publish
//! each channel's frame (serialized once) through the adapter. The handler returns as soon as
//! the frames are queued; it never waits for subscribers.

use std::borrow::Cow;
use std::collections::HashSet;

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::body::JsonFields;
use super::info::Attributes;
use super::{ApiError, SignedRequest};
use tokio::time::Instant;

use crate::apps::App;
use crate::guard::{Guard, PayloadSource};
use crate::hub::CachedEvent;
use crate::protocol::{ChannelKind, ChannelName, SocketId, frames};
use crate::state::ServerState;

/// Which channel fields an event may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelField {
    /// `channels` (a list) or `channel` (PHP's singular form).
    OneOrMany,
    /// `channel` only (batch items).
    One,
}

/// A validated event, ready to publish (each channel named once).
#[derive(Debug)]
struct ApiEvent {
    name: String,
    data: String,
    channels: Vec<ChannelName>,
    except: Option<SocketId>,
    info: Attributes,
}

impl ApiEvent {
    fn from_fields(fields: &JsonFields, app: &App, mode: ChannelField) -> Result<Self, ApiError> {
        let limits = &app.limits;
        let name = fields.required_str("name")?;
        if name.is_empty() {
            return Err(ApiError::bad_request("\"name\" must not be empty"));
        }
        if name.chars().count() > limits.max_event_name_length {
            return Err(ApiError::bad_request(format!(
                "\"name\" is longer than {} characters",
                limits.max_event_name_length
            )));
        }
        let data = fields.required_str("data")?;
        if data.len() > limits.max_event_size {
            return Err(ApiError::PayloadTooLarge(format!(
                "\"data\" is larger than {} bytes",
                limits.max_event_size
            )));
        }
        let channels = channels(fields, app, mode)?;
        let except = fields
            .optional_str("socket_id")?
            .map(|id| {
                SocketId::parse(id)
                    .ok_or_else(|| ApiError::bad_request("\"socket_id\" must look like 123.456"))
            })
            .transpose()?;
        let info = Attributes::parse(fields.optional_str("info")?)?.without_cache()?;
        Ok(ApiEvent {
            name: name.to_owned(),
            data: data.to_owned(),
            channels,
            except,
            info,
        })
    }

    /// Holds the data to the app's channel schemas, then applies its `secret_scanning`:
    /// unchanged, redacted, or refused. Schemas first: the data they see is the sender's, and
    /// an event they refuse is published nowhere, so there is nothing to scan.
    fn inspect(&mut self, guard: &Guard, app: &App) -> Result<(), ApiError> {
        guard
            .check_schemas(&app.id, &self.channels, &self.name, &self.data)
            .map_err(|violation| ApiError::SchemaViolation {
                context: None,
                violation,
            })?;
        let inspected = guard
            .inspect_payload(app, &self.channels[0], &self.data, PayloadSource::Api)
            .map_err(|found| ApiError::SecretFound {
                context: None,
                found,
            })?;
        if let Cow::Owned(redacted) = inspected {
            self.data = redacted;
        }
        Ok(())
    }

    /// Publishes to each channel; on cache channels the event is also kept as the last one.
    async fn publish(&self, state: &ServerState, app: &App) -> Result<(), ApiError> {
        for channel in &self.channels {
            let frame = frames::channel_event(&self.name, channel.as_str(), &self.data);
            let adapter = &state.adapter;
            if channel.is_cache() {
                let cached = CachedEvent {
                    frame,
                    data: self.data.clone(),
                    expires_at: Instant::now() + app.limits.cache_ttl,
                };
                adapter
                    .publish_cached(&app.id, channel, cached, self.except)
                    .await?;
            } else {
                adapter
                    .publish(&app.id, channel, frame, self.except)
                    .await?;
            }
        }
        Ok(())
    }
}

fn channels(
    fields: &JsonFields,
    app: &App,
    mode: ChannelField,
) -> Result<Vec<ChannelName>, ApiError> {
    let names = match (mode, fields.optional_str_list("channels")?) {
        (ChannelField::OneOrMany, Some(list)) => list,
        _ => vec![fields.required_str("channel")?],
    };
    let max = app.limits.max_event_channels;
    if names.is_empty() {
        return Err(ApiError::bad_request("\"channels\" must not be empty"));
    }
    if names.len() > max {
        return Err(ApiError::bad_request(format!(
            "At most {max} channels per event"
        )));
    }
    let mut seen = HashSet::new();
    let channels = names
        .into_iter()
        .filter(|name| seen.insert(*name))
        .map(|name| {
            ChannelName::parse(name, app.limits.max_channel_name_length).map_err(|error| {
                ApiError::bad_request(format!(
                    "Invalid channel \"{}\": {error}",
                    ChannelName::quote(name, app.limits.max_channel_name_length)
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let encrypted = channels
        .iter()
        .any(|c| c.kind() == ChannelKind::PrivateEncrypted);
    if encrypted && channels.len() > 1 {
        return Err(ApiError::bad_request(
            "An event for a private-encrypted- channel must name only that channel",
        ));
    }
    Ok(channels)
}

/// `POST /apps/{app_id}/events`.
pub async fn trigger(
    request: SignedRequest,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let fields = JsonFields::parse(&request.body)?;
    let mut event = ApiEvent::from_fields(&fields, &request.app, ChannelField::OneOrMany)?;
    event.inspect(&state.guard, &request.app)?;
    state
        .guard
        .limit_events(&request.app.id, event.channels.len())
        .await
        .map_err(ApiError::RateLimited)?;
    event.publish(&state, &request.app).await?;
    if event.info.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({})));
    }
    let mut channels = Map::new();
    for channel in &event.channels {
        let values = event.info.values(&state, &request.app.id, channel).await?;
        channels.insert(channel.to_string(), Value::Object(values));
    }
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}

/// `POST /apps/{app_id}/batch_events`.
pub async fn trigger_batch(
    request: SignedRequest,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let mut fields = JsonFields::parse(&request.body)?;
    let items = fields.take_array("batch")?;
    let max = request.app.limits.max_batch_size;
    if items.is_empty() {
        return Err(ApiError::bad_request("\"batch\" must not be empty"));
    }
    if items.len() > max {
        return Err(ApiError::bad_request(format!(
            "At most {max} events per batch"
        )));
    }
    let events = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = format!("batch[{index}]");
            JsonFields::from_value(item, &at)
                .and_then(|fields| ApiEvent::from_fields(&fields, &request.app, ChannelField::One))
                .and_then(|mut event| {
                    event.inspect(&state.guard, &request.app)?;
                    Ok(event)
                })
                .map_err(|error| error.in_context(&at))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = events.iter().map(|event| event.channels.len()).sum();
    state
        .guard
        .limit_events(&request.app.id, count)
        .await
        .map_err(ApiError::RateLimited)?;
    for event in &events {
        event.publish(&state, &request.app).await?;
    }
    if events.iter().all(|event| event.info.is_empty()) {
        return Ok(HttpResponse::Ok().json(json!({})));
    }
    let mut batch = Vec::with_capacity(events.len());
    for event in &events {
        let values = event
            .info
            .values(&state, &request.app.id, &event.channels[0])
            .await?;
        batch.push(Value::Object(values));
    }
    Ok(HttpResponse::Ok().json(json!({ "batch": batch })))
}

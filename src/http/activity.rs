//! `GET /apps/{app_id}/activity`: the app's security events from the state store (the
//! activity log), newest first, filtered like `relay security events`; an API token needs
//! `analytics:read`. The store's calls block (SQLite), so the read runs on the blocking pool.
//!
//! A filter that does not parse is a 400 naming the parameter, never echoing its value (the
//! value is the client's text). A server without a store has recorded nothing yet and answers
//! an empty list; a store that fails is a 503, its detail logged and not sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::{ApiError, SignedRequest};
use crate::activity::{EventKind, EventQuery, Severity, StoredEvent};
use crate::state::ServerState;

/// Events answered unless `limit` says.
const DEFAULT_LIMIT: usize = 100;

/// Most events `limit` may ask for.
const MOST_LIMIT: usize = 1_000;

/// `GET /apps/{app_id}/activity`: `{"events": [...]}`, newest first.
pub async fn list(
    request: SignedRequest,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(&request)?;
    let Some(store) = state.store() else {
        return Ok(answer(&[]));
    };
    match web::block(move || store.events(&query)).await {
        Ok(Ok(events)) => Ok(answer(&events)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the activity log");
            Err(ApiError::ActivityLogUnavailable)
        }
        Err(error) => {
            tracing::warn!(%error, "the activity log read failed");
            Err(ApiError::ActivityLogUnavailable)
        }
    }
}

/// The store query of the request's `kind`, `severity`, `since`, `until`, `unresolved` and
/// `limit`.
fn parse_query(request: &SignedRequest) -> Result<EventQuery, ApiError> {
    let param = |name| request.query_param(name);
    let kind = param("kind")
        .map(|name| EventKind::parse(name).ok_or_else(|| invalid("kind")))
        .transpose()?;
    let min_severity = param("severity")
        .map(|name| Severity::parse(name).ok_or_else(|| invalid("severity")))
        .transpose()?;
    let since = param("since")
        .map(|text| unix_time(text, "since"))
        .transpose()?;
    let until = param("until")
        .map(|text| unix_time(text, "until"))
        .transpose()?;
    let unresolved_only = match param("unresolved") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("unresolved")),
    };
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|limit| (1..=MOST_LIMIT).contains(limit))
            .ok_or_else(|| ApiError::bad_request("limit must be 1 to 1000"))?,
    };
    Ok(EventQuery {
        kind,
        min_severity,
        since,
        until,
        unresolved_only,
        ..EventQuery::newest(&request.app.id, limit)
    })
}

/// `text` as Unix seconds.
fn unix_time(text: &str, name: &str) -> Result<SystemTime, ApiError> {
    text.parse()
        .ok()
        .and_then(|seconds| UNIX_EPOCH.checked_add(Duration::from_secs(seconds)))
        .ok_or_else(|| invalid(name))
}

fn invalid(name: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid {name} parameter"))
}

fn answer(events: &[StoredEvent]) -> HttpResponse {
    let events: Vec<Value> = events.iter().map(event_json).collect();
    HttpResponse::Ok().json(json!({ "events": events }))
}

fn event_json(event: &StoredEvent) -> Value {
    let entry = &event.entry;
    json!({
        "id": event.id,
        "app_id": entry.app_id,
        "kind": entry.kind.as_str(),
        "severity": entry.kind.severity().as_str(),
        "address": entry.address.map(|address| address.to_string()),
        "message": entry.message,
        "count": entry.count,
        "first_seen": time(entry.first_seen),
        "last_seen": time(entry.last_seen),
        "resolved_at": event.resolved_at.map(time),
    })
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

//! Counts every HTTP call for the metrics, by app, endpoint and status, once its response is
//! made. The labels stay bounded: the endpoint is the matched route (`events`,
//! `channels/{channel_name}`, …, or `unmatched`), the app a configured app's id (`unknown`
//! for any other id, empty for the health endpoints).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};

use super::API_PREFIX;
use crate::state::ServerState;

/// The health endpoints, matched whole.
const HEALTH: [&str; 3] = ["/", "/ready", "/live"];

/// The API's routes, below `/apps/{app_id}/` (or the server-wide terminate).
const API_ROUTES: [&str; 7] = [
    "events",
    "batch_events",
    "channels",
    "channels/{channel_name}",
    "channels/{channel_name}/users",
    "users/{user_id}/terminate_connections",
    "activity",
];

/// The middleware: calls the app, then counts what it answered.
pub async fn count_calls(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let answered = next.call(request).await;
    if let Ok(response) = &answered {
        count(response.request(), response.status().as_u16());
    }
    answered
}

fn count(request: &HttpRequest, status: u16) {
    let pattern = request.match_pattern();
    let endpoint = pattern.as_deref().map_or("unmatched", endpoint_of);
    let app_id = match request.match_info().get("app_id") {
        None => String::new(),
        Some(id) => {
            let known = request
                .app_data::<web::Data<ServerState>>()
                .is_some_and(|state| state.apps.by_id(id).is_some());
            if known {
                id.to_owned()
            } else {
                "unknown".to_owned()
            }
        }
    };
    let labels = crate::metrics::HttpLabels {
        app_id,
        endpoint,
        status,
    };
    crate::metrics::global()
        .http_requests
        .get_or_create(&labels)
        .inc();
}

/// The endpoint label of a matched route pattern.
fn endpoint_of(pattern: &str) -> &'static str {
    if let Some(health) = HEALTH.iter().find(|health| **health == pattern) {
        return health;
    }
    let route = pattern.strip_prefix(API_PREFIX).unwrap_or(pattern);
    let route = route
        .strip_prefix("/apps/{app_id}/")
        .unwrap_or_else(|| route.trim_start_matches('/'));
    API_ROUTES
        .iter()
        .find(|known| **known == route)
        .copied()
        .unwrap_or("unmatched")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_short_bounded_endpoint_labels() {
        assert_eq!(endpoint_of("/apps/{app_id}/events"), "events");
        assert_eq!(
            endpoint_of(&format!("{API_PREFIX}/apps/{{app_id}}/events")),
            "events"
        );
        assert_eq!(
            endpoint_of("/apps/{app_id}/channels/{channel_name}/users"),
            "channels/{channel_name}/users"
        );
        assert_eq!(
            endpoint_of("/users/{user_id}/terminate_connections"),
            "users/{user_id}/terminate_connections"
        );
        assert_eq!(endpoint_of("/ready"), "/ready");
        assert_eq!(endpoint_of("/apps/{app_id}/nothing"), "unmatched");
    }
}

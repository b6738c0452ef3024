//! Counts every HTTP call for the metrics, by app, endpoint and status, once its response is
//! made. The labels stay bounded: the endpoint is the route the path takes (`events`,
//! `channels/{channel_name}`, …, or `unmatched`), the app a configured app's id (`unknown`
//! for any other id, empty when the path names none).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use futures_util::future::LocalBoxFuture;

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

/// The middleware: calls the app, then counts what it answered. Boxed: actix-http keeps the
/// service's future type inline in every connection's dispatcher, which a WebSocket keeps for
/// its whole life, and this one's state cost every idle WebSocket 0.3 KiB unboxed
/// (connect-10k, docs/benchmarks.md); boxed, an HTTP request pays one allocation.
pub fn count_calls<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>> {
    Box::pin(async move {
        let answered = next.call(request).await;
        if let Ok(response) = &answered {
            count(response.request(), response.status().as_u16());
        }
        answered
    })
}

fn count(request: &HttpRequest, status: u16) {
    let endpoint = endpoint_of(request.path());
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

/// The endpoint label of a request path: the route it takes, told from the path's segments
/// (cheaper than asking the router again), or `unmatched`.
fn endpoint_of(path: &str) -> &'static str {
    if let Some(health) = HEALTH.iter().find(|health| **health == path) {
        return health;
    }
    let route = path.strip_prefix(API_PREFIX).unwrap_or(path);
    let route = match route.strip_prefix("/apps/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, route)| route),
        None => route.trim_start_matches('/'),
    };
    let mut segments = route.split('/');
    let segments = [(); 4].map(|()| segments.next());
    let shape = match segments {
        [Some(single), None, None, None] => single,
        [Some("channels"), Some(_), None, None] => "channels/{channel_name}",
        [Some("channels"), Some(_), Some("users"), None] => "channels/{channel_name}/users",
        [Some("users"), Some(_), Some("terminate_connections"), None] => {
            "users/{user_id}/terminate_connections"
        }
        _ => return "unmatched",
    };
    API_ROUTES
        .iter()
        .find(|known| **known == shape)
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

//! `GET /metrics` on the `[metrics]` listener: every family of [`super::Metrics`] and the
//! scrape-time [`NodeCollector`], as OpenMetrics text (which Prometheus reads). The listener
//! is the operator's, not the clients': it serves nothing else, and binds loopback unless
//! `[metrics] host` says otherwise.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use prometheus_client::registry::{Registry, Unit};

use super::collect::NodeCollector;
use super::global;
use crate::state::ServerState;

/// The content type of OpenMetrics text.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry of every metric of this process, reading `state` at each scrape.
pub fn registry(state: Arc<ServerState>) -> Registry {
    let metrics = global();
    let mut registry = Registry::default();
    registry.register(
        "relay_connections_opened",
        "WebSocket connections admitted",
        metrics.connections_opened.clone(),
    );
    registry.register(
        "relay_connections_closed",
        "Admitted WebSocket connections that ended, by close code (1006: the transport went away)",
        metrics.connections_closed.clone(),
    );
    registry.register(
        "relay_outbound_overflows",
        "Connections closed with 4100 for not keeping up with their messages",
        metrics.outbound_overflows.clone(),
    );
    registry.register(
        "relay_http_requests",
        "HTTP calls, by endpoint and status",
        metrics.http_requests.clone(),
    );
    registry.register(
        "relay_limit_refusals",
        "Requests, connections and events refused by a rate limit or quota, by limit",
        metrics.limit_refusals.clone(),
    );
    registry.register(
        "relay_guard_refusals",
        "Requests and handshakes refused by a security rule, a ban or a lockdown, by rule",
        metrics.guard_refusals.clone(),
    );
    registry.register(
        "relay_security_events",
        "Security events recorded in the activity log, by kind",
        metrics.security_events.clone(),
    );
    registry.register_with_unit(
        "relay_adapter_publish",
        "Time a publish to Redis took",
        Unit::Seconds,
        metrics.adapter_publish_seconds.clone(),
    );
    registry.register(
        "relay_adapter_errors",
        "Redis commands that failed",
        metrics.adapter_errors.clone(),
    );
    registry.register(
        "relay_adapter_reconnects",
        "Times the connection to Redis was made again after it was lost",
        metrics.adapter_reconnects.clone(),
    );
    registry.register_collector(Box::new(NodeCollector::new(state)));
    registry
}

/// Registers `GET /metrics`, answered from `registry`.
pub fn configure(config: &mut web::ServiceConfig, registry: Arc<Registry>) {
    config
        .app_data(web::Data::from(registry))
        .route("/metrics", web::get().to(scrape));
}

async fn scrape(registry: web::Data<Registry>) -> HttpResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(_) => HttpResponse::InternalServerError()
            .json(serde_json::json!({"error": "The metrics could not be encoded"})),
    }
}

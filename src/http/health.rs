//! Liveness and readiness: `GET /` and `GET /live` answer `OK` while the process serves (a
//! liveness probe: restart the process if not); `GET /ready` turns
//! 503 once shutdown has begun, or while the cluster's Redis is unreachable, so a load
//! balancer stops sending new clients (the connected ones are still served).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::ServerState;

/// `GET /` and `GET /live`.
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("OK")
}

/// `GET /ready`.
pub async fn ready(state: web::Data<ServerState>) -> HttpResponse {
    if state.shutdown.is_cancelled() {
        HttpResponse::ServiceUnavailable().json(json!({"error": "Shutting down"}))
    } else if !state.adapter.reachable() {
        // A node cut off from the cluster serves the clients it has; new ones would miss
        // what other nodes publish, so a balancer should send them elsewhere.
        HttpResponse::ServiceUnavailable().json(json!({"error": "Redis unavailable"}))
    } else {
        HttpResponse::Ok().content_type("text/plain").body("OK")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use actix_web::http::StatusCode;

    #[actix_web::test]
    async fn ready_turns_503_once_shutdown_begins() {
        let config = Config::from_toml(
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n",
            std::path::Path::new("test.toml"),
        )
        .unwrap();
        let state = web::Data::new(ServerState::new(&config).unwrap().0);
        assert_eq!(ready(state.clone()).await.status(), StatusCode::OK);
        state.shutdown.cancel();
        assert_eq!(ready(state).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

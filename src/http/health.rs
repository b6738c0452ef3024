//! Liveness and readiness: `GET /` answers `OK` while the process serves; `GET /ready` turns
//! 503 once shutdown has begun, so a load balancer stops sending new clients.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::ServerState;

/// `GET /`.
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("OK")
}

/// `GET /ready`.
pub async fn ready(state: web::Data<ServerState>) -> HttpResponse {
    if state.shutdown.is_cancelled() {
        HttpResponse::ServiceUnavailable().json(json!({"error": "Shutting down"}))
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

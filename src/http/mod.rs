//! The Pusher HTTP API under `/apps/{app_id}/…` (and the same under `/api/v1/apps/{app_id}/…`),
//! Relay's own `GET …/activity` (the app's security events, from the state store:
//! [`activity`]), plus health endpoints.
//!
//! Every API handler takes a [`SignedRequest`], the one authentication extractor
//! ([`auth`]), which checks the request head ([`signature`]) before it reads the body
//! ([`body_reader`]); `Expect: 100-continue` gets the same head check ([`expect`]). Errors are
//! [`ApiError`]s, each a status with a `{"error": "…"}` body. Every request's body is held by
//! its response, so an answer given before the body is read closes the connection
//! ([`unread_body`]).

mod activity;
mod auth;
mod body;
mod body_reader;
mod channels;
mod error;
mod events;
mod expect;
mod health;
mod info;
mod metered;
mod signature;
mod unread_body;
mod users;

use actix_web::web;

pub use auth::SignedRequest;
pub use error::ApiError;
pub use expect::expect_continue;
pub use metered::count_calls;
pub use signature::{
    API_PREFIX, UnverifiedRequest, decode_query, verify_body_md5, verify_query_signature,
};
pub use unread_body::call_holding_body;

/// Registers the API and health routes.
pub fn configure(config: &mut web::ServiceConfig) {
    let path_errors = web::PathConfig::default()
        .error_handler(|_, _| ApiError::bad_request("Invalid path parameter").into());
    config
        .app_data(path_errors)
        .route("/", web::get().to(health::alive))
        .route("/ready", web::get().to(health::ready))
        .route("/live", web::get().to(health::alive))
        .service(api_scope("/apps/{app_id}"))
        .service(api_scope(&format!("{API_PREFIX}/apps/{{app_id}}")))
        .route(
            "/users/{user_id}/terminate_connections",
            web::post().to(users::terminate),
        );
}

fn api_scope(path: &str) -> actix_web::Scope {
    web::scope(path)
        .route("/events", web::post().to(events::trigger))
        .route("/batch_events", web::post().to(events::trigger_batch))
        .route("/channels", web::get().to(channels::list))
        .route("/channels/{channel_name}", web::get().to(channels::show))
        .route(
            "/channels/{channel_name}/users",
            web::get().to(channels::users),
        )
        .route(
            "/users/{user_id}/terminate_connections",
            web::post().to(users::terminate),
        )
        .route("/activity", web::get().to(activity::list))
}

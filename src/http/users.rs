//! `POST users/{user_id}/terminate_connections`, also at the Python SDK's short path
//! `/users/{user_id}/terminate_connections` (the app is then found by `auth_key`).
//!
//! Every connection *signed in* as the user, on every node, is closed with 4009 (after a
//! `pusher:error` with the same code), which tells pusher-js not to reconnect. Connections that
//! only joined presence channels under that user id are not affected, as at Pusher.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{ApiError, SignedRequest};
use crate::state::ServerState;

/// Longest user id accepted.
const MAX_USER_ID_LENGTH: usize = 200;

/// Terminates every connection signed in as the user.
pub async fn terminate(
    req: HttpRequest,
    request: SignedRequest,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, ApiError> {
    let user_id = req.match_info().get("user_id").unwrap_or_default();
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LENGTH {
        return Err(ApiError::bad_request(format!(
            "user id must be 1 to {MAX_USER_ID_LENGTH} characters"
        )));
    }
    state
        .adapter
        .terminate_user(&request.app.id, user_id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

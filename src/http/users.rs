//! `POST users/{user_id}/terminate_connections`, also at the Python SDK's short path
//! `/users/{user_id}/terminate_connections` (the app is then found by `auth_key`).
//!
//! Only connections *signed in* as the user are terminated, and user sign-in does not exist
//! yet, so no connection can match: the request is authenticated and validated, and answered
//! `{}`. The sign-in issue wires the closing through the adapter.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::{ApiError, SignedRequest};

/// Longest user id accepted.
const MAX_USER_ID_LENGTH: usize = 200;

/// Terminates every connection signed in as the user.
pub async fn terminate(
    req: HttpRequest,
    _request: SignedRequest,
) -> Result<HttpResponse, ApiError> {
    let user_id = req.match_info().get("user_id").unwrap_or_default();
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LENGTH {
        return Err(ApiError::bad_request(format!(
            "user id must be 1 to {MAX_USER_ID_LENGTH} characters"
        )));
    }
    Ok(HttpResponse::Ok().json(json!({})))
}

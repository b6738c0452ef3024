//! The HTTP API's errors: each is a status and a short `{"error": "…"}` body. Nothing
//! internal (and never a secret, signature or string to sign) reaches the body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No app has this id (or, on the short terminate path, this key).
    #[error("Unknown app")]
    AppNotFound,
    /// The app is disabled.
    #[error("App is disabled")]
    AppDisabled,
    /// The sender is banned from the app for repeated authentication failures (403, with
    /// `Retry-After`).
    #[error("{0}")]
    Banned(crate::guard::Banned),
    /// The app is locked down (`auto_lockdown`) until an admin resolves its security events.
    #[error("App is locked down")]
    LockedDown,
    /// Authentication failed; the message names what was wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials themselves are wrong (a bad signature, key, secret or token): a 401
    /// like [`ApiError::Unauthorized`], and the failures brute-force bans count (a missing
    /// parameter, a skewed clock or a missing scope is no guess).
    #[error("{0}")]
    BadCredentials(&'static str),
    /// The app's security rules refuse the sender (address, country, client certificate).
    #[error("{0}")]
    Forbidden(crate::guard::Refusal),
    /// An API token without the scope the endpoint needs; the message names the scope.
    #[error("{0}")]
    LacksScope(String),
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The body or an event's data is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body did not arrive within `server.request_body_timeout`.
    #[error("Request body was not received in time")]
    RequestTimeout,
    /// Receiving this body would exceed `server.max_pending_request_bytes`; retry shortly.
    #[error("Too many request bodies are being received; retry shortly")]
    Busy,
    /// Cluster state could not be reached.
    #[error("Temporarily unavailable")]
    Unavailable,
    /// The state store could not be read for the activity log.
    #[error("activity log unavailable")]
    ActivityLogUnavailable,
    /// A rate limit of `[apps.limits]` (429, with `Retry-After` and the RateLimit headers).
    #[error("{0}")]
    RateLimited(crate::guard::Limited),
    /// `secret_scanning = "reject"` found a secret in an event's data (422, naming the
    /// detectors, never the text); `context` names the event of a batch.
    #[error("{}{found}", context.as_deref().map(|at| format!("{at}: ")).unwrap_or_default())]
    SecretFound {
        /// `batch[N]`, in a batch.
        context: Option<String>,
        /// The detectors that fired.
        found: crate::guard::SecretFound,
    },
    /// An event's data fails a channel schema, or is not JSON where one applies (422, naming
    /// the failing path and keyword, never a value); `context` names the event of a batch.
    #[error("{}{violation}", context.as_deref().map(|at| format!("{at}: ")).unwrap_or_default())]
    SchemaViolation {
        /// `batch[N]`, in a batch.
        context: Option<String>,
        /// Where the data fails, and which keyword.
        violation: crate::guard::SchemaViolation,
    },
}

/// Seconds a client refused with [`ApiError::Busy`] is asked to wait.
const BUSY_RETRY_AFTER: &str = "1";

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// The same error with `context: ` before its message (e.g. `batch[2]: …`).
    pub fn in_context(self, context: &str) -> Self {
        match self {
            ApiError::BadRequest(message) => ApiError::BadRequest(format!("{context}: {message}")),
            ApiError::PayloadTooLarge(message) => {
                ApiError::PayloadTooLarge(format!("{context}: {message}"))
            }
            ApiError::SecretFound { found, .. } => ApiError::SecretFound {
                context: Some(context.to_owned()),
                found,
            },
            ApiError::SchemaViolation { violation, .. } => ApiError::SchemaViolation {
                context: Some(context.to_owned()),
                violation,
            },
            other => other,
        }
    }

    /// A 413 for a request body over `server.max_request_size`.
    pub fn body_too_large() -> Self {
        ApiError::PayloadTooLarge("Request body is too large".to_owned())
    }

    /// A 401 with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized(message.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::AppNotFound => StatusCode::NOT_FOUND,
            ApiError::AppDisabled
            | ApiError::LockedDown
            | ApiError::Banned(_)
            | ApiError::Forbidden(_)
            | ApiError::LacksScope(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) | ApiError::BadCredentials(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy | ApiError::Unavailable | ApiError::ActivityLogUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::SecretFound { .. } | ApiError::SchemaViolation { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Busy) {
            response.insert_header((actix_web::http::header::RETRY_AFTER, BUSY_RETRY_AFTER));
        }
        if let ApiError::Banned(banned) = self {
            let retry_after = banned.retry_after.to_string();
            response.insert_header((actix_web::http::header::RETRY_AFTER, retry_after));
        }
        if let ApiError::RateLimited(limited) = self {
            // draft-ietf-httpapi-ratelimit-headers-09: the policy (quota q per window w
            // seconds) and what is left of it (r remaining, t seconds until it resets).
            let name = limited.scope.as_str();
            response
                .insert_header((
                    actix_web::http::header::RETRY_AFTER,
                    limited.retry_after.to_string(),
                ))
                .insert_header((
                    "RateLimit-Policy",
                    format!(
                        "\"{name}\";q={};w={}",
                        limited.quota,
                        limited.scope.window_seconds()
                    ),
                ))
                .insert_header((
                    "RateLimit",
                    format!("\"{name}\";r=0;t={}", limited.retry_after),
                ));
        }
        if let ApiError::SecretFound { found, .. } = self {
            return response.json(serde_json::json!({
                "error": self.to_string(),
                "detectors": found.detectors,
            }));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

impl From<crate::adapter::AdapterError> for ApiError {
    fn from(error: crate::adapter::AdapterError) -> Self {
        tracing::warn!(%error, "adapter query failed");
        ApiError::Unavailable
    }
}

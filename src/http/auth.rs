//! Authentication of HTTP API requests, as one extractor: [`SignedRequest`].
//!
//! A handler that takes a `SignedRequest` only runs for an authenticated request to an enabled
//! app, and receives the app, the decoded query and the body (read with a size limit, so an
//! oversized body is refused with 413 before it is buffered whole). Today the one method is
//! Pusher's HMAC query signature; Bearer API tokens and key/secret headers will be further
//! arms of [`authenticate`], invisible to handlers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::apps::{App, AuthError};
use crate::protocol::http_signature::{body_md5, string_to_sign};
use crate::server::ServerState;

/// The path prefix under which the API is also served; SDKs may sign with or without it.
pub const API_PREFIX: &str = "/api/v1";

/// An authenticated API request.
#[derive(Debug)]
pub struct SignedRequest {
    /// The app the request is for.
    pub app: Arc<App>,
    /// Decoded query parameters, in request order.
    pub query: Vec<(String, String)>,
    /// The raw body.
    pub body: Bytes,
}

impl SignedRequest {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl FromRequest for SignedRequest {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<ServerState>>()
                .ok_or(ApiError::Unavailable)?
                .clone();
            let query = decode_query(req.query_string());
            let app = find_app(&state, &req, &query)?;
            let body = read_body(&req, &mut payload).await?;
            let unverified = UnverifiedRequest {
                method: req.method().as_str(),
                path: req.path(),
                query: &query,
                body: &body,
            };
            let skew = state.settings.max_auth_timestamp_skew;
            verify_query_signature(&app, &unverified, skew, unix_now())?;
            Ok(SignedRequest { app, query, body })
        })
    }
}

/// Decodes a query string into pairs (values percent- and `+`-decoded).
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// The app named by the path's `{app_id}`, or by `auth_key` on paths without one.
fn find_app(
    state: &ServerState,
    req: &HttpRequest,
    query: &[(String, String)],
) -> Result<Arc<App>, ApiError> {
    let app = match req.match_info().get("app_id") {
        Some(app_id) => state.apps.by_id(app_id),
        None => query
            .iter()
            .find(|(key, _)| key == "auth_key")
            .and_then(|(_, key)| state.apps.by_key(key)),
    };
    let app = app.ok_or(ApiError::AppNotFound)?;
    if !app.enabled {
        return Err(ApiError::AppDisabled);
    }
    Ok(app.clone())
}

async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, payload).await.map_err(|error| {
        match error.as_error::<PayloadError>() {
            Some(PayloadError::Overflow) => {
                ApiError::PayloadTooLarge("Request body is too large".to_owned())
            }
            _ => ApiError::bad_request("Request body could not be read"),
        }
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The parts of an HTTP API request that its Pusher signature covers.
#[derive(Debug, Clone, Copy)]
pub struct UnverifiedRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The request path as received (with or without [`API_PREFIX`]).
    pub path: &'a str,
    /// Decoded query parameters, `auth_signature` included.
    pub query: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

/// Checks Pusher's query signature: parameters present, key, version, timestamp within
/// `max_skew` seconds of `now`, `body_md5`, then the HMAC over the path as signed (with or
/// without [`API_PREFIX`]). Pure, so it can be tested and benchmarked without a server.
pub fn verify_query_signature(
    app: &App,
    request: &UnverifiedRequest<'_>,
    max_skew: u64,
    now: u64,
) -> Result<(), ApiError> {
    let query = request.query;
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| ApiError::unauthorized(format!("Missing {name} parameter")))
    };
    let key = param("auth_key")?;
    let signature = param("auth_signature")?;
    if param("auth_version")? != "1.0" {
        return Err(ApiError::unauthorized(
            "Unsupported auth_version (expected 1.0)",
        ));
    }
    let timestamp: u64 = param("auth_timestamp")?
        .parse()
        .map_err(|_| ApiError::unauthorized("auth_timestamp must be Unix seconds"))?;
    if timestamp.abs_diff(now) > max_skew {
        return Err(ApiError::unauthorized(format!(
            "auth_timestamp is more than {max_skew} seconds from the server's clock"
        )));
    }
    check_body_md5(query, request.body)?;
    let path = request.path;
    let unprefixed = path
        .strip_prefix(API_PREFIX)
        .filter(|rest| rest.starts_with('/'));
    let method = request.method;
    let mut result = Err(AuthError::BadSignature);
    for candidate in std::iter::once(path).chain(unprefixed) {
        let signed = string_to_sign(method, candidate, query);
        result = app.verify_signature(key, &signed, signature);
        if !matches!(result, Err(AuthError::BadSignature)) {
            break;
        }
    }
    result.map_err(|error| match error {
        AuthError::WrongKey => ApiError::unauthorized("auth_key does not belong to this app"),
        AuthError::Malformed | AuthError::BadSignature => {
            ApiError::unauthorized("Invalid signature")
        }
    })
}

/// `body_md5` is required with a body and must match it; on an empty body (GET from the
/// Python SDK) it may be present and must then be the MD5 of nothing.
fn check_body_md5(query: &[(String, String)], body: &[u8]) -> Result<(), ApiError> {
    let provided = query
        .iter()
        .find(|(key, _)| key == "body_md5")
        .map(|(_, value)| value.as_str());
    match provided {
        None if body.is_empty() => Ok(()),
        None => Err(ApiError::unauthorized("Missing body_md5 parameter")),
        Some(provided) => {
            let expected = body_md5(body);
            if bool::from(
                expected
                    .as_bytes()
                    .ct_eq(provided.to_ascii_lowercase().as_bytes()),
            ) {
                Ok(())
            } else {
                Err(ApiError::unauthorized("body_md5 does not match the body"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_are_decoded_including_php_escapes() {
        assert_eq!(
            decode_query("info=user_count%2Csubscription_count&filter_by_prefix=presence-"),
            pairs(&[
                ("info", "user_count,subscription_count"),
                ("filter_by_prefix", "presence-")
            ])
        );
    }

    #[test]
    fn body_md5_rules() {
        let empty_md5 = pairs(&[("body_md5", "d41d8cd98f00b204e9800998ecf8427e")]);
        assert!(check_body_md5(&[], b"").is_ok());
        assert!(check_body_md5(&empty_md5, b"").is_ok());
        assert!(check_body_md5(&[], b"{}").is_err());
        assert!(check_body_md5(&empty_md5, b"{}").is_err());
        let body_md5 = pairs(&[("body_md5", "99914b932bd37a50b983c5e7c90ae93b")]);
        assert!(check_body_md5(&body_md5, b"{}").is_ok());
    }
}

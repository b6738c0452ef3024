//! Pusher's HTTP API signature, checked in two steps so that no body is read for a request
//! that is not signed: [`verify_query_signature`] needs only the request head (the query it
//! signs carries `body_md5`), and [`verify_body_md5`] then holds the body to that MD5. Both are
//! pure, so they are tested and benchmarked without a server.

use subtle::ConstantTimeEq;

use super::ApiError;
use crate::apps::{App, AuthError, CredentialUse};
use crate::protocol::http_signature::{body_md5, string_to_sign};

/// The path prefix under which the API is also served; SDKs may sign with or without it.
pub const API_PREFIX: &str = "/api/v1";

/// Decodes a query string into pairs (values percent- and `+`-decoded).
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// The parts of an HTTP API request head that its Pusher signature covers.
#[derive(Debug, Clone, Copy)]
pub struct UnverifiedRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The request path as received (with or without [`API_PREFIX`]).
    pub path: &'a str,
    /// Decoded query parameters, `auth_signature` included.
    pub query: &'a [(String, String)],
}

/// Checks Pusher's query signature: parameters present, key, version, timestamp within
/// `max_skew` seconds of `now`, then the HMAC over the path as signed (with or without
/// [`API_PREFIX`]). The body is not needed: the signed query holds its `body_md5`.
pub fn verify_query_signature(
    app: &App,
    request: &UnverifiedRequest<'_>,
    max_skew: u64,
    used: &CredentialUse,
) -> Result<(), ApiError> {
    let now = used
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let query = request.query;
    let param = |name: &str| {
        query_param(query, name)
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
    let path = request.path;
    let unprefixed = path
        .strip_prefix(API_PREFIX)
        .filter(|rest| rest.starts_with('/'));
    let method = request.method;
    let mut result = Err(AuthError::BadSignature);
    for candidate in std::iter::once(path).chain(unprefixed) {
        let signed = string_to_sign(method, candidate, query);
        result = app.verify_signature(key, &signed, signature, used);
        if !matches!(result, Err(AuthError::BadSignature)) {
            break;
        }
    }
    result.map_err(|error| match error {
        AuthError::WrongKey => ApiError::BadCredentials("auth_key does not belong to this app"),
        AuthError::Malformed | AuthError::BadSignature | AuthError::WrongSecret => {
            ApiError::BadCredentials("Invalid signature")
        }
    })
}

/// `body_md5` is required with a body and must match it; on an empty body (GET from the
/// Python SDK) it may be present and must then be the MD5 of nothing.
pub fn verify_body_md5(query: &[(String, String)], body: &[u8]) -> Result<(), ApiError> {
    match query_param(query, "body_md5") {
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

/// The first value of query parameter `name`.
pub(super) fn query_param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
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
        assert!(verify_body_md5(&[], b"").is_ok());
        assert!(verify_body_md5(&empty_md5, b"").is_ok());
        assert!(verify_body_md5(&[], b"{}").is_err());
        assert!(verify_body_md5(&empty_md5, b"{}").is_err());
        let body_md5 = pairs(&[("body_md5", "99914b932bd37a50b983c5e7c90ae93b")]);
        assert!(verify_body_md5(&body_md5, b"{}").is_ok());
    }
}

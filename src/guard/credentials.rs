//! Which authentication method an HTTP API request uses: Pusher's HMAC query signature, or
//! Relay's `X-Relay-Key` + `X-Relay-Secret` headers (full access). A request that carries more
//! than one method is refused naming them, so a mistake in a client (or an attempt to confuse
//! the server about which method counts) never gets a lenient reading. The third method is a
//! Relay API token, `Authorization: Bearer rly_…`.
//!
//! Only the choice is made here; checking the credentials is the app's
//! (`App::verify_signature`, `App::verify_key_and_secret`).

use actix_http::header::{AUTHORIZATION, HeaderMap, HeaderName};

/// The key header of the key + secret method.
const RELAY_KEY: HeaderName = HeaderName::from_static("x-relay-key");
/// The secret header of the key + secret method.
const RELAY_SECRET: HeaderName = HeaderName::from_static("x-relay-secret");
/// The query parameters that make a request HMAC-signed.
const SIGNATURE_PARAMS: [&str; 4] = [
    "auth_key",
    "auth_signature",
    "auth_timestamp",
    "auth_version",
];

/// How a request authenticates.
#[derive(PartialEq, Eq)]
pub enum ApiCredentials<'a> {
    /// Pusher's signed query (or nothing: the signature check then names what is missing).
    Signature,
    /// `X-Relay-Key` and `X-Relay-Secret`.
    KeyAndSecret {
        /// The app key.
        key: &'a str,
        /// The app secret; never logged.
        secret: &'a str,
    },
    /// `Authorization: Bearer <token>`; never logged.
    Bearer(&'a str),
}

impl std::fmt::Debug for ApiCredentials<'_> {
    /// The method and the key, never a secret or token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiCredentials::Signature => f.write_str("Signature"),
            ApiCredentials::KeyAndSecret { key, .. } => {
                write!(f, "KeyAndSecret({key}, <redacted>)")
            }
            ApiCredentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Why a request's authentication cannot even be tried; each message is safe to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// More than one method at once.
    #[error("Use one authentication method, not {0}")]
    Conflict(String),
    /// One of the two headers without the other.
    #[error("X-Relay-Key and X-Relay-Secret must be sent together")]
    Incomplete,
}

/// The method `headers` and `query` use.
pub fn api_credentials<'a>(
    headers: &'a HeaderMap,
    query: &[(String, String)],
) -> Result<ApiCredentials<'a>, CredentialsError> {
    let signed = query
        .iter()
        .any(|(name, _)| SIGNATURE_PARAMS.contains(&name.as_str()));
    let key = headers.get(&RELAY_KEY);
    let secret = headers.get(&RELAY_SECRET);
    let bearer = headers.get_all(AUTHORIZATION).find_map(|value| {
        let value = value.to_str().ok()?;
        let scheme = value.get(..7)?;
        scheme
            .eq_ignore_ascii_case("bearer ")
            .then(|| value[7..].trim())
    });
    let headers_present = key.is_some() || secret.is_some();
    let methods: Vec<&str> = [
        (signed, "an HMAC query signature"),
        (headers_present, "X-Relay-Key/X-Relay-Secret headers"),
        (bearer.is_some(), "a Bearer token"),
    ]
    .into_iter()
    .filter_map(|(present, name)| present.then_some(name))
    .collect();
    if methods.len() > 1 {
        return Err(CredentialsError::Conflict(methods.join(" and ")));
    }
    if let Some(token) = bearer {
        return Ok(ApiCredentials::Bearer(token));
    }
    if !headers_present {
        return Ok(ApiCredentials::Signature);
    }
    let text = |value: Option<&'a actix_http::header::HeaderValue>| {
        value
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
    };
    match (text(key), text(secret)) {
        (Some(key), Some(secret)) => Ok(ApiCredentials::KeyAndSecret { key, secret }),
        _ => Err(CredentialsError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use actix_http::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn query(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|name| ((*name).to_owned(), "x".to_owned()))
            .collect()
    }

    #[test]
    fn the_method_is_the_one_present() {
        let none = headers(&[]);
        assert_eq!(
            api_credentials(&none, &query(&["info"])),
            Ok(ApiCredentials::Signature)
        );
        let pair = headers(&[("x-relay-key", "k"), ("x-relay-secret", "s")]);
        assert_eq!(
            api_credentials(&pair, &query(&["info"])),
            Ok(ApiCredentials::KeyAndSecret {
                key: "k",
                secret: "s"
            })
        );
    }

    #[test]
    fn debug_output_shows_no_secret_or_token() {
        let pair = ApiCredentials::KeyAndSecret {
            key: "k",
            secret: "hunter2",
        };
        assert_eq!(format!("{pair:?}"), "KeyAndSecret(k, <redacted>)");
        assert!(!format!("{:?}", ApiCredentials::Bearer("rly_secret")).contains("rly_secret"));
    }

    #[test]
    fn two_methods_at_once_are_refused_naming_both() {
        let pair = headers(&[("x-relay-key", "k"), ("x-relay-secret", "s")]);
        let error = api_credentials(&pair, &query(&["auth_signature"])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Use one authentication method, not an HMAC query signature and X-Relay-Key/X-Relay-Secret headers"
        );
        let bearer = headers(&[("authorization", "Bearer rly_x"), ("x-relay-key", "k")]);
        let error = api_credentials(&bearer, &[]).unwrap_err();
        assert!(
            error.to_string().contains("headers and a Bearer token"),
            "{error}"
        );
    }

    #[test]
    fn half_a_pair_is_refused_and_a_bearer_token_is_its_own_method() {
        let key_only = headers(&[("x-relay-key", "k")]);
        assert_eq!(
            api_credentials(&key_only, &[]),
            Err(CredentialsError::Incomplete)
        );
        let empty_secret = headers(&[("x-relay-key", "k"), ("x-relay-secret", "")]);
        assert_eq!(
            api_credentials(&empty_secret, &[]),
            Err(CredentialsError::Incomplete)
        );
        let bearer = headers(&[("authorization", "bearer rly_x")]);
        assert_eq!(
            api_credentials(&bearer, &[]),
            Ok(ApiCredentials::Bearer("rly_x"))
        );
        let basic = headers(&[("authorization", "Basic eA==")]);
        assert_eq!(api_credentials(&basic, &[]), Ok(ApiCredentials::Signature));
    }
}

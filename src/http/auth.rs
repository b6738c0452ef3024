//! Authentication of HTTP API requests, as one extractor: [`SignedRequest`].
//!
//! A handler that takes a `SignedRequest` only runs for an authenticated request to an enabled
//! app, and receives the app, the decoded query and the body. Everything that can be checked
//! on the request head is checked before a byte of the body is read ([`authenticate_head`]):
//! the declared size (413), the app (404/403), and the query signature, which covers the
//! body's MD5 (401; a body without a signed `body_md5` is refused here too). Only then is the
//! body read ([`super::body_reader`]: a deadline, a size limit and a server-wide budget) and
//! held to its MD5, so an unsigned request never costs a body's memory. A refused request's
//! connection is closed with its answer ([`super::unread_body`]). The same head check answers
//! `Expect: 100-continue` ([`super::expect`]).
//!
//! In order: the declared size, the app, the guard's network rules, the app's lockdown (403) (IP, geo, mTLS:
//! [`crate::guard::Guard::admit_api`]), then the credentials of the one method the request
//! uses ([`crate::guard::api_credentials`]): Pusher's HMAC query signature, the
//! `X-Relay-Key` + `X-Relay-Secret` headers (full access), or a Relay API token
//! (`Authorization: Bearer rly_…`, with the scope the endpoint needs: [`required_scope`]).
//! Only the signature covers the body (`body_md5`); the other two are sent over the
//! connection as a whole, like any bearer credential.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use std::net::{IpAddr, SocketAddr};

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap, TRANSFER_ENCODING};
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};

use super::ApiError;
use super::body_reader::{BodyLimits, read_body};
use super::signature::{
    API_PREFIX, UnverifiedRequest, decode_query, query_param, verify_body_md5,
    verify_query_signature,
};
use crate::activity::EventKind;
use crate::apps::{App, CredentialUse, Via};

use crate::config::{Fingerprint, Scope};
use crate::guard::{
    ApiCredentials, PeerHeaders, Refusal, TokenEntry, TokenRefusal, api_credentials,
};
use crate::state::ServerState;
use crate::tls::VerifiedCertificate;

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
        query_param(&self.query, name)
    }
}

impl FromRequest for SignedRequest {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move { authenticate(&req, &mut payload).await })
    }
}

/// Authenticates the head of `req`, then reads its body from `payload` and holds it to the
/// signed MD5.
async fn authenticate(req: &HttpRequest, payload: &mut Payload) -> Result<SignedRequest, ApiError> {
    let state = req
        .app_data::<web::Data<ServerState>>()
        .ok_or(ApiError::Unavailable)?;
    let head = ApiRequestHead::new(req.method().as_str(), req.path(), req.headers())
        .sent_from(req.peer_addr(), verified_certificate(req.conn_data()));
    let AuthenticatedHead {
        app,
        query,
        body_signed,
    } = authenticate_head(state, &head, req.query_string()).await?;
    let limits = BodyLimits {
        max_bytes: state.settings.max_request_size,
        timeout: state.settings.request_body_timeout,
    };
    let body = read_body(payload, head.content_length, limits, &state.pending_bodies).await?;
    if body_signed {
        verify_body_md5(&query, &body)?;
    }
    Ok(SignedRequest { app, query, body })
}

/// The fingerprint in a connection's data (set by the client-certificate listener).
pub(super) fn verified_certificate(data: Option<&VerifiedCertificate>) -> Option<Fingerprint> {
    data.map(|certificate| certificate.0)
}

/// What authentication needs of a request before its body.
#[derive(Debug, Clone, Copy)]
pub(super) struct ApiRequestHead<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The path, as received.
    pub path: &'a str,
    /// The declared body length; `None` for a chunked body (or a malformed header, which
    /// actix-http refuses before any handler runs).
    pub content_length: Option<usize>,
    /// Whether a body is coming: a non-zero `Content-Length`, or a chunked one.
    pub has_body: bool,
    /// The headers (credentials, forwarded addresses, fingerprints).
    pub headers: &'a HeaderMap,
    /// The socket's peer.
    pub socket: Option<SocketAddr>,
    /// The client certificate the connection's TLS handshake verified, if any.
    pub certificate: Option<Fingerprint>,
}

impl<'a> ApiRequestHead<'a> {
    pub fn new(method: &'a str, path: &'a str, headers: &'a HeaderMap) -> Self {
        let content_length = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let chunked = headers
            .get(TRANSFER_ENCODING)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        ApiRequestHead {
            method,
            path,
            content_length,
            has_body: chunked || content_length.is_some_and(|len| len > 0),
            headers,
            socket: None,
            certificate: None,
        }
    }

    /// The same head, sent from `socket` over a connection that verified `certificate`.
    pub fn sent_from(self, socket: Option<SocketAddr>, certificate: Option<Fingerprint>) -> Self {
        ApiRequestHead {
            socket,
            certificate,
            ..self
        }
    }

    fn peer(&self) -> PeerHeaders {
        PeerHeaders::from_request(self.socket, self.headers)
            .with_verified_certificate(self.certificate)
    }
}

/// A request head that passed authentication: its app, its decoded query, and whether its
/// body is held to a signed `body_md5`.
pub(super) struct AuthenticatedHead {
    pub app: Arc<App>,
    pub query: Vec<(String, String)>,
    pub body_signed: bool,
}

/// Checks everything the head of an API request allows: its declared size, its app, the
/// guard's network rules, and its credentials.
pub(super) async fn authenticate_head(
    state: &ServerState,
    head: &ApiRequestHead<'_>,
    query_string: &str,
) -> Result<AuthenticatedHead, ApiError> {
    if head
        .content_length
        .is_some_and(|len| len > state.settings.max_request_size)
    {
        return Err(ApiError::body_too_large());
    }
    let query = decode_query(query_string);
    let credentials = api_credentials(head.headers, &query)
        .map_err(|error| ApiError::unauthorized(error.to_string()))?;
    // A token is looked up first (the short terminate path has no app id: its token names
    // the app), but a refusal of the sender by the network rules is answered before it.
    let token = match &credentials {
        ApiCredentials::Bearer(text) => Some(state.guard.tokens.verify(text, SystemTime::now())),
        _ => None,
    };
    let app = match (&token, path_app(head.path)) {
        (Some(verdict), PathApp::ByAuthKey) => {
            let entry = verdict.as_ref().map_err(|refusal| {
                if let ApiCredentials::Bearer(text) = &credentials {
                    let sender = state.guard.peer(None, &head.peer());
                    report_revoked_token(state, text, sender.address.known());
                }
                token_error(*refusal)
            })?;
            enabled(state.apps.by_id(&entry.app_id))?
        }
        _ => {
            let key = match &credentials {
                ApiCredentials::KeyAndSecret { key, .. } => Some(*key),
                _ => query_param(&query, "auth_key"),
            };
            find_app(state, head.path, key)?
        }
    };
    let peer = head.peer();
    // A banned or geo-blocked sender is answered 403 whatever its credentials, but they are
    // still checked: valid ones from such an address are a sign of a leaked secret. The other
    // network rules refuse at once (a backend outside a stale allowlist is no compromise).
    let (sender, blocked) = match state.guard.admit_api(&app.id, &peer) {
        Ok(sender) => {
            let banned = state.guard.check_ban(&app.id, sender.address.known()).err();
            (sender, banned.map(ApiError::Banned))
        }
        Err(refusal @ Refusal::CountryNotAllowed) => {
            let sender = state.guard.peer(Some(&app.id), &peer);
            (sender, Some(ApiError::Forbidden(refusal)))
        }
        Err(refusal) => {
            tracing::debug!(app = %app.id, %refusal, "API request refused by the app's security rules");
            return Err(ApiError::Forbidden(refusal));
        }
    };
    // After the network rules, so that a refused address does not learn of the lockdown.
    if blocked.is_none() && state.guard.refuses_for_lockdown(&app.id) {
        return Err(ApiError::LockedDown);
    }
    let address = sender.address.known();
    // Counted for a blocked sender too: its credentials are about to cost a check.
    state
        .guard
        .limit_api(&app.id, address, head.method == "GET")
        .await
        .map_err(ApiError::RateLimited)?;
    let verified = verify_credentials(state, head, &query, &app, credentials, token, address);
    if let Some(blocked) = blocked {
        if verified.is_ok() {
            let message = "valid credentials from a banned or geo-blocked address";
            let kind = EventKind::CredentialsFromBlockedAddress;
            state.guard.record(&app.id, kind, address, message);
        }
        return Err(blocked);
    }
    let body_signed = verified.inspect_err(|error| {
        if matches!(error, ApiError::BadCredentials(_)) {
            let what = "HTTP API authentication";
            let shown = address.map(|address| address.to_string());
            tracing::debug!(
                target: crate::logging::AUTH,
                app = %app.id,
                address = shown.as_deref().unwrap_or("-"),
                what,
                "authentication failed"
            );
            state.guard.auth_failed(&app.id, address, what);
        }
    })?;
    Ok(AuthenticatedHead {
        app,
        query,
        body_signed,
    })
}

/// Checks the credentials of the one method the request uses; whether its body must match
/// a signed `body_md5`.
fn verify_credentials(
    state: &ServerState,
    head: &ApiRequestHead<'_>,
    query: &[(String, String)],
    app: &App,
    credentials: ApiCredentials<'_>,
    token: Option<Result<Arc<TokenEntry>, TokenRefusal>>,
    address: Option<IpAddr>,
) -> Result<bool, ApiError> {
    match credentials {
        ApiCredentials::KeyAndSecret { key, secret } => {
            let used = CredentialUse::now(Via::Api, address);
            app.verify_key_and_secret(key, secret, &used)
                .map_err(|_| ApiError::BadCredentials("Invalid X-Relay-Key or X-Relay-Secret"))?;
            Ok(false)
        }
        ApiCredentials::Bearer(text) => {
            let entry = token
                .unwrap_or(Err(TokenRefusal::Invalid))
                .inspect_err(|_| report_revoked_token(state, text, address))
                .map_err(token_error)?;
            if entry.app_id != app.id {
                return Err(token_error(TokenRefusal::Invalid));
            }
            entry
                .allows(required_scope(head.method, head.path))
                .map_err(token_error)?;
            entry.record_use(address, SystemTime::now());
            Ok(false)
        }
        ApiCredentials::Signature => {
            let unverified = UnverifiedRequest {
                method: head.method,
                path: head.path,
                query,
            };
            let skew = state.settings.max_auth_timestamp_skew;
            let used = CredentialUse::now(Via::Api, address);
            verify_query_signature(app, &unverified, skew, &used)?;
            if head.has_body && query_param(query, "body_md5").is_none() {
                return Err(ApiError::unauthorized("Missing body_md5 parameter"));
            }
            Ok(true)
        }
    }
}

/// Records, as critical, a revoked token of this Relay presented again.
fn report_revoked_token(state: &ServerState, text: &str, address: Option<IpAddr>) {
    if let Some(entry) = state.guard.tokens.revoked_entry(text) {
        let message = format!("revoked API token {:?} presented", entry.name);
        let kind = EventKind::RevokedTokenUsed;
        state.guard.record(&entry.app_id, kind, address, message);
    }
}

/// How an API path names its app.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathApp<'a> {
    /// `/apps/{app_id}/…`, with or without [`API_PREFIX`].
    Id(&'a str),
    /// `/users/{id}/terminate_connections`, whose app is named by the query's `auth_key`.
    ByAuthKey,
    /// Not an API path.
    None,
}

/// Where `path` names its app.
pub(super) fn path_app(path: &str) -> PathApp<'_> {
    let path = path.strip_prefix(API_PREFIX).unwrap_or(path);
    if let Some(rest) = path.strip_prefix("/apps/") {
        return match rest.split_once('/') {
            Some((app_id, _)) if !app_id.is_empty() => PathApp::Id(app_id),
            _ => PathApp::None,
        };
    }
    if path.starts_with("/users/") {
        PathApp::ByAuthKey
    } else {
        PathApp::None
    }
}

/// The app named by the path's `{app_id}`, or on paths without one by `key` (the query's
/// `auth_key`, or `X-Relay-Key`).
fn find_app(state: &ServerState, path: &str, key: Option<&str>) -> Result<Arc<App>, ApiError> {
    let app = match path_app(path) {
        PathApp::Id(app_id) => state.apps.by_id(app_id),
        PathApp::ByAuthKey => key.and_then(|key| state.apps.by_key(key)),
        PathApp::None => None,
    };
    enabled(app)
}

/// `app`, if there is one and it is enabled.
fn enabled(app: Option<Arc<App>>) -> Result<Arc<App>, ApiError> {
    let app = app.ok_or(ApiError::AppNotFound)?;
    if !app.enabled {
        return Err(ApiError::AppDisabled);
    }
    Ok(app)
}

/// The scope an API token needs for `method` on `path`; `None` for anything else, which only
/// a full-access token may call.
pub(super) fn required_scope(method: &str, path: &str) -> Option<Scope> {
    let path = path.strip_prefix(API_PREFIX).unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["apps", _, "events"]) => Some(Scope::EventsPublish),
        ("POST", ["apps", _, "batch_events"]) => Some(Scope::EventsBatch),
        ("GET", ["apps", _, "channels"] | ["apps", _, "channels", _]) => Some(Scope::ChannelsRead),
        ("GET", ["apps", _, "channels", _, "users"]) => Some(Scope::PresenceRead),
        ("GET", ["apps", _, "activity"]) => Some(Scope::AnalyticsRead),
        (
            "POST",
            ["apps", _, "users", _, "terminate_connections"]
            | ["users", _, "terminate_connections"],
        ) => Some(Scope::ConnectionsManage),
        _ => None,
    }
}

/// The answer to a refused token: 401 with one message for every reason, or 403 naming the
/// missing scope.
fn token_error(refusal: TokenRefusal) -> ApiError {
    match refusal {
        TokenRefusal::Invalid => ApiError::BadCredentials("Invalid API token"),
        TokenRefusal::LacksScope(_) => ApiError::LacksScope(refusal.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_name_their_app() {
        assert_eq!(path_app("/apps/123/events"), PathApp::Id("123"));
        assert_eq!(path_app("/api/v1/apps/123/channels/a"), PathApp::Id("123"));
        assert_eq!(
            path_app("/users/u/terminate_connections"),
            PathApp::ByAuthKey
        );
        assert_eq!(path_app("/apps/123"), PathApp::None);
        assert_eq!(path_app("/apps//events"), PathApp::None);
        assert_eq!(path_app("/ready"), PathApp::None);
    }

    #[test]
    fn each_endpoint_needs_its_scope() {
        let cases = [
            ("POST", "/apps/1/events", Some(Scope::EventsPublish)),
            ("POST", "/api/v1/apps/1/events", Some(Scope::EventsPublish)),
            ("POST", "/apps/1/batch_events", Some(Scope::EventsBatch)),
            ("GET", "/apps/1/channels", Some(Scope::ChannelsRead)),
            (
                "GET",
                "/apps/1/channels/presence-a",
                Some(Scope::ChannelsRead),
            ),
            (
                "GET",
                "/apps/1/channels/presence-a/users",
                Some(Scope::PresenceRead),
            ),
            (
                "POST",
                "/apps/1/users/u/terminate_connections",
                Some(Scope::ConnectionsManage),
            ),
            (
                "POST",
                "/users/u/terminate_connections",
                Some(Scope::ConnectionsManage),
            ),
            ("GET", "/api/v1/apps/1/activity", Some(Scope::AnalyticsRead)),
            ("GET", "/apps/1/events", None),
            ("POST", "/apps/1/channels", None),
            ("POST", "/apps/1/unknown", None),
        ];
        for (method, path, scope) in cases {
            assert_eq!(required_scope(method, path), scope, "{method} {path}");
        }
    }
}

//! `[[apps.webhooks]]`: one endpoint that receives an app's webhooks. The URL, event names and
//! headers are checked while the file is parsed, so a mistake is reported with its line.

use std::collections::BTreeMap;

use actix_http::Uri;
use actix_http::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::ConfigString;
use crate::protocol::WebhookKind;

/// One `[[apps.webhooks]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the webhooks are POSTed (`http://` or `https://`).
    pub url: WebhookUrl,
    /// The event kinds sent to this endpoint; absent: all seven.
    #[serde(default)]
    pub events: Option<Vec<WebhookKind>>,
    /// Only events on channels whose name starts with this are sent.
    #[serde(default)]
    pub channel_prefix: Option<String>,
    /// Extra request headers (values may use `${VAR}`).
    #[serde(default)]
    pub headers: WebhookHeaders,
    /// Seconds one request may take before it counts as failed.
    #[serde(default = "defaults::timeout")]
    pub timeout: u64,
    /// Seconds a failing request is retried (with exponential backoff) before it is dropped.
    #[serde(default = "defaults::retry_for")]
    pub retry_for: u64,
    /// Most requests in flight to this endpoint at once (events of one channel still arrive
    /// in order).
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
}

mod defaults {
    pub fn timeout() -> u64 {
        10
    }
    pub fn retry_for() -> u64 {
        5 * 60
    }
    pub fn concurrency() -> usize {
        8
    }
}

/// A webhook URL: absolute, `http` or `https`, with a host.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(try_from = "ConfigString")]
pub struct WebhookUrl(Uri);

impl WebhookUrl {
    /// The parsed URL.
    pub fn uri(&self) -> &Uri {
        &self.0
    }
}

/// A URL's host and port, the only parts of a webhook URL fit for logs and Debug output (the
/// path or query may carry a token).
pub fn loggable_host(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("?");
    match uri.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

impl std::fmt::Debug for WebhookUrl {
    /// Only scheme, host and port: the path or query may carry a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.scheme_str().unwrap_or("?");
        write!(f, "{scheme}://{}/…", loggable_host(&self.0))
    }
}

impl TryFrom<ConfigString> for WebhookUrl {
    type Error = String;

    fn try_from(text: ConfigString) -> Result<Self, String> {
        let uri: Uri = text
            .as_str()
            .parse()
            .map_err(|_| "webhook url is not a valid URL".to_owned())?;
        let web = matches!(uri.scheme_str(), Some("http" | "https"));
        if !web || uri.host().is_none_or(str::is_empty) {
            return Err("webhook url must be an absolute http:// or https:// URL".to_owned());
        }
        if uri
            .authority()
            .is_some_and(|authority| authority.as_str().contains('@'))
        {
            return Err(
                "webhook url must not carry user:password@ (use headers, e.g. Authorization)"
                    .to_owned(),
            );
        }
        Ok(WebhookUrl(uri))
    }
}

/// Extra headers for webhook requests; the three Pusher headers cannot be overridden.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "BTreeMap<String, ConfigString>")]
pub struct WebhookHeaders(Vec<(HeaderName, HeaderValue)>);

impl std::fmt::Debug for WebhookHeaders {
    /// Names only: values are often credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl WebhookHeaders {
    /// The headers, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.iter()
    }
}

/// Headers Relay (or HTTP itself) sets on every webhook request.
const RESERVED_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "x-pusher-key",
    "x-pusher-signature",
    "x-relay-webhook-id",
];

impl TryFrom<BTreeMap<String, ConfigString>> for WebhookHeaders {
    type Error = String;

    fn try_from(map: BTreeMap<String, ConfigString>) -> Result<Self, String> {
        let mut headers = Vec::with_capacity(map.len());
        for (name, value) in map {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("webhook header name {name:?} is not valid"))?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(format!("webhook header {name:?} is set by Relay itself"));
            }
            if headers.iter().any(|(seen, _)| *seen == header) {
                return Err(format!("webhook header {name:?} is given twice"));
            }
            // The value may be a secret: it is never echoed.
            let value = HeaderValue::from_str(value.as_str())
                .map_err(|_| format!("webhook header {name:?} has an invalid value"))?;
            headers.push((header, value));
        }
        Ok(WebhookHeaders(headers))
    }
}

impl<'de> Deserialize<'de> for WebhookKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        WebhookKind::parse(&name).ok_or_else(|| {
            let known: Vec<_> = WebhookKind::ALL.iter().map(|kind| kind.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown webhook event {name:?}; expected one of {}",
                known.join(", ")
            ))
        })
    }
}

//! One webhook receiver: where it is, what it wants, and how patiently it is retried.

use std::time::Duration;

use actix_http::Uri;
use actix_http::header::{HeaderName, HeaderValue};

use super::WebhookEvent;
use crate::config::{WebhookConfig, loggable_host};
use crate::protocol::WebhookKinds;

/// A configured webhook endpoint.
pub struct Endpoint {
    /// Where requests go.
    pub url: Uri,
    /// The event kinds it receives.
    pub kinds: WebhookKinds,
    /// Only events on channels starting with this, when set.
    pub channel_prefix: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How long one request may take.
    pub timeout: Duration,
    /// How long a failing request is retried before it is dropped.
    pub retry_for: Duration,
    /// Most requests in flight at once.
    pub concurrency: usize,
}

impl std::fmt::Debug for Endpoint {
    /// Host only, and no header values: URLs and headers may carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.display_host())
            .field("kinds", &self.kinds)
            .field("channel_prefix", &self.channel_prefix)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint an `[[apps.webhooks]]` entry describes.
    pub fn from_config(config: &WebhookConfig) -> Self {
        Endpoint {
            url: config.url.uri().clone(),
            kinds: config
                .events
                .as_ref()
                .map_or_else(WebhookKinds::all, |kinds| kinds.iter().copied().collect()),
            channel_prefix: config.channel_prefix.clone(),
            headers: config.headers.iter().cloned().collect(),
            timeout: Duration::from_secs(config.timeout),
            retry_for: Duration::from_secs(config.retry_for),
            concurrency: config.concurrency,
        }
    }

    /// Whether this endpoint receives `event`.
    pub fn accepts(&self, event: &WebhookEvent) -> bool {
        self.kinds.contains(event.kind())
            && self
                .channel_prefix
                .as_deref()
                .is_none_or(|prefix| event.channel().as_str().starts_with(prefix))
    }

    /// The host and port, for log lines (the path and query may carry a token).
    pub fn display_host(&self) -> String {
        loggable_host(&self.url)
    }
}

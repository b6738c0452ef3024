//! One-off signed notices outside the event webhooks: today the announcement of a credential
//! rotation to an app's `rotation_webhook`. Sent through the same client as the webhooks
//! (TLS that never falls back to plain text, no Nagle stall), tried a few times with a short
//! backoff, never queued: a rotation is rare, and its record is in the state store anyway.

use std::time::Duration;

use bytes::Bytes;
use tracing::info;

use super::Endpoint;
use super::client::{Outgoing, SendError, WebhookClient};
use crate::config::{WebhookUrl, loggable_host};
use crate::protocol::WebhookKinds;

/// Attempts per notice.
const ATTEMPTS: u32 = 3;
/// How long one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after the first failed attempt, doubled after each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Why a notice was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// No answer.
    #[error("{host}: {source}")]
    Send {
        /// The receiver's host and port (the path and query may hold a token).
        host: String,
        /// The last attempt's failure.
        source: SendError,
    },
    /// An answer, but not 2xx.
    #[error("{host}: answered {status}")]
    Status {
        /// The receiver's host and port.
        host: String,
        /// The last attempt's status.
        status: u16,
    },
}

/// A signed notice for one receiver.
pub struct RotationNotice {
    /// The app it is about.
    pub app_id: String,
    /// Where it goes.
    pub url: WebhookUrl,
    /// The JSON body, in Pusher's webhook shape.
    pub body: String,
    /// `X-Pusher-Key`: the key of the pair that signed it.
    pub key: String,
    /// `X-Pusher-Signature`.
    pub signature: String,
}

impl std::fmt::Debug for RotationNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationNotice")
            .field("app_id", &self.app_id)
            .field("host", &loggable_host(self.url.uri()))
            .finish_non_exhaustive()
    }
}

impl RotationNotice {
    /// POSTs the notice until a 2xx answer, at most [`ATTEMPTS`] times; the status.
    pub async fn send(&self) -> Result<u16, NoticeError> {
        let endpoint = Endpoint {
            url: self.url.uri().clone(),
            kinds: WebhookKinds::default(),
            channel_prefix: None,
            headers: Vec::new(),
            timeout: TIMEOUT,
            retry_for: Duration::ZERO,
            concurrency: 1,
        };
        let host = endpoint.display_host();
        let client = WebhookClient::new(&endpoint);
        let outgoing = Outgoing {
            body: Bytes::from(self.body.clone()),
            key: self.key.clone(),
            signature: self.signature.clone(),
            id: format!("{:032x}", rand::random::<u128>()),
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let failure = match client.post(&outgoing).await {
                Ok(status) if (200..300).contains(&status) => {
                    info!(app = %self.app_id, %host, status, "rotation notice delivered");
                    return Ok(status);
                }
                Ok(status) => NoticeError::Status {
                    host: host.clone(),
                    status,
                },
                Err(source) => NoticeError::Send {
                    host: host.clone(),
                    source,
                },
            };
            if attempt == ATTEMPTS {
                return Err(failure);
            }
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}

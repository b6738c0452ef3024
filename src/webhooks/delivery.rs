//! Sending batches to one endpoint: signed POSTs, one at a time (so a receiver sees events in
//! order), each retried with exponential backoff on a non-2xx answer or a transport failure
//! until the endpoint's `retry_for` is spent; then the batch is dropped, logged and counted.
//!
//! This runs on its own task, fed by a bounded queue: a slow or dead receiver never holds up
//! anything but its own queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_http::header::CONTENT_TYPE;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Endpoint, WebhookBatch, WebhookStats};
use crate::apps::App;

/// The first retry waits this long; each later one twice as long as the one before.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const LONGEST_RETRY: Duration = Duration::from_secs(60);
/// Most of a receiver's answer that is read (to keep the connection reusable).
const MAX_ANSWER_READ: usize = 64 * 1024;

/// Why one attempt failed; for the log only.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    /// The receiver answered, but not with 2xx.
    #[error("receiver answered {0}")]
    Status(u16),
    /// No answer: connection refused, TLS failure, timeout…
    #[error("request failed: {0}")]
    Transport(String),
}

/// Delivers one endpoint's batches.
pub struct Delivery {
    app: Arc<App>,
    endpoint: Arc<Endpoint>,
    stats: Arc<WebhookStats>,
}

impl Delivery {
    /// A delivery of `app`'s webhooks to `endpoint`.
    pub fn new(app: Arc<App>, endpoint: Arc<Endpoint>, stats: Arc<WebhookStats>) -> Self {
        Delivery {
            app,
            endpoint,
            stats,
        }
    }

    /// Sends every batch from `queue`, in order, until the queue closes. Must run on an actix
    /// (single-threaded) runtime: the HTTP client is not `Send`.
    pub async fn run(self, mut queue: mpsc::Receiver<WebhookBatch>) {
        let client = awc::Client::builder()
            .timeout(self.endpoint.timeout)
            .disable_redirects()
            .finish();
        while let Some(batch) = queue.recv().await {
            self.deliver(&client, &batch).await;
        }
    }

    async fn deliver(&self, client: &awc::Client, batch: &WebhookBatch) {
        let started = Instant::now();
        let mut wait = FIRST_RETRY;
        loop {
            let error = match self.attempt(client, batch).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(error) => error,
            };
            self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() + wait > self.endpoint.retry_for {
                self.stats
                    .dropped_after_retries
                    .fetch_add(1, Ordering::Relaxed);
                warn!(
                    app = %self.app.id,
                    host = %self.endpoint.display_host(),
                    events = batch.len(),
                    %error,
                    "webhook dropped after retrying for {:?}",
                    self.endpoint.retry_for
                );
                return;
            }
            debug!(app = %self.app.id, host = %self.endpoint.display_host(), %error, ?wait, "webhook will be retried");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_RETRY);
        }
    }

    /// One signed POST. The body is stamped afresh on each attempt, so a retried webhook still
    /// passes receivers that refuse old `time_ms` values (the Python SDK allows 300 s).
    async fn attempt(
        &self,
        client: &awc::Client,
        batch: &WebhookBatch,
    ) -> Result<(), AttemptError> {
        let body = batch.body(now_ms());
        let signature = self.app.sign_webhook(body.as_bytes());
        let mut request = client.post(self.endpoint.url.clone());
        for (name, value) in &self.endpoint.headers {
            request = request.insert_header((name.clone(), value.clone()));
        }
        let mut answer = request
            .insert_header((CONTENT_TYPE, "application/json"))
            .insert_header(("X-Pusher-Key", self.app.key.as_str()))
            .insert_header(("X-Pusher-Signature", signature))
            .insert_header(("X-Relay-Webhook-Id", batch.id().to_string()))
            .send_body(body)
            .await
            .map_err(|error| AttemptError::Transport(error.to_string()))?;
        // Read (and ignore) the answer so the connection can be reused.
        let _ = answer.body().limit(MAX_ANSWER_READ).await;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(answer.status().as_u16()))
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::config::Config;

    /// Longest a test waits for the receiver thread.
    const RECEIVER_WAIT: Duration = Duration::from_secs(5);

    /// A one-request receiver answering `status`; sends the request's head and body. The
    /// thread is left to end with the test process, so no wait on it is unbounded.
    fn answer_once(status: &'static str) -> (u16, std_mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (send, requests) = std_mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let (mut head, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let response =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            reader.get_mut().write_all(response.as_bytes()).unwrap();
            let _ = send.send(head + "\r\n" + &String::from_utf8(body).unwrap());
        });
        (port, requests)
    }

    /// A delivery to `scheme://127.0.0.1:port/h`.
    fn delivery_to(scheme: &str, port: u16, retry_for: u64) -> Delivery {
        let text = format!(
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.webhooks]]\nurl = \"{scheme}://127.0.0.1:{port}/h\"\nretry_for = {retry_for}\n"
        );
        let config = Config::from_toml(&text, Path::new("test.toml")).unwrap();
        let app = Arc::new(App::from_config(&config.apps[0]));
        let endpoint = Arc::new(Endpoint::from_config(&config.apps[0].webhooks[0]));
        Delivery::new(app, endpoint, Arc::new(WebhookStats::default()))
    }

    fn batch() -> WebhookBatch {
        let mut batcher = super::super::Batcher::new(Duration::ZERO, 1);
        batcher
            .push(Arc::from(r#"{"name":"x"}"#), Instant::now())
            .unwrap()
    }

    fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[actix_web::test]
    async fn an_accepted_batch_is_signed_and_counted_as_delivered() {
        let (port, receiver) = answer_once("204 No Content");
        let delivery = delivery_to("http", port, 0);
        let client = awc::Client::default();
        delivery.deliver(&client, &batch()).await;
        let request = receiver.recv_timeout(RECEIVER_WAIT).unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /h http/1.1"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("x-pusher-key: k\r\n"), "{head}");
        let signature = crate::protocol::signature::sign(b"s", body.as_bytes());
        assert!(
            head.contains(&format!("x-pusher-signature: {signature}")),
            "{head}"
        );
        assert!(body.ends_with(r#","events":[{"name":"x"}]}"#), "{body}");
        assert_eq!(count(&delivery.stats.delivered), 1);
        assert_eq!(count(&delivery.stats.failed_attempts), 0);
    }

    #[actix_web::test]
    async fn a_refused_batch_past_its_retry_time_is_dropped_and_counted() {
        let (port, receiver) = answer_once("503 Service Unavailable");
        let delivery = delivery_to("http", port, 0);
        delivery.deliver(&awc::Client::default(), &batch()).await;
        receiver.recv_timeout(RECEIVER_WAIT).unwrap();
        assert_eq!(count(&delivery.stats.failed_attempts), 1);
        assert_eq!(count(&delivery.stats.dropped_after_retries), 1);
        assert_eq!(count(&delivery.stats.delivered), 0);
    }

    #[actix_web::test]
    async fn https_receivers_are_reached_over_tls() {
        // A plain-TCP listener that hangs up: the TLS handshake fails, which proves a TLS
        // client is wired in (without one, awc answers "SSL is not supported").
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || drop(listener.accept()));
        let delivery = delivery_to("https", port, 0);
        let error = delivery
            .attempt(&awc::Client::default(), &batch())
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            !message.to_ascii_lowercase().contains("not supported"),
            "{message}"
        );
    }

    #[actix_web::test]
    async fn an_unreachable_receiver_counts_as_a_failed_attempt() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let delivery = delivery_to("http", port, 0);
        delivery.deliver(&awc::Client::default(), &batch()).await;
        assert_eq!(count(&delivery.stats.failed_attempts), 1);
        assert_eq!(count(&delivery.stats.dropped_after_retries), 1);
    }
}

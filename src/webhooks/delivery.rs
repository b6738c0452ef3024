//! Sending one endpoint's batches: signed POSTs, several in flight at once, in the order the
//! [`Schedule`] allows (each channel's events in the order they happened), each retried with
//! exponential backoff on a non-2xx answer or a transport failure until the endpoint's
//! `retry_for` is spent; then the batch is dropped, logged and counted.
//!
//! This runs on its own task, fed by a bounded queue: a slow or dead receiver never holds up
//! anything but its own endpoint. The task ends once its queue is closed and every batch it
//! took is delivered or given up, which is how the shutdown flush waits for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use super::client::{Outgoing, SendError, WebhookClient};
use super::journal::Journal;
use super::schedule::{AfterFailure, Schedule, Ticket};
use super::{Endpoint, WebhookBatch, WebhookStats, count_drop, now_ms};
use crate::apps::{App, Apps};

/// Why one attempt failed; for the log only (no URL: its path or query may hold a token).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    /// The receiver answered, but not with 2xx.
    #[error("receiver answered {0}")]
    Status(u16),
    /// No answer: connection refused, TLS failure, timeout…
    #[error("request failed: {0}")]
    Transport(#[from] SendError),
}

/// Delivers one endpoint's batches.
pub struct Delivery {
    app: Arc<App>,
    /// The registry, whose app of this id signs (a reload may have replaced `app`, whose
    /// keyring then no longer follows rotations); `app` signs once the registry has none.
    registry: Option<Arc<Apps>>,
    endpoint: Arc<Endpoint>,
    stats: Arc<WebhookStats>,
    /// Most batches held at once: waiting, in flight or backing off.
    capacity: usize,
    /// Where accepted batches are kept until settled, with the endpoint's place in the app's
    /// list; `None`: they live in this process only.
    journal: Option<(Arc<Journal>, usize)>,
}

impl Delivery {
    /// A delivery of `app`'s webhooks to `endpoint`, holding at most `capacity` batches.
    pub fn new(
        app: Arc<App>,
        endpoint: Arc<Endpoint>,
        stats: Arc<WebhookStats>,
        capacity: usize,
    ) -> Self {
        Delivery {
            app,
            registry: None,
            endpoint,
            stats,
            capacity,
            journal: None,
        }
    }

    /// Signs with the pairs of `registry`'s app of the same id.
    pub fn signing_through(mut self, registry: Arc<Apps>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Keeps the batches it accepts in `journal` until they are delivered or given up, as
    /// endpoint `index` of the app.
    pub fn journaled(mut self, journal: Arc<Journal>, index: usize) -> Self {
        self.journal = Some((journal, index));
        self
    }

    /// Sends every batch from `queue` until the queue closes and nothing is left to send.
    pub async fn run(self, mut queue: mpsc::Receiver<WebhookBatch>) {
        let client = WebhookClient::new(&self.endpoint);
        let endpoint = &self.endpoint;
        let mut schedule = Schedule::new(endpoint.concurrency, self.capacity, endpoint.retry_for);
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        loop {
            while let Some((ticket, batch)) = schedule.next_to_send(Instant::now()) {
                let outgoing = self.sign(batch);
                let client = &client;
                in_flight.push(async move { (ticket, client.post(&outgoing).await) });
            }
            if !open && schedule.is_empty() {
                return;
            }
            let wake = schedule.next_wake();
            // A full schedule takes nothing more: the queue fills, and the dispatcher drops
            // (and counts) what does not fit, so at most `capacity` batches wait here and as
            // many in the queue.
            tokio::select! {
                received = queue.recv(), if open && !schedule.is_full() => match received {
                    Some(batch) => self.accept(&mut schedule, batch),
                    None => open = false,
                },
                Some((ticket, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                    self.settle(&mut schedule, ticket, outcome);
                }
                () = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {}
                // Nothing to wait for: every branch is off only if the schedule is full with
                // nothing in flight or backing off, which its bookkeeping rules out.
                else => {
                    debug_assert!(false, "a webhook delivery with nothing to wait for");
                    return;
                }
            }
        }
    }

    /// Takes a batch from the dispatcher; a full schedule drops it, counted and logged.
    fn accept(&self, schedule: &mut Schedule, batch: WebhookBatch) {
        if let Some((journal, index)) = &self.journal {
            journal.keep(&self.app.id, *index, &batch);
        }
        let Err(dropped_batch) = schedule.push(batch) else {
            self.stats.pending_batches.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.forget(&dropped_batch);
        if let Some(dropped) = count_drop(&self.stats.dropped_queue_full) {
            warn!(
                app = %self.app.id,
                host = %self.endpoint.display_host(),
                dropped,
                "webhook batch dropped: endpoint queue full (receiver down or too slow)"
            );
        }
    }

    /// Records how the attempt for `ticket` went.
    fn settle(&self, schedule: &mut Schedule, ticket: Ticket, outcome: Result<u16, SendError>) {
        let error = match outcome {
            Ok(status) if (200..300).contains(&status) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(batch) = schedule.succeeded(ticket) {
                    self.stats.pending_batches.fetch_sub(1, Ordering::Relaxed);
                    self.forget(&batch);
                }
                return;
            }
            Ok(status) => AttemptError::Status(status),
            Err(error) => AttemptError::from(error),
        };
        self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let host = self.endpoint.display_host();
        match schedule.failed(ticket, Instant::now()) {
            Some(AfterFailure::RetryAt(at)) => {
                let wait = at.saturating_duration_since(Instant::now());
                debug!(app = %self.app.id, %host, %error, ?wait, "webhook will be retried");
            }
            Some(AfterFailure::GaveUp(batch)) => {
                self.stats.pending_batches.fetch_sub(1, Ordering::Relaxed);
                self.forget(&batch);
                self.stats
                    .dropped_after_retries
                    .fetch_add(1, Ordering::Relaxed);
                warn!(
                    app = %self.app.id,
                    %host,
                    events = batch.len(),
                    %error,
                    "webhook dropped after retrying for {:?}",
                    self.endpoint.retry_for
                );
            }
            None => {}
        }
    }

    /// Takes `batch` out of the journal, if it is kept there.
    fn forget(&self, batch: &WebhookBatch) {
        if let Some((journal, _)) = &self.journal {
            journal.forget(batch);
        }
    }

    /// The request for `batch`. The body is stamped afresh on each attempt, so a retried
    /// webhook still passes receivers that refuse old `time_ms` values (the Python SDK allows
    /// 300 s); the id stays the batch's.
    fn sign(&self, batch: &WebhookBatch) -> Outgoing {
        let body = batch.body(now_ms());
        let current = self
            .registry
            .as_ref()
            .and_then(|registry| registry.by_id(&self.app.id));
        let signer = current.as_ref().unwrap_or(&self.app);
        let signed = signer.sign_webhook(body.as_bytes(), SystemTime::now());
        Outgoing {
            body: Bytes::from(body),
            key: signed.key,
            signature: signed.signature,
            id: batch.id().to_string(),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(3600)
}

#[cfg(test)]
mod tests;

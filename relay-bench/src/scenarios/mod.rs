//! The load scenarios, and what they share: starting many clients with a bounded number of
//! handshakes in flight, and collecting the clients' results.
//!
//! Every client runs in its own task. A scenario waits until every client is set up (or
//! fails on the first that could not be), measures its phase, and then collects what each
//! task returns; a task that hit a protocol error fails the scenario.

pub mod churn;
pub mod client_events;
pub mod connect;
pub mod fanout;
pub mod presence;
pub mod trigger;
mod webhook_ledger;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::error::BenchError;

pub use churn::ChurnArgs;
pub use client_events::ClientEventsArgs;
pub use connect::ConnectArgs;
pub use fanout::FanoutArgs;
pub use presence::PresenceArgs;
pub use trigger::TriggerArgs;
pub use webhooks::WebhooksArgs;

/// Limits concurrent client set-ups and tells the scenario how each one went.
#[derive(Clone)]
pub struct Launch {
    permits: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), BenchError>>,
}

/// The scenario's side of a [`Launch`].
pub struct Ready {
    outcomes: mpsc::UnboundedReceiver<Result<(), BenchError>>,
}

impl Launch {
    /// At most `concurrency` set-ups run at once.
    pub fn new(concurrency: usize) -> (Launch, Ready) {
        let (ready, outcomes) = mpsc::unbounded_channel();
        let launch = Launch {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            ready,
        };
        (launch, Ready { outcomes })
    }

    /// Runs one client's set-up under the limit and reports it; `None` when it failed (the
    /// error has gone to the scenario, which stops).
    pub async fn setup<T>(&self, setup: impl Future<Output = Result<T, BenchError>>) -> Option<T> {
        let permit = self.permits.acquire().await.ok()?;
        let outcome = setup.await;
        drop(permit);
        match outcome {
            Ok(value) => {
                let _ = self.ready.send(Ok(()));
                Some(value)
            }
            Err(error) => {
                let _ = self.ready.send(Err(error));
                None
            }
        }
    }
}

impl Ready {
    /// Waits until `count` clients are set up; the first failure ends the wait.
    pub async fn wait(&mut self, count: usize) -> Result<(), BenchError> {
        for _ in 0..count {
            match self.outcomes.recv().await {
                Some(Ok(())) => {}
                Some(Err(error)) => return Err(error),
                None => return Err(BenchError::Incomplete("clients ended before set-up".into())),
            }
        }
        Ok(())
    }
}

/// Awaits every client task; the first error (or panic) fails the scenario.
pub async fn collect<T>(
    tasks: Vec<JoinHandle<Result<T, BenchError>>>,
) -> Result<Vec<T>, BenchError> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        let result = task
            .await
            .map_err(|error| BenchError::Incomplete(format!("client task failed: {error}")))??;
        results.push(result);
    }
    Ok(results)
}

/// Whether `needle` occurs in `text`.
pub fn contains(text: &[u8], needle: &str) -> bool {
    memchr::memmem::find(text, needle.as_bytes()).is_some()
}

/// Finds the decimal number that follows `marker` in `text`.
pub fn number_after(text: &[u8], marker: &[u8]) -> Option<u64> {
    let start = memchr::memmem::find(text, marker)? + marker.len();
    let digits = text[start..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    std::str::from_utf8(&text[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_number_after_a_marker() {
        let frame = br#"{"event":"e","data":"bench:12345:xx"}"#;
        assert_eq!(number_after(frame, b"bench:"), Some(12345));
        assert_eq!(number_after(frame, b"nope:"), None);
        assert_eq!(number_after(b"bench:", b"bench:"), None);
    }
}

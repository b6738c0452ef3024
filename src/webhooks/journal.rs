//! The webhook journal: batches an endpoint's delivery has accepted are kept in the state
//! store until they are delivered or given up, so a process that dies (`kill -9`) loses none:
//! another one delivers them, at least once, with the same `X-Relay-Webhook-Id`, so a
//! receiver can drop a repeat. In a cluster the store is Redis and the other process is a
//! surviving node; on one node (`webhook_durable = true`) it is the node itself after its
//! restart.
//!
//! Each process owns what it keeps under a random owner id, and holds a lease on it, renewed
//! every [`SYNC_INTERVAL`] for [`LEASE`]. A process whose lease has run out is dead: the
//! first to claim (one store step, so one claimer) takes its batches over and hands each to
//! the delivery of its app and endpoint (the nodes share one `config.toml`, so an endpoint is
//! its place in the app's list). The events of one channel stay in order within a process;
//! batches taken over from a dead one are sent beside the claimer's own, not before them.
//!
//! The deliveries never wait for the store: they put what to keep and forget on a bounded
//! queue, in order, and one writer task writes it (on the blocking pool, many at a time). A
//! full queue drops the record, logged: that batch is then only as durable as the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{WebhookBatch, count_drop, now_ms};
use crate::store::{JournaledBatch, SYNC_INTERVAL, Store, StoreError};

/// How long a process's batches are its own after its last renewal.
pub const LEASE: Duration = Duration::from_secs(3 * SYNC_INTERVAL.as_secs());

/// Records waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// Most records written in one store call.
const WRITE_AT_ONCE: usize = 512;

/// What the deliveries tell the journal.
#[derive(Debug)]
enum Record {
    Keep(JournaledBatch),
    Forget(String),
}

/// The deliveries' side of the journal.
#[derive(Debug)]
pub struct Journal {
    records: mpsc::Sender<Record>,
    dropped: AtomicU64,
}

impl Journal {
    /// A journal and the writer that must run for it (it ends once every [`Journal`] is
    /// dropped and everything told is written).
    pub fn new() -> (Arc<Self>, JournalWriter) {
        let (records, queue) = mpsc::channel(QUEUE);
        let owner = format!("{:016x}", rand::random::<u64>());
        let journal = Arc::new(Journal {
            records,
            dropped: AtomicU64::new(0),
        });
        (journal, JournalWriter { owner, queue })
    }

    /// Keeps `batch`, accepted for endpoint `endpoint` of `app_id`.
    pub fn keep(&self, app_id: &str, endpoint: usize, batch: &WebhookBatch) {
        self.send(Record::Keep(batch.to_journal(app_id, endpoint)));
    }

    /// Forgets `batch` (delivered, or given up).
    pub fn forget(&self, batch: &WebhookBatch) {
        self.send(Record::Forget(batch.id().to_string()));
    }

    fn send(&self, record: Record) {
        if self.records.try_send(record).is_err()
            && let Some(dropped) = count_drop(&self.dropped)
        {
            warn!(
                dropped,
                "webhook journal record dropped: its queue is full (the state store is slow or away)"
            );
        }
    }
}

/// Where a claimed batch goes: each app's endpoints' delivery queues, by place, with how
/// long the endpoint retries.
/// Shared by its clones: a reload that rebuilds an app's deliveries adds their queues in
/// place of the old ones.
#[derive(Debug, Clone, Default)]
pub struct Redelivery {
    queues: Arc<std::sync::Mutex<RedeliveryQueues>>,
}

type RedeliveryQueues = HashMap<(String, usize), (mpsc::Sender<WebhookBatch>, Duration)>;

impl Redelivery {
    /// Adds the queue of endpoint `endpoint` of `app_id`, which retries for `retry_for`.
    pub fn add(
        &self,
        app_id: &str,
        endpoint: usize,
        queue: mpsc::Sender<WebhookBatch>,
        retry_for: Duration,
    ) {
        let place = (app_id.to_owned(), endpoint);
        self.lock().insert(place, (queue, retry_for));
    }

    /// Removes every queue of `app_id` (its deliveries are being rebuilt, or it is gone), so
    /// the old deliveries' queues close once their dispatcher is gone.
    pub fn remove_app(&self, app_id: &str) {
        self.lock().retain(|(app, _), _| app != app_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RedeliveryQueues> {
        self.queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Hands `kept` to its delivery at `now_ms`; what cannot be handed now (a full queue) is
    /// returned, to try again. An entry of an app or endpoint this process does not have is
    /// dropped, logged, and so is one accepted longer ago than its endpoint retries (had its
    /// process lived, it would have given the receiver up by now).
    fn hand_over(&self, kept: JournaledBatch, now_ms: u64) -> Option<JournaledBatch> {
        let queues = self.lock();
        let found = queues.get(&(kept.app_id.clone(), kept.endpoint));
        if let Some((_, retry_for)) = found
            && kept.accepted_ms > 0
            && u128::from(now_ms.saturating_sub(kept.accepted_ms)) > retry_for.as_millis()
        {
            warn!(
                app = %kept.app_id,
                endpoint = kept.endpoint,
                "a journaled webhook batch is older than its endpoint's retry_for; dropped"
            );
            return None;
        }
        let queue = found.map(|(queue, _)| queue);
        let (Some(queue), Some(batch)) = (queue, WebhookBatch::from_journal(&kept)) else {
            warn!(
                app = %kept.app_id,
                endpoint = kept.endpoint,
                "a journaled webhook batch has no endpoint here (configurations differ?); dropped"
            );
            return None;
        };
        match queue.try_send(batch) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => Some(kept),
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }
}

/// Writes the journal and claims the batches of dead processes.
pub struct JournalWriter {
    owner: String,
    queue: mpsc::Receiver<Record>,
}

impl JournalWriter {
    /// Writes what the deliveries tell into `store` until they are all gone; every
    /// [`SYNC_INTERVAL`] renews this process's lease and hands what it claims to
    /// `redelivery`.
    pub async fn run(mut self, store: Arc<dyn Store>, redelivery: Redelivery) {
        let mut ticks = tokio::time::interval(SYNC_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut waiting: Vec<JournaledBatch> = Vec::new();
        let mut failing = false;
        let mut records = Vec::with_capacity(WRITE_AT_ONCE);
        loop {
            tokio::select! {
                received = self.queue.recv_many(&mut records, WRITE_AT_ONCE) => {
                    if received == 0 {
                        return;
                    }
                    let written = self.write(&store, std::mem::take(&mut records)).await;
                    failing = report(written, failing);
                }
                _ = ticks.tick() => {
                    let claimed = match self.claim(&store).await {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            failing = report(Err(error), failing);
                            continue;
                        }
                    };
                    failing = report(Ok(()), failing);
                    if !claimed.is_empty() {
                        info!(batches = claimed.len(), "delivering the webhook batches of a process that died");
                    }
                    waiting.extend(claimed);
                    let now = now_ms();
                    waiting = waiting
                        .into_iter()
                        .filter_map(|kept| redelivery.hand_over(kept, now))
                        .collect();
                }
            }
        }
    }

    /// Writes `records` in their order: runs of keeps and of forgets, one store call each.
    async fn write(&self, store: &Arc<dyn Store>, records: Vec<Record>) -> Result<(), StoreError> {
        let (store, owner) = (store.clone(), self.owner.clone());
        let written = tokio::task::spawn_blocking(move || {
            let mut keeps = Vec::new();
            let mut forgets = Vec::new();
            for record in records {
                match record {
                    Record::Keep(batch) => {
                        if !forgets.is_empty() {
                            store.forget_webhooks(&owner, &std::mem::take(&mut forgets))?;
                        }
                        keeps.push(batch);
                    }
                    Record::Forget(id) => {
                        if !keeps.is_empty() {
                            store.keep_webhooks(&owner, &std::mem::take(&mut keeps))?;
                        }
                        forgets.push(id);
                    }
                }
            }
            store.keep_webhooks(&owner, &keeps)?;
            store.forget_webhooks(&owner, &forgets)
        })
        .await;
        written.unwrap_or(Ok(()))
    }

    async fn claim(&self, store: &Arc<dyn Store>) -> Result<Vec<JournaledBatch>, StoreError> {
        let (store, owner) = (store.clone(), self.owner.clone());
        tokio::task::spawn_blocking(move || store.claim_webhooks(&owner, LEASE))
            .await
            .unwrap_or(Ok(Vec::new()))
    }
}

/// Logs the first failure of a streak and the recovery; whether the streak goes on.
fn report(outcome: Result<(), StoreError>, failing: bool) -> bool {
    match (outcome, failing) {
        (Err(error), false) => {
            warn!(%error, "the webhook journal cannot be written; batches accepted meanwhile may not survive a crash");
            true
        }
        (Err(_), true) => true,
        (Ok(()), true) => {
            info!("the webhook journal is written again");
            false
        }
        (Ok(()), false) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ChannelName;
    use crate::webhooks::Batcher;

    fn kept(app_id: &str, endpoint: usize) -> JournaledBatch {
        let mut batcher = Batcher::new(Duration::ZERO, 10);
        let channel = ChannelName::parse("news", 164).unwrap();
        let batch = batcher
            .push(Arc::from("{}"), channel, tokio::time::Instant::now())
            .unwrap();
        batch.to_journal(app_id, endpoint)
    }

    #[test]
    fn a_claimed_batch_goes_to_its_endpoint_or_waits_for_room() {
        let (queue, mut batches) = mpsc::channel(1);
        let redelivery = Redelivery::default();
        redelivery.add("1", 0, queue, Duration::from_secs(300));
        let first = kept("1", 0);
        let now = first.accepted_ms;
        assert_eq!(redelivery.hand_over(first.clone(), now), None);
        let handed = batches.try_recv().unwrap();
        assert_eq!(handed.id().to_string(), first.id, "the same id");
        redelivery.hand_over(kept("1", 0), now);
        let second = kept("1", 0);
        assert_eq!(
            redelivery.hand_over(second.clone(), now),
            Some(second.clone()),
            "a full queue: kept to try again"
        );
        // Measured from the batch's own acceptance, a millisecond or more after the first's.
        let late = second.accepted_ms + 300_001;
        let dropped = redelivery.hand_over(second, late);
        assert_eq!(dropped, None, "older than retry_for: dropped");
        let unknown = redelivery.hand_over(kept("1", 3), now);
        assert_eq!(unknown, None, "no such endpoint: dropped");
        assert_eq!(redelivery.hand_over(kept("2", 0), now), None, "no such app");
    }

    #[test]
    fn records_beyond_the_queue_are_dropped_and_counted() {
        let (journal, _writer) = Journal::new();
        let batch = WebhookBatch::from_journal(&kept("1", 0)).unwrap();
        for _ in 0..QUEUE + 3 {
            journal.forget(&batch);
        }
        assert_eq!(
            journal.dropped.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }
}

//! The message path's counters: an app's messages and bytes sent to and received from this
//! node's connections. They are added on every publish and every client message, so they
//! must cost next to nothing: each thread adds to a shard of its own (a cache line no other
//! thread writes, so the add never contends), and a scrape sums the shards. A publish adds
//! once for all of its deliveries, not once per delivery.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shards per app: more than the worker threads of any machine this runs on is not needed
/// for correctness (two threads may share a shard; their adds stay exact), only for speed.
const SHARDS: usize = 16;

/// One thread's share of an app's traffic, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
}

/// One app's traffic on this node.
#[derive(Debug, Default)]
pub struct AppTraffic {
    shards: [Shard; SHARDS],
}

/// The totals of an [`AppTraffic`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Channel messages delivered to this node's connections.
    pub messages_sent: u64,
    /// Their bytes (the frames' text).
    pub bytes_sent: u64,
    /// Messages received from this node's connections.
    pub messages_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
}

impl AppTraffic {
    /// Counts one frame of `bytes` delivered to `recipients` connections.
    pub fn sent(&self, recipients: usize, bytes: usize) {
        if recipients == 0 {
            return;
        }
        let shard = self.shard();
        let recipients = recipients as u64;
        shard.messages_sent.fetch_add(recipients, Ordering::Relaxed);
        shard
            .bytes_sent
            .fetch_add(recipients.saturating_mul(bytes as u64), Ordering::Relaxed);
    }

    /// Counts one message of `bytes` received from a connection.
    pub fn received(&self, bytes: usize) {
        let shard = self.shard();
        shard.messages_received.fetch_add(1, Ordering::Relaxed);
        shard
            .bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The sums over every shard.
    pub fn totals(&self) -> TrafficTotals {
        let sum = |field: fn(&Shard) -> &AtomicU64| {
            self.shards
                .iter()
                .map(|shard| field(shard).load(Ordering::Relaxed))
                .fold(0u64, u64::wrapping_add)
        };
        TrafficTotals {
            messages_sent: sum(|shard| &shard.messages_sent),
            bytes_sent: sum(|shard| &shard.bytes_sent),
            messages_received: sum(|shard| &shard.messages_received),
            bytes_received: sum(|shard| &shard.bytes_received),
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[thread_shard()]
    }
}

/// This thread's shard index, handed out in turn as threads first count.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SHARD.with(|shard| {
        shard.get().unwrap_or_else(|| {
            let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(Some(index));
            index
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_totals_are_exact_across_threads() {
        let traffic = Arc::new(AppTraffic::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let traffic = traffic.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        traffic.sent(3, 10);
                        traffic.received(7);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        traffic.sent(0, 100);
        assert_eq!(
            traffic.totals(),
            TrafficTotals {
                messages_sent: 12_000,
                bytes_sent: 120_000,
                messages_received: 4000,
                bytes_received: 28_000,
            }
        );
    }

    #[test]
    fn each_shard_has_its_own_cache_lines() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
        assert_eq!(std::mem::size_of::<AppTraffic>(), 128 * SHARDS);
    }
}

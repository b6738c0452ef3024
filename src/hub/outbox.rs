//! A connection's bounded outbound queue.
//!
//! Publishers push without waiting. When the queue is full the client is not keeping up: the
//! frame is dropped and the connection's task is told (through `overflow`) to close the client
//! with a reconnectable code, so one slow client never slows anybody else.

use std::sync::Arc;

use bytestring::ByteString;
use tokio::sync::{Notify, mpsc};

/// The sending side, held by the hub for each subscription of a connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    frames: mpsc::Sender<ByteString>,
    overflow: Arc<Notify>,
}

/// The receiving side, owned by the connection's task.
#[derive(Debug)]
pub struct OutboxReceiver {
    frames: mpsc::Receiver<ByteString>,
    overflow: Arc<Notify>,
}

/// A queue holding at most `capacity` frames.
pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    let overflow = Arc::new(Notify::new());
    (
        Outbox {
            frames: tx,
            overflow: overflow.clone(),
        },
        OutboxReceiver {
            frames: rx,
            overflow,
        },
    )
}

impl Outbox {
    /// Queues a frame; `false` when the connection is gone or its queue is full (in which
    /// case the connection is told to close).
    pub fn push(&self, frame: ByteString) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl OutboxReceiver {
    /// The next queued frame.
    pub async fn recv(&mut self) -> Option<ByteString> {
        self.frames.recv().await
    }

    /// The next queued frame if one is ready.
    pub fn try_recv(&mut self) -> Option<ByteString> {
        self.frames.try_recv().ok()
    }

    /// A handle that resolves once a publisher finds the queue full.
    pub fn overflow_signal(&self) -> OverflowSignal {
        OverflowSignal(self.overflow.clone())
    }
}

/// Tells a connection's task that its queue overflowed.
#[derive(Debug)]
pub struct OverflowSignal(Arc<Notify>);

impl OverflowSignal {
    /// Resolves once a publisher found the queue full (immediately if that already happened).
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_signals_overflow_instead_of_waiting() {
        let (tx, rx) = outbox(1);
        assert!(tx.push(ByteString::from_static("a")));
        assert!(!tx.push(ByteString::from_static("b")));
        // The permit stored by notify_one makes this resolve at once.
        rx.overflow_signal().wait().await;
    }
}

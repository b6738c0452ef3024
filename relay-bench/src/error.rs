//! Why a scenario failed.

/// A failure that ends a scenario with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket or runtime error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server said something a Pusher server must not, or refused a request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The HTTP API answered with something unexpected.
    #[error("HTTP API error: {0}")]
    Http(String),
    /// The webhook receiver could not start.
    #[error("webhook receiver: {0}")]
    Receiver(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A measured requirement did not hold (e.g. not every event was delivered).
    #[error("{0}")]
    Incomplete(String),
}

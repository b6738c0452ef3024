//! Reading an HTTP API request body, once its head has been authenticated: with a size
//! limit, a deadline, and a server-wide budget for the bytes of all bodies being received.
//!
//! The budget ([`PendingBodies`], in the shared state) is what keeps many slow senders from
//! adding up: each body reserves its declared `Content-Length` before it is read (a chunked
//! body, its bytes as they arrive; the buffer holding them may be up to twice as large while
//! it grows), and gives it back once it has been received (or refused). A request that would
//! go over the budget is refused with 503 and `Retry-After` rather than queued. The size limit
//! itself was checked on the declared length with the request's head (`super::auth`); here
//! it holds a chunked body.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::ApiError;
use crate::state::PendingBodies;

/// What a body may cost.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes (413 over it).
    pub max_bytes: usize,
    /// Time to receive the whole body (408 after it).
    pub timeout: Duration,
}

/// Reads the whole body of `declared_len` bytes (`None` for a chunked body; a declared length
/// is already known to be within `limits`) within `limits`, reserving its bytes in `budget`
/// while it arrives.
pub async fn read_body(
    payload: &mut Payload,
    declared_len: Option<usize>,
    limits: BodyLimits,
    budget: &PendingBodies,
) -> Result<Bytes, ApiError> {
    let mut reservation = budget
        .reserve(declared_len.unwrap_or(0))
        .map_err(|_| ApiError::Busy)?;
    let mut body = BytesMut::with_capacity(declared_len.unwrap_or(0));
    let receive = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| match error {
                PayloadError::Overflow => ApiError::body_too_large(),
                _ => ApiError::bad_request("Request body could not be read"),
            })?;
            let len = body.len() + chunk.len();
            if len > limits.max_bytes {
                return Err(ApiError::body_too_large());
            }
            if len > reservation.bytes() {
                reservation
                    .grow(len - reservation.bytes())
                    .map_err(|_| ApiError::Busy)?;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(limits.timeout, receive).await {
        Ok(received) => received.map(|()| body.freeze()),
        Err(_) => Err(ApiError::RequestTimeout),
    }
}

//! Keeping the running server and the state store in step: every [`SYNC_INTERVAL`] the
//! tokens' uses are flushed to the store and the revocations read back into the guard, so a
//! `relay token revoke` reaches the server within seconds and a request never waits on the
//! store. The store's calls block (SQLite), so they run on tokio's blocking pool.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::ServerState;
use crate::store::{SYNC_INTERVAL, Store};

/// Reads the revocations once, before the server serves (a revoked token is refused from
/// the first request).
pub fn load_revocations(
    state: &ServerState,
    store: &dyn Store,
) -> Result<(), crate::store::StoreError> {
    state.guard.tokens.set_revoked(&store.revoked_tokens()?);
    Ok(())
}

/// Syncs every [`SYNC_INTERVAL`] until `stop`, then flushes the last uses.
pub async fn run(state: Arc<ServerState>, store: Arc<dyn Store>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SYNC_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => break,
        }
        sync_once(&state, &store).await;
    }
    sync_once(&state, &store).await;
}

async fn sync_once(state: &Arc<ServerState>, store: &Arc<dyn Store>) {
    let uses = state.guard.tokens.take_uses();
    let (state, store) = (state.clone(), store.clone());
    let synced = tokio::task::spawn_blocking(move || {
        store.record_token_uses(&uses)?;
        store
            .revoked_tokens()
            .map(|revoked| state.guard.tokens.set_revoked(&revoked))
    })
    .await;
    match synced {
        Ok(Ok(())) => {}
        // The last known revocations stay in force (fail closed); uses of this round are lost.
        Ok(Err(error)) => warn!(%error, "cannot sync with the state store"),
        Err(error) => warn!(%error, "the state store sync task failed"),
    }
}

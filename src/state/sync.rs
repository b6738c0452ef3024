//! Keeping the running server and the state store in step: every [`SYNC_INTERVAL`] the uses
//! of tokens and previous pairs, the messages delivered toward daily quotas (added to the
//! day's row), the tokens revoked for leaking (seen in a payload) and the security events
//! recorded are flushed to the store, the revocations read back into the guard, brute-force
//! bans written and read back (a ban made on one node holds on all), lockdowns
//! decided and read back ([`lockdowns`](super::lockdowns)), and the store's credentials laid
//! over the apps' keyrings (rotating those whose schedule is due), so a `relay token revoke`,
//! `relay security resolve` or `relay keys rotate` reaches the server within seconds and a
//! request never waits on the store. The store's calls block (SQLite), so they
//! run on tokio's blocking pool.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{ServerState, credentials, lockdowns};
use crate::activity::EventKind;
use crate::guard::utc_day;
use crate::store::{PairUse, SYNC_INTERVAL, SqliteStore, Store, StoreError};

/// Reads the revocations, the stored credentials and today's message counts once, before the
/// server serves (a revoked token is refused, a rotated secret current, and a daily quota
/// spent before a restart still spent, from the first request; a new UTC day starts from 0).
pub fn load(state: &ServerState, store: &dyn Store) -> Result<(), StoreError> {
    state.guard.tokens.set_revoked(&store.revoked_tokens()?);
    share_bans(state, store)?;
    lockdowns::decide(&state.guard, store, SystemTime::now())?;
    credentials::apply_stored(&state.apps, &store.credentials()?, SystemTime::now(), true);
    read_daily_counts(state, store)
}

/// Syncs every [`SYNC_INTERVAL`] until `stop`, then flushes the last uses. Without a store
/// at start-up, opens it as soon as its file appears (a CLI command made it) or there is a
/// security event to keep (which makes it).
pub async fn run(state: Arc<ServerState>, stop: CancellationToken) {
    let mut store = state.store();
    let mut ticks = tokio::time::interval(SYNC_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => break,
        }
        if store.is_none() {
            store = open_if_made(&state).await;
            if let Some(opened) = &store {
                state.set_store(opened.clone());
            }
        }
        if let Some(store) = &store {
            sync_once(&state, store).await;
        }
    }
    if let Some(store) = &store {
        sync_once(&state, store).await;
    }
}

/// The store, if its file exists now or a security event waits for it.
async fn open_if_made(state: &ServerState) -> Option<Arc<dyn Store>> {
    let path = state.store_path.clone();
    if !path.exists() && state.guard.activity.is_empty() {
        return None;
    }
    let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await;
    match opened {
        Ok(Ok(store)) => {
            info!(path = %state.store_path.display(), "the state store is open; syncing with it");
            Some(Arc::new(store))
        }
        Ok(Err(error)) => {
            warn!(%error, "cannot open the state store");
            None
        }
        Err(error) => {
            warn!(%error, "the state store task failed");
            None
        }
    }
}

async fn sync_once(state: &Arc<ServerState>, store: &Arc<dyn Store>) {
    let token_uses = state.guard.tokens.take_uses();
    let pair_uses: Vec<_> = state
        .apps
        .load()
        .apps()
        .flat_map(|app| app.take_pair_uses())
        .collect();
    record_pair_events(state, &pair_uses);
    let activity = state.guard.activity.take(SystemTime::now());
    let delivered = state.guard.daily_quotas.take_unflushed(SystemTime::now());
    let (state, store) = (state.clone(), store.clone());
    let synced = tokio::task::spawn_blocking(move || {
        if let Err(error) = store.record_events(&activity) {
            state.guard.activity.restore(activity);
            state.guard.daily_quotas.give_back(delivered);
            return Err(error);
        }
        // Right after the events it counts, and before any write that could fail for reasons
        // of its own: lockdowns (and their lifting) do not wait on the other state.
        lockdowns::decide(&state.guard, store.as_ref(), SystemTime::now())?;
        if let Err(error) = store.record_daily_messages(&delivered) {
            // Counted again next time: a lost count would give a restarted server more quota.
            state.guard.daily_quotas.give_back(delivered);
            return Err(error);
        }
        read_daily_counts(&state, store.as_ref())?;
        store.record_token_uses(&token_uses)?;
        store.record_pair_uses(&pair_uses)?;
        let leaked = state.guard.tokens.take_leaked();
        let now = SystemTime::now();
        if let Err(error) = leaked.iter().try_for_each(|token| {
            store
                .revoke_token(&token.app_id, &token.name, now)
                .map(drop)
        }) {
            state.guard.tokens.restore_leaked(leaked);
            return Err(error);
        }
        state.guard.tokens.set_revoked(&store.revoked_tokens()?);
        share_bans(&state, store.as_ref())?;
        credentials::rotate_due(&state.apps, store.as_ref(), SystemTime::now())
    })
    .await;
    match synced {
        Ok(Ok(notices)) => credentials::send_all(notices),
        // The last known revocations and keyrings stay in force (fail closed); uses of this
        // round are lost.
        Ok(Err(error)) => warn!(%error, "cannot sync with the state store"),
        Err(error) => warn!(%error, "the state store sync task failed"),
    }
}

/// Writes the bans made here since the last sync (they hold here whatever becomes of them;
/// if the store refuses them they are written at a later sync) and enforces those in the
/// store (other nodes', and before a restart this node's own).
fn share_bans(state: &ServerState, store: &dyn Store) -> Result<(), StoreError> {
    if !state.guard.has_bans() {
        return Ok(());
    }
    let made = state.guard.take_bans(SystemTime::now());
    if let Err(error) = store.record_bans(&made) {
        state.guard.restore_bans(&made, SystemTime::now());
        return Err(error);
    }
    let now = SystemTime::now();
    state.guard.adopt_bans(&store.bans(now)?, now);
    Ok(())
}

/// Brings the daily quotas' counts up to the store's for today: the count before a restart,
/// and in a cluster the other nodes' deliveries.
fn read_daily_counts(state: &ServerState, store: &dyn Store) -> Result<(), StoreError> {
    let quotas = &state.guard.daily_quotas;
    if !quotas.is_empty() {
        let now = SystemTime::now();
        quotas.load(&store.daily_messages(utc_day(now))?, now);
    }
    Ok(())
}

/// Records the uses of previous pairs in their grace, and the secrets of pairs past it still
/// presented (critical), in the activity log.
fn record_pair_events(state: &ServerState, pair_uses: &[PairUse]) {
    for used in pair_uses {
        let message = format!(
            "previous pair {} used in its grace (last via {})",
            used.pair, used.last_via
        );
        let kind = EventKind::PairUsedInGrace;
        let guard = &state.guard;
        guard.record_count(&used.app_id, kind, used.last_address, message, used.count);
    }
    for app in state.apps.load().apps() {
        for expired in app.take_expired_uses() {
            let message = format!(
                "the secret of a pair past its grace presented ({})",
                expired.via.as_str()
            );
            let kind = EventKind::ExpiredPairUsed;
            let guard = &state.guard;
            guard.record_count(&app.id, kind, expired.address, message, expired.count);
        }
    }
}

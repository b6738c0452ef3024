//! Taking `auto_lockdown` decisions at each sync: an app not locked down whose unresolved
//! critical events reach the threshold is locked in the store (one transaction, so once), and
//! every app's lockdown as the store has it (set here or by another process, lifted by
//! `relay security resolve`) becomes the guard's. A lockdown is recorded in the activity log
//! by the process that takes it (once), a lift by each process that sees it.

use std::collections::HashSet;
use std::time::SystemTime;

use tracing::{error, info, warn};

use crate::activity::EventKind;
use crate::guard::{CRITICAL_EVENTS_TO_LOCK, Guard, LOCKDOWN_LOOKBACK};
use crate::store::{Store, StoreError};

/// Locks down the apps that are due and brings the guard in line with the store.
pub fn decide(guard: &Guard, store: &dyn Store, now: SystemTime) -> Result<(), StoreError> {
    let apps = guard.lockdown_apps();
    if apps.is_empty() {
        return Ok(());
    }
    let since = now.checked_sub(LOCKDOWN_LOOKBACK).unwrap_or(now);
    let mut locked: HashSet<String> = store
        .lockdowns()?
        .into_iter()
        .map(|lockdown| lockdown.app_id)
        .collect();
    for app_id in apps.iter().map(String::as_str) {
        let locked_here = !locked.contains(app_id)
            && store.lock_down_if_due(app_id, since, CRITICAL_EVENTS_TO_LOCK, now)?;
        if locked_here {
            locked.insert(app_id.to_owned());
            error!(
                app = app_id,
                "critical: the app is locked down ({CRITICAL_EVENTS_TO_LOCK} or more unresolved critical security events within an hour); see `relay security events --app {app_id}`, then `relay security resolve --app {app_id}`"
            );
            let message = format!(
                "locked down: {CRITICAL_EVENTS_TO_LOCK} or more unresolved critical events within an hour"
            );
            guard.record(app_id, EventKind::LockdownStarted, None, message);
        }
        let is_locked = locked.contains(app_id);
        if !guard.set_locked_down(app_id, is_locked) {
            continue;
        }
        if is_locked && !locked_here {
            // Locked before this process started, or by another one: nothing new to record.
            warn!(
                app = app_id,
                "the app is locked down; `relay security resolve --app {app_id}` lifts it"
            );
        } else if !is_locked {
            info!(app = app_id, "the app's lockdown is lifted");
            let message = "lockdown lifted: its critical events were resolved";
            guard.record(app_id, EventKind::LockdownLifted, None, message);
        }
    }
    Ok(())
}

//! `auto_lockdown`: an app whose unresolved critical security events reach
//! [`CRITICAL_EVENTS_TO_LOCK`] within [`LOCKDOWN_LOOKBACK`] is taken out of service (HTTP 403,
//! new WebSockets closed with 4003) until an admin resolves them (`relay security resolve`).
//!
//! The decision is the state store's (one transaction counts and locks, so it is taken once
//! even with several processes, and survives a restart); this is the running server's copy of
//! it, set by the sync every few seconds and read on every request to the app. With
//! `lockdown_closes_connections`, a lockdown also ends the app's open connections: each holds
//! a [`CancellationToken`] taken before it was admitted, which the lockdown cancels (a fresh
//! one is handed out once it is lifted), so none admitted just before the lockdown is missed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Unresolved critical events that lock an app down.
pub const CRITICAL_EVENTS_TO_LOCK: u64 = 3;

/// How far back they are counted.
pub const LOCKDOWN_LOOKBACK: Duration = Duration::from_secs(3600);

/// One app's lockdown state. It lives as long as the process (a reload keeps it, so a
/// lockdown the store decided holds across any change of the app's configuration).
#[derive(Debug)]
pub(super) struct LockdownRule {
    locked: AtomicBool,
    /// `lockdown_closes_connections` (a reload may change it).
    closes: AtomicBool,
    /// Cancelled when a lockdown begins; handed to connections only while `closes`.
    closing: Mutex<CancellationToken>,
}

impl LockdownRule {
    pub fn new(closes_connections: bool) -> Self {
        LockdownRule {
            locked: AtomicBool::new(false),
            closes: AtomicBool::new(closes_connections),
            closing: Mutex::new(CancellationToken::new()),
        }
    }

    /// Whether a lockdown ends the app's open connections.
    pub fn closes_connections(&self) -> bool {
        self.closes.load(Ordering::Acquire)
    }

    /// Sets `lockdown_closes_connections` (a reload). Connections admitted before take the
    /// new setting when they take the reloaded app.
    pub fn set_closes_connections(&self, closes: bool) {
        self.closes.store(closes, Ordering::Release);
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// Sets the state; whether it changed. A lockdown that begins cancels the open
    /// connections' token after the flag is set (so a connection admitted before the flag
    /// holds the cancelled token); a lifted one hands out a fresh token before the flag is
    /// cleared (so no connection admitted after the lift takes the cancelled one). Both under
    /// the token's lock, so two changes cannot interleave.
    pub fn set(&self, locked: bool) -> bool {
        let mut token = self
            .closing
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if self.locked.load(Ordering::Acquire) == locked {
            return false;
        }
        if locked {
            self.locked.store(true, Ordering::Release);
            token.cancel();
        } else {
            *token = CancellationToken::new();
            self.locked.store(false, Ordering::Release);
        }
        true
    }

    /// The token a new connection holds (to be taken before the lockdown is checked).
    pub fn closing_signal(&self) -> Option<CancellationToken> {
        let token = self
            .closing
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.closes_connections().then(|| token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockdown_ends_connections_admitted_before_it_only() {
        let rule = LockdownRule::new(true);
        let before = rule.closing_signal().unwrap();
        assert!(rule.set(true));
        assert!(!rule.set(true), "no change");
        assert!(rule.is_locked());
        assert!(before.is_cancelled());
        assert!(rule.set(false));
        let after = rule.closing_signal().unwrap();
        assert!(!after.is_cancelled(), "a connection after the lift stays");
    }

    #[test]
    fn without_closing_connections_there_is_no_signal() {
        let rule = LockdownRule::new(false);
        assert!(rule.closing_signal().is_none());
        assert!(rule.set(true));
        assert!(rule.is_locked());
    }
}

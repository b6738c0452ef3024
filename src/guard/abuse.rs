//! The guard's abuse half, beside the rules in `mod.rs`: brute-force bans ([`super::bans`]),
//! the lockdown state ([`super::lockdown`]), and recording what the guard refuses or finds in
//! the activity log. Kept apart so the rules file reads as the order of checks.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{Banned, ClientKey, Guard, Peer, Refusal};
use crate::activity::{EventKind, SecurityEvent};
use crate::store::StoredBan;

impl Guard {
    /// Whether a client at `address` is banned from `app_id` for repeated authentication
    /// failures (an unknown address never is).
    pub fn check_ban(&self, app_id: &str, address: Option<IpAddr>) -> Result<(), Banned> {
        let rules = self.rules.load();
        let bans = rules.apps.get(app_id).and_then(|app| app.bans.as_ref());
        let checked = match (bans, address) {
            (Some(bans), Some(address)) => bans.check(ClientKey::of(address), Instant::now()),
            _ => Ok(()),
        };
        checked.inspect_err(|_| crate::metrics::global().guard_refused(app_id, "banned"))
    }

    /// Records an authentication failure (`what` failed) of a client at `address` to
    /// `app_id`, and counts it towards a ban unless the address is in the app's
    /// `ip_allowlist` or among its trusted proxies (or the server's).
    pub fn auth_failed(&self, app_id: &str, address: Option<IpAddr>, what: &str) {
        self.record(
            app_id,
            EventKind::AuthFailure,
            address,
            format!("{what} failed"),
        );
        let rules = self.rules.load();
        let Some(app) = rules.apps.get(app_id) else {
            return;
        };
        let (Some(bans), Some(address)) = (&app.bans, address) else {
            return;
        };
        let proxies = app
            .trusted_proxies
            .as_ref()
            .unwrap_or(&rules.default_proxies);
        let allowlisted = app
            .ip_allowlist
            .as_ref()
            .is_some_and(|allowlist| allowlist.contains(address));
        if allowlisted || proxies.contains(address) {
            return;
        }
        if let Some(length) = bans.failed(ClientKey::of(address), Instant::now()) {
            let message = format!(
                "banned for {} s after repeated authentication failures",
                length.as_secs()
            );
            self.record(app_id, EventKind::AddressBanned, Some(address), message);
        }
    }

    /// Whether an app bans (so its bans are shared through the state store).
    pub fn has_bans(&self) -> bool {
        self.rules
            .load()
            .apps
            .values()
            .any(|app| app.bans.is_some())
    }

    /// The bans made on this node since the last call, for the state store (so the other
    /// nodes, and this one after a restart, enforce them).
    pub fn take_bans(&self, now: SystemTime) -> Vec<StoredBan> {
        let instant = Instant::now();
        let mut taken = Vec::new();
        for (app_id, app) in &self.rules.load().apps {
            let Some(bans) = &app.bans else { continue };
            for (client, until) in bans.take_made() {
                taken.push(StoredBan {
                    app_id: app_id.clone(),
                    address: client.address(),
                    until: now + until.saturating_duration_since(instant),
                });
            }
        }
        taken
    }

    /// Puts back what [`Self::take_bans`] gave when the store could not take it (at `now`),
    /// so those bans are written at a later sync.
    pub fn restore_bans(&self, bans: &[StoredBan], now: SystemTime) {
        let instant = Instant::now();
        for ban in bans {
            let app = self.app(&ban.app_id);
            if let Some(app_bans) = app.as_ref().and_then(|app| app.bans.as_ref()) {
                let left = ban.until.duration_since(now).unwrap_or_default();
                app_bans.give_back(ClientKey::of(ban.address), instant + left);
            }
        }
    }

    /// Enforces `bans` from the state store (made here or on another node); an app that no
    /// longer bans ignores them.
    pub fn adopt_bans(&self, bans: &[StoredBan], now: SystemTime) {
        let instant = Instant::now();
        for ban in bans {
            let app = self.app(&ban.app_id);
            let Some(app_bans) = app.as_ref().and_then(|app| app.bans.as_ref()) else {
                continue;
            };
            let left = ban.until.duration_since(now).unwrap_or_default();
            app_bans.adopt(ClientKey::of(ban.address), instant + left, instant);
        }
    }

    /// Records a refusal by the network rules in the activity log.
    pub(super) fn record_refusal(&self, app_id: &str, peer: &Peer, refusal: Refusal) {
        crate::metrics::global().guard_refused(app_id, refusal.rule());
        let kind = match refusal {
            Refusal::AddressNotAllowed => EventKind::AddressDenied,
            Refusal::CountryNotAllowed => EventKind::CountryDenied,
            Refusal::CertificateNotRegistered | Refusal::CertificateRequired => {
                EventKind::CertificateDenied
            }
            Refusal::OriginNotAllowed => EventKind::OriginDenied,
        };
        self.record(app_id, kind, peer.address.known(), refusal.to_string());
    }

    /// Records a security event of `kind` for `app_id` now.
    pub fn record(
        &self,
        app_id: &str,
        kind: EventKind,
        address: Option<IpAddr>,
        message: impl Into<String>,
    ) {
        self.record_count(app_id, kind, address, message, 1);
    }

    /// Records `count` occurrences (counted elsewhere) of a security event now. The address is
    /// kept as the limits and bans key it: IPv6 by its /64, so one host's addresses are one
    /// source (for the lockdown's count, and for the recorder's bound).
    pub fn record_count(
        &self,
        app_id: &str,
        kind: EventKind,
        address: Option<IpAddr>,
        message: impl Into<String>,
        count: u64,
    ) {
        let source = address.map(|address| ClientKey::of(address).address());
        let event = SecurityEvent::new(app_id, kind, source, message);
        self.activity.record_count(event, count, SystemTime::now());
    }

    /// Whether `app_id` is locked down (`auto_lockdown`).
    pub fn locked_down(&self, app_id: &str) -> bool {
        self.rules
            .load()
            .apps
            .get(app_id)
            .and_then(|app| app.lockdown.as_ref())
            .is_some_and(|rule| rule.is_locked())
    }

    /// Whether a request to `app_id` is to be refused for its lockdown: as
    /// [`locked_down`](Self::locked_down), with a refusal counted (rule `lockdown`).
    pub fn refuses_for_lockdown(&self, app_id: &str) -> bool {
        let locked = self.locked_down(app_id);
        if locked {
            crate::metrics::global().guard_refused(app_id, "lockdown");
        }
        locked
    }

    /// The apps with `auto_lockdown`.
    pub fn lockdown_apps(&self) -> Vec<String> {
        self.rules
            .load()
            .apps
            .iter()
            .filter(|(_, app)| app.lockdown.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Sets whether `app_id` is locked down; whether that changed anything (an app without
    /// `auto_lockdown` never is).
    pub fn set_locked_down(&self, app_id: &str, locked: bool) -> bool {
        self.app(app_id)
            .and_then(|app| app.lockdown.clone())
            .is_some_and(|rule| rule.set(locked))
    }

    /// What a new connection to `app_id` holds to be ended by a lockdown (with
    /// `lockdown_closes_connections`); take it before checking [`Self::locked_down`].
    pub fn lockdown_signal(&self, app_id: &str) -> Option<CancellationToken> {
        self.app(app_id)
            .and_then(|app| app.lockdown.clone())
            .and_then(|rule| rule.closing_signal())
    }
}

//! The activity log's vocabulary: what a security event is ([`SecurityEvent`]: an app, a
//! [`EventKind`], the client address when there is one, a short message), how grave each kind
//! is ([`Severity`]), and how repeats are folded together ([`ActivityEntry`], one per app, kind,
//! address and [`WINDOW`]) by the [`ActivityRecorder`] before the state store keeps them.
//!
//! The severity belongs to the kind, not to the caller: **critical** means a sign that a
//! credential is in the wrong hands (found in a payload, a revoked token or expired pair still
//! presented, valid credentials from a banned or geo-blocked address), which is what
//! `auto_lockdown` counts; failed logins and denials are never critical, or an attacker with
//! a few addresses could lock any app out.
//!
//! A message is built by Relay from fixed words, a detector id, a token's configured name or a
//! rule; never from what a client sent.

mod recorder;

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use recorder::{ActivityRecorder, MOST_PENDING};

/// Repeats of one kind from one address to one app within a window are one entry.
pub const WINDOW: Duration = Duration::from_secs(600);

/// How grave an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth keeping: a denial, a rotation, a failed login.
    Info,
    /// An attack or a mistake to look at: a ban, a secret in a payload, a lockdown.
    Warning,
    /// A sign of compromise; counted by `auto_lockdown`.
    Critical,
}

impl Severity {
    /// Its name in the store, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|severity| severity.as_str() == name)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A request or subscription failed authentication (bad signature, token, key/secret,
    /// channel auth or sign-in).
    AuthFailure,
    /// An address was banned for repeated authentication failures.
    AddressBanned,
    /// A request or handshake was refused by the IP allowlist.
    AddressDenied,
    /// A request or handshake was refused by the geo rule.
    CountryDenied,
    /// A handshake was refused by `allowed_origins`.
    OriginDenied,
    /// A request or handshake was refused by the mTLS rule.
    CertificateDenied,
    /// `secret_scanning` found a secret in a payload.
    SecretFound,
    /// A live API token of the app was found in a payload and revoked.
    TokenLeaked,
    /// The app's own secret was found in a payload.
    AppSecretLeaked,
    /// A revoked API token was presented.
    RevokedTokenUsed,
    /// A key whose pair's grace has ended was presented.
    ExpiredPairUsed,
    /// Valid credentials came from an address that is banned or refused by the geo rule.
    CredentialsFromBlockedAddress,
    /// The app's key pair was rotated.
    KeyRotated,
    /// A previous pair, still in its grace, was used.
    PairUsedInGrace,
    /// The app was locked down.
    LockdownStarted,
    /// The app's lockdown was lifted.
    LockdownLifted,
    /// `config.toml` was reloaded (what changed is in the message).
    ConfigReloaded,
    /// A new `config.toml` was refused; the configuration in force stayed.
    ConfigRefused,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 18] = [
        EventKind::AuthFailure,
        EventKind::AddressBanned,
        EventKind::AddressDenied,
        EventKind::CountryDenied,
        EventKind::OriginDenied,
        EventKind::CertificateDenied,
        EventKind::SecretFound,
        EventKind::TokenLeaked,
        EventKind::AppSecretLeaked,
        EventKind::RevokedTokenUsed,
        EventKind::ExpiredPairUsed,
        EventKind::CredentialsFromBlockedAddress,
        EventKind::KeyRotated,
        EventKind::PairUsedInGrace,
        EventKind::LockdownStarted,
        EventKind::LockdownLifted,
        EventKind::ConfigReloaded,
        EventKind::ConfigRefused,
    ];

    /// Its name in the store, the CLI, the API and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AuthFailure => "auth_failure",
            EventKind::AddressBanned => "address_banned",
            EventKind::AddressDenied => "address_denied",
            EventKind::CountryDenied => "country_denied",
            EventKind::OriginDenied => "origin_denied",
            EventKind::CertificateDenied => "certificate_denied",
            EventKind::SecretFound => "secret_found",
            EventKind::TokenLeaked => "token_leaked",
            EventKind::AppSecretLeaked => "app_secret_leaked",
            EventKind::RevokedTokenUsed => "revoked_token_used",
            EventKind::ExpiredPairUsed => "expired_pair_used",
            EventKind::CredentialsFromBlockedAddress => "credentials_from_blocked_address",
            EventKind::KeyRotated => "key_rotated",
            EventKind::PairUsedInGrace => "pair_used_in_grace",
            EventKind::LockdownStarted => "lockdown_started",
            EventKind::LockdownLifted => "lockdown_lifted",
            EventKind::ConfigReloaded => "config_reloaded",
            EventKind::ConfigRefused => "config_refused",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// How grave it is.
    pub fn severity(self) -> Severity {
        match self {
            EventKind::AuthFailure
            | EventKind::AddressDenied
            | EventKind::CountryDenied
            | EventKind::OriginDenied
            | EventKind::CertificateDenied
            | EventKind::KeyRotated
            | EventKind::PairUsedInGrace
            | EventKind::LockdownLifted
            | EventKind::ConfigReloaded => Severity::Info,
            EventKind::AddressBanned
            | EventKind::SecretFound
            | EventKind::LockdownStarted
            | EventKind::ConfigRefused => Severity::Warning,
            EventKind::TokenLeaked
            | EventKind::AppSecretLeaked
            | EventKind::RevokedTokenUsed
            | EventKind::ExpiredPairUsed
            | EventKind::CredentialsFromBlockedAddress => Severity::Critical,
        }
    }
}

/// One security event as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// The app it concerns.
    pub app_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The client's address, when the event has one.
    pub address: Option<IpAddr>,
    /// A short message made by Relay (never client text).
    pub message: String,
}

impl SecurityEvent {
    /// An event of `kind` for `app_id`.
    pub fn new(
        app_id: &str,
        kind: EventKind,
        address: Option<IpAddr>,
        message: impl Into<String>,
    ) -> Self {
        SecurityEvent {
            app_id: app_id.to_owned(),
            kind,
            address,
            message: message.into(),
        }
    }
}

/// Occurrences of one kind from one address to one app within one [`WINDOW`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityEntry {
    /// The app.
    pub app_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The client's address (`None`: none, or too many addresses to tell apart).
    pub address: Option<IpAddr>,
    /// The first occurrence's message.
    pub message: String,
    /// The start of the window.
    pub window_start: SystemTime,
    /// The first occurrence.
    pub first_seen: SystemTime,
    /// The last occurrence.
    pub last_seen: SystemTime,
    /// Occurrences.
    pub count: u64,
}

impl ActivityEntry {
    /// One occurrence of `event` at `at`, for a caller that writes it to the store itself
    /// (the CLI, a rotation).
    pub fn single(event: SecurityEvent, at: SystemTime) -> Self {
        ActivityEntry {
            app_id: event.app_id,
            kind: event.kind,
            address: event.address,
            message: event.message,
            window_start: window_start(at),
            first_seen: at,
            last_seen: at,
            count: 1,
        }
    }
}

/// The record of a rotation of `app_id` to `generation`.
pub fn key_rotated(app_id: &str, generation: u64, reason: &str, at: SystemTime) -> ActivityEntry {
    let message = format!("key pair rotated to generation {generation} ({reason})");
    ActivityEntry::single(
        SecurityEvent::new(app_id, EventKind::KeyRotated, None, message),
        at,
    )
}

/// The start of the [`WINDOW`] that holds `at`.
pub fn window_start(at: SystemTime) -> SystemTime {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(since_epoch - since_epoch % WINDOW.as_secs())
}

/// An entry as the store keeps it: with its id and whether an admin resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id (for `relay security resolve`).
    pub id: u64,
    /// The occurrences.
    pub entry: ActivityEntry,
    /// When an admin resolved it.
    pub resolved_at: Option<SystemTime>,
}

/// Which stored events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// The app.
    pub app_id: String,
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Only this severity or graver.
    pub min_severity: Option<Severity>,
    /// Only events last seen at or after this time.
    pub since: Option<SystemTime>,
    /// Only events first seen before this time.
    pub until: Option<SystemTime>,
    /// Only unresolved events.
    pub unresolved_only: bool,
    /// At most this many, newest first.
    pub limit: usize,
}

impl EventQuery {
    /// The newest `limit` events of `app_id`.
    pub fn newest(app_id: &str, limit: usize) -> Self {
        EventQuery {
            app_id: app_id.to_owned(),
            kind: None,
            min_severity: None,
            since: None,
            until: None,
            unresolved_only: false,
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn failed_logins_and_denials_are_never_critical() {
        for kind in [
            EventKind::AuthFailure,
            EventKind::AddressBanned,
            EventKind::AddressDenied,
            EventKind::CountryDenied,
            EventKind::OriginDenied,
            EventKind::CertificateDenied,
        ] {
            assert_ne!(kind.severity(), Severity::Critical, "{kind:?}");
        }
        assert_eq!(EventKind::TokenLeaked.severity(), Severity::Critical);
    }

    #[test]
    fn windows_are_aligned() {
        let at = UNIX_EPOCH + Duration::from_secs(1_200 + 599);
        assert_eq!(window_start(at), UNIX_EPOCH + Duration::from_secs(1_200));
        let next = UNIX_EPOCH + Duration::from_secs(1_800);
        assert_eq!(window_start(next), next);
    }
}

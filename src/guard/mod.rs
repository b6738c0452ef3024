//! The security policy of both edges: one decision per edge, [`Guard::admit_api`] for HTTP
//! API requests and [`Guard::admit_socket`] for WebSocket handshakes, each given the same
//! [`PeerHeaders`] that the edge took from its request before dropping it.
//!
//! Every network rule of `[apps.security]` lives here, not in a handler: the IP allowlist
//! ([`networks`]), the trusted proxies that may name the client ([`peer`]), Geo-IP rules
//! ([`geo`]), allowed origins ([`origin`]) and client-certificate fingerprints. The API
//! rules (IP, geo, mTLS) guard the HTTP API; `apply_to_websocket` applies them to handshakes
//! too, and origins guard handshakes only. An app without `[apps.security]`, `[apps.limits]`
//! or `[[apps.schemas]]` costs one map look-up. The rate limits of `[apps.limits]`
//! ([`limits`]) are counted right after the network rules, before any credential is looked
//! at; its daily message quota is checked before each publish ([`Guard::limit_events`],
//! [`Guard::limit_client_event`]) and counted by the hub as it delivers
//! ([`Guard::daily_quotas`]). Brute-force bans ([`bans`]) are checked after the network
//! rules too, and counted from the edges' authentication failures ([`Guard::auth_failed`]); a
//! locked-down app ([`lockdown`], decided by the sync from the store) is refused before
//! anything else. Every refusal and finding is recorded in the [`activity`](crate::activity)
//! log through [`Guard::record`].
//!
//! Payloads are the guard's too, on either edge: [`Guard::check_schemas`] holds an event's
//! data to the app's `[[apps.schemas]]` ([`schemas`], compiled when the guard is built), then
//! [`Guard::inspect_payload`] applies its `secret_scanning` ([`payload`], with the [`scan`]ner
//! and JSON-keeping [`redact`]ion). Schemas come first: a refused event is published
//! nowhere, so it need not be scanned, and the schema sees the data as its sender wrote it.
//!
//! Which authentication method an API request uses is decided here too ([`credentials`]:
//! the HMAC query signature or the `X-Relay-Key`/`X-Relay-Secret` headers, never two at
//! once); the credentials themselves are checked by the app after the network rules, so a
//! refused address learns nothing about them.

mod abuse;
mod bans;
mod build;
mod credentials;
mod geo;
mod limiting;
mod limits;
mod lockdown;
mod networks;
mod open_connections;
mod origin;
mod payload;
mod peer;
mod redact;
pub mod scan;
mod schemas;
mod token;
mod tokens;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use bans::Banned;
pub use build::NewRules;
pub use credentials::{ApiCredentials, CredentialsError, api_credentials};
pub use geo::{GeoDatabase, GeoDatabaseError};
pub use limits::{
    Bucket, ClientEventLimit, ClientKey, ClusterRates, DailyQuota, DailyQuotas, LimitScope,
    Limited, Limiter, LocalLimiter, MOST_TRACKED_ADDRESSES, RatesUnreachable, utc_day,
};
use limits::{ClusterLimits, FailOpen};
pub use lockdown::{CRITICAL_EVENTS_TO_LOCK, LOCKDOWN_LOOKBACK};
pub use networks::Networks;
pub use open_connections::AddressSlot;
pub use payload::{DetectorListError, PayloadSource, SecretFound};
pub use peer::{CertFingerprint, ClientAddress, MAX_FORWARDED_HOPS, Peer, PeerHeaders};
pub use schemas::{SchemaError, SchemaProblem, SchemaViolation};
pub use token::{TOKEN_LEN, WellFormedToken, generate as generate_token};
pub use tokens::{TokenEntries, TokenEntry, TokenRefusal, TokenRegistry};

use crate::activity::ActivityRecorder;
use crate::apps::App;
use crate::config::Fingerprint;
use crate::protocol::ChannelName;
use bans::Bans;
use geo::GeoRule;
use lockdown::LockdownRule;
use origin::AllowedOrigins;
use payload::PayloadRules;
use schemas::ChannelSchemas;

/// Why the guard cannot be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// An app's geo rule has no readable country database.
    #[error(transparent)]
    Geo(#[from] GeoDatabaseError),
    /// An app's secret-scanning detector lists name no detector, or the wrong kind.
    #[error("app {app}: {error}")]
    Detectors {
        /// The app's id.
        app: String,
        /// What is wrong.
        error: DetectorListError,
    },
    /// An app's `[[apps.schemas]]` entry cannot be read or compiled.
    #[error("app {app}: {error}")]
    Schema {
        /// The app's id.
        app: String,
        /// Which entry, and what is wrong.
        error: SchemaError,
    },
}

/// Why the guard refused a request or handshake; each message is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client's address is not in `ip_allowlist` (or could not be told).
    #[error("Address not allowed")]
    AddressNotAllowed,
    /// The client's country is not allowed by the geo rule.
    #[error("Country not allowed")]
    CountryNotAllowed,
    /// The forwarded client certificate is not in `mtls_fingerprints`.
    #[error("Client certificate not registered")]
    CertificateNotRegistered,
    /// `mtls_required`, and no client certificate was forwarded.
    #[error("Client certificate required")]
    CertificateRequired,
    /// The handshake's `Origin` is not in `allowed_origins`.
    #[error("Origin not allowed")]
    OriginNotAllowed,
}

impl Refusal {
    /// The rule's name (the metrics' `rule` label).
    pub fn rule(self) -> &'static str {
        match self {
            Refusal::AddressNotAllowed => "ip_allowlist",
            Refusal::CountryNotAllowed => "geo",
            Refusal::CertificateNotRegistered => "mtls_fingerprints",
            Refusal::CertificateRequired => "mtls_required",
            Refusal::OriginNotAllowed => "allowed_origins",
        }
    }
}

/// The rules of every app, its API tokens, and the server-wide trusted proxies.
#[derive(Debug, Default)]
pub struct Guard {
    /// Swapped whole by a configuration reload ([`Guard::prepare`], [`Guard::commit`]).
    rules: ArcSwap<Rules>,
    /// The country database, opened for the first geo rule and kept for the process's life.
    geo_database: std::sync::Mutex<Option<Arc<GeoDatabase>>>,
    /// Every app's `auto_lockdown` state since it first had the rule (reloads keep it).
    lockdowns: std::sync::Mutex<HashMap<String, Arc<LockdownRule>>>,
    /// The apps' API tokens.
    pub tokens: TokenRegistry,
    /// The security events waiting for the state store.
    pub activity: ActivityRecorder,
    /// The apps' daily message quotas (the same counts their limiters check).
    pub daily_quotas: DailyQuotas,
    /// Where a cluster counts the per-second limits (`None`: in this process).
    cluster_rates: std::sync::OnceLock<Arc<dyn ClusterRates>>,
    /// Whether the cluster's counters were away at the last count.
    fail_open: FailOpen,
}

/// Every app's rules and the server's trusted proxies, as one configuration describes them.
#[derive(Debug, Default)]
struct Rules {
    default_proxies: Networks,
    apps: HashMap<String, Arc<AppGuard>>,
}

/// One app's rules. What counts (limits, bans, the lockdown state) is behind an `Arc`, so a
/// reload that leaves that part of the app's configuration alone keeps its counts.
#[derive(Debug)]
struct AppGuard {
    trusted_proxies: Option<Networks>,
    ip_allowlist: Option<Networks>,
    geo: Option<GeoRule>,
    origins: Option<AllowedOrigins>,
    mtls: Option<MtlsRule>,
    apply_to_websocket: bool,
    payload: Option<PayloadRules>,
    limits: Option<Arc<dyn Limiter>>,
    /// What `limits` was built from (a reload keeps the limiter when it is unchanged).
    limits_config: Option<crate::config::LimitsConfig>,
    schemas: Option<ChannelSchemas>,
    lockdown: Option<Arc<LockdownRule>>,
    bans: Option<Arc<Bans>>,
    /// The per-second limits as the cluster counts them (with `[redis]`).
    cluster_limits: Option<ClusterLimits>,
}

/// Registered client certificates.
#[derive(Debug)]
struct MtlsRule {
    fingerprints: HashSet<Fingerprint>,
    required: bool,
}

impl Guard {
    /// Who sent a request to `app_id` (`None`: an unknown app), as far as the trusted proxies
    /// allow believing it.
    pub fn peer(&self, app_id: Option<&str>, headers: &PeerHeaders) -> Peer {
        let rules = self.rules.load();
        rules.resolve(app_id.and_then(|id| rules.apps.get(id)), headers)
    }

    /// The rules of `app_id` now, if it has any.
    fn app(&self, app_id: &str) -> Option<Arc<AppGuard>> {
        self.rules.load().apps.get(app_id).cloned()
    }

    /// Admits an HTTP API request to `app_id`: the IP, geo and mTLS rules.
    pub fn admit_api(&self, app_id: &str, headers: &PeerHeaders) -> Result<Peer, Refusal> {
        let rules = self.rules.load();
        let app = rules.apps.get(app_id);
        let peer = rules.resolve(app, headers);
        if let Some(app) = app
            && let Err(refusal) = app.check_network(&peer)
        {
            self.record_refusal(app_id, &peer, refusal);
            return Err(refusal);
        }
        Ok(peer)
    }

    /// Admits a WebSocket handshake to `app_id`: allowed origins, and with
    /// `apply_to_websocket` the IP, geo and mTLS rules.
    pub fn admit_socket(&self, app_id: &str, headers: &PeerHeaders) -> Result<Peer, Refusal> {
        let rules = self.rules.load();
        let app = rules.apps.get(app_id);
        let peer = rules.resolve(app, headers);
        if let Some(app) = app {
            let refused = match &app.origins {
                Some(origins) if !origins.admits(peer.origin.as_deref()) => {
                    Err(Refusal::OriginNotAllowed)
                }
                _ if app.apply_to_websocket => app.check_network(&peer),
                _ => Ok(()),
            };
            if let Err(refusal) = refused {
                self.record_refusal(app_id, &peer, refusal);
                return Err(refusal);
            }
        }
        Ok(peer)
    }

    /// Holds `data`, an event named `event` of app `app_id` on `channels`, to every schema of
    /// the app that applies (none for `private-encrypted-` channels). Apps without schemas
    /// cost one map look-up; channels without them a prefix comparison per entry.
    pub fn check_schemas(
        &self,
        app_id: &str,
        channels: &[ChannelName],
        event: &str,
        data: &str,
    ) -> Result<(), SchemaViolation> {
        match self
            .rules
            .load()
            .apps
            .get(app_id)
            .and_then(|rules| rules.schemas.as_ref())
        {
            Some(schemas) => schemas.check(channels, event, data),
            None => Ok(()),
        }
    }

    /// What to deliver of `data`, an event of `app` on `channel`, under the app's
    /// `secret_scanning`: the data, its redacted form, or nothing ([`SecretFound`]). Apps
    /// without scanning cost one map look-up.
    pub fn inspect_payload<'a>(
        &self,
        app: &App,
        channel: &ChannelName,
        data: &'a str,
        source: PayloadSource,
    ) -> Result<Cow<'a, str>, SecretFound> {
        match self
            .rules
            .load()
            .apps
            .get(&app.id)
            .and_then(|rules| rules.payload.as_ref())
        {
            Some(rules) => rules.inspect(app, channel, data, source, &self.tokens, &self.activity),
            None => Ok(Cow::Borrowed(data)),
        }
    }
}

impl Rules {
    /// `headers` believed as far as `app`'s trusted proxies (or the server's) allow.
    fn resolve(&self, app: Option<&Arc<AppGuard>>, headers: &PeerHeaders) -> Peer {
        let trusted = app
            .and_then(|app| app.trusted_proxies.as_ref())
            .unwrap_or(&self.default_proxies);
        Peer::resolve(headers, trusted)
    }
}

impl AppGuard {
    /// The IP, geo and mTLS rules.
    fn check_network(&self, peer: &Peer) -> Result<(), Refusal> {
        if let Some(mtls) = &self.mtls {
            mtls.check(peer.fingerprint)?;
        }
        if let Some(allowlist) = &self.ip_allowlist
            && !peer
                .address
                .known()
                .is_some_and(|address| allowlist.contains(address))
        {
            return Err(Refusal::AddressNotAllowed);
        }
        if let Some(geo) = &self.geo {
            // An unreadable address is refused whatever `unknown` says: the client may have
            // made it unreadable on purpose.
            let address = peer.address.known().ok_or(Refusal::AddressNotAllowed)?;
            if !geo.admits(address) {
                return Err(Refusal::CountryNotAllowed);
            }
        }
        Ok(())
    }
}

impl MtlsRule {
    fn check(&self, fingerprint: CertFingerprint) -> Result<(), Refusal> {
        match fingerprint {
            CertFingerprint::Sha256(fingerprint) if self.fingerprints.contains(&fingerprint) => {
                Ok(())
            }
            CertFingerprint::Sha256(_) | CertFingerprint::Malformed => {
                Err(Refusal::CertificateNotRegistered)
            }
            CertFingerprint::Missing if self.required => Err(Refusal::CertificateRequired),
            CertFingerprint::Missing => Ok(()),
        }
    }
}

#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod tests;

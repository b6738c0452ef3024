//! The typed shape of `config.toml`, with its defaults.

use serde::Deserialize;

use super::credentials::{PreviousCredentials, RotationConfig, WebhookSigning};
use super::schemas::SchemaConfig;
use super::security::{GeoIpConfig, Network, SecurityConfig};
use super::tokens::TokenConfig;
use super::{ConfigString, LimitsConfig, RedisConfig, WebhookConfig, WebhookUrl};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `development` or `production` (stricter start-up checks).
    #[serde(default)]
    pub environment: Environment,
    /// `text` (the default) or `json`: how log lines are written.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Which log lines are written: a level (`info`, the default) or filter directives
    /// (`info,relay::connections=debug`); `RUST_LOG` wins when it is set.
    #[serde(default = "default_log_level")]
    pub log_level: ConfigString,
    /// Where and how the server listens.
    #[serde(default)]
    pub server: ServerConfig,
    /// The apps this server hosts.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// `[metrics]`: the Prometheus listener; absent, no metrics are served.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[redis]`: multi-node scale-out; absent, a single node in memory.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// `[geoip]`: the country database of the apps' geo rules.
    #[serde(default)]
    pub geoip: Option<GeoIpConfig>,
    /// `[store]`: where state that outlives the process is kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// The browser console's accounts.
    #[serde(default)]
    pub admins: Vec<super::AdminConfig>,
    /// Whether every admin must have a second factor (`totp_secret`).
    #[serde(default)]
    pub require_2fa: bool,
    /// The folder of the configuration file, which relative paths in it are relative to.
    #[serde(skip)]
    pub config_dir: std::path::PathBuf,
}

/// `[metrics]`: where `GET /metrics` is served, on a listener of its own (an operator's, not
/// the clients': loopback by default).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to bind.
    pub host: ConfigString,
    /// Port to bind (0 picks a free one).
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            host: ConfigString::from("127.0.0.1"),
            port: 9601,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file (created if missing); a relative path is relative to the
    /// configuration file's folder.
    pub path: ConfigString,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: ConfigString::from("relay-state.db"),
        }
    }
}

impl StoreConfig {
    /// The file's path, a relative one taken from `config_dir`.
    pub fn path_in(&self, config_dir: &std::path::Path) -> std::path::PathBuf {
        config_dir.join(self.path.as_str())
    }
}

fn default_log_level() -> ConfigString {
    ConfigString::from("info")
}

/// `log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The deployment environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development: the bundled example credentials are allowed.
    #[default]
    Development,
    /// Production: weak or example secrets are refused at start-up.
    Production,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: ConfigString,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Worker threads; absent: one per core.
    pub workers: Option<usize>,
    /// This node's ceiling of open WebSocket connections, all apps together (an app's own
    /// `max_connections` counts across the cluster); over it a client is closed with 4100 and
    /// backs off. Absent: no ceiling but the process's file limit.
    pub max_connections: Option<usize>,
    /// Largest WebSocket message accepted from a client, in bytes; larger ones close with 1009.
    pub max_frame_size: usize,
    /// Seconds to wait for a pong after pinging an idle client, then close 4201.
    pub pong_timeout: u64,
    /// Seconds a graceful shutdown may take before remaining connections are dropped.
    pub shutdown_timeout: u64,
    /// Frames queued per connection before a slow client is closed with 4100.
    pub outbound_queue_size: usize,
    /// Bytes per connection, queued plus refused by its socket, that a client which has fallen
    /// behind may have waiting before it is closed with 4100.
    pub outbound_queue_bytes: usize,
    /// Largest HTTP API request body, in bytes; larger ones get 413 before being read whole.
    pub max_request_size: usize,
    /// Seconds an HTTP API request may take to send its body (408 after).
    pub request_body_timeout: u64,
    /// Bytes of HTTP API bodies being received at once, across all requests; a request that
    /// would go over gets 503 with `Retry-After`.
    pub max_pending_request_bytes: usize,
    /// Seconds an HTTP API `auth_timestamp` may differ from the server's clock.
    pub max_auth_timestamp_skew: u64,
    /// Proxies whose `X-Forwarded-For` is believed, for apps that name none of their own (and
    /// for requests to unknown apps).
    pub trusted_proxies: Vec<Network>,
    /// `[server.tls]`: TLS termination (wss:// and https:// on the same port); absent, plain.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), leaf first; a relative path is relative to the
    /// configuration file's folder. Reloaded when the file changes.
    pub cert: ConfigString,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: ConfigString,
    /// The CA (PEM) whose certificates the client-certificate listener requires.
    pub client_ca: Option<ConfigString>,
    /// The port of that listener (on `[server] host`; 0 picks a free one).
    pub client_port: Option<u16>,
}

impl TlsConfig {
    /// The certificate file, a relative path taken from `config_dir`.
    pub fn cert_path(&self, config_dir: &std::path::Path) -> std::path::PathBuf {
        config_dir.join(self.cert.as_str())
    }

    /// The key file, a relative path taken from `config_dir`.
    pub fn key_path(&self, config_dir: &std::path::Path) -> std::path::PathBuf {
        config_dir.join(self.key.as_str())
    }

    /// The client CA file and the port of its listener, when both are set.
    pub fn client_listener(
        &self,
        config_dir: &std::path::Path,
    ) -> Option<(std::path::PathBuf, u16)> {
        let ca = self.client_ca.as_ref()?;
        Some((config_dir.join(ca.as_str()), self.client_port?))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: ConfigString::from("127.0.0.1"),
            port: 6001,
            workers: None,
            max_connections: None,
            max_frame_size: 64 * 1024,
            pong_timeout: 30,
            shutdown_timeout: 10,
            outbound_queue_size: 1024,
            outbound_queue_bytes: 1024 * 1024,
            max_request_size: 1024 * 1024,
            request_body_timeout: 10,
            max_pending_request_bytes: 64 * 1024 * 1024,
            max_auth_timestamp_skew: 600,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app id used by the HTTP API (digits, for the official Python SDK).
    pub id: ConfigString,
    /// The public key clients connect with.
    pub key: ConfigString,
    /// The signing secret; use `${VAR}` to keep it out of the file.
    pub secret: ConfigString,
    /// A disabled app refuses connections with 4003.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether clients may send `client-*` events.
    #[serde(default)]
    pub enable_client_messages: bool,
    /// Connections must sign in (or subscribe to a private or presence channel) within
    /// `user_authentication_timeout`, or be closed with 4009.
    #[serde(default)]
    pub enable_user_authentication: bool,
    /// Seconds a connection has to authorize itself when `enable_user_authentication` is on.
    #[serde(default = "defaults::user_authentication_timeout")]
    pub user_authentication_timeout: u64,
    /// `pusher_internal:subscription_count` on subscribe and unsubscribe (non-presence
    /// channels).
    #[serde(default)]
    pub enable_subscription_count: bool,
    /// Watchlist events: signed-in users are told when the users they watch come and go.
    #[serde(default)]
    pub enable_watchlist_events: bool,
    /// Connections allowed at once on this node; absent: unlimited.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Members (distinct users) allowed in one presence channel.
    #[serde(default = "defaults::max_presence_members")]
    pub max_presence_members: usize,
    /// Largest `user_info` of a presence member, in bytes.
    #[serde(default = "defaults::max_presence_member_size")]
    pub max_presence_member_size: usize,
    /// Largest event `data`, in bytes.
    #[serde(default = "defaults::max_event_size")]
    pub max_event_size: usize,
    /// Longest channel name, in characters.
    #[serde(default = "defaults::max_channel_name_length")]
    pub max_channel_name_length: usize,
    /// Channels one connection may be subscribed to at once.
    #[serde(default = "defaults::max_channels_per_connection")]
    pub max_channels_per_connection: usize,
    /// Seconds of client silence before the server pings; also sent in the handshake.
    #[serde(default = "defaults::activity_timeout")]
    pub activity_timeout: u64,
    /// Client events one connection may send per second.
    #[serde(default = "defaults::max_client_events_per_second")]
    pub max_client_events_per_second: u32,
    /// Channels one HTTP trigger may name.
    #[serde(default = "defaults::max_event_channels")]
    pub max_event_channels: usize,
    /// Events one `batch_events` call may carry.
    #[serde(default = "defaults::max_batch_size")]
    pub max_batch_size: usize,
    /// Longest event name, in characters (HTTP API events and client events).
    #[serde(default = "defaults::max_event_name_length")]
    pub max_event_name_length: usize,
    /// Seconds a cache channel keeps its last event.
    #[serde(default = "defaults::cache_ttl")]
    pub cache_ttl: u64,
    /// `[[apps.webhooks]]`: the endpoints that receive this app's webhooks.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Milliseconds a webhook event may wait for others to share its request; 0 sends each
    /// event on its own, as Pusher does unless batching is turned on.
    #[serde(default)]
    pub webhook_batch_window_ms: u64,
    /// Most events in one webhook request.
    #[serde(default = "defaults::webhook_batch_max_events")]
    pub webhook_batch_max_events: usize,
    /// Webhook requests waiting per endpoint; beyond that, new ones are dropped (logged and
    /// counted), so a receiver that is down costs only its own queue.
    #[serde(default = "defaults::webhook_queue_size")]
    pub webhook_queue_size: usize,
    /// Milliseconds `channel_vacated` and `member_removed` wait; they are cancelled (with the
    /// matching `channel_occupied`/`member_added`) when the channel or user is back in time.
    #[serde(default = "defaults::webhook_vacate_delay_ms")]
    pub webhook_vacate_delay_ms: u64,
    /// Keeps accepted webhook batches in the state store until they are delivered, so a
    /// crash or restart loses none (always so with `[redis]`, where another node delivers
    /// them).
    #[serde(default)]
    pub webhook_durable: bool,
    /// `[apps.security]`: the app's network rules.
    #[serde(default)]
    pub security: Option<SecurityConfig>,
    /// `[apps.limits]`: the app's rate limits and quotas.
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
    /// `[[apps.schemas]]`: JSON Schemas its events' data must satisfy, by channel prefix.
    #[serde(default)]
    pub schemas: Vec<SchemaConfig>,
    /// `[[apps.tokens]]`: the app's API tokens (hashes, scopes, expiry).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// `[[apps.previous_credentials]]`: earlier key/secret pairs, accepted until their
    /// `valid_until`.
    #[serde(default)]
    pub previous_credentials: Vec<PreviousCredentials>,
    /// Which valid pair signs webhooks: the oldest (default) or the newest.
    #[serde(default)]
    pub webhook_signing: WebhookSigning,
    /// The secret's automatic rotation, if any.
    #[serde(default)]
    pub rotation: Option<RotationConfig>,
    /// Where each rotation is announced (a signed notice without the secret).
    #[serde(default)]
    pub rotation_webhook: Option<WebhookUrl>,
}

fn yes() -> bool {
    true
}

mod defaults {
    pub fn max_presence_members() -> usize {
        100
    }
    pub fn max_presence_member_size() -> usize {
        1024
    }
    pub fn max_event_size() -> usize {
        10 * 1024
    }
    pub fn max_channel_name_length() -> usize {
        164
    }
    pub fn max_channels_per_connection() -> usize {
        1000
    }
    pub fn activity_timeout() -> u64 {
        120
    }
    pub fn max_client_events_per_second() -> u32 {
        10
    }
    pub fn max_event_channels() -> usize {
        100
    }
    pub fn max_batch_size() -> usize {
        10
    }
    pub fn max_event_name_length() -> usize {
        200
    }
    pub fn user_authentication_timeout() -> u64 {
        30
    }
    pub fn cache_ttl() -> u64 {
        30 * 60
    }
    pub fn webhook_batch_max_events() -> usize {
        100
    }
    pub fn webhook_queue_size() -> usize {
        1000
    }
    pub fn webhook_vacate_delay_ms() -> u64 {
        3000
    }
}

//! The state every connection and request handler shares: the apps, this node's hub, the
//! adapter, the settings from `[server]`, the request-body budget and the shutdown signal.
//!
//! It sits below `ws` and `http`, which both use it, and above the modules it is built from;
//! `server` assembles it and runs the listeners. (It lived in `server`, which `ws` and `http`
//! then imported back: a cycle.)

pub mod credentials;
mod lockdowns;
mod node_connections;
mod pending_bodies;
pub mod sync;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use node_connections::{NodeConnections, NodeSlot};
pub use pending_bodies::{OverBudget, PendingBodies, Reservation};

use crate::adapter::{self, Adapter};
use crate::apps::{AppRegistry, Apps};
use crate::config::{AppConfig, Config};
use crate::guard::{Guard, GuardError};
use crate::hub::{Hub, OutboxLimits};
use crate::store::{self, Store, StoreError};
use crate::webhooks::{self, Journal, WebhookSinks, WebhookTasks, WebhookWiring};

/// Why the shared state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An app's security rules cannot be used (no readable country database, unknown
    /// detectors, a schema that cannot be read or compiled).
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The state store cannot be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster adapter cannot be built (an unusable `[redis] url`).
    #[error(transparent)]
    Adapter(#[from] adapter::AdapterError),
}

/// Settings from `[server]` that handlers need.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest WebSocket message accepted, in bytes.
    pub max_frame_size: usize,
    /// How long to wait for any frame after pinging an idle client.
    pub pong_timeout: Duration,
    /// What one connection's outbox may hold before it is closed as too slow.
    pub outbox_limits: OutboxLimits,
    /// How long an HTTP API request may take to send its body.
    pub request_body_timeout: Duration,
    /// Seconds an HTTP API `auth_timestamp` may differ from the server's clock.
    pub max_auth_timestamp_skew: u64,
    /// Largest HTTP API request body, in bytes.
    pub max_request_size: usize,
}

/// Everything the request handlers share.
pub struct ServerState {
    /// The hosted apps (shared with the webhook deliveries, which sign as the registry's app).
    pub apps: Arc<Apps>,
    /// Cluster fan-out and cluster-wide state: the only door to subscriptions (this node's
    /// are in the hub the adapter was built on).
    pub adapter: Arc<dyn Adapter>,
    /// This node's subscriptions, read here only by the metrics (everything else goes through
    /// the adapter).
    pub hub: Arc<Hub>,
    /// Where each app's webhook events go (the adapter raises occupancy and membership; the
    /// WebSocket layer client events).
    pub webhooks: WebhookSinks,
    /// What a reload builds a changed app's webhooks with.
    pub webhook_wiring: WebhookWiring,
    /// Settings from `[server]`.
    pub settings: ServerSettings,
    /// The bytes of HTTP API bodies being received, bounded server-wide.
    pub pending_bodies: PendingBodies,
    /// This node's open WebSocket connections, under `server.max_connections`.
    pub node_connections: NodeConnections,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// The apps' security rules.
    pub guard: Guard,
    /// The state store, opened at start-up when an app needs it (API tokens, previous or
    /// rotated credentials, a daily message quota), its file exists or it is on Redis;
    /// otherwise the sync opens the file once a CLI command has made it or a security event
    /// waits for it (see `sync::run`), and it is kept here from then on.
    store: std::sync::OnceLock<Arc<dyn Store>>,
    /// Where the state store's file is.
    pub store_path: PathBuf,
}

impl ServerState {
    /// Builds the shared state for a single node, with the webhook tasks that still have to
    /// be started ([`RunningWebhooks::start`]) on an actix runtime. Fails when an app's geo
    /// rule has no readable country database, or the state store cannot be opened.
    pub fn new(config: &Config) -> Result<(Self, WebhookTasks), StartError> {
        let guard = Guard::from_config(config)?;
        let store_path = config.store.path_in(&config.config_dir);
        let store = if needs_store(config) {
            Some(store::open(config)?)
        } else {
            store::open_existing(config)?
        };
        let apps = Arc::new(Apps::new(AppRegistry::from_config(config)));
        let mut sinks = HashMap::new();
        let mut workers = WebhookTasks::default();
        // A cluster keeps every app's accepted batches (a survivor delivers a dead node's);
        // one node those of apps with `webhook_durable`.
        let clustered = config.redis.is_some();
        let journaled = |app: &AppConfig| webhooks::journaled(app, clustered);
        let journal = match &store {
            Some(store) if config.apps.iter().any(journaled) => {
                let (journal, writer) = Journal::new();
                Some((journal, writer, store.clone()))
            }
            _ => None,
        };
        let webhook_wiring = WebhookWiring::new(
            journal.as_ref().map(|(journal, _, _)| journal.clone()),
            clustered,
            apps.clone(),
        );
        for app_config in &config.apps {
            let Some(app) = apps.by_id(app_config.id.as_str()) else {
                continue;
            };
            if let Some((sink, app_workers)) = webhook_wiring.build(&app, app_config, None) {
                sinks.insert(app.id.clone(), sink);
                workers.apps.push(app_workers);
            }
        }
        let redelivery = webhook_wiring.redelivery().clone();
        workers.journal = journal.map(|(_, writer, store)| (writer, store, redelivery));
        let webhooks = WebhookSinks::new(sinks);
        let hub = Arc::new(Hub::counting_deliveries(guard.daily_quotas.by_app()));
        let pong_timeout = Duration::from_secs(config.server.pong_timeout);
        let adapter = adapter::from_config(config, hub.clone(), webhooks.clone())?;
        if let Some(rates) = adapter.cluster_rates() {
            guard.count_across_cluster(rates);
        }
        let state = ServerState {
            apps,
            adapter,
            hub,
            webhooks,
            webhook_wiring,
            settings: ServerSettings {
                max_frame_size: config.server.max_frame_size,
                pong_timeout,
                outbox_limits: OutboxLimits {
                    frames: config.server.outbound_queue_size,
                    bytes: config.server.outbound_queue_bytes,
                },
                request_body_timeout: Duration::from_secs(config.server.request_body_timeout),
                max_auth_timestamp_skew: config.server.max_auth_timestamp_skew,
                max_request_size: config.server.max_request_size,
            },
            pending_bodies: PendingBodies::new(config.server.max_pending_request_bytes),
            node_connections: NodeConnections::new(config.server.max_connections),
            shutdown: CancellationToken::new(),
            guard,
            store: std::sync::OnceLock::new(),
            store_path,
        };
        if let Some(store) = store {
            match sync::load(&state, store.as_ref()) {
                Ok(()) => {}
                // What the apps keep there is unknown (revoked tokens among it): not serving
                // is the safe side. Without such state a cluster node serves, and its sync
                // reads the store as soon as Redis answers.
                Err(error) if needs_store(config) || config.redis.is_none() => {
                    return Err(error.into());
                }
                Err(error) => {
                    warn!(%error, "cannot read the state store yet; retrying at each sync")
                }
            }
            state.set_store(store);
        }
        Ok((state, workers))
    }

    /// The state store, once it is open.
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.get().cloned()
    }

    /// Keeps the store opened after start-up (a later call changes nothing).
    pub fn set_store(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
    }
}

/// Whether an app keeps state in the store: API tokens (revocations, uses), previous pairs
/// (their uses), a rotation schedule or a daily message quota (its count).
fn needs_store(config: &Config) -> bool {
    config.apps.iter().any(|app| {
        !app.tokens.is_empty()
            || !app.previous_credentials.is_empty()
            || app.rotation.is_some()
            || (app.webhook_durable && !app.webhooks.is_empty())
            || app
                .limits
                .as_ref()
                .is_some_and(|limits| limits.daily_messages.is_some())
    })
}

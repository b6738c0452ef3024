//! Relay: a Pusher-compatible channels server.
//!
//! Existing Pusher clients (pusher-js, Laravel Echo, the mobile SDKs) connect to Relay by
//! changing only host and port.
//!
//! # Layout
//! - [`config`]: the `config.toml` schema, `${VAR}` interpolation, validation.
//! - [`apps`]: the app registry and credential checks.
//! - [`protocol`]: the Pusher wire format (frames, channel names, signatures, codes); no I/O.
//! - [`hub`]: who is subscribed where on this node, presence rosters, bounded outbound queues.
//! - [`adapter`]: how a publish reaches every node and how cluster-wide questions are answered.
//! - [`ws`]: the `/app/{key}` WebSocket endpoint, one task per connection.
//! - [`http`]: the Pusher HTTP API (`/apps/{id}/…`), its authentication extractor, health.
//! - [`logging`]: the log's format and filter (client-triggered actix-http targets silenced),
//!   every line redacted.
//! - [`metrics`]: Prometheus counters and gauges, served on the `[metrics]` listener.
//! - [`guard`]: the security policy of both edges (IP, geo, mTLS and origin rules, tokens,
//!   rate limits and quotas, bans, lockdown, secret scanning, channel schemas).
//! - [`activity`]: security events, folded per address and window for the activity log.
//! - [`webhooks`]: signed, delayed, batched and retried webhooks to the app backends.
//! - [`state`]: the state handlers share (apps, hub, adapter, settings, body budget), below
//!   `ws` and `http`.
//! - [`store`]: state that outlives the process (token revocations and uses, rotated pairs,
//!   daily message counts): SQLite on one node, Redis in a cluster.
//! - [`server`]: assembling and running the server, graceful shutdown.
//! - [`token_cli`]: `relay token create`, a new API token and its `[[apps.tokens]]` block.
//! - [`security_cli`]: `relay security events | resolve`, the activity log for an admin.
//! - [`health_cli`]: `relay health`, a container health check of `GET /ready` without curl.
//!
//! The path of a message: a publisher (a client event or an HTTP API trigger) serializes the
//! frame once and hands it to the [`adapter::Adapter`]; the adapter reaches every node's
//! [`hub::Hub`], which pushes the same bytes into each subscriber's bounded queue; each
//! connection's task writes its queue to the socket.

pub mod activity;
pub mod adapter;
pub mod admin_cli;
pub mod admins;
pub mod apps;
pub mod config;
pub mod guard;
pub mod health_cli;
pub mod http;
pub mod hub;
pub mod keys_cli;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod reload;
pub mod secrets_cli;
pub mod security_cli;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod token_cli;
pub mod webhooks;
pub mod ws;

//! Assembles and runs the HTTP/WebSocket server, and shuts it down gracefully.
//!
//! Shutdown (SIGTERM or SIGINT): new connections stop being accepted, every client is closed
//! with 4200 ("reconnect now", so it moves to another node), and the process exits once the
//! connections are gone or `server.shutdown_timeout` has passed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App as ActixApp, HttpRequest, HttpResponse, HttpServer, http::header, web};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::adapter::{Adapter, LocalAdapter};
use crate::apps::AppRegistry;
use crate::config::Config;
use crate::hub::Hub;
use crate::{http, ws};

/// Settings from `[server]` that handlers need.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Largest WebSocket message accepted, in bytes.
    pub max_frame_size: usize,
    /// How long to wait for any frame after pinging an idle client.
    pub pong_timeout: Duration,
    /// Frames queued per connection before it is closed as too slow.
    pub outbound_queue_size: usize,
    /// How long one frame may wait for room in the socket before the client counts as stuck.
    pub send_timeout: Duration,
    /// Seconds an HTTP API `auth_timestamp` may differ from the server's clock.
    pub max_auth_timestamp_skew: u64,
}

/// Everything the request handlers share.
pub struct ServerState {
    /// The hosted apps.
    pub apps: AppRegistry,
    /// This node's subscriptions.
    pub hub: Arc<Hub>,
    /// Cluster fan-out and cluster-wide state.
    pub adapter: Arc<dyn Adapter>,
    /// Settings from `[server]`.
    pub settings: ServerSettings,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
}

impl ServerState {
    /// Builds the shared state for a single node.
    pub fn new(config: &Config) -> Self {
        let hub = Arc::new(Hub::default());
        let pong_timeout = Duration::from_secs(config.server.pong_timeout);
        ServerState {
            apps: AppRegistry::from_config(config),
            adapter: Arc::new(LocalAdapter::new(hub.clone())),
            hub,
            settings: ServerSettings {
                max_frame_size: config.server.max_frame_size,
                pong_timeout,
                outbound_queue_size: config.server.outbound_queue_size,
                send_timeout: pong_timeout,
                max_auth_timestamp_skew: config.server.max_auth_timestamp_skew,
            },
            shutdown: CancellationToken::new(),
        }
    }
}

/// Serves until a shutdown signal, printing `relay: listening on <addr>` to stdout once bound.
pub async fn serve(config: Config) -> io::Result<()> {
    let state = web::Data::new(ServerState::new(&config));
    let app_state = state.clone();
    let max_request_size = config.server.max_request_size;
    let mut server = HttpServer::new(move || {
        ActixApp::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(max_request_size))
            .configure(ws::configure)
            .configure(http::configure)
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .shutdown_timeout(config.server.shutdown_timeout);
    if let Some(workers) = config.server.workers {
        server = server.workers(workers);
    }
    let server = server.bind((config.server.host.as_str(), config.server.port))?;
    announce(&server.addrs());
    let running = server.run();
    let handle = running.handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: closing connections with 4200");
        state.shutdown.cancel();
        handle.stop(true).await;
    });
    running.await
}

fn announce(addrs: &[SocketAddr]) {
    use std::io::Write;
    let mut stdout = io::stdout().lock();
    for addr in addrs {
        let _ = writeln!(stdout, "relay: listening on {addr}");
    }
    let _ = stdout.flush();
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Unknown paths: a WebSocket upgrade is closed with 4005, anything else gets a JSON 404.
async fn not_found(req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        ws::path_not_found(req).await
    } else {
        Ok(HttpResponse::NotFound().json(serde_json::json!({"error": "Not found"})))
    }
}

//! Assembles and runs the HTTP/WebSocket server, and shuts it down gracefully.
//!
//! Shutdown (SIGTERM or SIGINT): new connections stop being accepted, every client is closed
//! with 4200 ("reconnect now", so it moves to another node), and once the connections are gone
//! or `server.shutdown_timeout` has passed, pending webhooks get up to `shutdown_timeout` more
//! before the process exits.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::error::DispatchError;
use actix_http::{HttpService, Request, h1};
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, ServiceFactory, ServiceFactoryExt, apply_fn_factory, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use actix_web::{App as ActixApp, HttpResponse, web};
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::http;
use crate::reload::{ConfigSource, Reloader};
use crate::state::ServerState;
use crate::tls::{Certificates, VerifiedCertificate};
use crate::webhooks::RunningWebhooks;
use crate::ws::{self, Transport};

/// Connections the kernel may queue before Relay accepts them (actix-web's default; Rust's
/// standard `TcpListener::bind` would use 128, which a burst of reconnecting clients overflows).
const LISTEN_BACKLOG: i32 = 2048;

/// How long an HTTP client may take to close its side after a response that ends the
/// connection (actix-web's default), so that the response is not lost to a reset.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves until a shutdown signal, printing `relay: listening on <addr>` to stdout once bound.
///
/// The HTTP API runs as an actix-web app; WebSocket upgrades are handed, socket and all, to
/// [`ws::serve`] through actix-http's upgrade hook, which is why the server is assembled from
/// actix-server and actix-http here rather than with `actix_web::HttpServer`.
///
/// `config` is what `source` held at start (its overrides laid over it); `source` is read
/// again on SIGHUP and when the file changes ([`crate::reload`]).
pub async fn serve(config: Config, source: ConfigSource) -> io::Result<()> {
    let (state, webhook_workers) = ServerState::new(&config)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))?;
    let state = web::Data::new(state);
    if let Err(error) = state.adapter.start().await {
        warn!(%error, "the cluster adapter did not start; serving this node's clients only");
    }
    let listeners = listen(config.server.host.as_str(), config.server.port)?;
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout);
    if let Some(workers) = config.server.workers {
        builder = builder.workers(workers);
    }
    let stop_watching = CancellationToken::new();
    let mut client_listener = None;
    let tls = match &config.server.tls {
        Some(tls) => {
            let dir = &config.config_dir;
            let certificates = Arc::new(
                Certificates::load(tls.cert_path(dir), tls.key_path(dir)).map_err(invalid)?,
            );
            let acceptor = TlsAcceptor::from(certificates.server_config().map_err(invalid)?);
            if let Some((ca, port)) = tls.client_listener(dir) {
                let config = certificates.client_server_config(&ca).map_err(invalid)?;
                client_listener = Some((TlsAcceptor::from(config), port));
            }
            actix_web::rt::spawn(certificates.watch(stop_watching.clone()));
            Some(acceptor)
        }
        None => None,
    };
    let mut addrs = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let addr = listener.local_addr()?;
        let app_state = state.clone();
        builder = match tls.clone() {
            None => builder.listen("relay", listener, move || plain(app_state.clone(), addr))?,
            Some(acceptor) => builder.listen("relay", listener, move || {
                over_tls(acceptor.clone(), app_state.clone(), addr)
            })?,
        };
        addrs.push(addr);
    }
    let mut client_addrs = Vec::new();
    if let Some((acceptor, port)) = client_listener {
        for listener in listen(config.server.host.as_str(), port)? {
            let addr = listener.local_addr()?;
            let (acceptor, app_state) = (acceptor.clone(), state.clone());
            builder = builder.listen("relay-client-certificates", listener, move || {
                with_client_certificates(acceptor.clone(), app_state.clone(), addr)
            })?;
            client_addrs.push(addr);
        }
    }
    let metrics_addrs = match &config.metrics {
        Some(metrics) => {
            let registry = Arc::new(crate::metrics::exposition::registry(
                state.clone().into_inner(),
            ));
            let mut bound = Vec::new();
            for listener in listen(metrics.host.as_str(), metrics.port)? {
                let addr = listener.local_addr()?;
                let registry = registry.clone();
                builder = builder.listen("metrics", listener, move || {
                    metrics_service(registry.clone(), addr)
                })?;
                bound.push(addr);
            }
            bound
        }
        None => Vec::new(),
    };
    let server = builder.run();
    let webhooks = Arc::new(RunningWebhooks::start(webhook_workers));
    let stop_reloading = CancellationToken::new();
    let reloader = Reloader::new(
        state.clone().into_inner(),
        source,
        config.clone(),
        webhooks.clone(),
    );
    let reloading = actix_web::rt::spawn(reloader.run(stop_reloading.clone()));
    let stop_sync = CancellationToken::new();
    let sync = actix_web::rt::spawn(crate::state::sync::run(
        state.clone().into_inner(),
        stop_sync.clone(),
    ));
    let listening = Listening {
        clients: addrs,
        client_certificates: client_addrs,
        metrics: metrics_addrs,
    };
    announce(&listening);
    log_start(&config, &state, &listening);
    let handle = server.handle();
    let adapter = state.adapter.clone();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: closing connections with 4200");
        state.shutdown.cancel();
        handle.stop(true).await;
    });
    let served = server.await;
    stop_watching.cancel();
    stop_reloading.cancel();
    let _ = reloading.await;
    adapter.shutdown().await;
    // The last token uses go to the store.
    stop_sync.cancel();
    let _ = sync.await;
    // The connections are gone: their channel_vacated and member_removed go out now.
    let flush_limit = Duration::from_secs(config.server.shutdown_timeout);
    webhooks.flush(flush_limit).await;
    served
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
}

/// One worker's service on a plain listener bound to `addr`.
fn plain(
    state: web::Data<ServerState>,
    addr: SocketAddr,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    fn_service(|io: TcpStream| {
        let _ = io.set_nodelay(true);
        let peer_addr = io.peer_addr().ok();
        std::future::ready(Ok((io, peer_addr)))
    })
    .and_then(http_service::<TcpStream>(state, addr, None))
}

/// One worker's service on a TLS listener bound to `addr`: the handshake (bounded by
/// [`TLS_HANDSHAKE_TIMEOUT`]; a failed one just ends the connection), then HTTP as on a plain
/// listener.
fn over_tls(
    acceptor: TlsAcceptor,
    state: web::Data<ServerState>,
    addr: SocketAddr,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    tls_handshake(acceptor).and_then(http_service::<TlsStream<TcpStream>>(state, addr, None))
}

/// One worker's service on the client-certificate listener bound to `addr`: as
/// [`over_tls`], with the verified certificate's fingerprint handed to every request of the
/// connection.
fn with_client_certificates(
    acceptor: TlsAcceptor,
    state: web::Data<ServerState>,
    addr: SocketAddr,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    let verified: ConnectHook<TlsStream<TcpStream>> = |stream, data| {
        if let Some(certificate) = VerifiedCertificate::of(stream.get_ref().1.peer_certificates()) {
            data.insert(certificate);
        }
    };
    tls_handshake(acceptor).and_then(http_service::<TlsStream<TcpStream>>(
        state,
        addr,
        Some(verified),
    ))
}

/// What a connection's stream may put into the data every request on it gets.
type ConnectHook<T> = fn(&T, &mut actix_http::Extensions);

/// The TLS handshake of a new connection, bounded by [`TLS_HANDSHAKE_TIMEOUT`].
fn tls_handshake(
    acceptor: TlsAcceptor,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (TlsStream<TcpStream>, Option<SocketAddr>),
    Error = DispatchError,
    InitError = (),
> {
    fn_service(move |io: TcpStream| {
        let acceptor = acceptor.clone();
        async move {
            let _ = io.set_nodelay(true);
            let peer_addr = io.peer_addr().ok();
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                Ok(Ok(stream)) => Ok((stream, peer_addr)),
                Ok(Err(error)) => Err(DispatchError::Io(error)),
                Err(_) => Err(DispatchError::Io(io::ErrorKind::TimedOut.into())),
            }
        }
    })
}

/// One worker's HTTP service on the listener bound to `addr`, over streams of type `T`: the
/// API app, with WebSocket upgrades handed to [`upgrade`].
fn http_service<T: Transport>(
    state: web::Data<ServerState>,
    addr: SocketAddr,
    on_connect: Option<ConnectHook<T>>,
) -> impl ServiceFactory<
    (T, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
> {
    let api = ActixApp::new()
        .app_data(state.clone())
        .wrap(actix_web::middleware::from_fn(http::count_calls))
        .configure(http::configure)
        .default_service(web::to(not_found))
        .into_factory()
        .map_err(|error| error.error_response());
    let ws_state = state.into_inner();
    let expect_state = ws_state.clone();
    let mut builder = HttpService::build()
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .local_addr(addr);
    if let Some(hook) = on_connect {
        builder = builder.on_connect_ext(hook);
    }
    let h1 = builder
        // `100 Continue` only for a request whose head passes authentication.
        .expect(fn_service(move |req: Request| {
            let state = expect_state.clone();
            // Boxed: actix-http keeps this future's type inline in every connection's
            // dispatcher, which a WebSocket keeps for its whole life; unboxed, the check's
            // state (authentication, a cluster rate-limit count) cost every idle WebSocket
            // 1.8 KiB (connect-10k, docs/benchmarks.md).
            async move { http::expect_continue(&state, req).await }.boxed_local()
        }))
        .upgrade(fn_service(move |(req, framed)| {
            upgrade(ws_state.clone(), req, framed)
        }))
        .h1(apply_fn_factory(
            map_config(api, |()| AppConfig::default()),
            |req, app: &_| http::call_holding_body(app, req),
        ));
    // HTTP/1.1 only (the Pusher protocol needs nothing else): the HTTP/2-capable service
    // would make every connection's future larger by its HTTP/2 handshake state.
    h1
}

/// One worker's service on the `[metrics]` listener bound to `addr`: `GET /metrics` only.
fn metrics_service(
    registry: Arc<prometheus_client::registry::Registry>,
    addr: SocketAddr,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    let app = ActixApp::new()
        .configure(|config| crate::metrics::exposition::configure(config, registry))
        .default_service(web::to(not_found))
        .into_factory()
        .map_err(|error| error.error_response());
    let h1 = HttpService::build()
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .local_addr(addr)
        .h1(map_config(app, |()| AppConfig::default()));
    fn_service(|io: TcpStream| {
        let peer_addr = io.peer_addr().ok();
        std::future::ready(Ok((io, peer_addr)))
    })
    .and_then(h1)
}

/// The upgrade hook: the whole WebSocket connection runs inside this (boxed) future, so
/// actix-server counts it as an open connection until it ends.
fn upgrade<T: Transport>(
    state: Arc<ServerState>,
    req: Request,
    framed: Framed<T, h1::Codec>,
) -> LocalBoxFuture<'static, Result<(), std::convert::Infallible>> {
    Box::pin(async move {
        ws::serve(state, req, framed).await;
        Ok(())
    })
}

/// Binds every address `host` resolves to (both `::1` and `127.0.0.1` for `localhost`, as
/// actix-web does), with address reuse and [`LISTEN_BACKLOG`]; fails only if none binds.
fn listen(host: &str, port: u16) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Socket, Type};
    use std::net::ToSocketAddrs;
    let mut listeners = Vec::new();
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        let bound = Socket::new(Domain::for_address(addr), Type::STREAM, None).and_then(|socket| {
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(socket)
        });
        match bound {
            Ok(socket) => listeners.push(socket.into()),
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) if listeners.is_empty() => Err(error),
        _ if listeners.is_empty() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to bind",
        )),
        _ => Ok(listeners),
    }
}

/// One log line with what this process serves: the version, where, how many apps, and
/// where the cluster state and the state store are (never a password: the Redis address is
/// host and port only).
fn log_start(config: &Config, state: &ServerState, listening: &Listening) {
    let list = |addrs: &[SocketAddr]| {
        let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        if shown.is_empty() {
            "off".to_owned()
        } else {
            shown.join(", ")
        }
    };
    let tls = if config.server.tls.is_some() {
        "on"
    } else {
        "off"
    };
    let client_certificates = list(&listening.client_certificates);
    let metrics = list(&listening.metrics);
    let listening = list(&listening.clients);
    let adapter = match &config.redis {
        Some(redis) => format!("redis {}", redis.display_address()),
        None => "local (one node)".to_owned(),
    };
    let store = match (&config.redis, state.store()) {
        (Some(redis), _) => format!("redis {}", redis.display_address()),
        (None, Some(_)) => format!("sqlite {}", state.store_path.display()),
        (None, None) => format!("none yet ({} once needed)", state.store_path.display()),
    };
    info!(
        version = %env!("CARGO_PKG_VERSION"),
        %listening,
        tls,
        %client_certificates,
        %metrics,
        apps = config.apps.len(),
        %adapter,
        %store,
        "relay started"
    );
}

/// Where this process listens.
struct Listening {
    /// The main listeners (plain or TLS).
    clients: Vec<SocketAddr>,
    /// The client-certificate listeners (`[server.tls] client_port`).
    client_certificates: Vec<SocketAddr>,
    /// The `[metrics]` listeners.
    metrics: Vec<SocketAddr>,
}

/// Says on stdout where clients connect (`relay: listening on ADDR`, which tools read), where
/// clients with certificates do (`relay: client certificates on ADDR`) and where the metrics
/// are (`relay: metrics on ADDR`).
fn announce(listening: &Listening) {
    use std::io::Write;
    let mut stdout = io::stdout().lock();
    for addr in &listening.clients {
        let _ = writeln!(stdout, "relay: listening on {addr}");
    }
    for addr in &listening.client_certificates {
        let _ = writeln!(stdout, "relay: client certificates on {addr}");
    }
    for addr in &listening.metrics {
        let _ = writeln!(stdout, "relay: metrics on {addr}");
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

/// Unknown paths get a JSON 404 (WebSocket upgrades never get here: see [`ws::serve`]).
async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"error": "Not found"}))
}

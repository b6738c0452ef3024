//! Shared test harness: starts the real `relay` binary on a random loopback port and drives it
//! with a raw WebSocket client. Every wait is bounded (see `TIMEOUT`). The server's log goes to
//! a file in its temp dir (`TestServer::log`); `RELAY_TEST_LOG=1` prints it when the server
//! is dropped.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod activity;
pub mod closing_proxy;
pub mod geoip;
pub mod http;
pub mod metrics;
pub mod raw_ws;
pub mod redis;
pub mod webhooks;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Longest any single wait in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The app every test config starts with.
pub const APP_ID: &str = "123456";
pub const APP_KEY: &str = "app-key";
pub const APP_SECRET: &str = "app-secret";

/// `relay --config <config> <args…>`, the real CLI: asserts success, returns stdout.
pub fn relay_cli(config: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run relay");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The default test config: one app with client events on and a generous client-event rate.
pub fn default_config() -> String {
    format!(
        r#"
[server]
host = "127.0.0.1"

[[apps]]
id = "{APP_ID}"
key = "{APP_KEY}"
secret = "{APP_SECRET}"
enable_client_messages = true
"#
    )
}

/// `relay check-config` on `config` (written to a file of its own): whether it passed, and what
/// it said on stderr.
#[allow(dead_code)]
pub fn check_config(config: &str) -> (bool, String) {
    check_config_with_files(config, &[])
}

/// [`check_config`] with `files` beside the config (see [`write_files`]).
pub fn check_config_with_files(config: &str, files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_files(dir.path(), files);
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run relay check-config");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

/// A running server process, killed on drop.
pub struct TestServer {
    child: Child,
    pub port: u16,
    log_path: std::path::PathBuf,
    /// Every line the server printed on stdout.
    announced: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts the server with the default config.
    pub fn start() -> Self {
        Self::start_with(&default_config())
    }

    /// Starts the server with `config` (TOML), on a free port.
    pub fn start_with(config: &str) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Starts the server with `config` and extra environment variables.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(config, env, &[])
    }

    /// Starts the server with `config`, extra environment variables and, beside it, `files`.
    #[allow(dead_code)]
    pub fn start_with_env_and_files(
        config: &str,
        env: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Self {
        Self::start_in(config, env, files)
    }

    /// Starts the server with `config` and, beside it, `files` (relative path and text;
    /// folders are made).
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Self {
        Self::start_in(config, &[], files)
    }

    fn start_in(config: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        write_files(dir.path(), files);
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let log_path = dir.path().join("server.log");
        let stderr = Stdio::from(std::fs::File::create(&log_path).expect("create the server log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--config")
            .arg(&path)
            .arg("--port")
            .arg("0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn relay");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let announced = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = announced.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("relay: listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("server did not announce its address");
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        TestServer {
            child,
            port,
            log_path,
            announced,
            _dir: dir,
        }
    }

    /// The port of the `[metrics]` listener (the config must have one, on port 0).
    #[allow(dead_code)]
    pub fn metrics_port(&self) -> u16 {
        self.announced_port("relay: metrics on ")
    }

    /// The port of the client-certificate listener (`[server.tls] client_port = 0`).
    #[allow(dead_code)]
    pub fn client_certificates_port(&self) -> u16 {
        self.announced_port("relay: client certificates on ")
    }

    /// The port of the first stdout line that starts with `prefix` (they are all printed at
    /// once, with the `listening on` line this server was started by).
    fn announced_port(&self, prefix: &str) -> u16 {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.announced.lock().unwrap().iter().find_map(|line| {
                let addr = line.strip_prefix(prefix)?;
                addr.rsplit(':').next()?.parse().ok()
            });
            if let Some(port) = found {
                return port;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never printed {prefix:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The configuration file the server runs with (the CLI can be pointed at it).
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("config.toml")
    }

    /// Replaces the configuration file with `config` (a reload picks it up once it has held
    /// for a look, or at once with [`Self::sighup`]).
    #[allow(dead_code)]
    pub fn rewrite_config(&self, config: &str) {
        let path = self.config_path();
        let staged = path.with_extension("toml.new");
        std::fs::write(&staged, config).expect("write the new config");
        std::fs::rename(&staged, &path).expect("replace the config");
    }

    /// Sends SIGHUP (reload the configuration).
    #[allow(dead_code)]
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits until the log holds `needle` at least `times` times (bounded by
    /// [`TIMEOUT`] and three configuration looks); returns the log.
    #[allow(dead_code)]
    pub async fn until_logged(&self, needle: &str, times: usize) -> String {
        let deadline = std::time::Instant::now() + TIMEOUT + Duration::from_secs(3);
        loop {
            let log = self.log();
            if log.matches(needle).count() >= times {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never logged {needle:?} {times} time(s):\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The file the server logs to.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.log_path.clone()
    }

    /// What the server has logged so far (with `RELAY_TEST_LOG` set, it is also printed
    /// when the server is dropped).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).expect("read the server log")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, as a crash would: nothing of its shutdown runs.
    pub fn kill_9(&self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns whether it exited successfully.
    pub fn wait_for_exit(&mut self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("RELAY_TEST_LOG").is_some() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            eprintln!("--- server log (port {}) ---\n{log}", self.port);
        }
    }
}

/// Writes each of `files` (a path relative to `dir`, and its text), making folders.
pub fn write_files(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("make the file's folder");
        }
        std::fs::write(&path, text).expect("write the file");
    }
}

/// Lowercase hex HMAC-SHA256, written independently of the server's own code.
pub fn sign(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `auth` for a private channel.
pub fn private_auth(socket_id: &str, channel: &str) -> String {
    format!(
        "{APP_KEY}:{}",
        sign(APP_SECRET, &format!("{socket_id}:{channel}"))
    )
}

/// `auth` for a presence channel with the exact `channel_data` string.
pub fn presence_auth(socket_id: &str, channel: &str, channel_data: &str) -> String {
    let signature = sign(APP_SECRET, &format!("{socket_id}:{channel}:{channel_data}"));
    format!("{APP_KEY}:{signature}")
}

/// The `auth` of a sign-in over `user_data`, signed independently of the server's code.
pub fn user_auth(socket_id: &str, user_data: &str) -> String {
    let signature = sign(APP_SECRET, &format!("{socket_id}::user::{user_data}"));
    format!("{APP_KEY}:{signature}")
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw Pusher-protocol client.
pub struct Client {
    ws: Socket,
    pub socket_id: String,
}

/// A new API token and its `[[apps.tokens]]` block named `name` with `scopes` (none: full
/// access, no `scopes` line).
pub fn api_token(name: &str, scopes: &[&str]) -> (String, String) {
    let token = relay::guard::generate_token();
    let hash = relay::guard::WellFormedToken::parse(&token).unwrap().hash();
    let mut block = format!("[[apps.tokens]]\nname = \"{name}\"\nhash = \"{hash:?}\"\n");
    if !scopes.is_empty() {
        let quoted: Vec<String> = scopes.iter().map(|scope| format!("\"{scope}\"")).collect();
        block += &format!("scopes = [{}]\n", quoted.join(", "));
    }
    (token, block)
}

/// A TCP connection to the server's `port` from the loopback address `source`.
pub async fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let source: std::net::IpAddr = source.parse().expect("a source address");
    socket
        .bind(std::net::SocketAddr::new(source, 0))
        .expect("bind the source address");
    tokio::time::timeout(TIMEOUT, socket.connect(([127, 0, 0, 1], port).into()))
        .await
        .expect("connect timed out")
        .expect("connect failed")
}

/// Opens a WebSocket to `path` of `server` from the loopback address `source`, with extra
/// handshake `headers` (e.g. `Origin`), without reading anything.
pub async fn open_from(
    server: &TestServer,
    source: &str,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.ws_url(path).into_client_request().expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    let stream = connect_from(source, server.port).await;
    let connecting = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
    let (ws, _) = tokio::time::timeout(TIMEOUT, connecting)
        .await
        .expect("handshake timed out")
        .expect("handshake failed");
    ws
}

/// Opens a WebSocket to `url` without reading anything.
pub async fn open(url: &str) -> Socket {
    let (ws, _) = tokio::time::timeout(TIMEOUT, connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

impl Client {
    /// Connects to the default app with protocol 7 and reads `connection_established`.
    pub async fn connect(server: &TestServer) -> Self {
        Self::connect_to(server, APP_KEY).await
    }

    /// Connects to the app with `key` and reads `connection_established`.
    pub async fn connect_to(server: &TestServer, key: &str) -> Self {
        let ws =
            open(&server.ws_url(&format!("/app/{key}?protocol=7&client=js&version=8.4.0"))).await;
        let mut client = Client {
            ws,
            socket_id: String::new(),
        };
        let established = client.recv().await;
        assert_eq!(established["event"], "pusher:connection_established");
        let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
        client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
        client
    }

    /// Wraps an already-open socket (nothing read yet).
    pub fn from_socket(ws: Socket) -> Self {
        Client {
            ws,
            socket_id: String::new(),
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a raw WebSocket message.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next WebSocket message of any kind (bounded wait).
    pub async fn next_message(&mut self) -> Message {
        self.next_message_within(TIMEOUT).await
    }

    /// The next WebSocket message of any kind, waiting at most `limit`.
    pub async fn next_message_within(&mut self, limit: Duration) -> Message {
        tokio::time::timeout(limit, self.ws.next())
            .await
            .expect("no message within the timeout")
            .expect("connection ended")
            .expect("websocket error")
    }

    /// The next text frame as JSON (control frames skipped); panics on close.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(TIMEOUT).await
    }

    /// The next text frame as JSON, each message waited for at most `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Value {
        loop {
            match self.next_message_within(limit).await {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, asserting its event name.
    pub async fn recv_event(&mut self, event: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["event"], event, "unexpected frame {frame}");
        frame
    }

    /// Reads until the close frame (skipping text frames) and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.next_message().await {
                Message::Close(Some(frame)) => return u16::from(frame.code),
                Message::Close(None) => panic!("close frame without a code"),
                _ => continue,
            }
        }
    }

    /// Asserts that the server ends the TCP connection after its close frame (actix-http lingers
    /// for the client's disconnect first, up to `client_disconnect_timeout`, 1 s by default).
    pub async fn expect_disconnect(&mut self) {
        let ended = tokio::time::timeout(TIMEOUT, async {
            loop {
                match self.ws.next().await {
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the server kept the connection open");
    }

    /// Sends `pusher:subscribe` and returns the server's reply.
    pub async fn subscribe_with(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Value {
        let mut data = json!({ "channel": channel });
        if let Some(auth) = auth {
            data["auth"] = json!(auth);
        }
        if let Some(channel_data) = channel_data {
            data["channel_data"] = json!(channel_data);
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.recv().await
    }

    /// Subscribes to a public or private channel (signing as needed) and asserts success.
    pub async fn subscribe(&mut self, channel: &str) {
        let auth = channel
            .starts_with("private-")
            .then(|| private_auth(&self.socket_id, channel));
        let reply = self.subscribe_with(channel, auth.as_deref(), None).await;
        assert_eq!(
            reply["event"], "pusher_internal:subscription_succeeded",
            "{reply}"
        );
        assert_eq!(reply["channel"], channel);
    }

    /// Joins a presence channel with `channel_data` and returns the decoded presence data.
    pub async fn join_presence(&mut self, channel: &str, channel_data: &str) -> Value {
        let auth = presence_auth(&self.socket_id, channel, channel_data);
        let reply = self
            .subscribe_with(channel, Some(&auth), Some(channel_data))
            .await;
        assert_eq!(
            reply["event"], "pusher_internal:subscription_succeeded",
            "{reply}"
        );
        decode_data(&reply)
    }

    /// Signs in as `id` (with a `user_info`) and asserts success.
    pub async fn sign_in(&mut self, id: &str) {
        let user_data = json!({"id": id, "user_info": {"name": id}}).to_string();
        let auth = user_auth(&self.socket_id, &user_data);
        self.send(
            json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}),
        )
        .await;
        let reply = self.recv().await;
        assert_eq!(reply["event"], "pusher:signin_success", "{reply}");
        assert_eq!(reply["data"]["user_data"], user_data.as_str());
    }

    /// Sends a client event.
    pub async fn trigger(&mut self, channel: &str, event: &str, data: Value) {
        self.send(json!({"event": event, "channel": channel, "data": data}))
            .await;
    }

    /// Round-trips a `pusher:ping`: every frame sent to this client before the pong has
    /// been read once this returns, so "nothing arrived" can be asserted without sleeping.
    pub async fn assert_nothing_pending(&mut self) {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let frame = self.recv().await;
        assert_eq!(frame["event"], "pusher:pong", "unexpected frame {frame}");
    }

    /// Closes the connection and waits for the server's close reply.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// Parses a frame's `data`, which is a JSON string for channel and internal events.
pub fn decode_data(frame: &Value) -> Value {
    serde_json::from_str(frame["data"].as_str().expect("data is a string")).expect("data is JSON")
}

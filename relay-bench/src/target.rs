//! The server under test and the app the load tool uses.

use clap::Args;

use relay::protocol::signature::{channel_string_to_sign, presence_string_to_sign, sign};

/// Where the server listens and which app's credentials to use.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server host.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port (WebSocket and HTTP API).
    #[arg(long, global = true, default_value_t = 6001)]
    pub port: u16,
    /// App id (for the HTTP API).
    #[arg(long, global = true, default_value = "123456")]
    pub app_id: String,
    /// App key.
    #[arg(long, global = true, default_value = "app-key")]
    pub key: String,
    /// App secret (signs HTTP API requests and channel auth; never printed).
    #[arg(
        long,
        global = true,
        env = "RELAY_BENCH_SECRET",
        default_value = "app-secret"
    )]
    pub secret: String,
    /// A Relay API token (`rly_…`): HTTP API requests carry `Authorization: Bearer` with it
    /// instead of an HMAC signature (never printed).
    #[arg(long, global = true, env = "RELAY_BENCH_BEARER")]
    pub bearer: Option<String>,
}

impl Target {
    /// The WebSocket path and query a pusher-js client would open.
    pub fn ws_path(&self) -> String {
        format!("/app/{}?protocol=7&client=relay-bench&version=1", self.key)
    }

    /// `host:port`, for the HTTP API connection.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `auth` value for a private channel subscription.
    pub fn private_auth(&self, socket_id: &str, channel: &str) -> String {
        let signed = channel_string_to_sign(socket_id, channel);
        self.auth(&signed)
    }

    /// The `auth` value for a presence subscription with exactly `channel_data`.
    pub fn presence_auth(&self, socket_id: &str, channel: &str, channel_data: &str) -> String {
        let signed = presence_string_to_sign(socket_id, channel, channel_data);
        self.auth(&signed)
    }

    fn auth(&self, signed: &str) -> String {
        let signature = sign(self.secret.as_bytes(), signed.as_bytes());
        format!("{}:{signature}", self.key)
    }
}

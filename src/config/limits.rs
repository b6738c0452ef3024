//! `[apps.limits]`: an app's rate limits and quotas; every key optional, absent = unlimited.
//! Parsed while the file is read (a zero is refused with its line: it would refuse everyone);
//! what the limits do is the `guard`'s.

use std::num::NonZeroU32;

use serde::Deserialize;

/// One `[apps.limits]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// HTTP API requests per second to the app, from everyone together.
    #[serde(default)]
    pub api_requests_per_second: Option<NonZeroU32>,
    /// HTTP API requests per second from one client address (IPv6: one /64).
    #[serde(default)]
    pub api_requests_per_second_per_ip: Option<NonZeroU32>,
    /// Reading HTTP API requests (`GET`) per second to the app.
    #[serde(default)]
    pub read_requests_per_second: Option<NonZeroU32>,
    /// New WebSocket connections per second from one client address (IPv6: one /64).
    #[serde(default)]
    pub connections_per_second_per_ip: Option<NonZeroU32>,
    /// Backend events per second to the app (each channel of a trigger counted).
    #[serde(default)]
    pub events_per_second: Option<NonZeroU32>,
    /// Messages delivered to subscribers per UTC day (each subscriber reached counts one).
    #[serde(default)]
    pub daily_messages: Option<NonZeroU32>,
    /// WebSocket connections open at once from one client address (IPv6: one /64).
    #[serde(default)]
    pub connections_per_ip: Option<NonZeroU32>,
}

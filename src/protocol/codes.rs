//! The Pusher close and error codes Relay sends, and what pusher-js does with each.

/// A Pusher close code (also used as the `code` of a `pusher:error` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 4001: no app has this key (pusher-js: do not reconnect).
    AppNotFound,
    /// 4003: the app is disabled (do not reconnect).
    AppDisabled,
    /// 4004: the app is over its connection quota (do not reconnect).
    OverConnectionQuota,
    /// 4005: the WebSocket path is not `/app/{key}` (do not reconnect).
    PathNotFound,
    /// 4006: the `protocol` parameter is not a number.
    InvalidVersionFormat,
    /// 4007: the protocol version is not supported.
    UnsupportedProtocol,
    /// 4008: no `protocol` parameter.
    NoProtocolVersion,
    /// 4009: the connection is not (or no longer) authorized: it did not sign in in time, or
    /// its user's connections were terminated through the HTTP API (do not reconnect).
    Unauthorized,
    /// 4100: the client could not keep up; reconnect after a back-off.
    OverCapacity,
    /// 4200: reconnect now (graceful server shutdown).
    ReconnectImmediately,
    /// 4201: the client did not answer a ping in time; reconnect now.
    PongNotReceived,
    /// 4301: client event rejected by the rate limit (sent as `pusher:error` only).
    ClientEventRateLimit,
}

impl CloseCode {
    /// The numeric code on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            CloseCode::AppNotFound => 4001,
            CloseCode::AppDisabled => 4003,
            CloseCode::OverConnectionQuota => 4004,
            CloseCode::PathNotFound => 4005,
            CloseCode::InvalidVersionFormat => 4006,
            CloseCode::UnsupportedProtocol => 4007,
            CloseCode::NoProtocolVersion => 4008,
            CloseCode::Unauthorized => 4009,
            CloseCode::OverCapacity => 4100,
            CloseCode::ReconnectImmediately => 4200,
            CloseCode::PongNotReceived => 4201,
            CloseCode::ClientEventRateLimit => 4301,
        }
    }

    /// The short human message sent with the code.
    pub fn message(self) -> &'static str {
        match self {
            CloseCode::AppNotFound => "Application does not exist",
            CloseCode::AppDisabled => "Application is disabled",
            CloseCode::OverConnectionQuota => "Application is over its connection quota",
            CloseCode::PathNotFound => "Path not found; connect to /app/{key}",
            CloseCode::InvalidVersionFormat => "Invalid protocol version format",
            CloseCode::UnsupportedProtocol => "Unsupported protocol version",
            CloseCode::NoProtocolVersion => "No protocol version supplied",
            CloseCode::Unauthorized => "Connection not authorized",
            CloseCode::OverCapacity => "Client could not keep up; reconnect later",
            CloseCode::ReconnectImmediately => "Server is restarting; reconnect",
            CloseCode::PongNotReceived => "Pong reply not received",
            CloseCode::ClientEventRateLimit => "Client event rejected: rate limit exceeded",
        }
    }
}

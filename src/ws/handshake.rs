//! Admission of a new connection: app look-up, the guard's handshake rules (origins, and with
//! `apply_to_websocket` the IP, geo and mTLS rules), bans, the app's lockdown, protocol
//! version, connection quota.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::adapter::ConnectionSlot;
use crate::apps::{App, CredentialUse, Via};
use crate::guard::{PeerHeaders, Refusal};
use crate::protocol::CloseCode;
use crate::state::ServerState;

/// Protocol versions Relay speaks (5 and 6 differ from 7 only in close handling).
const SUPPORTED_PROTOCOLS: std::ops::RangeInclusive<u32> = 5..=7;

/// A connection that passed the handshake.
#[derive(Debug)]
pub(super) struct Admitted {
    /// The app it connected to.
    pub app: Arc<App>,
    /// The client's address, when known.
    pub address: Option<IpAddr>,
    /// Its place in the app's connection quota, held for the connection's lifetime.
    pub slot: ConnectionSlot,
    /// Its place under this node's ceiling (`server.max_connections`).
    pub node_slot: crate::state::NodeSlot,
    /// Its place among its address's open connections (`connections_per_ip`), if limited.
    pub address_slot: Option<crate::guard::AddressSlot>,
    /// Cancelled when the app is locked down, with `lockdown_closes_connections`.
    pub lockdown: Option<CancellationToken>,
}

/// Why a handshake is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// A Pusher protocol reason, sent with its own code and message.
    Protocol(CloseCode),
    /// The app's security rules: 4009 (pusher-js does not reconnect), with the rule's message.
    Guard(Refusal),
    /// A rate limit of `[apps.limits]` (4100: pusher-js backs off and reconnects).
    Limited(crate::guard::Limited),
    /// The app is locked down (4003: pusher-js does not reconnect).
    LockedDown,
    /// The address is banned from the app (4009: pusher-js does not reconnect).
    Banned(crate::guard::Banned),
    /// This node has `server.max_connections` open (4100: pusher-js backs off and reconnects,
    /// through a load balancer most likely to another node).
    NodeFull,
}

impl From<CloseCode> for Refused {
    fn from(code: CloseCode) -> Self {
        Refused::Protocol(code)
    }
}

/// Admits a connection from `peer` to the app with `key`, or says why not.
pub(super) async fn admit(
    state: &ServerState,
    key: &str,
    query: &str,
    peer: &PeerHeaders,
) -> Result<Admitted, Refused> {
    let app = state.apps.by_key(key).ok_or(CloseCode::AppNotFound)?;
    if !app.enabled {
        return Err(CloseCode::AppDisabled.into());
    }
    let client = state.guard.admit_socket(&app.id, peer).map_err(|refusal| {
        tracing::debug!(app = %app.id, %refusal, "handshake refused by the app's security rules");
        Refused::Guard(refusal)
    })?;
    let address = client.address.known();
    state
        .guard
        .check_ban(&app.id, address)
        .map_err(Refused::Banned)?;
    // Taken before the lockdown is looked at, so a lockdown after the look ends this one too;
    // looked at after the network rules, so a refused client does not learn of it.
    let lockdown = state.guard.lockdown_signal(&app.id);
    if state.guard.refuses_for_lockdown(&app.id) {
        return Err(Refused::LockedDown);
    }
    let address_slot = state
        .guard
        .limit_connection(&app.id, address)
        .await
        .map_err(Refused::Limited)?;
    // A key whose pair's grace is over is no key of the app's any more.
    if !app.accepts_key(key, &CredentialUse::now(Via::WebSocket, address)) {
        return Err(CloseCode::AppNotFound.into());
    }
    check_protocol(query)?;
    let node_slot = state.node_connections.try_open().ok_or(Refused::NodeFull)?;
    let slot = state
        .adapter
        .open_connection(&app)
        .await
        .ok_or(CloseCode::OverConnectionQuota)?;
    Ok(Admitted {
        app,
        address,
        slot,
        node_slot,
        address_slot,
        lockdown,
    })
}

/// Checks the `protocol` query parameter; other parameters are ignored.
fn check_protocol(query: &str) -> Result<u32, CloseCode> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("protocol="))
        .ok_or(CloseCode::NoProtocolVersion)?;
    let version: u32 = value.parse().map_err(|_| CloseCode::InvalidVersionFormat)?;
    if SUPPORTED_PROTOCOLS.contains(&version) {
        Ok(version)
    } else {
        Err(CloseCode::UnsupportedProtocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_versions() {
        assert_eq!(check_protocol("protocol=7&client=js&flash=false"), Ok(7));
        assert_eq!(check_protocol("client=js&protocol=5"), Ok(5));
        assert_eq!(
            check_protocol("client=js"),
            Err(CloseCode::NoProtocolVersion)
        );
        assert_eq!(check_protocol(""), Err(CloseCode::NoProtocolVersion));
        assert_eq!(
            check_protocol("protocol=seven"),
            Err(CloseCode::InvalidVersionFormat)
        );
        assert_eq!(
            check_protocol("protocol="),
            Err(CloseCode::InvalidVersionFormat)
        );
        assert_eq!(
            check_protocol("protocol=4"),
            Err(CloseCode::UnsupportedProtocol)
        );
        assert_eq!(
            check_protocol("protocol=8"),
            Err(CloseCode::UnsupportedProtocol)
        );
    }
}

//! Who is asking: the client's address after trusted-proxy handling, the certificate
//! fingerprint a trusted proxy forwarded, and the `Origin`.
//!
//! Both edges build a [`PeerHeaders`] from the request before it is dropped (the WebSocket
//! edge drops its request right after the handshake), and the guard resolves it into a
//! [`Peer`] with the app's trusted proxies. Forwarded headers are believed only when the
//! socket's peer is a trusted proxy; otherwise they are ignored, never trusted.

use std::net::{IpAddr, SocketAddr};

use actix_http::header::{HeaderMap, HeaderName};

use super::networks::Networks;
use crate::config::Fingerprint;

/// `X-Forwarded-For`: the client address chain a proxy appends to.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// The client certificate's SHA-256, set by a TLS-terminating proxy.
const CERT_FINGERPRINT: HeaderName = HeaderName::from_static("x-client-cert-fingerprint");
/// Most `X-Forwarded-For` bytes read; a longer chain is refused rather than walked.
const MAX_FORWARDED_FOR: usize = 2048;

/// What a request says about its sender, before any of it is believed.
#[derive(Debug, Clone, Default)]
pub struct PeerHeaders {
    /// The socket's peer (`None` only when the OS could not tell).
    pub socket: Option<IpAddr>,
    /// Every `X-Forwarded-For` value, joined with commas (`None`: none, or too long).
    forwarded_for: Option<String>,
    /// `X-Client-Cert-Fingerprint`, parsed (`None`: absent or not a SHA-256).
    fingerprint: Option<Fingerprint>,
    /// Whether an `X-Client-Cert-Fingerprint` was present at all.
    fingerprint_present: bool,
    /// `Origin`, as sent.
    pub origin: Option<String>,
}

impl PeerHeaders {
    /// Takes what the guard needs from a request's socket address and headers.
    pub fn from_request(socket: Option<SocketAddr>, headers: &HeaderMap) -> Self {
        let mut forwarded_for = String::new();
        let mut too_long = false;
        for value in headers.get_all(&FORWARDED_FOR) {
            let Ok(value) = value.to_str() else {
                too_long = true;
                continue;
            };
            if forwarded_for.len() + value.len() + 1 > MAX_FORWARDED_FOR {
                too_long = true;
                break;
            }
            if !forwarded_for.is_empty() {
                forwarded_for.push(',');
            }
            forwarded_for.push_str(value);
        }
        let has_forwarded = headers.contains_key(&FORWARDED_FOR);
        let fingerprint_value = headers.get(&CERT_FINGERPRINT);
        PeerHeaders {
            socket: socket.map(|addr| canonical(addr.ip())),
            // A chain that cannot be read whole names no one: see `Peer::resolve`.
            forwarded_for: has_forwarded.then(|| {
                if too_long {
                    "unreadable".to_owned()
                } else {
                    forwarded_for
                }
            }),
            fingerprint: fingerprint_value
                .and_then(|value| value.to_str().ok())
                .and_then(|value| Fingerprint::parse(value, true)),
            fingerprint_present: fingerprint_value.is_some(),
            origin: headers
                .get(actix_http::header::ORIGIN)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// The sender, as the guard believes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address; `None` when a trusted proxy's `X-Forwarded-For` was unreadable
    /// (rules that need an address then refuse).
    pub address: Option<IpAddr>,
    /// The certificate fingerprint a trusted proxy forwarded.
    pub fingerprint: CertFingerprint,
    /// `Origin`, as sent.
    pub origin: Option<String>,
}

/// What a trusted proxy said about the client's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFingerprint {
    /// No fingerprint (or one from a peer that is not a trusted proxy, which is ignored).
    Missing,
    /// A fingerprint that is not a SHA-256.
    Malformed,
    /// A SHA-256 fingerprint.
    Sha256(Fingerprint),
}

impl Peer {
    /// Believes `headers` as far as `trusted` proxies allow: when the socket's peer is one of
    /// them, the client is the right-most `X-Forwarded-For` address that is not itself a
    /// trusted proxy (all trusted: the left-most), and its fingerprint header counts.
    pub fn resolve(headers: &PeerHeaders, trusted: &Networks) -> Self {
        let from_proxy = headers
            .socket
            .is_some_and(|socket| trusted.contains(socket));
        let address = match (&headers.forwarded_for, from_proxy) {
            (Some(chain), true) => client_in_chain(chain, trusted),
            _ => headers.socket,
        };
        let fingerprint = match (from_proxy, headers.fingerprint, headers.fingerprint_present) {
            (true, Some(fingerprint), _) => CertFingerprint::Sha256(fingerprint),
            (true, None, true) => CertFingerprint::Malformed,
            _ => CertFingerprint::Missing,
        };
        Peer {
            address,
            fingerprint,
            origin: headers.origin.clone(),
        }
    }
}

/// The client in a trusted proxy's `X-Forwarded-For` chain; `None` when an entry on the way
/// is not an address (the chain cannot be trusted past it).
fn client_in_chain(chain: &str, trusted: &Networks) -> Option<IpAddr> {
    let mut client = None;
    for entry in chain.rsplit(',') {
        let address = parse_forwarded(entry.trim())?;
        client = Some(address);
        if !trusted.contains(address) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(canonical)
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket reports) as IPv4,
/// so that IPv4 rules apply to them.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use actix_http::header::HeaderValue;

    use super::*;
    use crate::config::Network;

    fn networks(list: &[&str]) -> Networks {
        Networks::new(
            list.iter()
                .map(|text| Network(text.parse().unwrap()))
                .collect(),
        )
    }

    fn headers(socket: &str, pairs: &[(&'static str, &str)]) -> PeerHeaders {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let socket: SocketAddr = format!("{socket}:4000").parse().unwrap();
        PeerHeaders::from_request(Some(socket), &map)
    }

    fn address(peer: &Peer) -> String {
        peer.address.map_or("none".to_owned(), |a| a.to_string())
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let trusted = networks(&["10.0.0.1/32"]);
        let spoofed = headers(
            "192.0.2.9",
            &[
                ("x-forwarded-for", "203.0.113.5"),
                ("x-client-cert-fingerprint", &"ab".repeat(32)),
            ],
        );
        let peer = Peer::resolve(&spoofed, &trusted);
        assert_eq!(address(&peer), "192.0.2.9");
        assert_eq!(peer.fingerprint, CertFingerprint::Missing);
    }

    #[test]
    fn the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() {
        let trusted = networks(&["10.0.0.0/24"]);
        let through_two = headers(
            "10.0.0.1",
            &[("x-forwarded-for", "198.51.100.1, 203.0.113.5, 10.0.0.2")],
        );
        assert_eq!(
            address(&Peer::resolve(&through_two, &trusted)),
            "203.0.113.5"
        );
        let split = headers(
            "10.0.0.1",
            &[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-for", "10.0.0.2"),
            ],
        );
        assert_eq!(address(&Peer::resolve(&split, &trusted)), "198.51.100.1");
        let all_trusted = headers("10.0.0.1", &[("x-forwarded-for", "10.0.0.7, 10.0.0.2")]);
        assert_eq!(address(&Peer::resolve(&all_trusted, &trusted)), "10.0.0.7");
        let without = headers("10.0.0.1", &[]);
        assert_eq!(address(&Peer::resolve(&without, &trusted)), "10.0.0.1");
    }

    #[test]
    fn ports_are_dropped_and_garbage_names_no_one() {
        let trusted = networks(&["10.0.0.1/32"]);
        let ported = headers("10.0.0.1", &[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(address(&Peer::resolve(&ported, &trusted)), "2001:db8::1");
        let garbage = headers("10.0.0.1", &[("x-forwarded-for", "203.0.113.5, not-an-ip")]);
        assert_eq!(address(&Peer::resolve(&garbage, &trusted)), "none");
        let long = "1.2.3.4,".repeat(400);
        let too_long = headers("10.0.0.1", &[("x-forwarded-for", &long)]);
        assert_eq!(address(&Peer::resolve(&too_long, &trusted)), "none");
    }

    #[test]
    fn a_trusted_proxy_s_fingerprint_counts_and_a_malformed_one_is_told_apart() {
        let trusted = networks(&["10.0.0.1/32"]);
        let hex = "AB:".repeat(31) + "AB";
        let good = headers(
            "10.0.0.1",
            &[("x-client-cert-fingerprint", &format!("sha256:{hex}"))],
        );
        assert!(matches!(
            Peer::resolve(&good, &trusted).fingerprint,
            CertFingerprint::Sha256(_)
        ));
        let sha1 = headers(
            "10.0.0.1",
            &[("x-client-cert-fingerprint", &"ab".repeat(20))],
        );
        assert_eq!(
            Peer::resolve(&sha1, &trusted).fingerprint,
            CertFingerprint::Malformed
        );
    }

    #[test]
    fn ipv4_mapped_sockets_are_ipv4() {
        let socket: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        let raw = PeerHeaders::from_request(Some(socket), &HeaderMap::new());
        assert_eq!(raw.socket, Some("192.0.2.1".parse().unwrap()));
    }
}

//! Who is asking: the client's address after trusted-proxy handling, the certificate
//! fingerprint a trusted proxy forwarded, and the `Origin`.
//!
//! Both edges build a [`PeerHeaders`] from the request before it is dropped (the WebSocket
//! edge drops its request right after the handshake), and the guard resolves it into a
//! [`Peer`] with the app's trusted proxies. Forwarded headers are believed only when the
//! socket's peer is a trusted proxy; otherwise they are ignored, never trusted.
//!
//! `X-Forwarded-For` is read from the right, where each trusted proxy appended the address it
//! saw, up to [`MAX_FORWARDED_HOPS`] entries: what a client wrote at the left never counts,
//! however long or malformed, unless every proxy on the way is trusted. An entry on the way
//! that is not an address makes the client [`ClientAddress::Unreadable`], which every network
//! rule refuses.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use actix_http::header::{HeaderMap, HeaderName, HeaderValue};

use super::networks::Networks;
use crate::config::Fingerprint;

/// `X-Forwarded-For`: the client address chain a proxy appends to.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// The client certificate's SHA-256, set by a TLS-terminating proxy.
const CERT_FINGERPRINT: HeaderName = HeaderName::from_static("x-client-cert-fingerprint");
/// Right-most `X-Forwarded-For` entries kept: more trusted proxies in a row than this is not
/// a deployment, and the client is then unreadable.
pub const MAX_FORWARDED_HOPS: usize = 16;

/// What a request says about its sender, before any of it is believed.
#[derive(Debug, Clone, Default)]
pub struct PeerHeaders {
    /// The socket's peer (`None` only when the OS could not tell).
    pub socket: Option<IpAddr>,
    /// The right-most `X-Forwarded-For` entries, right-most first (`None`: not an address).
    forwarded_for: VecDeque<Option<IpAddr>>,
    /// Whether `X-Forwarded-For` had more entries than were kept.
    forwarded_truncated: bool,
    /// What `X-Client-Cert-Fingerprint` says.
    fingerprint: CertFingerprint,
    /// The client certificate Relay verified itself on this connection (the
    /// client-certificate listener of `[server.tls]`), believed whoever the peer is.
    verified: Option<Fingerprint>,
    /// `Origin`, as sent; a value that is not text is kept as empty, which no allowed origin
    /// matches (it is present, so `allow_missing_origin` does not apply).
    pub origin: Option<String>,
}

impl PeerHeaders {
    /// Takes what the guard needs from a request's socket address and headers.
    pub fn from_request(socket: Option<SocketAddr>, headers: &HeaderMap) -> Self {
        let (forwarded_for, forwarded_truncated) = right_most_entries(headers);
        PeerHeaders {
            socket: socket.map(|addr| canonical(addr.ip())),
            forwarded_for,
            forwarded_truncated,
            fingerprint: forwarded_fingerprint(headers),
            verified: None,
            origin: headers
                .get(actix_http::header::ORIGIN)
                .map(|value| value.to_str().unwrap_or_default().to_owned()),
        }
    }
}

impl PeerHeaders {
    /// The same, with the fingerprint of the certificate the connection's TLS handshake
    /// verified, if it did.
    pub fn with_verified_certificate(self, verified: Option<Fingerprint>) -> Self {
        PeerHeaders { verified, ..self }
    }
}

/// The right-most [`MAX_FORWARDED_HOPS`] entries of every `X-Forwarded-For` line (the last
/// line's last entry first), and whether there were more.
fn right_most_entries(headers: &HeaderMap) -> (VecDeque<Option<IpAddr>>, bool) {
    let lines: Vec<&HeaderValue> = headers.get_all(&FORWARDED_FOR).collect();
    let mut entries = VecDeque::new();
    for value in lines.iter().rev() {
        let Ok(text) = value.to_str() else {
            // A line that is not text is one unreadable entry.
            entries.push_back(None);
            if entries.len() >= MAX_FORWARDED_HOPS {
                return (entries, true);
            }
            continue;
        };
        for entry in text.rsplit(',') {
            if entries.len() >= MAX_FORWARDED_HOPS {
                return (entries, true);
            }
            entries.push_back(parse_forwarded(entry.trim()));
        }
    }
    (entries, false)
}

/// What the `X-Client-Cert-Fingerprint` lines say: an empty one (proxies that always set the
/// header send it empty without a certificate) is missing; two lines are malformed (a proxy
/// must overwrite the client's, not add to it).
fn forwarded_fingerprint(headers: &HeaderMap) -> CertFingerprint {
    let mut values = headers.get_all(&CERT_FINGERPRINT);
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key(&CERT_FINGERPRINT) {
            CertFingerprint::Malformed
        } else {
            CertFingerprint::Missing
        };
    };
    match value.to_str().map(str::trim) {
        Ok("") => CertFingerprint::Missing,
        Ok(text) => Fingerprint::parse(text, true)
            .map_or(CertFingerprint::Malformed, CertFingerprint::Sha256),
        Err(_) => CertFingerprint::Malformed,
    }
}

/// The sender, as the guard believes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub address: ClientAddress,
    /// The certificate fingerprint a trusted proxy forwarded.
    pub fingerprint: CertFingerprint,
    /// `Origin`, as sent.
    pub origin: Option<String>,
}

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    /// This address.
    Known(IpAddr),
    /// Unknown: the OS did not tell, or a trusted proxy's `X-Forwarded-For` could not be read
    /// as far as it had to be. Every network rule refuses it.
    Unreadable,
}

impl ClientAddress {
    /// The address, if known.
    pub fn known(self) -> Option<IpAddr> {
        match self {
            ClientAddress::Known(address) => Some(address),
            ClientAddress::Unreadable => None,
        }
    }
}

/// What a trusted proxy said about the client's certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CertFingerprint {
    /// No fingerprint (or one from a peer that is not a trusted proxy, which is ignored).
    #[default]
    Missing,
    /// Not one SHA-256 fingerprint.
    Malformed,
    /// A SHA-256 fingerprint.
    Sha256(Fingerprint),
}

impl Peer {
    /// Believes `headers` as far as `trusted` proxies allow: when the socket's peer is one of
    /// them, the client is the right-most `X-Forwarded-For` address that is not itself a
    /// trusted proxy (all trusted: the left-most), and its fingerprint header counts.
    /// A certificate Relay verified itself counts whoever sent it.
    pub fn resolve(headers: &PeerHeaders, trusted: &Networks) -> Self {
        let verified = headers.verified.map(CertFingerprint::Sha256);
        let Some(socket) = headers.socket else {
            return Peer {
                address: ClientAddress::Unreadable,
                fingerprint: verified.unwrap_or(CertFingerprint::Missing),
                origin: headers.origin.clone(),
            };
        };
        let from_proxy = trusted.contains(socket);
        let address = if from_proxy {
            client_in_chain(headers, socket, trusted)
        } else {
            ClientAddress::Known(socket)
        };
        Peer {
            address,
            fingerprint: match verified {
                Some(verified) => verified,
                None if from_proxy => headers.fingerprint,
                None => CertFingerprint::Missing,
            },
            origin: headers.origin.clone(),
        }
    }
}

/// The client behind the trusted proxy at `socket`.
fn client_in_chain(headers: &PeerHeaders, socket: IpAddr, trusted: &Networks) -> ClientAddress {
    let mut client = socket;
    for entry in &headers.forwarded_for {
        let Some(address) = *entry else {
            return ClientAddress::Unreadable;
        };
        client = address;
        if !trusted.contains(address) {
            return ClientAddress::Known(address);
        }
    }
    if headers.forwarded_truncated {
        // Every kept hop was a trusted proxy, and the chain goes on.
        ClientAddress::Unreadable
    } else {
        ClientAddress::Known(client)
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
/// Zone ids (`fe80::1%eth0`) and anything else are not addresses.
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
        peer.address
            .known()
            .map_or("none".to_owned(), |a| a.to_string())
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
        let zone = headers("10.0.0.1", &[("x-forwarded-for", "fe80::1%eth0")]);
        assert_eq!(address(&Peer::resolve(&zone, &trusted)), "none");
    }

    #[test]
    fn what_a_client_writes_left_of_the_first_untrusted_hop_never_counts() {
        let trusted = networks(&["10.0.0.1/32"]);
        // 2 KB of garbage, then the address the trusted proxy appended.
        let padded = format!("{}, 203.0.113.4", "x".repeat(2400));
        let long = headers("10.0.0.1", &[("x-forwarded-for", &padded)]);
        assert_eq!(address(&Peer::resolve(&long, &trusted)), "203.0.113.4");
        let many = format!("{}203.0.113.4", "198.51.100.1, ".repeat(100));
        let hops = headers("10.0.0.1", &[("x-forwarded-for", &many)]);
        assert_eq!(address(&Peer::resolve(&hops, &trusted)), "203.0.113.4");
        // More trusted proxies in a row than are kept: no one can be named.
        let all_trusted = networks(&["10.0.0.0/8"]);
        let chain = vec!["10.0.0.9"; MAX_FORWARDED_HOPS + 1].join(", ");
        let deep = headers("10.0.0.1", &[("x-forwarded-for", &chain)]);
        assert_eq!(
            Peer::resolve(&deep, &all_trusted).address,
            ClientAddress::Unreadable
        );
    }

    #[test]
    fn a_line_that_is_not_text_is_unreadable_where_it_is_reached() {
        let trusted = networks(&["10.0.0.1/32"]);
        let mut map = HeaderMap::new();
        map.append(
            FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff203.0.113.9").unwrap(),
        );
        map.append(FORWARDED_FOR, HeaderValue::from_static("203.0.113.4"));
        let socket: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let raw = PeerHeaders::from_request(Some(socket), &map);
        assert_eq!(
            address(&Peer::resolve(&raw, &trusted)),
            "203.0.113.4",
            "not reached"
        );
        let mut reached = HeaderMap::new();
        reached.append(
            FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff203.0.113.9").unwrap(),
        );
        let raw = PeerHeaders::from_request(Some(socket), &reached);
        assert_eq!(
            Peer::resolve(&raw, &trusted).address,
            ClientAddress::Unreadable
        );
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
        let empty = headers("10.0.0.1", &[("x-client-cert-fingerprint", " ")]);
        assert_eq!(
            Peer::resolve(&empty, &trusted).fingerprint,
            CertFingerprint::Missing
        );
        let value = format!("sha256:{}", "ab".repeat(32));
        let twice = headers(
            "10.0.0.1",
            &[
                ("x-client-cert-fingerprint", &value),
                ("x-client-cert-fingerprint", &value),
            ],
        );
        assert_eq!(
            Peer::resolve(&twice, &trusted).fingerprint,
            CertFingerprint::Malformed
        );
    }

    #[test]
    fn a_certificate_relay_verified_counts_from_any_peer_and_wins_over_a_header() {
        let trusted = networks(&["10.0.0.0/8"]);
        let verified = Fingerprint([7; 32]);
        let forwarded = format!("sha256:{}", "ab".repeat(32));
        for socket in ["10.0.0.1", "203.0.113.9"] {
            let raw = headers(socket, &[("x-client-cert-fingerprint", &forwarded)])
                .with_verified_certificate(Some(verified));
            assert_eq!(
                Peer::resolve(&raw, &trusted).fingerprint,
                CertFingerprint::Sha256(verified),
                "{socket}"
            );
        }
        let unverified = headers("203.0.113.9", &[]).with_verified_certificate(None);
        assert_eq!(
            Peer::resolve(&unverified, &trusted).fingerprint,
            CertFingerprint::Missing
        );
    }

    #[test]
    fn ipv4_mapped_sockets_are_ipv4() {
        let socket: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        let raw = PeerHeaders::from_request(Some(socket), &HeaderMap::new());
        assert_eq!(raw.socket, Some("192.0.2.1".parse().unwrap()));
    }
}

//! `[apps.security]`, `[server] trusted_proxies` and `[geoip]`: the network rules of an app, as
//! typed values. Addresses, ranges, country codes, origins and fingerprints are parsed while
//! the file is read, so a mistake is reported with its line; what the rules mean is the
//! `guard`'s.

use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::{ConfigDuration, ConfigString};

/// One `[apps.security]` table; every key optional, absent = no restriction.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Only clients from these addresses and ranges may use the HTTP API (and, with
    /// `apply_to_websocket`, connect).
    #[serde(default)]
    pub ip_allowlist: Option<Vec<Network>>,
    /// Proxies whose `X-Forwarded-For` and `X-Client-Cert-Fingerprint` are believed; absent:
    /// `[server] trusted_proxies`.
    #[serde(default)]
    pub trusted_proxies: Option<Vec<Network>>,
    /// Countries allowed or blocked (needs `[geoip] database`).
    #[serde(default)]
    pub geo: Option<GeoConfig>,
    /// Web pages (`Origin`s) whose scripts may open WebSockets.
    #[serde(default)]
    pub allowed_origins: Option<Vec<OriginPattern>>,
    /// With `allowed_origins`: whether a WebSocket without an `Origin` (a native client, not a
    /// browser) is let in.
    #[serde(default)]
    pub allow_missing_origin: bool,
    /// Whether the IP, geo and mTLS rules also guard WebSocket handshakes.
    #[serde(default)]
    pub apply_to_websocket: bool,
    /// Whether a request without a registered client-certificate fingerprint is refused.
    #[serde(default)]
    pub mtls_required: bool,
    /// The client certificates (SHA-256 fingerprints) that are let in.
    #[serde(default)]
    pub mtls_fingerprints: Vec<Fingerprint>,
    /// What a secret found in an event's `data` does.
    #[serde(default)]
    pub secret_scanning: SecretScanning,
    /// Detectors switched off, by id (e.g. `"jwt"`); checked against the scanner's list when
    /// the guard is built.
    #[serde(default)]
    pub secret_scanning_skip: Vec<String>,
    /// Personal-data detectors switched on (`"card"`, `"ssn"`, `"email"`); off unless named.
    #[serde(default)]
    pub secret_scanning_pii: Vec<String>,
    /// Brute-force bans: authentication failures from one address (IPv6: one /64) within
    /// `ban_window` that ban it from the app; absent = no bans.
    #[serde(default)]
    pub ban_after_failures: Option<std::num::NonZeroU32>,
    /// How long failures are counted from the first (default 10 minutes).
    #[serde(default)]
    pub ban_window: Option<ConfigDuration>,
    /// The first ban's length; each next one doubles (default 10 minutes).
    #[serde(default)]
    pub ban_time: Option<ConfigDuration>,
    /// The longest ban; this long without a ban starts the doubling over (default 24 hours).
    #[serde(default)]
    pub ban_max_time: Option<ConfigDuration>,
    /// Whether 3 unresolved critical security events within an hour lock the app down
    /// (HTTP 403, new WebSockets closed with 4003) until an admin resolves them.
    #[serde(default)]
    pub auto_lockdown: bool,
    /// Whether a lockdown also closes the app's open connections (4003).
    #[serde(default)]
    pub lockdown_closes_connections: bool,
}

/// `secret_scanning`: what a secret found in an event's `data` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretScanning {
    /// Not scanned.
    #[default]
    Off,
    /// Delivered unchanged; the finding is logged (detector and position, never the text).
    Warn,
    /// Each secret replaced by `[REDACTED]`, then delivered.
    Redact,
    /// Refused: 422 for the HTTP API, `pusher:error` for a client event; nothing delivered.
    Reject,
}

/// `[geoip]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// A MaxMind country database (GeoLite2-Country or compatible); a relative path is
    /// relative to the configuration file's folder.
    pub database: ConfigString,
}

impl GeoIpConfig {
    /// The database's path, a relative one taken from `config_dir`.
    pub fn database_path(&self, config_dir: &std::path::Path) -> PathBuf {
        config_dir.join(self.database.as_str())
    }
}

/// `geo = { mode = "allow" | "block", countries = […], unknown = "allow" | "deny" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// Whether `countries` are the only ones allowed, or the ones blocked.
    pub mode: GeoMode,
    /// ISO 3166-1 alpha-2 codes.
    pub countries: Vec<CountryCode>,
    /// What happens to an address the database does not place.
    #[serde(default)]
    pub unknown: UnknownCountry,
}

/// How a geo rule's countries are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeoMode {
    /// Only these countries.
    Allow,
    /// Every country but these.
    Block,
}

/// What a geo rule does with an address no country is known for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownCountry {
    /// Let it in (the default: private and new ranges are often unknown).
    #[default]
    Allow,
    /// Refuse it.
    Deny,
}

/// An IPv4 or IPv6 address or CIDR range; a bare address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConfigString")]
pub struct Network(pub IpNet);

impl TryFrom<ConfigString> for Network {
    type Error = String;

    fn try_from(text: ConfigString) -> Result<Self, String> {
        let text = text.as_str().trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        Ok(Network(ipv4_if_mapped(net.trunc())))
    }
}

/// An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it is: the guard sees
/// mapped addresses as IPv4, so the range must be one too.
fn ipv4_if_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(IpNet::V6(v6), IpNet::V4),
        other => other,
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters, checked when parsed.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The code of `text`, if it is two ASCII letters (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }
}

impl TryFrom<String> for CountryCode {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        CountryCode::parse(&text)
            .ok_or_else(|| format!("{text:?} is not a two-letter ISO country code"))
    }
}

/// An allowed `Origin`: `scheme://host[:port]`, where the host may start with `*.` to allow
/// every subdomain (not the domain itself).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConfigString")]
pub struct OriginPattern {
    /// `https://`, lower case.
    pub scheme: String,
    /// The host, lower case, without the `*.` of a wildcard.
    pub host: String,
    /// Whether subdomains of `host` match (and `host` itself does not).
    pub subdomains: bool,
    /// `:port`, or empty.
    pub port: String,
}

impl TryFrom<ConfigString> for OriginPattern {
    type Error = String;

    fn try_from(text: ConfigString) -> Result<Self, String> {
        let text = text.as_str().trim().to_ascii_lowercase();
        let invalid = || {
            format!(
                "allowed origin {text:?} must be scheme://host[:port], the host optionally *.domain"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(invalid)?;
        if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(invalid());
        }
        let (host, port) = match rest.rfind(':') {
            Some(colon) if !rest.ends_with(']') => (&rest[..colon], &rest[colon..]),
            _ => (rest, ""),
        };
        if port.len() == 1 || !port.bytes().skip(1).all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        // Browsers leave a scheme's default port out of `Origin`.
        let port = match (scheme, port) {
            ("https", ":443") | ("http", ":80") => "",
            (_, port) => port,
        };
        let (host, subdomains) = match host.strip_prefix("*.") {
            Some(domain) => (domain, true),
            None => (host, false),
        };
        if host.is_empty() || host.contains('*') {
            return Err(invalid());
        }
        Ok(OriginPattern {
            scheme: format!("{scheme}://"),
            host: host.to_owned(),
            subdomains,
            port: port.to_owned(),
        })
    }
}

/// A client certificate's SHA-256 fingerprint: `sha256:` and 64 hex digits (colons between
/// the bytes allowed, any case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "ConfigString")]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl Fingerprint {
    /// Parses `sha256:<hex>`; with `prefix_optional`, a bare 64-digit hex value too (what
    /// proxies forward).
    pub fn parse(text: &str, prefix_optional: bool) -> Option<Self> {
        let text = text.trim();
        let hex_part = match text.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &text[7..],
            _ if prefix_optional => text,
            _ => return None,
        };
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes).ok()?;
        Some(Fingerprint(bytes))
    }
}

impl TryFrom<ConfigString> for Fingerprint {
    type Error = String;

    fn try_from(text: ConfigString) -> Result<Self, String> {
        Fingerprint::parse(text.as_str(), false).ok_or_else(|| {
            "mtls fingerprint must be sha256: and 64 hex digits (the certificate's SHA-256)"
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Result<OriginPattern, String> {
        OriginPattern::try_from(ConfigString::from(text))
    }

    #[test]
    fn networks_are_addresses_or_ranges() {
        let parse = |text: &str| Network::try_from(ConfigString::from(text));
        assert_eq!(parse("10.1.2.3/8").unwrap().0.to_string(), "10.0.0.0/8");
        assert_eq!(parse("192.0.2.7").unwrap().0.to_string(), "192.0.2.7/32");
        assert_eq!(
            parse("2001:db8::/32").unwrap().0.to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse("::1").unwrap().0.to_string(), "::1/128");
        assert_eq!(
            parse("::ffff:10.0.0.0/104").unwrap().0.to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse("::ffff:192.0.2.1").unwrap().0.to_string(),
            "192.0.2.1/32"
        );
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("example.com").is_err());
    }

    #[test]
    fn origins_are_scheme_host_and_port_with_an_optional_wildcard() {
        let exact = origin("https://App.Example.com").unwrap();
        assert_eq!(
            (exact.host.as_str(), exact.subdomains),
            ("app.example.com", false)
        );
        assert_eq!(
            origin("https://a.com:443").unwrap().port,
            "",
            "the default port"
        );
        assert_eq!(origin("http://a.com:80").unwrap().port, "");
        assert_eq!(origin("http://a.com:443").unwrap().port, ":443");
        let wild = origin("https://*.example.com:8443").unwrap();
        assert_eq!(
            (wild.host.as_str(), wild.subdomains, wild.port.as_str()),
            ("example.com", true, ":8443")
        );
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "https://*",
            "https://a.*.com",
            "https://a.com:",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_take_colons_and_any_case() {
        let hex = "AB".repeat(32);
        let with_colons = format!("sha256:{}", vec!["ab"; 32].join(":"));
        let a = Fingerprint::parse(&format!("sha256:{hex}"), false).unwrap();
        assert_eq!(Fingerprint::parse(&with_colons, false), Some(a));
        assert_eq!(Fingerprint::parse(&hex, true), Some(a));
        assert_eq!(
            Fingerprint::parse(&hex, false),
            None,
            "the config needs sha256:"
        );
        assert_eq!(Fingerprint::parse("sha256:abcd", false), None);
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(CountryCode::parse("de").unwrap().as_str(), "DE");
        assert!(CountryCode::parse("DEU").is_none());
        assert!(CountryCode::parse("1A").is_none());
    }
}

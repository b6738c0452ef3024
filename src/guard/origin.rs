//! `allowed_origins`: which web pages' scripts may open a WebSocket to an app. Browsers send
//! the page's `Origin` with every WebSocket handshake and scripts cannot change it; other
//! clients can send anything, so this guards against other sites embedding the app, not
//! against a determined client (the IP and mTLS rules are for that).

use crate::config::OriginPattern;

/// The origins an app allows.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    patterns: Vec<OriginPattern>,
    allow_missing: bool,
}

impl AllowedOrigins {
    /// Allows `patterns`, and handshakes without an `Origin` when `allow_missing`.
    pub fn new(patterns: Vec<OriginPattern>, allow_missing: bool) -> Self {
        AllowedOrigins {
            patterns,
            allow_missing,
        }
    }

    /// Whether a handshake with `origin` may proceed.
    pub fn admits(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let origin = origin.trim().to_ascii_lowercase();
        self.patterns
            .iter()
            .any(|pattern| matches(pattern, &origin))
    }
}

/// Whether `origin` (lower case) is `pattern`'s scheme, host (or a subdomain of it, for a
/// wildcard) and port, exactly.
fn matches(pattern: &OriginPattern, origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix(pattern.scheme.as_str()) else {
        return false;
    };
    let Some(host) = rest.strip_suffix(pattern.port.as_str()) else {
        return false;
    };
    // Without a port in the pattern, an origin with one is another origin.
    if pattern.port.is_empty() && host.rfind(':').is_some_and(|_| !host.ends_with(']')) {
        return false;
    }
    if pattern.subdomains {
        host.strip_suffix(pattern.host.as_str())
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty())
    } else {
        host == pattern.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigString;

    fn allowed(patterns: &[&str], allow_missing: bool) -> AllowedOrigins {
        let patterns = patterns
            .iter()
            .map(|text| OriginPattern::try_from(ConfigString::from(*text)).unwrap())
            .collect();
        AllowedOrigins::new(patterns, allow_missing)
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let list = allowed(&["https://app.example.com", "http://localhost:8080"], false);
        assert!(list.admits(Some("https://app.example.com")));
        assert!(list.admits(Some("HTTPS://App.Example.com")));
        assert!(list.admits(Some("http://localhost:8080")));
        for other in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evil-app.example.com",
            "https://app.example.com.evil.com",
            "http://localhost",
            "http://localhost:80800",
            "null",
        ] {
            assert!(!list.admits(Some(other)), "{other}");
        }
    }

    #[test]
    fn a_wildcard_matches_subdomains_but_not_the_domain_or_lookalikes() {
        let list = allowed(&["https://*.example.com"], false);
        assert!(list.admits(Some("https://a.example.com")));
        assert!(list.admits(Some("https://a.b.example.com")));
        assert!(!list.admits(Some("https://example.com")));
        assert!(!list.admits(Some("https://badexample.com")));
        assert!(!list.admits(Some("https://.example.com")));
        assert!(!list.admits(Some("https://a.example.com:444")));
    }

    #[test]
    fn a_missing_origin_is_refused_unless_allowed() {
        assert!(!allowed(&["https://a.com"], false).admits(None));
        assert!(allowed(&["https://a.com"], true).admits(None));
    }
}

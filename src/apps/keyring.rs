//! An app's credentials: its current key/secret pair and the earlier pairs still inside their
//! grace period. Every check of a key, signature or secret goes through a [`Keyring`], and
//! takes the time it is made (`now`), so a pair's grace ends exactly at its `valid_until`
//! and tests can move the clock. A keyring never changes: when credentials rotate, the app's
//! keyring is replaced whole (see `apps::App`).
//!
//! The current pair is tried first, so a client that has moved pays one HMAC as before; a
//! previous pair is tried only when the current one does not match.

use std::fmt;
use std::time::SystemTime;

use crate::config::WebhookSigning;
use crate::protocol::signature;

/// A secret: kept out of `Debug` output, compared only through the keyring, and never
/// written to the log (each one made is known to the log's redaction).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        crate::logging::redaction::know(&text);
        Secret(text)
    }

    /// The secret itself, for signing and for `relay keys show`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A key and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The public key (WebSocket path, `auth` prefix, `auth_key`, `X-Pusher-Key`).
    pub key: String,
    /// The signing secret.
    pub secret: Secret,
}

/// A pair that still works until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousPair {
    /// The pair.
    pub pair: Pair,
    /// When it stops working.
    pub valid_until: SystemTime,
    /// A stable name for its use counts: `generation N` for a pair the state store made,
    /// `config KEY VALID_UNTIL` for one in `[[apps.previous_credentials]]`.
    pub label: String,
}

impl PreviousPair {
    fn is_valid(&self, now: SystemTime) -> bool {
        now < self.valid_until
    }
}

/// Which pair matched a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched<'a> {
    /// The current pair.
    Current,
    /// A previous pair, inside its grace.
    Previous(&'a PreviousPair),
}

/// Why a credential matched no pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// No valid pair has the key.
    UnknownKey,
    /// A pair has the key, but the signature or secret is not its.
    WrongSecret,
}

/// A credential that matched no valid pair: why, and whether it is the secret of a previous
/// pair whose grace has ended (still being used: a sign of compromise, answered as `why`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMatch {
    /// Why, as the client is told.
    pub why: Mismatch,
    /// Whether an expired pair with the key matches.
    pub expired_pair: bool,
}

/// The current pair and the previous pairs, oldest (first to expire) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    current: Pair,
    previous: Vec<PreviousPair>,
    signing: WebhookSigning,
    /// The state store's generation of the current pair; `None` while it is config.toml's.
    generation: Option<u64>,
}

impl Keyring {
    /// A keyring; `previous` in any order.
    pub fn new(
        current: Pair,
        mut previous: Vec<PreviousPair>,
        signing: WebhookSigning,
        generation: Option<u64>,
    ) -> Self {
        previous.sort_by_key(|pair| pair.valid_until);
        Keyring {
            current,
            previous,
            signing,
            generation,
        }
    }

    /// The current pair.
    pub fn current(&self) -> &Pair {
        &self.current
    }

    /// The previous pairs, oldest first, valid or not.
    pub fn previous(&self) -> &[PreviousPair] {
        &self.previous
    }

    /// Which pair signs webhooks.
    pub fn signing(&self) -> WebhookSigning {
        self.signing
    }

    /// The state store's generation of the current pair, if it came from the store.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// Every key of every pair, valid or not (what the app can be found by).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.key.as_str()).chain(
            self.previous
                .iter()
                .map(|previous| previous.pair.key.as_str()),
        )
    }

    /// The pair that `key` names at `now`, the current first.
    pub fn match_key(&self, key: &str, now: SystemTime) -> Option<Matched<'_>> {
        self.candidates(key, now).next().map(|(matched, _)| matched)
    }

    /// The pair with `key` whose secret makes `signature_hex` the HMAC-SHA256 of `message`
    /// (constant-time comparison).
    pub fn match_signature(
        &self,
        key: &str,
        message: &[u8],
        signature_hex: &str,
        now: SystemTime,
    ) -> Result<Matched<'_>, NoMatch> {
        self.first_match(key, now, |pair| {
            signature::verify(pair.secret.0.as_bytes(), message, signature_hex)
        })
    }

    /// The pair with `key` and `secret`, compared in constant time over SHA-256 digests (of
    /// equal length, so the comparison tells nothing, not even the length).
    pub fn match_secret(
        &self,
        key: &str,
        secret: &str,
        now: SystemTime,
    ) -> Result<Matched<'_>, NoMatch> {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let given = Sha256::digest(secret.as_bytes());
        self.first_match(key, now, |pair| {
            bool::from(Sha256::digest(pair.secret.0.as_bytes()).ct_eq(&given))
        })
    }

    /// The pair that signs webhooks at `now`: the oldest still valid or the current one, as
    /// `webhook_signing` says.
    pub fn webhook_pair(&self, now: SystemTime) -> &Pair {
        match self.signing {
            WebhookSigning::Newest => &self.current,
            WebhookSigning::Oldest => self
                .previous
                .iter()
                .find(|previous| previous.is_valid(now))
                .map_or(&self.current, |previous| &previous.pair),
        }
    }

    fn first_match(
        &self,
        key: &str,
        now: SystemTime,
        matches: impl Fn(&Pair) -> bool,
    ) -> Result<Matched<'_>, NoMatch> {
        let mut candidates = self.candidates(key, now).peekable();
        let why = if candidates.peek().is_none() {
            Mismatch::UnknownKey
        } else if let Some((matched, _)) = candidates.find(|(_, pair)| matches(pair)) {
            return Ok(matched);
        } else {
            Mismatch::WrongSecret
        };
        // Only on failure, and only where an expired pair has this key: is its secret used?
        let expired_pair = self.previous.iter().any(|previous| {
            previous.pair.key == key && !previous.is_valid(now) && matches(&previous.pair)
        });
        Err(NoMatch { why, expired_pair })
    }

    /// The pairs with `key` valid at `now`, the current first.
    fn candidates<'a, 'k>(
        &'a self,
        key: &'k str,
        now: SystemTime,
    ) -> impl Iterator<Item = (Matched<'a>, &'a Pair)> + use<'a, 'k> {
        let current = (self.current.key == key).then_some((Matched::Current, &self.current));
        let previous = self
            .previous
            .iter()
            .filter(move |previous| previous.pair.key == key && previous.is_valid(now))
            .map(|previous| (Matched::Previous(previous), &previous.pair));
        current.into_iter().chain(previous)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pair(key: &str, secret: &str) -> Pair {
        Pair {
            key: key.into(),
            secret: Secret::new(secret),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Current `k`/`new`; `k`/`old` until 100; `gone`/`older` until 50.
    fn keyring(signing: WebhookSigning) -> Keyring {
        let previous = |key, secret, until| PreviousPair {
            pair: pair(key, secret),
            valid_until: at(until),
            label: format!("{key} {until}"),
        };
        Keyring::new(
            pair("k", "new"),
            vec![previous("k", "old", 100), previous("gone", "older", 50)],
            signing,
            Some(3),
        )
    }

    fn plain(why: Mismatch) -> NoMatch {
        NoMatch {
            why,
            expired_pair: false,
        }
    }

    fn expired(why: Mismatch) -> NoMatch {
        NoMatch {
            why,
            expired_pair: true,
        }
    }

    fn signed(secret: &str) -> String {
        signature::sign(secret.as_bytes(), b"message")
    }

    #[test]
    fn a_previous_pair_signs_until_its_grace_ends() {
        let ring = keyring(WebhookSigning::Oldest);
        let check = |key, secret, now| {
            ring.match_signature(key, b"message", &signed(secret), at(now))
                .map(|matched| match matched {
                    Matched::Current => "current".to_owned(),
                    Matched::Previous(previous) => previous.label.clone(),
                })
        };
        assert_eq!(check("k", "new", 10), Ok("current".into()));
        assert_eq!(check("k", "old", 99), Ok("k 100".into()));
        assert_eq!(check("k", "old", 100), Err(expired(Mismatch::WrongSecret)));
        assert_eq!(check("gone", "older", 49), Ok("gone 50".into()));
        assert_eq!(
            check("gone", "older", 50),
            Err(expired(Mismatch::UnknownKey))
        );
        assert_eq!(check("gone", "wrong", 50), Err(plain(Mismatch::UnknownKey)));
        assert_eq!(check("k", "other", 10), Err(plain(Mismatch::WrongSecret)));
        assert_eq!(
            check("unknown", "new", 10),
            Err(plain(Mismatch::UnknownKey))
        );
    }

    #[test]
    fn secrets_and_keys_follow_the_same_grace() {
        let ring = keyring(WebhookSigning::Oldest);
        assert_eq!(ring.match_secret("k", "new", at(500)), Ok(Matched::Current));
        assert!(matches!(
            ring.match_secret("k", "old", at(99)),
            Ok(Matched::Previous(_))
        ));
        assert_eq!(
            ring.match_secret("k", "old", at(100)),
            Err(expired(Mismatch::WrongSecret))
        );
        assert_eq!(
            ring.match_secret("k", "other", at(100)),
            Err(plain(Mismatch::WrongSecret))
        );
        assert_eq!(ring.match_key("k", at(1000)), Some(Matched::Current));
        assert!(matches!(
            ring.match_key("gone", at(49)),
            Some(Matched::Previous(_))
        ));
        assert_eq!(ring.match_key("gone", at(50)), None);
        assert_eq!(ring.keys().collect::<Vec<_>>(), ["k", "gone", "k"]);
    }

    #[test]
    fn webhooks_are_signed_by_the_oldest_valid_pair_or_the_newest() {
        let oldest = keyring(WebhookSigning::Oldest);
        assert_eq!(oldest.webhook_pair(at(10)), &pair("gone", "older"));
        assert_eq!(oldest.webhook_pair(at(60)), &pair("k", "old"));
        assert_eq!(oldest.webhook_pair(at(100)), &pair("k", "new"));
        let newest = keyring(WebhookSigning::Newest);
        assert_eq!(newest.webhook_pair(at(10)), &pair("k", "new"));
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let shown = format!("{:?}", keyring(WebhookSigning::Oldest));
        for secret in ["new", "old", "older"] {
            assert!(!shown.contains(&format!("\"{secret}\"")), "{shown}");
        }
    }
}

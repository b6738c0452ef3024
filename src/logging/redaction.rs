//! The log's last line of defence: every formatted event passes through [`redact`] before it
//! is written (see [`super::writer`]), so no secret, token, signature, `auth` value or
//! `Authorization` header reaches the log, even when a dependency's trace line or a `Debug`
//! dump carries one. Relay's own code never logs a credential (tests/secrets_in_logs.rs reads
//! a whole trace-level session); this pass is what makes that a guarantee instead of a habit.
//!
//! It recognises two things:
//! - **shapes**: Relay API tokens (`rly_…`), runs of 64 or more hex digits (an HMAC-SHA256
//!   signature, whether an `auth_signature`, the second half of an `auth` value or an
//!   `X-Pusher-Signature`), `Bearer` and `Basic` credentials, and the value after a sensitive
//!   name (`auth`, `authorization`, `secret`, `password`, `token`, `signature`, …) and `=` or
//!   `:`, plain, quoted, JSON-escaped or coloured;
//! - **values**: every secret this process has held ([`know`]; each `apps::Secret` made
//!   registers itself, and the server adds the configuration's other secrets), as they are
//!   and as JSON and `Debug` escape them, looked for before the shapes. They need it: a
//!   secret has no shape (Pusher's are 20 hex digits). A value once known stays known (a
//!   rotated-out secret is still a secret), up to [`MOST_KNOWN`] of them.
//!
//! Only lines that are written pay for this (a few regex passes and one Aho-Corasick pass); at
//! the default level the hot paths write none.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;

/// What a redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Most distinct values [`know`] keeps (far above any real deployment's secrets; a bound so
/// that nothing grows without one).
pub const MOST_KNOWN: usize = 10_000;

/// Values shorter than this are not redacted by value: a three-letter secret would blank out
/// every word that contains it (production refuses secrets under 16 characters anyway).
const SHORTEST_KNOWN: usize = 4;

/// The names whose value is a credential, in a key-value pair.
const SENSITIVE_NAMES: &str = "auth|authorization|auth_signature|signature|secret|shared_secret|\
    password|passwd|token|api_key|cookie|set-cookie|totp_secret|password_hash";

/// The shapes and what each becomes (`${n}`: the parts kept, such as a name and its `=`). A
/// value never starts with `[`, so what the known values' pass redacted is left as it is.
static SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    // An ANSI colour code, as the text format puts around field names on a terminal.
    let colour = r"(?:\x1b\[[0-9;]*m)*";
    let quote = r#"(?:\\?["'])?"#;
    let pairs = format!(
        r#"(?i)(^|[^0-9a-z_]|\x1b\[[0-9;]*m)({SENSITIVE_NAMES})({quote}{colour}\s*[:=]\s*{colour}{quote})[^\s"'\\&,;}}\[\]\x1b]+"#
    );
    [
        // `Basic` only capitalised, as HTTP sends it, so that "basic settings" stays.
        (
            r#"\b((?i:bearer)|Basic)(\s+)[^\s"'\\&,;}\[\]\x1b]+"#,
            "${1}${2}[REDACTED]",
        ),
        (pairs.as_str(), "${1}${2}${3}[REDACTED]"),
        (r"rly_[0-9A-Za-z]+", "rly_[REDACTED]"),
        (r"[0-9a-fA-F]{64,}", REDACTED),
    ]
    .into_iter()
    .map(|(pattern, replacement)| {
        let shape = Regex::new(pattern).expect("the redaction shapes are valid");
        (shape, replacement)
    })
    .collect()
});

#[derive(Default)]
struct Known {
    values: HashSet<String>,
    /// Built from `values` when a line is next redacted after one was added.
    matcher: Option<Arc<AhoCorasick>>,
    stale: bool,
}

static KNOWN: LazyLock<Mutex<Known>> = LazyLock::new(Mutex::default);

/// Makes `value` (a secret) one that no log line will ever show: as it is, and as the JSON
/// format and `Debug` fields escape it.
pub fn know(value: &str) {
    if value.len() < SHORTEST_KNOWN {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if known.values.contains(value) {
        return;
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let debug = format!("{value:?}");
    let forms = [value, trim_quotes(&json), trim_quotes(&debug)];
    for form in forms {
        if known.values.len() >= MOST_KNOWN {
            return;
        }
        if known.values.insert(form.to_owned()) {
            known.stale = true;
        }
    }
}

fn trim_quotes(quoted: &str) -> &str {
    quoted
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(quoted)
}

/// The matcher of every known value (rebuilt here, not in [`know`], so that registering a
/// thousand apps' secrets builds it once).
fn known_matcher() -> Option<Arc<AhoCorasick>> {
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if known.stale {
        known.matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(known.values.iter())
            .ok()
            .map(Arc::new);
        known.stale = false;
    }
    known.matcher.clone()
}

/// `text` with every credential it shows replaced by [`REDACTED`]: known values first (a
/// shape could take part of one and leave the rest), then the shapes.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut redacted = Cow::Borrowed(text);
    if let Some(matcher) = known_matcher()
        && matcher.is_match(text)
    {
        let replacements = vec![REDACTED; matcher.patterns_len()];
        redacted = Cow::Owned(matcher.replace_all(text, &replacements));
    }
    for (shape, replacement) in SHAPES.iter() {
        let changed = match shape.replace_all(&redacted, *replacement) {
            Cow::Owned(changed) => Some(changed),
            Cow::Borrowed(_) => None,
        };
        if let Some(changed) = changed {
            redacted = Cow::Owned(changed);
        }
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(text: &str) -> String {
        redact(text).into_owned()
    }

    #[test]
    fn a_line_without_credentials_is_left_alone() {
        let line =
            r#"INFO relay::ws: connection opened app="1" socket_id="123.456" what="channel auth""#;
        assert!(matches!(redact(line), Cow::Borrowed(_)));
        assert!(matches!(redact("secret_scanning=redact"), Cow::Borrowed(_)));
    }

    #[test]
    fn signatures_tokens_and_bearer_credentials_are_redacted() {
        let signature = "a".repeat(64);
        let line = format!("GET /apps/1/events?auth_key=k&auth_signature={signature}&x=1");
        assert_eq!(
            clean(&line),
            "GET /apps/1/events?auth_key=k&auth_signature=[REDACTED]&x=1"
        );
        let token = "rly_4AbCdEfGhIjKlMnOpQrStUvWxYz0123abcdef";
        assert_eq!(
            clean(&format!("used {token} here")),
            "used rly_[REDACTED] here"
        );
        assert_eq!(
            clean(&format!("authorization: Bearer {token}")),
            "authorization: [REDACTED] [REDACTED]"
        );
        assert_eq!(clean("Basic dXNlcjpwYXNz"), "Basic [REDACTED]");
        assert_eq!(clean("the basic settings"), "the basic settings");
    }

    #[test]
    fn values_after_sensitive_names_are_redacted_in_every_notation() {
        let cases = [
            (r#"{"auth":"key:abc"}"#, r#"{"auth":"[REDACTED]"}"#),
            (
                r#"message: "{\"auth\":\"key:abc\"}""#,
                r#"message: "{\"auth\":\"[REDACTED]\"}""#,
            ),
            ("x-relay-secret: hunter22", "x-relay-secret: [REDACTED]"),
            ("password=hunter22&next", "password=[REDACTED]&next"),
            (
                "\x1b[3msecret\x1b[0m\x1b[2m=\x1b[0mhunter22",
                "\x1b[3msecret\x1b[0m\x1b[2m=\x1b[0m[REDACTED]",
            ),
            (
                "\"X-Pusher-Signature\": \"abc\"",
                "\"X-Pusher-Signature\": \"[REDACTED]\"",
            ),
            ("shared_secret='c2VjcmV0'", "shared_secret='[REDACTED]'"),
        ];
        for (line, expected) in cases {
            assert_eq!(clean(line), expected, "{line}");
        }
    }

    #[test]
    fn known_values_are_redacted_wherever_they_appear() {
        know("7ad3773142a6692b25b8");
        know("a-longer-secret-7ad3773142a6692b25b8");
        know("abc");
        assert_eq!(
            clean("hmac over 7ad3773142a6692b25b8 and a-longer-secret-7ad3773142a6692b25b8!"),
            "hmac over [REDACTED] and [REDACTED]!"
        );
        assert_eq!(clean("abc"), "abc", "too short to redact by value");
    }

    #[test]
    fn known_values_are_redacted_escaped_and_before_the_shapes_cut_them() {
        know("quote\"and\\slash-secret");
        let json = serde_json::json!({"message": "has quote\"and\\slash-secret"}).to_string();
        assert!(!clean(&json).contains("slash-secret"), "{}", clean(&json));
        know("ab&cd-secret");
        assert_eq!(clean("token=ab&cd-secret"), "token=[REDACTED]");
    }
}

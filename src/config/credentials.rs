//! An app's credentials beyond its current `key` and `secret`: `[[apps.previous_credentials]]`
//! (pairs still accepted until their `valid_until`), `webhook_signing` (which pair signs
//! webhooks), `rotation` (the secret's schedule) and `rotation_webhook` (where rotations are
//! announced). Parsed while the file is read, so a mistake is reported with its line; what the
//! pairs allow is the `apps` keyring's.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigString, Rfc3339};

/// One `[[apps.previous_credentials]]` entry: a pair that still works until `valid_until`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousCredentials {
    /// The key clients and backends may still use.
    pub key: ConfigString,
    /// Its secret (use `${VAR}` to keep it out of the file).
    pub secret: ConfigString,
    /// When the pair stops working (RFC 3339, UTC).
    pub valid_until: Rfc3339,
}

/// Which pair signs an app's webhooks while several are valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookSigning {
    /// The oldest pair still valid, so a backend that has not moved keeps validating.
    #[default]
    Oldest,
    /// The current pair.
    Newest,
}

/// `rotation = { every = "90d", grace = "24h" }`: the secret is replaced every `every`, and
/// the replaced one keeps working for `grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Time between rotations.
    pub every: ConfigDuration,
    /// How long a replaced secret keeps working.
    pub grace: ConfigDuration,
}

/// A duration written as integer seconds (`3600`) or with one unit suffix: `45s`, `30m`,
/// `12h`, `90d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DurationText")]
pub struct ConfigDuration(pub Duration);

/// What a duration may be written as in the file.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Seconds(u64),
    Text(String),
}

impl TryFrom<DurationText> for ConfigDuration {
    type Error = String;

    fn try_from(text: DurationText) -> Result<Self, String> {
        match text {
            DurationText::Seconds(seconds) => Ok(ConfigDuration(Duration::from_secs(seconds))),
            DurationText::Text(text) => {
                parse_duration(&text).map(ConfigDuration).ok_or_else(|| {
                    format!("{text:?} is not a duration like 90d, 12h, 30m, 45s or 3600 (seconds)")
                })
            }
        }
    }
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds; `None` for anything else (and on overflow).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits.parse().ok()?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return None,
    };
    count.checked_mul(unit_seconds).map(Duration::from_secs)
}

/// `duration` in the largest of `d`, `h`, `m`, `s` that divides it (`90d`, `36h`, `45s`).
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = [(24 * 3600, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| seconds > 0 && seconds % unit == 0)
        .map_or((seconds, "s"), |(size, unit)| (seconds / size, unit));
    format!("{count}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_one_unit() {
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(parse_duration("3600"), secs(3600));
        assert_eq!(parse_duration("45s"), secs(45));
        assert_eq!(parse_duration("30m"), secs(1800));
        assert_eq!(parse_duration("12h"), secs(43_200));
        assert_eq!(parse_duration("90d"), secs(7_776_000));
        for bad in [
            "",
            "d",
            "1w",
            "1h30m",
            "-5s",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}

//! The payload rules of an app: what `secret_scanning` does with an event's `data` (HTTP API
//! triggers and client events alike), and what a leaked credential sets off. The scanner
//! ([`scan`](super::scan)) only finds; this module decides: deliver unchanged and log
//! (`warn`), deliver redacted (`redact`), or refuse (`reject`). Whatever the mode, a live
//! Relay API token seen in a payload is revoked at once and the app's own secret seen in one
//! is reported for rotation. Encrypted channels carry ciphertext and are never scanned.
//!
//! Nothing matched ever reaches a log line or an answer: detector ids and byte positions only.

use std::borrow::Cow;
use std::time::SystemTime;

use tracing::{error, warn};

use super::redact::redact;
use super::scan::{Detector, Finding, Scanner};
use super::tokens::TokenRegistry;
use crate::activity::{ActivityRecorder, EventKind, SecurityEvent};
use crate::apps::App;
use crate::config::{SecretScanning, SecurityConfig};
use crate::protocol::{ChannelKind, ChannelName};

/// Where an event came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSource {
    /// An HTTP API trigger.
    Api,
    /// A client event.
    ClientEvent,
}

impl PayloadSource {
    fn as_str(self) -> &'static str {
        match self {
            PayloadSource::Api => "HTTP API",
            PayloadSource::ClientEvent => "client event",
        }
    }
}

/// A payload refused under `secret_scanning = "reject"`: the detectors that fired, each once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload contains a secret")]
pub struct SecretFound {
    /// Their ids, in detector order.
    pub detectors: Vec<&'static str>,
}

/// Why `[apps.security]`'s detector lists cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectorListError {
    /// A name that is no detector.
    #[error("{key}: unknown detector {name:?}; detectors are: {}", Detector::ALL.map(Detector::id).join(", "))]
    Unknown {
        /// `secret_scanning_skip` or `secret_scanning_pii`.
        key: &'static str,
        /// The name given.
        name: String,
    },
    /// A credential detector named in `secret_scanning_pii` (they are on already).
    #[error("secret_scanning_pii: {0:?} is not a personal-data detector (card, ssn, email)")]
    NotPersonalData(String),
}

/// An app's payload rules; absent when `secret_scanning` is off.
#[derive(Debug)]
pub struct PayloadRules {
    mode: SecretScanning,
    scanner: Scanner,
}

impl PayloadRules {
    /// The rules of `security`; `None` when scanning is off.
    pub fn from_config(security: &SecurityConfig) -> Result<Option<Self>, DetectorListError> {
        let parse = |key: &'static str, names: &[String]| {
            names
                .iter()
                .map(|name| {
                    Detector::parse(name).ok_or_else(|| DetectorListError::Unknown {
                        key,
                        name: name.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let skipped = parse("secret_scanning_skip", &security.secret_scanning_skip)?;
        let personal = parse("secret_scanning_pii", &security.secret_scanning_pii)?;
        if let Some(credential) = personal
            .iter()
            .find(|detector| !detector.is_personal_data())
        {
            return Err(DetectorListError::NotPersonalData(
                credential.id().to_owned(),
            ));
        }
        if security.secret_scanning == SecretScanning::Off {
            return Ok(None);
        }
        let enabled: Vec<Detector> = Detector::ALL
            .into_iter()
            .filter(|detector| {
                if detector.is_personal_data() {
                    personal.contains(detector)
                } else {
                    !skipped.contains(detector)
                }
            })
            .collect();
        Ok(Some(PayloadRules {
            mode: security.secret_scanning,
            scanner: Scanner::new(&enabled),
        }))
    }

    /// What to deliver of `data`, an event of `app` on `channel`: the data itself, its
    /// redacted form, or nothing ([`SecretFound`]). Leaked tokens are revoked in `tokens`.
    pub fn inspect<'a>(
        &self,
        app: &App,
        channel: &ChannelName,
        data: &'a str,
        source: PayloadSource,
        tokens: &TokenRegistry,
        activity: &ActivityRecorder,
    ) -> Result<Cow<'a, str>, SecretFound> {
        if channel.kind() == ChannelKind::PrivateEncrypted {
            return Ok(Cow::Borrowed(data));
        }
        report_own_secret(app, data, source, activity);
        let findings = self.scanner.scan(data);
        if findings.is_empty() {
            return Ok(Cow::Borrowed(data));
        }
        revoke_leaked_tokens(data, &findings, tokens, activity);
        let detectors = detector_ids(&findings);
        let positions = positions(&findings);
        let mode = match self.mode {
            SecretScanning::Off => return Ok(Cow::Borrowed(data)),
            SecretScanning::Warn => "warn",
            SecretScanning::Redact => "redact",
            SecretScanning::Reject => "reject",
        };
        warn!(
            app = %app.id,
            channel = %channel,
            source = source.as_str(),
            mode,
            detectors = %detectors.join(","),
            positions = %positions,
            "secret found in an event's data"
        );
        let message = format!(
            "secret in {} event data ({}); {mode}",
            source.as_str(),
            detectors.join(", ")
        );
        let event = SecurityEvent::new(&app.id, EventKind::SecretFound, None, message);
        activity.record(event, SystemTime::now());
        match self.mode {
            SecretScanning::Reject => Err(SecretFound { detectors }),
            SecretScanning::Redact => Ok(Cow::Owned(redact(data, &findings))),
            SecretScanning::Off | SecretScanning::Warn => Ok(Cow::Borrowed(data)),
        }
    }
}

/// Each detector that fired, once, in detector order.
fn detector_ids(findings: &[Finding]) -> Vec<&'static str> {
    let mut detectors: Vec<Detector> = findings.iter().map(|finding| finding.detector).collect();
    detectors.sort_unstable();
    detectors.dedup();
    detectors.into_iter().map(Detector::id).collect()
}

/// `id@start..end` for each finding (at most the first 20).
fn positions(findings: &[Finding]) -> String {
    findings
        .iter()
        .take(20)
        .map(|finding| {
            format!(
                "{}@{}..{}",
                finding.detector.id(),
                finding.range.start,
                finding.range.end
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Revokes every live Relay API token among `findings` (of any app: a token in a payload is
/// out in the open).
fn revoke_leaked_tokens(
    data: &str,
    findings: &[Finding],
    tokens: &TokenRegistry,
    activity: &ActivityRecorder,
) {
    let now = SystemTime::now();
    for finding in findings {
        if finding.detector != Detector::RelayToken {
            continue;
        }
        let Some(text) = data.get(finding.range.clone()) else {
            continue;
        };
        if let Some(revoked) = tokens.revoke_leaked(text, now) {
            error!(
                app = %revoked.app_id,
                token = %revoked.name,
                "critical: a live API token was published in an event's data; it is revoked"
            );
            let message = format!(
                "live API token {:?} published in event data; revoked",
                revoked.name
            );
            let event = SecurityEvent::new(&revoked.app_id, EventKind::TokenLeaked, None, message);
            activity.record(event, now);
        }
    }
}

/// Secrets shorter than this are not looked for (they would match ordinary text).
const SHORTEST_SECRET_LOOKED_FOR: usize = 8;

/// Logs and records, as critical, the app's own secret (current or in its grace) seen in `data`.
fn report_own_secret(app: &App, data: &str, source: PayloadSource, activity: &ActivityRecorder) {
    let keyring = app.keyring();
    let now = SystemTime::now();
    let secrets = std::iter::once(keyring.current())
        .chain(
            keyring
                .previous()
                .iter()
                .filter(|previous| now < previous.valid_until)
                .map(|previous| &previous.pair),
        )
        .map(|pair| pair.secret.expose());
    for secret in secrets {
        if secret.len() >= SHORTEST_SECRET_LOOKED_FOR && data.contains(secret) {
            error!(
                app = %app.id,
                source = source.as_str(),
                "critical: the app's secret was published in an event's data; rotate it with `relay keys rotate --app {}`",
                app.id
            );
            let message = format!(
                "the app's secret published in {} event data; rotate it",
                source.as_str()
            );
            let event = SecurityEvent::new(&app.id, EventKind::AppSecretLeaked, None, message);
            activity.record(event, now);
            return;
        }
    }
}

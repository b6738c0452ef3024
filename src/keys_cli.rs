//! `relay keys rotate | show`. `rotate` replaces an app's secret (and with `--key` its key)
//! in the state store, keeping the replaced pair valid for a grace period; running servers
//! pick the new pair up within `store::SYNC_INTERVAL`, and the app's `rotation_webhook`, if
//! any, gets a signed notice without the secret. `show` prints the current pair (the only
//! command that prints a secret) and the previous pairs still in their grace, with their uses.

use std::time::{Duration, SystemTime};

use crate::apps::rotation;
use crate::config::{AppConfig, Config, format_duration, parse_duration};
use crate::store::{PairUse, Rotated, RotationReason, Store, StoreError};
use crate::webhooks::RotationNotice;

/// The grace of a manual rotation when neither `--grace` nor the app's `rotation.grace` says.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Why a `relay keys` command failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysCliError {
    /// No app has the id.
    #[error("no app with id {0:?} in the configuration")]
    UnknownApp(String),
    /// A `--grace` that is not a duration.
    #[error("--grace {0:?} is not a duration like 24h, 30m or 3600")]
    BadDuration(String),
    /// Another process rotated the app at the same moment.
    #[error(
        "another process rotated the app at the same moment; nothing was changed, run it again"
    )]
    Conflict,
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `relay keys rotate` did.
#[derive(Debug)]
pub struct RotateOutcome {
    /// The new pair's generation.
    pub generation: u64,
    /// The new pair's key (the secret is printed only by `show`).
    pub key: String,
    /// When the replaced pair stops working.
    pub previous_valid_until: SystemTime,
    /// The notice to send, if the app has a `rotation_webhook`.
    pub notice: Option<RotationNotice>,
}

/// Records the rotation in the activity log (the rotation stands if that fails: said on
/// stderr).
fn record_rotation(
    store: &dyn Store,
    app_id: &str,
    generation: u64,
    reason: &str,
    now: SystemTime,
) {
    let entry = crate::activity::key_rotated(app_id, generation, reason, now);
    if let Err(error) = store.record_events(&[entry]) {
        eprintln!("relay: rotated, but the activity log could not record it: {error}");
    }
}

/// Rotates app `app_id` at `now`: a new secret, and a new key too when `new_key`.
pub fn rotate(
    config: &Config,
    store: &dyn Store,
    app_id: &str,
    new_key: bool,
    grace: Option<&str>,
    now: SystemTime,
) -> Result<RotateOutcome, KeysCliError> {
    let app = find_app(config, app_id)?;
    let grace = match grace {
        Some(text) => {
            parse_duration(text).ok_or_else(|| KeysCliError::BadDuration(text.to_owned()))?
        }
        None => app.rotation.map_or(DEFAULT_GRACE, |policy| policy.grace.0),
    };
    let keyring = current_keyring(app, store, now)?;
    let new = rotation::new_pair(keyring.current(), new_key);
    let reason = if new_key {
        RotationReason::NewKey
    } else {
        RotationReason::Manual
    };
    let record = rotation::rotation(app_id, &keyring, &new, now, grace, reason);
    match store.rotate(&record)? {
        Rotated::Done(generation) => {
            record_rotation(store, app_id, generation, reason.as_str(), now);
            Ok(RotateOutcome {
                generation,
                key: new.key.clone(),
                previous_valid_until: record.replaced_valid_until,
                notice: crate::state::credentials::notice(
                    app.rotation_webhook.as_ref(),
                    &record,
                    generation,
                    now,
                ),
            })
        }
        Rotated::Conflict => Err(KeysCliError::Conflict),
    }
}

/// The lines of `relay keys show`: the current pair with its secret, the previous pairs valid
/// at `now` with their uses, and the rotation schedule.
pub fn show(
    config: &Config,
    store: &dyn Store,
    app_id: &str,
    now: SystemTime,
) -> Result<Vec<String>, KeysCliError> {
    let app = find_app(config, app_id)?;
    let stored = store.credentials()?;
    let keyring =
        rotation::keyring_with_store(&rotation::configured_keyring(app), app_id, &stored, now);
    let uses = store.pair_uses(app_id)?;
    let current = keyring.current();
    let newest = rotation::pairs_of(&stored, app_id).max_by_key(|pair| pair.generation);
    let origin = match newest {
        Some(pair) => format!(
            "generation {} ({}, {})",
            pair.generation,
            pair.reason.as_str(),
            time(pair.created_at)
        ),
        None => "from config.toml".to_owned(),
    };
    let mut lines = vec![format!(
        "current   key {}  secret {}  {origin}",
        current.key,
        current.secret.expose()
    )];
    for previous in keyring.previous() {
        if now >= previous.valid_until {
            continue;
        }
        let used = uses
            .iter()
            .find(|pair_use| pair_use.pair == previous.label)
            .map_or_else(|| "never used".to_owned(), describe_use);
        lines.push(format!(
            "previous  key {}  valid until {}  ({})  {used}",
            previous.pair.key,
            time(previous.valid_until),
            previous.label
        ));
    }
    if let Some(policy) = app.rotation {
        let every = format_duration(policy.every.0);
        let grace = format_duration(policy.grace.0);
        let since = match rotation::last_rotation(&stored, app_id) {
            Some(last) => Some(last),
            None => store.rotation_schedule(app_id)?,
        };
        let next = match since {
            Some(since) => format!("next {}", time(rotation::next_due(&policy, since))),
            None => "counted from the first server start with it".to_owned(),
        };
        lines.push(format!("rotation  every {every}, grace {grace}; {next}"));
    }
    Ok(lines)
}

/// The app's pairs as running servers see them: config.toml's with the store's laid over.
fn current_keyring(
    app: &AppConfig,
    store: &dyn Store,
    now: SystemTime,
) -> Result<crate::apps::Keyring, StoreError> {
    Ok(rotation::keyring_with_store(
        &rotation::configured_keyring(app),
        app.id.as_str(),
        &store.credentials()?,
        now,
    ))
}

fn find_app<'a>(config: &'a Config, app_id: &str) -> Result<&'a AppConfig, KeysCliError> {
    config
        .apps
        .iter()
        .find(|app| app.id.as_str() == app_id)
        .ok_or_else(|| KeysCliError::UnknownApp(app_id.to_owned()))
}

fn describe_use(used: &PairUse) -> String {
    let from = used
        .last_address
        .map_or_else(String::new, |address| format!(" from {address}"));
    let uses = if used.count == 1 { "use" } else { "uses" };
    format!(
        "{} {uses}, last {}{from} ({})",
        used.count,
        time(used.last_used),
        used.last_via
    )
}

fn time(at: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(at)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::SqliteStore;

    const CONFIG: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"config-secret\"\n\
        rotation = { every = \"90d\", grace = \"1h\" }\n";

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_rotation_is_shown_with_the_replaced_pair_in_its_grace() {
        let config = Config::from_toml(CONFIG, Path::new("t.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let now = at("2026-12-01T00:00:00Z");
        let before = show(&config, &store, "1", now).unwrap();
        assert_eq!(
            before[0],
            "current   key k  secret config-secret  from config.toml"
        );
        assert!(before[1].ends_with("counted from the first server start with it"));
        let rotated = rotate(&config, &store, "1", false, None, now).unwrap();
        assert_eq!((rotated.generation, rotated.key.as_str()), (1, "k"));
        assert_eq!(rotated.previous_valid_until, at("2026-12-01T01:00:00Z"));
        assert!(rotated.notice.is_none(), "no rotation_webhook");
        let after = show(&config, &store, "1", now).unwrap();
        assert!(
            after[0].starts_with("current   key k  secret "),
            "{after:?}"
        );
        assert!(!after[0].contains("config-secret"));
        assert!(after[0].ends_with("generation 1 (manual, 2026-12-01T00:00:00Z)"));
        assert_eq!(
            after[1],
            "previous  key k  valid until 2026-12-01T01:00:00Z  (generation 0)  never used"
        );
        let later = show(&config, &store, "1", at("2026-12-01T01:00:00Z")).unwrap();
        assert!(
            later[1].starts_with("rotation"),
            "the grace is over: {later:?}"
        );
    }

    #[test]
    fn a_new_key_and_a_grace_can_be_asked_for() {
        let config = Config::from_toml(CONFIG, Path::new("t.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let now = at("2026-12-01T00:00:00Z");
        let rotated = rotate(&config, &store, "1", true, Some("10m"), now).unwrap();
        assert_ne!(rotated.key, "k");
        assert_eq!(rotated.previous_valid_until, at("2026-12-01T00:10:00Z"));
        let bad = rotate(&config, &store, "1", false, Some("soon"), now).unwrap_err();
        assert!(matches!(bad, KeysCliError::BadDuration(_)));
        let unknown = rotate(&config, &store, "2", false, None, now).unwrap_err();
        assert!(matches!(unknown, KeysCliError::UnknownApp(_)));
    }
}

//! Key rotation, the pure part: the keyring `config.toml` names, the keyring once the state
//! store's rotations are laid over it, when the next scheduled rotation is due, the new pair
//! a rotation makes, and the notice that announces it. The effects (reading and writing the
//! store, swapping keyrings, POSTing the notice) are `state::credentials`' and the CLI's.
//!
//! The store wins over `config.toml`: once a rotation has been recorded, the current pair is
//! the store's newest, and config.toml's `key`/`secret` only work while they are inside the
//! grace the rotation gave them (kept in the store as generation 0).

use std::time::SystemTime;

use serde_json::json;

use super::{Keyring, Pair, PreviousPair, Secret};
use crate::config::{AppConfig, RotationConfig};
use crate::store::{Rotation, RotationReason, StoredPair};

/// Hex characters in a generated key (Pusher's keys have 20).
pub const KEY_HEX_LEN: usize = 20;
/// Hex characters in a generated secret (160 bits).
const SECRET_HEX_LEN: usize = 40;

/// The pairs `config.toml` names: its `key`/`secret` and `[[apps.previous_credentials]]`.
pub fn configured_keyring(config: &AppConfig) -> Keyring {
    let previous = config
        .previous_credentials
        .iter()
        .map(|pair| PreviousPair {
            pair: Pair {
                key: pair.key.as_str().to_owned(),
                secret: Secret::new(pair.secret.as_str()),
            },
            valid_until: pair.valid_until.0,
            label: format!(
                "config {} {}",
                pair.key.as_str(),
                humantime::format_rfc3339_seconds(pair.valid_until.0)
            ),
        })
        .collect();
    let current = Pair {
        key: config.key.as_str().to_owned(),
        secret: Secret::new(config.secret.as_str()),
    };
    Keyring::new(current, previous, config.webhook_signing, None)
}

/// The stored pairs of app `app_id` among `stored` (every app's, as the store gives them).
pub fn pairs_of<'a>(
    stored: &'a [StoredPair],
    app_id: &'a str,
) -> impl Iterator<Item = &'a StoredPair> + Clone {
    stored.iter().filter(move |pair| pair.app_id == app_id)
}

/// `configured` with app `app_id`'s pairs among `stored` laid over it: the newest stored pair
/// is current, the other stored pairs and config.toml's previous ones stay until their
/// `valid_until` (those already over at `now` are left out).
pub fn keyring_with_store(
    configured: &Keyring,
    app_id: &str,
    stored: &[StoredPair],
    now: SystemTime,
) -> Keyring {
    let pairs = pairs_of(stored, app_id);
    let Some(newest) = pairs.clone().max_by_key(|pair| pair.generation) else {
        return configured.clone();
    };
    let from_store = pairs.filter_map(|pair| {
        let valid_until = pair.valid_until?;
        Some(PreviousPair {
            pair: Pair {
                key: pair.key.clone(),
                secret: Secret::new(pair.secret.as_str()),
            },
            valid_until,
            label: format!("generation {}", pair.generation),
        })
    });
    let previous = configured
        .previous()
        .iter()
        .cloned()
        .chain(from_store)
        .filter(|pair| now < pair.valid_until)
        .collect();
    let current = Pair {
        key: newest.key.clone(),
        secret: Secret::new(newest.secret.as_str()),
    };
    Keyring::new(
        current,
        previous,
        configured.signing(),
        Some(newest.generation),
    )
}

/// When app `app_id` last rotated (any kind: a manual rotation restarts the schedule), if it
/// ever did.
pub fn last_rotation(stored: &[StoredPair], app_id: &str) -> Option<SystemTime> {
    pairs_of(stored, app_id).map(|pair| pair.created_at).max()
}

/// When the next scheduled rotation is due: `every` after `since`, the last rotation or,
/// before the first, the schedule's start.
pub fn next_due(policy: &RotationConfig, since: SystemTime) -> SystemTime {
    since + policy.every.0
}

/// A new pair replacing `current`: a new random secret, and a new random key too when
/// `new_key` (a leaked key); otherwise the key stays, since it is built into every front end.
pub fn new_pair(current: &Pair, new_key: bool) -> Pair {
    Pair {
        key: if new_key {
            random_hex(KEY_HEX_LEN)
        } else {
            current.key.clone()
        },
        secret: Secret::new(random_hex(SECRET_HEX_LEN)),
    }
}

/// The store record of replacing `keyring`'s current pair with `new` at `at`, the replaced
/// pair valid for `grace` more.
pub fn rotation<'a>(
    app_id: &'a str,
    keyring: &'a Keyring,
    new: &'a Pair,
    at: SystemTime,
    grace: std::time::Duration,
    reason: RotationReason,
) -> Rotation<'a> {
    let replaced = keyring.current();
    Rotation {
        app_id,
        based_on: keyring.generation(),
        replaced: (&replaced.key, replaced.secret.expose()),
        new_key: &new.key,
        new_secret: new.secret.expose(),
        at,
        replaced_valid_until: at + grace,
        reason,
    }
}

/// The body of a rotation notice, in Pusher's webhook shape so that the SDKs' webhook
/// validators read it: which app, the new key, the replaced key and until when it works.
/// Never a secret.
pub fn notice_body(app_id: &str, rotation: &Rotation<'_>, generation: u64, now_ms: u64) -> String {
    json!({
        "time_ms": now_ms,
        "events": [{
            "name": "credentials_rotated",
            "app_id": app_id,
            "key": rotation.new_key,
            "generation": generation,
            "reason": rotation.reason.as_str(),
            "previous_key": rotation.replaced.0,
            "previous_valid_until": humantime::format_rfc3339_seconds(rotation.replaced_valid_until).to_string(),
        }],
    })
    .to_string()
}

/// `len` random hex characters (`len / 2` bytes from the thread RNG, which the OS seeds).
pub fn random_hex(len: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; len / 2];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn configured() -> Keyring {
        let config = Config::from_toml(
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"config-secret\"\n\
             [[apps.previous_credentials]]\nkey = \"old\"\nsecret = \"old-secret\"\n\
             valid_until = \"1970-01-01T00:16:40Z\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        configured_keyring(&config.apps[0])
    }

    fn stored(generation: u64, secret: &str, created: u64, until: Option<u64>) -> StoredPair {
        StoredPair {
            app_id: "1".into(),
            generation,
            key: "k".into(),
            secret: secret.into(),
            created_at: at(created),
            valid_until: until.map(at),
            reason: RotationReason::Scheduled,
        }
    }

    #[test]
    fn without_rotations_the_config_pairs_are_the_keyring() {
        let ring = keyring_with_store(&configured(), "1", &[], at(10));
        assert_eq!(ring, configured());
        assert_eq!(ring.current().secret.expose(), "config-secret");
        assert_eq!(ring.previous()[0].valid_until, at(1000));
    }

    #[test]
    fn the_newest_stored_pair_wins_and_older_ones_stay_for_their_grace() {
        let rows = [
            stored(0, "config-secret", 100, Some(500)),
            stored(1, "s1", 100, Some(2000)),
            stored(2, "s2", 1500, None),
        ];
        let mut rows = rows.to_vec();
        rows.push(StoredPair {
            app_id: "2".into(),
            ..stored(9, "another app's", 1500, None)
        });
        let ring = keyring_with_store(&configured(), "1", &rows, at(600));
        assert_eq!(ring.current().secret.expose(), "s2");
        assert_eq!(ring.generation(), Some(2));
        let labels: Vec<&str> = ring.previous().iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            ["config old 1970-01-01T00:16:40Z", "generation 1"],
            "generation 0's grace ended at 500"
        );
    }

    #[test]
    fn a_schedule_counts_from_the_last_rotation_or_its_start() {
        let policy = RotationConfig {
            every: crate::config::ConfigDuration(Duration::from_secs(100)),
            grace: crate::config::ConfigDuration(Duration::from_secs(10)),
        };
        assert_eq!(last_rotation(&[], "1"), None);
        assert_eq!(
            next_due(&policy, at(50)),
            at(150),
            "from the schedule's start"
        );
        let rows = [stored(0, "c", 70, Some(80)), stored(1, "s1", 70, None)];
        assert_eq!(last_rotation(&rows, "1"), Some(at(70)));
        assert_eq!(
            last_rotation(&rows, "2"),
            None,
            "another app's rotations do not count"
        );
        assert_eq!(next_due(&policy, at(70)), at(170), "from the last rotation");
    }

    #[test]
    fn a_new_pair_keeps_the_key_unless_asked() {
        let current = configured().current().clone();
        let same_key = new_pair(&current, false);
        assert_eq!(same_key.key, "k");
        assert_eq!(same_key.secret.expose().len(), SECRET_HEX_LEN);
        assert_ne!(same_key.secret, current.secret);
        let new_key = new_pair(&current, true);
        assert_eq!(new_key.key.len(), KEY_HEX_LEN);
        assert_ne!(new_key.key, "k");
    }

    #[test]
    fn the_notice_names_the_pairs_but_carries_no_secret() {
        let ring = configured();
        let new = new_pair(ring.current(), false);
        let record = rotation(
            "1",
            &ring,
            &new,
            at(100),
            Duration::from_secs(60),
            RotationReason::Manual,
        );
        assert_eq!(record.based_on, None);
        let body = notice_body("1", &record, 1, 100_000);
        assert!(!body.contains(new.secret.expose()));
        assert!(!body.contains("config-secret"));
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let event = &parsed["events"][0];
        assert_eq!(event["name"], "credentials_rotated");
        assert_eq!(event["previous_valid_until"], "1970-01-01T00:02:40Z");
        assert_eq!(event["reason"], "manual");
    }
}

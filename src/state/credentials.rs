//! Keeping the apps' keyrings in step with the state store: the store's rotations are laid
//! over `config.toml`'s pairs at start-up and after every change (a `relay keys rotate`, a
//! pair's grace ending), and apps with a `rotation` schedule are rotated when it is due. Runs
//! inside the store sync (`state::sync`), on the blocking pool; what has to go out on the
//! network (the rotation notices) is handed back to be sent from the runtime.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::apps::{Apps, rotation};
use crate::config::WebhookUrl;
use crate::store::{Rotated, RotationReason, Store, StoreError, StoredPair};
use crate::webhooks::RotationNotice;

/// Lays the store's pairs over every app's configured keyring, swapping the keyrings that
/// changed (and the key index when keys came or went). At start-up (`announce`), says which
/// apps' current pair comes from the store rather than `config.toml`.
pub fn apply_stored(apps: &Apps, stored: &[StoredPair], now: SystemTime, announce: bool) {
    let registry = apps.load();
    let mut keys_changed = false;
    for app in registry.apps() {
        let keyring = rotation::keyring_with_store(app.configured_keyring(), &app.id, stored, now);
        if announce && let Some(generation) = keyring.generation() {
            info!(
                app = %app.id,
                generation,
                "the state store's rotated credentials win over config.toml's key and secret"
            );
        }
        let current = app.keyring();
        if **current == keyring {
            continue;
        }
        let keys = |ring: &crate::apps::Keyring| -> HashSet<String> {
            ring.keys().map(str::to_owned).collect()
        };
        keys_changed |= keys(&current) != keys(&keyring);
        app.set_keyring(keyring);
    }
    if keys_changed {
        apps.reindex();
    }
}

/// Rotates, on the store, every app whose schedule is due at `now`, then lays the result
/// over the keyrings; returns the notices to send.
pub fn rotate_due(
    apps: &Apps,
    store: &dyn Store,
    now: SystemTime,
) -> Result<Vec<RotationNotice>, StoreError> {
    let mut stored = store.credentials()?;
    let mut notices = Vec::new();
    let registry = apps.load();
    for app in registry.apps() {
        let Some(policy) = app.rotation else {
            continue;
        };
        // The schedule's start matters only before the first rotation; it is recorded then.
        let since = match rotation::last_rotation(&stored, &app.id) {
            Some(last) => last,
            None => store.rotation_schedule_start(&app.id, now)?,
        };
        if now < rotation::next_due(&policy, since) {
            continue;
        }
        let keyring = rotation::keyring_with_store(app.configured_keyring(), &app.id, &stored, now);
        let new = rotation::new_pair(keyring.current(), false);
        let record = rotation::rotation(
            &app.id,
            &keyring,
            &new,
            now,
            policy.grace.0,
            RotationReason::Scheduled,
        );
        match store.rotate(&record)? {
            Rotated::Done(generation) => {
                info!(
                    app = %app.id,
                    generation,
                    previous_valid_until = %humantime::format_rfc3339_seconds(record.replaced_valid_until),
                    "secret rotated on schedule; the previous one works until its grace ends"
                );
                let entry = crate::activity::key_rotated(&app.id, generation, "scheduled", now);
                if let Err(error) = store.record_events(&[entry]) {
                    tracing::warn!(%error, "cannot record the rotation in the activity log");
                }
                notices.extend(notice(
                    app.rotation_webhook.as_ref(),
                    &record,
                    generation,
                    now,
                ));
                stored = store.credentials()?;
            }
            // Another process rotated first: its pair is read with the others below.
            Rotated::Conflict => stored = store.credentials()?,
        }
    }
    apply_stored(apps, &stored, now, false);
    Ok(notices)
}

/// The notice of `record` for an app's `rotation_webhook`, if it has one, signed with the
/// replaced pair (the one the receiver still knows).
pub fn notice(
    rotation_webhook: Option<&WebhookUrl>,
    record: &crate::store::Rotation<'_>,
    generation: u64,
    now: SystemTime,
) -> Option<RotationNotice> {
    let url = rotation_webhook?.clone();
    let app_id = record.app_id;
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    });
    let body = rotation::notice_body(app_id, record, generation, now_ms);
    let (key, secret) = record.replaced;
    let signature = crate::protocol::signature::sign(secret.as_bytes(), body.as_bytes());
    Some(RotationNotice {
        app_id: app_id.to_owned(),
        url,
        body,
        key: key.to_owned(),
        signature,
    })
}

/// Sends `notices` from the runtime, each in its own task; failures are logged.
pub fn send_all(notices: Vec<RotationNotice>) {
    for notice in notices {
        actix_web::rt::spawn(async move {
            if let Err(error) = notice.send().await {
                warn!(app = %notice.app_id, %error, "rotation notice not delivered");
            }
        });
    }
}

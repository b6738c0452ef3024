//! The last event of each cache channel (`cache-`, `private-cache-`,
//! `private-encrypted-cache-`, `presence-cache-`), kept for a time-to-live.
//!
//! Only events published through the HTTP API are stored (client events never are). A new
//! subscriber gets the stored frame right after `subscription_succeeded`, or
//! `pusher:cache_miss`. Entries expire lazily on read; every insert that grows the map past
//! the next sweep mark first drops the expired ones, so channels nobody reads again cannot
//! accumulate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::Instant;

use crate::protocol::ChannelName;

/// Entries below which no sweep is attempted.
const FIRST_SWEEP_AT: usize = 64;

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEvent {
    /// The channel event frame, exactly as it was broadcast.
    pub frame: ByteString,
    /// The event's `data`, for `GET …/channels/{name}?info=cache`.
    pub data: String,
    /// When it stops being served.
    pub expires_at: Instant,
}

impl CachedEvent {
    /// Time left before it expires, at `now`.
    pub fn ttl_left(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

/// The cache channels of one app.
#[derive(Debug)]
pub struct ChannelCache {
    entries: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    events: HashMap<ChannelName, CachedEvent>,
    /// The size at which the next insert sweeps expired entries first.
    sweep_at: usize,
}

impl Default for ChannelCache {
    fn default() -> Self {
        ChannelCache {
            entries: Mutex::new(Entries {
                events: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
            }),
        }
    }
}

impl ChannelCache {
    /// Stores `event` as the last one of `channel`, replacing any earlier one.
    pub fn store(&self, channel: &ChannelName, event: CachedEvent, now: Instant) {
        let mut entries = self.lock();
        if !entries.events.contains_key(channel) && entries.events.len() >= entries.sweep_at {
            entries.events.retain(|_, stored| stored.expires_at > now);
            entries.sweep_at = (entries.events.len() * 2).max(FIRST_SWEEP_AT);
        }
        entries.events.insert(channel.clone(), event);
    }

    /// The unexpired last event of `channel`, at `now`.
    pub fn get(&self, channel: &str, now: Instant) -> Option<CachedEvent> {
        let mut entries = self.lock();
        match entries.events.get(channel) {
            Some(event) if event.expires_at > now => Some(event.clone()),
            Some(_) => {
                entries.events.remove(channel);
                None
            }
            None => None,
        }
    }

    /// Entries held, expired or not.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    fn event(data: &str, expires_at: Instant) -> CachedEvent {
        CachedEvent {
            frame: ByteString::from(format!("frame:{data}")),
            data: data.to_owned(),
            expires_at,
        }
    }

    #[test]
    fn the_last_event_is_served_until_it_expires() {
        let cache = ChannelCache::default();
        let now = Instant::now();
        let ttl = Duration::from_secs(30);
        cache.store(&channel("cache-a"), event("1", now + ttl), now);
        cache.store(&channel("cache-a"), event("2", now + ttl), now);
        let served = cache.get("cache-a", now + Duration::from_secs(10)).unwrap();
        assert_eq!(served.data, "2");
        assert_eq!(
            served.ttl_left(now + Duration::from_secs(10)),
            Duration::from_secs(20)
        );
        assert_eq!(cache.get("cache-b", now), None);
        assert_eq!(cache.get("cache-a", now + ttl), None, "expired");
        assert!(cache.is_empty(), "an expired entry is dropped when read");
    }

    #[test]
    fn expired_entries_of_unread_channels_are_swept_as_the_cache_grows() {
        let cache = ChannelCache::default();
        let start = Instant::now();
        let ttl = Duration::from_secs(1);
        for i in 0..FIRST_SWEEP_AT {
            cache.store(
                &channel(&format!("cache-{i}")),
                event("x", start + ttl),
                start,
            );
        }
        assert_eq!(cache.len(), FIRST_SWEEP_AT);
        let later = start + Duration::from_secs(2);
        cache.store(&channel("cache-new"), event("y", later + ttl), later);
        assert_eq!(
            cache.len(),
            1,
            "the expired entries went on the next insert"
        );
    }
}

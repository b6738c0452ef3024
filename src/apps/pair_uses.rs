//! Uses of an app's previous pairs, counted so that an admin sees who has not moved to the
//! current credentials (`relay keys show`). Uses of the current pair are not counted: that is
//! the hot path, and nobody needs to be chased for it. Counts gather in memory and are taken
//! by the state-store sync (`state::sync`), never written per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::info;

use crate::store::PairUse;

/// Where a credential was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// An HTTP API request (signature or `X-Relay-Key` + secret).
    Api,
    /// A private, presence or encrypted channel subscription's `auth`.
    ChannelAuth,
    /// A `pusher:signin`'s `auth`.
    SignIn,
    /// A WebSocket connection to `/app/{key}`.
    WebSocket,
}

impl Via {
    /// The name shown by `relay keys show` and kept in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "HTTP API",
            Via::ChannelAuth => "channel auth",
            Via::SignIn => "sign-in",
            Via::WebSocket => "WebSocket key",
        }
    }
}

/// One presentation of a credential: where, from whom, and when (the time every check of the
/// keyring is made at).
#[derive(Debug, Clone, Copy)]
pub struct CredentialUse {
    /// Where.
    pub via: Via,
    /// The client's address, when known.
    pub address: Option<IpAddr>,
    /// When.
    pub now: SystemTime,
}

impl CredentialUse {
    /// A use at the current time.
    pub fn now(via: Via, address: Option<IpAddr>) -> Self {
        CredentialUse {
            via,
            address,
            now: SystemTime::now(),
        }
    }
}

#[derive(Debug, Default)]
struct Uses {
    /// Counts since the last [`PairUses::take`], by pair label.
    counts: HashMap<String, PairUse>,
    /// Pairs whose first use since start-up has been logged.
    logged: std::collections::HashSet<String>,
    /// Uses of pairs past their grace since the last [`PairUses::take_expired`], by address
    /// and where (at most [`MOST_EXPIRED_USE_KEYS`]; more fold into no address).
    expired: HashMap<(Option<IpAddr>, Via), u64>,
}

/// Most (address, where) keys of expired-pair uses held between two syncs.
const MOST_EXPIRED_USE_KEYS: usize = 1_024;

/// Uses of a pair whose grace has ended, from one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredUse {
    /// The client's address, when known (none: unknown, or too many to tell apart).
    pub address: Option<IpAddr>,
    /// Where the secret was presented.
    pub via: Via,
    /// How many times.
    pub count: u64,
}

/// The app's counts.
#[derive(Debug, Default)]
pub struct PairUses {
    uses: Mutex<Uses>,
}

impl PairUses {
    /// Counts a use of the previous pair `label` of app `app_id`; the first since start-up is
    /// also logged.
    pub fn record(&self, app_id: &str, label: &str, used: &CredentialUse) {
        let mut uses = self
            .uses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(counted) = uses.counts.get_mut(label) {
            counted.count += 1;
            counted.last_used = used.now;
            counted.last_address = used.address;
            used.via.as_str().clone_into(&mut counted.last_via);
            return;
        }
        uses.counts.insert(
            label.to_owned(),
            PairUse {
                app_id: app_id.to_owned(),
                pair: label.to_owned(),
                count: 1,
                last_used: used.now,
                last_address: used.address,
                last_via: used.via.as_str().to_owned(),
            },
        );
        if uses.logged.insert(label.to_owned()) {
            info!(
                app = app_id,
                pair = label,
                via = used.via.as_str(),
                "a client uses a previous key/secret pair inside its grace period"
            );
        }
    }

    /// Counts a secret of a pair whose grace has ended, presented and matching.
    pub fn record_expired(&self, used: &CredentialUse) {
        let mut uses = self
            .uses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut key = (used.address, used.via);
        if uses.expired.len() >= MOST_EXPIRED_USE_KEYS && !uses.expired.contains_key(&key) {
            key.0 = None;
        }
        *uses.expired.entry(key).or_default() += 1;
    }

    /// The expired-pair uses gathered since the last call.
    pub fn take_expired(&self) -> Vec<ExpiredUse> {
        let mut uses = self
            .uses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        uses.expired
            .drain()
            .map(|((address, via), count)| ExpiredUse {
                address,
                via,
                count,
            })
            .collect()
    }

    /// The counts gathered since the last call.
    pub fn take(&self) -> Vec<PairUse> {
        let mut uses = self
            .uses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        uses.counts.drain().map(|(_, counted)| counted).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_add_up_until_taken_and_keep_the_last_one() {
        let uses = PairUses::default();
        let at = |secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let used = |via, address: &str, secs| CredentialUse {
            via,
            address: address.parse().ok(),
            now: at(secs),
        };
        uses.record("1", "generation 1", &used(Via::Api, "192.0.2.1", 5));
        uses.record("1", "generation 1", &used(Via::SignIn, "192.0.2.2", 6));
        uses.record("1", "config k", &used(Via::WebSocket, "", 7));
        let mut taken = uses.take();
        taken.sort_by(|a, b| a.pair.cmp(&b.pair));
        assert_eq!(taken.len(), 2);
        assert_eq!((taken[0].pair.as_str(), taken[0].count), ("config k", 1));
        let first = &taken[1];
        assert_eq!((first.count, first.last_used), (2, at(6)));
        assert_eq!(first.last_address, "192.0.2.2".parse().ok());
        assert_eq!(first.last_via, "sign-in");
        assert!(uses.take().is_empty(), "taken once");
    }
}

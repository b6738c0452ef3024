//! The apps' API tokens as the running server knows them: `[[apps.tokens]]` by hash, the
//! revoked ones (read from the state store and swapped in whole, so a request never waits on
//! the store), and each token's use since the last flush to the store.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::token::WellFormedToken;
use crate::config::{Config, Scope, TokenHash};
use crate::store::{RevokedToken, TokenUse};

/// Why an API token was refused; each message is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Malformed, unknown, expired, for another app, or revoked: one message for all, so the
    /// answer tells nothing about which (401).
    #[error("Invalid API token")]
    Invalid,
    /// Valid, but without the scope the endpoint needs (403).
    #[error("token lacks scope {}", .0.as_str())]
    LacksScope(Scope),
}

/// One API token, as `[[apps.tokens]]` describes it.
#[derive(Debug)]
pub struct TokenEntry {
    /// The app it belongs to.
    pub app_id: String,
    /// Its name (for logs and the CLI; never the token).
    pub name: String,
    /// What it may do; empty: everything.
    scopes: Vec<Scope>,
    expires_at: Option<SystemTime>,
    /// Uses since the last flush.
    pending: Mutex<PendingUse>,
}

/// Uses of one token not yet in the store.
#[derive(Debug, Default)]
struct PendingUse {
    count: u64,
    last: Option<(SystemTime, Option<IpAddr>)>,
}

impl TokenEntry {
    /// Whether it may call an endpoint that needs `scope` (`None`: an endpoint that only
    /// full-access tokens may call).
    pub fn allows(&self, scope: Option<Scope>) -> Result<(), TokenRefusal> {
        if self.scopes.is_empty() {
            return Ok(());
        }
        match scope {
            Some(scope) if self.scopes.contains(&scope) => Ok(()),
            Some(scope) => Err(TokenRefusal::LacksScope(scope)),
            None => Err(TokenRefusal::Invalid),
        }
    }

    /// Whether `other` is the same token as this one says it.
    fn same_as(&self, other: &TokenEntry) -> bool {
        self.app_id == other.app_id
            && self.name == other.name
            && self.scopes == other.scopes
            && self.expires_at == other.expires_at
    }

    /// The uses not yet flushed, taken.
    fn take_pending(&self) -> PendingUse {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Adds `taken` (uses counted by an entry this one replaced) to the unflushed uses.
    fn add_pending(&self, taken: PendingUse) {
        let mut pending = lock(&self.pending);
        pending.count += taken.count;
        if pending.last.is_none() {
            pending.last = taken.last;
        }
    }

    /// The uses not yet flushed, taken, as the store records them (`None`: none).
    fn take_use(&self) -> Option<TokenUse> {
        let taken = self.take_pending();
        let (last_used, last_address) = taken.last?;
        Some(TokenUse {
            app_id: self.app_id.clone(),
            name: self.name.clone(),
            count: taken.count,
            last_used,
            last_address,
        })
    }

    /// Counts one authenticated request from `address` at `now`.
    pub fn record_use(&self, address: Option<IpAddr>, now: SystemTime) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        pending.count += 1;
        pending.last = Some((now, address));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Every app's tokens.
#[derive(Debug, Default)]
pub struct TokenRegistry {
    /// Swapped whole by a configuration reload.
    entries: ArcSwap<TokenEntries>,
    revoked: ArcSwap<HashSet<TokenHash>>,
    /// Tokens revoked here (seen in a payload) and not yet written to the store.
    leaked: Mutex<Vec<(TokenHash, RevokedToken)>>,
    /// Uses of tokens a reload removed, not yet flushed.
    removed_uses: Mutex<Vec<TokenUse>>,
}

/// The tokens one configuration names, by hash and by app and name.
#[derive(Debug, Default)]
pub struct TokenEntries {
    by_hash: HashMap<TokenHash, Arc<TokenEntry>>,
    by_name: HashMap<(String, String), TokenHash>,
}

impl TokenRegistry {
    /// The tokens of `config`, none revoked yet.
    pub fn from_config(config: &Config) -> Self {
        let registry = TokenRegistry::default();
        registry.commit(registry.prepare(config));
        registry
    }

    /// The tokens of `config`, for [`Self::commit`]: an entry whose token, app, name, scopes
    /// and expiry are unchanged is the one in force, with the uses it has not flushed yet.
    pub fn prepare(&self, config: &Config) -> TokenEntries {
        let current = self.entries.load();
        let mut entries = TokenEntries::default();
        for app in &config.apps {
            for token in &app.tokens {
                let key = (app.id.as_str().to_owned(), token.name.clone());
                entries.by_name.insert(key, token.hash);
                let entry = TokenEntry {
                    app_id: app.id.as_str().to_owned(),
                    name: token.name.clone(),
                    scopes: token.scopes.clone(),
                    expires_at: token.expires_at.map(|at| at.0),
                    pending: Mutex::default(),
                };
                let entry = match current.by_hash.get(&token.hash) {
                    Some(kept) if kept.same_as(&entry) => kept.clone(),
                    _ => Arc::new(entry),
                };
                entries.by_hash.insert(token.hash, entry);
            }
        }
        entries
    }

    /// Puts `entries` in force. A token whose entry was rebuilt (its scopes or expiry
    /// changed) keeps its unflushed uses, and those of removed tokens wait for the next flush.
    /// The revoked set stays (it is by hash, and the next sync reads the store's again).
    pub fn commit(&self, entries: TokenEntries) {
        let replaced = self.entries.swap(Arc::new(entries));
        let current = self.entries.load();
        let mut removed = Vec::new();
        for (hash, old) in &replaced.by_hash {
            match current.by_hash.get(hash) {
                Some(new) if Arc::ptr_eq(new, old) => {}
                Some(new) => new.add_pending(old.take_pending()),
                None => removed.extend(old.take_use()),
            }
        }
        lock(&self.removed_uses).extend(removed);
    }

    /// Whether any app has a token.
    pub fn is_empty(&self) -> bool {
        self.entries.load().by_hash.is_empty()
    }

    /// The token `text` names, if it is well formed (checked before any look-up), known, not
    /// revoked and not expired at `now`.
    pub fn verify(&self, text: &str, now: SystemTime) -> Result<Arc<TokenEntry>, TokenRefusal> {
        let hash = WellFormedToken::parse(text)
            .ok_or(TokenRefusal::Invalid)?
            .hash();
        let entry = self
            .entries
            .load()
            .by_hash
            .get(&hash)
            .cloned()
            .ok_or(TokenRefusal::Invalid)?;
        if entry.expires_at.is_some_and(|expires| expires <= now)
            || self.revoked.load().contains(&hash)
        {
            return Err(TokenRefusal::Invalid);
        }
        Ok(entry)
    }

    /// The entry of `text` if it is a revoked token of this Relay (a sign that it leaked).
    pub fn revoked_entry(&self, text: &str) -> Option<Arc<TokenEntry>> {
        let hash = WellFormedToken::parse(text)?.hash();
        if !self.revoked.load().contains(&hash) {
            return None;
        }
        self.entries.load().by_hash.get(&hash).cloned()
    }

    /// Takes `revoked` (from the store) as the whole revoked set, with the leaked tokens not
    /// yet written there; names of tokens not in the configuration are ignored.
    pub fn set_revoked(&self, revoked: &[RevokedToken]) {
        let leaked = self
            .leaked
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let entries = self.entries.load();
        let hashes: HashSet<TokenHash> = revoked
            .iter()
            .filter_map(|token| {
                entries
                    .by_name
                    .get(&(token.app_id.clone(), token.name.clone()))
                    .copied()
            })
            .chain(leaked.iter().map(|(hash, _)| *hash))
            .collect();
        if **self.revoked.load() != hashes {
            self.revoked.store(Arc::new(hashes));
        }
    }

    /// Revokes the token `text` at once, if it is live at `now`: it was seen in a payload.
    /// The revocation reaches the store at the next sync ([`Self::take_leaked`]).
    pub fn revoke_leaked(&self, text: &str, now: SystemTime) -> Option<RevokedToken> {
        let entry = self.verify(text, now).ok()?;
        let hash = WellFormedToken::parse(text)?.hash();
        let revoked = RevokedToken {
            app_id: entry.app_id.clone(),
            name: entry.name.clone(),
        };
        let mut leaked = self
            .leaked
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        leaked.push((hash, revoked.clone()));
        self.revoked.rcu(|current| {
            let mut next = HashSet::clone(current);
            next.insert(hash);
            next
        });
        Some(revoked)
    }

    /// The tokens revoked by [`Self::revoke_leaked`] since the last call, for the store. They
    /// stay revoked here: the store's next read includes them.
    pub fn take_leaked(&self) -> Vec<RevokedToken> {
        let mut leaked = self
            .leaked
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        leaked.drain(..).map(|(_, token)| token).collect()
    }

    /// Puts back what [`Self::take_leaked`] gave when the store could not take it, so the
    /// tokens stay revoked and are written at a later sync.
    pub fn restore_leaked(&self, tokens: Vec<RevokedToken>) {
        let mut leaked = self
            .leaked
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let entries = self.entries.load();
        for token in tokens {
            if let Some(hash) = entries
                .by_name
                .get(&(token.app_id.clone(), token.name.clone()))
            {
                leaked.push((*hash, token));
            }
        }
    }

    /// The uses since the last call, for the store.
    pub fn take_uses(&self) -> Vec<TokenUse> {
        let mut uses = std::mem::take(&mut *lock(&self.removed_uses));
        uses.extend(
            self.entries
                .load()
                .by_hash
                .values()
                .filter_map(|entry| entry.take_use()),
        );
        uses
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::guard::generate_token;

    fn registry_with(token: &str) -> TokenRegistry {
        let hash = WellFormedToken::parse(token).unwrap().hash();
        let text = format!(
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.tokens]]\nname = \"ci\"\nhash = \"{hash:?}\"\n"
        );
        TokenRegistry::from_config(&Config::from_toml(&text, Path::new("t.toml")).unwrap())
    }

    #[test]
    fn a_revoked_token_is_refused_and_comes_back_if_the_revocation_goes() {
        let token = generate_token();
        let registry = registry_with(&token);
        let now = SystemTime::now();
        assert!(registry.verify(&token, now).is_ok());
        let revoked = RevokedToken {
            app_id: "1".into(),
            name: "ci".into(),
        };
        registry.set_revoked(std::slice::from_ref(&revoked));
        assert_eq!(
            registry.verify(&token, now).unwrap_err(),
            TokenRefusal::Invalid
        );
        registry.set_revoked(&[]);
        assert!(registry.verify(&token, now).is_ok());
    }

    #[test]
    fn uses_are_gathered_until_taken() {
        let token = generate_token();
        let registry = registry_with(&token);
        let now = SystemTime::now();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            registry
                .verify(&token, now)
                .unwrap()
                .record_use(Some(address), now);
        }
        let uses = registry.take_uses();
        assert_eq!(uses.len(), 1);
        assert_eq!((uses[0].count, uses[0].last_address), (3, Some(address)));
        assert!(registry.take_uses().is_empty(), "taken once");
    }

    #[test]
    fn a_leaked_token_is_revoked_at_once_and_stays_revoked_until_the_store_has_it() {
        let token = generate_token();
        let registry = registry_with(&token);
        let now = SystemTime::now();
        assert!(registry.verify(&token, now).is_ok());
        let revoked = registry.revoke_leaked(&token, now).expect("a live token");
        assert!(registry.verify(&token, now).is_err(), "revoked at once");
        assert!(registry.revoke_leaked(&token, now).is_none(), "only once");
        registry.set_revoked(&[]);
        assert!(
            registry.verify(&token, now).is_err(),
            "the store does not have it yet"
        );
        let taken = registry.take_leaked();
        assert_eq!(taken, vec![revoked.clone()]);
        registry.restore_leaked(taken);
        registry.set_revoked(&[]);
        assert!(
            registry.verify(&token, now).is_err(),
            "put back after a failed write"
        );
        registry.take_leaked();
        registry.set_revoked(&[revoked]);
        assert!(registry.verify(&token, now).is_err(), "the store has it");
        assert!(
            registry.revoke_leaked(&generate_token(), now).is_none(),
            "unknown token"
        );
    }
}

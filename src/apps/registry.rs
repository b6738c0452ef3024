//! Every hosted app, by id and by each key of its keyring. The server reads the registry
//! through [`Apps`], which swaps it whole: when an app's keys change (a key rotation, a
//! previous pair's grace ending) the same apps are indexed again, and a configuration reload
//! will swap in new ones the same way. A look-up never waits.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::App;
use crate::config::Config;

/// Every app, by id and by each of its keys.
#[derive(Debug, Default)]
pub struct AppRegistry {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl AppRegistry {
    /// Builds the registry from a validated config (ids and keys are unique).
    pub fn from_config(config: &Config) -> Self {
        Self::indexed(
            config
                .apps
                .iter()
                .map(|app| Arc::new(App::from_config(app))),
        )
    }

    /// A registry of `apps`, indexed by their ids and their keyrings' keys.
    pub fn indexed(apps: impl IntoIterator<Item = Arc<App>>) -> Self {
        let mut registry = AppRegistry::default();
        for app in apps {
            for key in app.keyring().keys() {
                registry.by_key.insert(key.to_owned(), app.clone());
            }
            registry.by_id.insert(app.id.clone(), app);
        }
        registry
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    /// The app one of whose pairs (valid or not: the keyring decides) has this key.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    /// Every app.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}

/// The registry the server reads, swapped whole when it changes.
#[derive(Debug)]
pub struct Apps(ArcSwap<AppRegistry>);

impl Apps {
    /// Serves `registry`.
    pub fn new(registry: AppRegistry) -> Self {
        Apps(ArcSwap::from_pointee(registry))
    }

    /// The registry now.
    pub fn load(&self) -> Guard<Arc<AppRegistry>> {
        self.0.load()
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<Arc<App>> {
        self.0.load().by_id(id).cloned()
    }

    /// The app with this key.
    pub fn by_key(&self, key: &str) -> Option<Arc<App>> {
        self.0.load().by_key(key).cloned()
    }

    /// Re-indexes the keys after a keyring changed its keys (the apps stay the same); a
    /// registry swapped in meanwhile by a reload is the one re-indexed.
    pub fn reindex(&self) {
        self.0
            .rcu(|current| AppRegistry::indexed(current.apps().cloned()));
    }

    /// Serves `registry` from now on (a configuration reload); returns the one it replaces.
    pub fn replace(&self, registry: AppRegistry) -> Arc<AppRegistry> {
        self.0.swap(Arc::new(registry))
    }
}

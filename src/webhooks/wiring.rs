//! What building an app's webhook sink and tasks needs beyond its configuration: the journal
//! that keeps accepted batches (in a cluster, or one node with `webhook_durable`) and the
//! queues that batches claimed from a dead process are handed to. Made once at start-up and
//! kept, so that a configuration reload builds a changed or added app's webhooks exactly as
//! the start did.

use std::sync::Arc;

use super::{Journal, Redelivery, WebhookSink, WebhookWorkers};
use crate::apps::{App, Apps};
use crate::config::AppConfig;

/// Whether an app's accepted batches are journaled: it has endpoints and is in a cluster
/// (`clustered`: a survivor delivers a dead node's batches) or has `webhook_durable`.
pub fn journaled(config: &AppConfig, clustered: bool) -> bool {
    !config.webhooks.is_empty() && (clustered || config.webhook_durable)
}

/// The journal and redelivery queues every app's webhooks are built with, and the registry
/// whose apps sign them.
#[derive(Debug, Clone)]
pub struct WebhookWiring {
    journal: Option<Arc<Journal>>,
    redelivery: Redelivery,
    clustered: bool,
    registry: Arc<Apps>,
}

impl WebhookWiring {
    /// Builds with `journal` (when the process keeps one) for apps that journal; `clustered`:
    /// every app with endpoints does (a survivor delivers a dead node's batches). Webhooks
    /// are signed by `registry`'s app of their app's id.
    pub fn new(journal: Option<Arc<Journal>>, clustered: bool, registry: Arc<Apps>) -> Self {
        WebhookWiring {
            journal,
            redelivery: Redelivery::default(),
            clustered,
            registry,
        }
    }

    /// Where claimed batches go (for the journal's writer).
    pub fn redelivery(&self) -> &Redelivery {
        &self.redelivery
    }

    /// Whether `config`'s accepted batches are to be journaled.
    pub fn journals(&self, config: &AppConfig) -> bool {
        journaled(config, self.clustered)
    }

    /// Whether `config` wants its batches journaled and this process has no journal to keep
    /// them in (none was opened at start-up).
    pub fn lacks_journal_for(&self, config: &AppConfig) -> bool {
        self.journals(config) && self.journal.is_none()
    }

    /// `app`'s sink and tasks (`None` without endpoints), its counters going on from
    /// `replacing` (its sink before a reload); a journaling app's delivery queues replace its
    /// old ones for claimed batches.
    pub fn build(
        &self,
        app: &Arc<App>,
        config: &AppConfig,
        replacing: Option<&WebhookSink>,
    ) -> Option<(WebhookSink, WebhookWorkers)> {
        self.redelivery.remove_app(&app.id);
        let journal = self.journal.as_ref().filter(|_| self.journals(config));
        let registry = Some(&self.registry);
        super::for_app(app, config, journal, &self.redelivery, replacing, registry)
    }
}

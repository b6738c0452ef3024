//! Configuration changes without a restart: `config.toml` is read again on SIGHUP and when
//! the file changes, and what changed takes effect while every connection of an unaffected
//! app stays open.
//!
//! The file is watched by polling its modification time, size and inode every
//! [`POLL_INTERVAL`] (a change is acted on once it has held for one more look, so an editor's
//! several writes are one reload). Polling, not inotify (the `notify` crate): it is one
//! `stat` a second, sees a file replaced by a rename (Kubernetes ConfigMaps, editors that
//! save atomically) without re-arming a watch, and works on every filesystem; the TLS
//! certificates are watched the same way.
//!
//! A reload is two steps. [`apply::prepare`] does everything that can fail, off the async
//! workers: the file is loaded and validated as at start (the same `--host`/`--port`
//! overrides laid over it), its plan computed ([`Plan`]), the guard's rules built (schemas
//! read and compiled), the new apps made and the state store's rotated pairs laid over
//! them. Any failure refuses the whole file: one log line per problem, and the configuration
//! in force stays. [`apply::commit`] then swaps, in order, the guard's rules (a removed
//! app's kept until the registry has lost it), the daily quotas, the webhook sinks (an app
//! whose webhook keys changed gets new workers, while the old ones send what they hold and
//! end) and the app registry; apps the new file no longer has as they were are retired
//! ([`App::retire`](crate::apps::App::retire)) and their connections told through their
//! outboxes ([`Hub::app_changed`](crate::hub::Hub::app_changed): no connection waits on a
//! signal of its own, which would cost every delivery a poll); each takes the new app of the
//! same id, or is closed with 4003 when it is gone or disabled; last, the removed apps' rules
//! go.
//! Keys that only take effect at start (listeners, workers, `[redis]`, `[store]`,
//! `[metrics]`, `[geoip]`, the TLS paths, logging) are kept and named in a warning. Each
//! reload, accepted or refused, is recorded in the activity log of every app it concerns.
//!
//! Each node reloads its own file; a cluster is changed node by node (the README says how).

mod apply;
mod plan;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use plan::Plan;

use crate::config::{Config, ConfigError, ConfigString};
use crate::guard::GuardError;
use crate::state::ServerState;
use crate::store::StoreError;
use crate::webhooks::RunningWebhooks;

/// How often the configuration file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a new configuration was refused (the one in force stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read, parsed or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The guard cannot use it (a schema or detector list, the country database).
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The state store's rotated pairs cannot be read, so a changed app's keys would be
    /// wrong.
    #[error("cannot read the state store's credentials: {0}")]
    Store(#[from] StoreError),
    /// The blocking task that prepares a reload failed.
    #[error("the reload could not be prepared")]
    Task,
}

/// Where the configuration comes from: its file, with the command line's overrides.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The file (`--config`).
    pub path: PathBuf,
    /// `--host`, laid over `[server] host`.
    pub host: Option<String>,
    /// `--port`, laid over `[server] port`.
    pub port: Option<u16>,
}

impl ConfigSource {
    /// The file read as at start, with the overrides.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(&self.path)?;
        if let Some(host) = &self.host {
            config.server.host = ConfigString::from(host.as_str());
        }
        if let Some(port) = self.port {
            config.server.port = port;
        }
        Ok(config)
    }
}

/// The running reloader: the configuration in force and where to read the next.
pub struct Reloader {
    state: Arc<ServerState>,
    source: ConfigSource,
    current: Config,
    webhooks: Arc<RunningWebhooks>,
    /// Whether removed apps still have connections (the hub forgets them once they have
    /// none).
    forgetting: bool,
    /// SIGHUP, listened for from the reloader's making (before the server says it listens:
    /// unheard, the signal would end the process).
    hangups: Option<tokio::signal::unix::Signal>,
}

/// What a look at the file tells apart: a change of content, a replacement, a truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: metadata.ino(),
        })
    }
}

impl Reloader {
    /// A reloader of `current` (the configuration the server started with, overrides laid),
    /// listening for SIGHUP from now on. Call it inside the runtime.
    pub fn new(
        state: Arc<ServerState>,
        source: ConfigSource,
        current: Config,
        webhooks: Arc<RunningWebhooks>,
    ) -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(error) => {
                warn!(%error, "cannot listen for SIGHUP; config.toml is reloaded on change only");
                None
            }
        };
        Reloader {
            state,
            source,
            current,
            webhooks,
            forgetting: false,
            hangups,
        }
    }

    /// Reloads on SIGHUP and on each settled change of the file, until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut hangups = self.hangups.take();
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = FileStamp::of(&self.source.path);
        let mut settling: Option<Option<FileStamp>> = None;
        loop {
            let hangup = async {
                match &mut hangups {
                    Some(hangups) => hangups.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                _ = hangup => {
                    seen = FileStamp::of(&self.source.path);
                    settling = None;
                    self.reload("SIGHUP").await;
                }
                _ = ticks.tick() => {
                    let now = FileStamp::of(&self.source.path);
                    if now == seen {
                        settling = None;
                    } else if settling.as_ref() == Some(&now) {
                        seen = now;
                        settling = None;
                        self.reload("file change").await;
                    } else {
                        settling = Some(now);
                    }
                    self.forget_removed_apps();
                }
            }
        }
    }

    /// Reads the file and applies it, or refuses it; `trigger` says what asked.
    pub async fn reload(&mut self, trigger: &'static str) {
        let (state, source, current) = (
            self.state.clone(),
            self.source.clone(),
            self.current.clone(),
        );
        let prepared =
            tokio::task::spawn_blocking(move || apply::prepare(&state, &source, &current))
                .await
                .unwrap_or(Err(ReloadError::Task));
        match prepared {
            Ok(prepared) => {
                let (config, removed_any) =
                    apply::commit(&self.state, &self.webhooks, prepared, trigger);
                self.current = config;
                self.forgetting |= removed_any;
                self.forget_removed_apps();
            }
            Err(error) => {
                apply::refused(&self.state, &self.current, &error, trigger);
            }
        }
    }

    /// Lets the hub forget removed apps whose connections have all closed.
    fn forget_removed_apps(&mut self) {
        if !self.forgetting {
            return;
        }
        let registry = self.state.apps.load();
        let still_open = self
            .state
            .hub
            .forget_apps(|app_id| registry.by_id(app_id).is_some());
        self.forgetting = still_open > 0;
        if !self.forgetting {
            info!("removed apps have no connection left on this node");
        }
    }
}

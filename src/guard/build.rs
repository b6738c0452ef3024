//! Building the guard's rules from a configuration: once at start-up, and again at each
//! configuration reload, in two steps so that a configuration the guard cannot use changes
//! nothing. [`Guard::prepare`] does everything that can fail (reading and compiling schemas,
//! checking detector lists, opening the country database for a first geo rule) and returns
//! the new rules; [`Guard::commit`] swaps them in whole, with the tokens and the daily quotas.
//!
//! What counts is carried over from the rules in force. An app's limiter (its rate buckets)
//! is kept when `[apps.limits]` is unchanged; a changed one starts with full buckets but
//! counts the connections already open per address. Its brute-force records and bans are
//! kept whatever the ban rule becomes (a new rule applies to them from the commit on). Its
//! lockdown state and daily quota live as long as the process (a reload sets their settings,
//! never their state; the quota is shared with the hub that counts into it), so a reload
//! never lifts a lockdown the store decided nor gives a day's messages back. Apps a reload
//! removes keep their rules until the registry no longer has them ([`Guard::forget_apps`]), so
//! no request to them is ever judged without rules.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::SystemTime;

use super::bans::{BanRule, Bans};
use super::geo::GeoRule;
use super::limits::{ClusterLimits, DailyQuota, Limiter, LocalLimiter};
use super::lockdown::LockdownRule;
use super::origin::AllowedOrigins;
use super::payload::PayloadRules;
use super::schemas::ChannelSchemas;
use super::tokens::TokenEntries;
use super::{AppGuard, GeoDatabase, Guard, GuardError, MtlsRule, Networks, Rules};
use crate::config::{AppConfig, Config, SecurityConfig};

/// The guard's rules for a new configuration: checked, not yet in force.
#[derive(Debug)]
pub struct NewRules {
    rules: Rules,
    tokens: TokenEntries,
    /// Each app's daily quota with its new limit.
    quotas: Vec<(String, Arc<DailyQuota>, NonZeroU32)>,
    /// Each `auto_lockdown` app's state with its new `lockdown_closes_connections`.
    lockdowns: Vec<(String, Arc<LockdownRule>, bool)>,
    /// Each banning app's records with their new rule.
    ban_rules: Vec<(Arc<Bans>, BanRule)>,
    /// The country database, when this configuration opened it.
    opened_database: Option<Arc<GeoDatabase>>,
}

/// What [`Guard::prepare`] gathers while it builds each app's rules, applied at the commit.
#[derive(Debug, Default)]
struct Settings {
    quotas: Vec<(String, Arc<DailyQuota>, NonZeroU32)>,
    lockdowns: Vec<(String, Arc<LockdownRule>, bool)>,
    ban_rules: Vec<(Arc<Bans>, BanRule)>,
}

impl Guard {
    /// The guard `config` describes; the country database is read if an app has a geo rule,
    /// and every app's schemas are read and compiled.
    pub fn from_config(config: &Config) -> Result<Self, GuardError> {
        let guard = Guard::default();
        let rules = guard.prepare(config)?;
        guard.commit(rules);
        Ok(guard)
    }

    /// The rules `config` describes, carrying over the counts of the rules in force (see the
    /// module comment); nothing changes until [`Guard::commit`]. Reads files (schemas, the
    /// country database): call it off the async workers.
    pub fn prepare(&self, config: &Config) -> Result<NewRules, GuardError> {
        let current = self.rules.load();
        let (database, opened_database) = self.geo_database_for(config)?;
        let mut apps = HashMap::new();
        let mut settings = Settings::default();
        let no_rules = SecurityConfig::default();
        for app in &config.apps {
            let id = app.id.as_str().to_owned();
            let schemas =
                ChannelSchemas::compile(&app.schemas, &config.config_dir).map_err(|error| {
                    GuardError::Schema {
                        app: id.clone(),
                        error,
                    }
                })?;
            if app.security.is_none() && app.limits.is_none() && schemas.is_none() {
                continue;
            }
            let security = app.security.as_ref().unwrap_or(&no_rules);
            let previous = current.apps.get(&id).map(Arc::as_ref);
            let mut guard = AppGuard::new(security, database.as_ref()).map_err(|error| {
                GuardError::Detectors {
                    app: id.clone(),
                    error,
                }
            })?;
            guard.lockdown = self.lockdown_rule(&id, security, &mut settings);
            guard.bans = ban_records(security, previous, &mut settings);
            guard.limits = self.limiter_for(app, previous, &mut settings);
            guard.limits_config = app.limits.clone();
            guard.cluster_limits = app.limits.as_ref().map(ClusterLimits::from_config);
            guard.schemas = schemas;
            apps.insert(id, Arc::new(guard));
        }
        // Until the registry no longer has them (see `forget_apps`).
        for (id, rules) in &current.apps {
            if !config.apps.iter().any(|app| app.id.as_str() == id) {
                apps.insert(id.clone(), rules.clone());
            }
        }
        Ok(NewRules {
            rules: Rules {
                default_proxies: Networks::new(config.server.trusted_proxies.clone()),
                apps,
            },
            tokens: self.tokens.prepare(config),
            quotas: settings.quotas,
            lockdowns: settings.lockdowns,
            ban_rules: settings.ban_rules,
            opened_database,
        })
    }

    /// Drops the rules of apps a reload removed, once the registry no longer has them.
    pub fn forget_apps(&self, removed: &[String]) {
        if removed.is_empty() {
            return;
        }
        self.rules.rcu(|current| Rules {
            default_proxies: current.default_proxies.clone(),
            apps: current
                .apps
                .iter()
                .filter(|(id, _)| !removed.contains(id))
                .map(|(id, rules)| (id.clone(), rules.clone()))
                .collect(),
        });
    }

    /// Puts `new` in force: every request and handshake from now on is judged by it.
    pub fn commit(&self, new: NewRules) {
        for (app_id, quota, per_day) in new.quotas {
            quota.set_per_day(per_day);
            self.daily_quotas.insert(&app_id, quota);
        }
        for (app_id, rule, closes) in new.lockdowns {
            rule.set_closes_connections(closes);
            self.lockdowns
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .insert(app_id, rule);
        }
        for (bans, rule) in new.ban_rules {
            bans.set_rule(rule);
        }
        if let Some(database) = new.opened_database {
            *self
                .geo_database
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(database);
        }
        self.tokens.commit(new.tokens);
        self.rules.store(Arc::new(new.rules));
    }

    /// The country database `config`'s geo rules need (the one already open, or opened now:
    /// the second value), if any app has one.
    #[allow(clippy::type_complexity)]
    fn geo_database_for(
        &self,
        config: &Config,
    ) -> Result<(Option<Arc<GeoDatabase>>, Option<Arc<GeoDatabase>>), GuardError> {
        let uses_geo = config.apps.iter().any(|app| {
            app.security
                .as_ref()
                .is_some_and(|security| security.geo.is_some())
        });
        let open = self
            .geo_database
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        match (&config.geoip, uses_geo, open) {
            (_, true, Some(open)) => Ok((Some(open), None)),
            (Some(geoip), true, None) => {
                let opened = Arc::new(GeoDatabase::open(&geoip.database_path(&config.config_dir))?);
                Ok((Some(opened.clone()), Some(opened)))
            }
            _ => Ok((None, None)),
        }
    }

    /// `app`'s limiter: the one in force when `[apps.limits]` is unchanged, otherwise a new
    /// one counting into the app's daily quota (created on its first `daily_messages`).
    fn limiter_for(
        &self,
        app: &AppConfig,
        previous: Option<&AppGuard>,
        settings: &mut Settings,
    ) -> Option<Arc<dyn Limiter>> {
        let config = app.limits.as_ref()?;
        let id = app.id.as_str();
        let quota = config.daily_messages.map(|per_day| {
            let quota = self
                .daily_quotas
                .get(id)
                .unwrap_or_else(|| Arc::new(DailyQuota::new(per_day, SystemTime::now())));
            settings
                .quotas
                .push((id.to_owned(), quota.clone(), per_day));
            quota
        });
        if let Some(previous) = previous
            && previous.limits_config.as_ref() == Some(config)
        {
            return previous.limits.clone();
        }
        let previous_open = previous
            .and_then(|app| app.limits.as_ref())
            .and_then(|limits| limits.open_connections());
        let limiter =
            LocalLimiter::from_config(config)?.counting_open_connections_of(previous_open);
        let limiter = match quota {
            Some(quota) => limiter.counting_into(quota),
            None => limiter,
        };
        Some(Arc::new(limiter))
    }
}

impl AppGuard {
    /// The rules of `security` (the limits, schemas, lockdown and bans are set apart).
    fn new(
        security: &SecurityConfig,
        database: Option<&Arc<GeoDatabase>>,
    ) -> Result<Self, super::DetectorListError> {
        let has_mtls = security.mtls_required || !security.mtls_fingerprints.is_empty();
        Ok(AppGuard {
            trusted_proxies: security.trusted_proxies.clone().map(Networks::new),
            ip_allowlist: security.ip_allowlist.clone().map(Networks::new),
            geo: security
                .geo
                .as_ref()
                .zip(database)
                .map(|(rule, database)| GeoRule::new(rule, database.clone())),
            origins: security
                .allowed_origins
                .clone()
                .map(|patterns| AllowedOrigins::new(patterns, security.allow_missing_origin)),
            mtls: has_mtls.then(|| MtlsRule {
                fingerprints: security.mtls_fingerprints.iter().copied().collect(),
                required: security.mtls_required,
            }),
            apply_to_websocket: security.apply_to_websocket,
            payload: PayloadRules::from_config(security)?,
            limits: None,
            limits_config: None,
            schemas: None,
            lockdown: None,
            bans: None,
            cluster_limits: None,
        })
    }
}

impl Guard {
    /// The app's `auto_lockdown` state: the one it has had since it first had the rule.
    fn lockdown_rule(
        &self,
        app_id: &str,
        security: &SecurityConfig,
        settings: &mut Settings,
    ) -> Option<Arc<LockdownRule>> {
        if !security.auto_lockdown {
            return None;
        }
        let closes = security.lockdown_closes_connections;
        let rule = self
            .lockdowns
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(app_id)
            .cloned()
            .unwrap_or_else(|| Arc::new(LockdownRule::new(closes)));
        settings
            .lockdowns
            .push((app_id.to_owned(), rule.clone(), closes));
        Some(rule)
    }
}

/// The brute-force records: those in force (under the new rule from the commit on), or new
/// ones for an app that starts banning.
fn ban_records(
    security: &SecurityConfig,
    previous: Option<&AppGuard>,
    settings: &mut Settings,
) -> Option<Arc<Bans>> {
    let after_failures = security.ban_after_failures?;
    let minutes = |n: u64| std::time::Duration::from_secs(n * 60);
    let rule = BanRule {
        after_failures: after_failures.get(),
        window: security.ban_window.map_or(minutes(10), |d| d.0),
        first_ban: security.ban_time.map_or(minutes(10), |d| d.0),
        longest_ban: security.ban_max_time.map_or(minutes(24 * 60), |d| d.0),
    };
    match previous.and_then(|app| app.bans.as_ref()) {
        Some(bans) => {
            settings.ban_rules.push((bans.clone(), rule));
            Some(bans.clone())
        }
        None => Some(Arc::new(Bans::new(rule))),
    }
}

//! Building the guard's rules from a configuration: once at start-up, and again at each
//! configuration reload, in two steps so that a configuration the guard cannot use changes
//! nothing. [`Guard::prepare`] does everything that can fail (reading and compiling schemas,
//! checking detector lists, opening the country database for a first geo rule) and returns
//! the new rules; [`Guard::commit`] swaps them in whole, with the tokens and the daily quotas.
//!
//! What counts is carried over from the rules in force wherever its part of the app's
//! configuration is unchanged: an app's limiter (its buckets) when `[apps.limits]` is the
//! same, its brute-force records and bans when the ban rule is, its lockdown state whenever
//! it still has `auto_lockdown` (so a reload never lifts a lockdown the store decided). A
//! daily quota's count is never reset: its object lives as long as the process, shared with
//! the hub that counts into it, and a reload only changes its limit. A limiter or ban rule
//! that did change starts empty (bans already in the store are adopted again at the next
//! sync).

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
    /// The country database, when this configuration opened it.
    opened_database: Option<Arc<GeoDatabase>>,
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
        let mut quotas = Vec::new();
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
            let mut guard =
                AppGuard::new(security, database.as_ref(), previous).map_err(|error| {
                    GuardError::Detectors {
                        app: id.clone(),
                        error,
                    }
                })?;
            guard.limits = self.limiter_for(app, previous, &mut quotas);
            guard.limits_config = app.limits.clone();
            guard.cluster_limits = app.limits.as_ref().map(ClusterLimits::from_config);
            guard.schemas = schemas;
            apps.insert(id, Arc::new(guard));
        }
        Ok(NewRules {
            rules: Rules {
                default_proxies: Networks::new(config.server.trusted_proxies.clone()),
                apps,
            },
            tokens: self.tokens.prepare(config),
            quotas,
            opened_database,
        })
    }

    /// Puts `new` in force: every request and handshake from now on is judged by it.
    pub fn commit(&self, new: NewRules) {
        for (app_id, quota, per_day) in new.quotas {
            quota.set_per_day(per_day);
            self.daily_quotas.insert(&app_id, quota);
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
        quotas: &mut Vec<(String, Arc<DailyQuota>, NonZeroU32)>,
    ) -> Option<Arc<dyn Limiter>> {
        let config = app.limits.as_ref()?;
        let id = app.id.as_str();
        let quota = config.daily_messages.map(|per_day| {
            let quota = self
                .daily_quotas
                .get(id)
                .unwrap_or_else(|| Arc::new(DailyQuota::new(per_day, SystemTime::now())));
            quotas.push((id.to_owned(), quota.clone(), per_day));
            quota
        });
        if let Some(previous) = previous
            && previous.limits_config.as_ref() == Some(config)
        {
            return previous.limits.clone();
        }
        let limiter = LocalLimiter::from_config(config)?;
        let limiter = match quota {
            Some(quota) => limiter.counting_into(quota),
            None => limiter,
        };
        Some(Arc::new(limiter))
    }
}

impl AppGuard {
    /// The rules of `security`, with the lockdown state and ban records of `previous` (the
    /// app's rules in force) where they still apply.
    fn new(
        security: &SecurityConfig,
        database: Option<&Arc<GeoDatabase>>,
        previous: Option<&AppGuard>,
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
            lockdown: lockdown_rule(security, previous),
            bans: ban_records(security, previous),
            cluster_limits: None,
        })
    }
}

/// `auto_lockdown`'s state: the one in force, or a new one locked as it was.
fn lockdown_rule(
    security: &SecurityConfig,
    previous: Option<&AppGuard>,
) -> Option<Arc<LockdownRule>> {
    if !security.auto_lockdown {
        return None;
    }
    let closes = security.lockdown_closes_connections;
    let previous = previous.and_then(|app| app.lockdown.as_ref());
    match previous {
        Some(rule) if rule.closes_connections() == closes => Some(rule.clone()),
        Some(rule) => {
            let fresh = LockdownRule::new(closes);
            fresh.set(rule.is_locked());
            Some(Arc::new(fresh))
        }
        None => Some(Arc::new(LockdownRule::new(closes))),
    }
}

/// The brute-force records: those in force when the rule is unchanged, otherwise none yet.
fn ban_records(security: &SecurityConfig, previous: Option<&AppGuard>) -> Option<Arc<Bans>> {
    let after_failures = security.ban_after_failures?;
    let minutes = |n: u64| std::time::Duration::from_secs(n * 60);
    let rule = BanRule {
        after_failures: after_failures.get(),
        window: security.ban_window.map_or(minutes(10), |d| d.0),
        first_ban: security.ban_time.map_or(minutes(10), |d| d.0),
        longest_ban: security.ban_max_time.map_or(minutes(24 * 60), |d| d.0),
    };
    match previous.and_then(|app| app.bans.as_ref()) {
        Some(bans) if bans.rule() == rule => Some(bans.clone()),
        _ => Some(Arc::new(Bans::new(rule))),
    }
}

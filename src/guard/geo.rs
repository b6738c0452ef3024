//! Geo-IP rules: the country of an address, from a MaxMind country database (GeoLite2-Country
//! or any compatible one, read with the `maxminddb` crate), and an app's rule about it.
//!
//! The database is read whole into memory once at start-up (GeoLite2-Country is about 9 MiB)
//! and shared by every app; a look-up walks its search tree, about a microsecond.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use maxminddb::{Reader, geoip2};

use crate::config::{CountryCode, GeoConfig, GeoMode, UnknownCountry};

/// Why the country database cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[geoip] database {}: {reason}", path.display())]
pub struct GeoDatabaseError {
    path: PathBuf,
    reason: String,
}

/// A loaded country database.
pub struct GeoDatabase {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDatabase")
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoDatabase {
    /// Reads the database at `path`.
    pub fn open(path: &Path) -> Result<Self, GeoDatabaseError> {
        let reader = Reader::open_readfile(path).map_err(|error| GeoDatabaseError {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(GeoDatabase { reader })
    }

    /// The country `address` is in, if the database knows.
    pub fn country(&self, address: IpAddr) -> Option<CountryCode> {
        let found = self.reader.lookup(address).ok()?;
        let record: geoip2::Country = found.decode().ok()??;
        CountryCode::parse(record.country.iso_code?)
    }
}

/// An app's geo rule.
#[derive(Debug, Clone)]
pub struct GeoRule {
    database: Arc<GeoDatabase>,
    mode: GeoMode,
    countries: Vec<CountryCode>,
    unknown: UnknownCountry,
}

impl GeoRule {
    /// The rule `config` describes, on `database`.
    pub fn new(config: &GeoConfig, database: Arc<GeoDatabase>) -> Self {
        GeoRule {
            database,
            mode: config.mode,
            countries: config.countries.clone(),
            unknown: config.unknown,
        }
    }

    /// Whether a client at `address` may come in (an address the database does not place is
    /// decided by `unknown`).
    pub fn admits(&self, address: IpAddr) -> bool {
        let Some(country) = self.database.country(address) else {
            return self.unknown == UnknownCountry::Allow;
        };
        let listed = self.countries.contains(&country);
        match self.mode {
            GeoMode::Allow => listed,
            GeoMode::Block => !listed,
        }
    }
}

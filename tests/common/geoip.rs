//! The test Geo-IP database: built at test time from the committed, human-readable
//! `geoip/test-countries.txt`, so the repository holds no fetched or binary data and a reader
//! of a test can see which address stands for which country.
//!
//! The file written is a MaxMind DB of the GeoLite2-Country shape (`{"country": {"iso_code":
//! "DE"}}`, what `maxminddb::geoip2::Country` decodes) in an IPv6 tree whose IPv4 part is also
//! reachable as IPv4-mapped addresses, like the real GeoLite2-Country database.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{Value, Writer};

/// The `database_type` of the real database, which the test one stands in for.
pub const DATABASE_TYPE: &str = "GeoLite2-Country";

/// Writes the test database into `dir` and returns its path.
pub fn test_database(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/test-countries.txt");
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let mut writer = Writer::builder(DATABASE_TYPE)
        .description(&[("en", "Relay test countries, from geoip/test-countries.txt")])
        // A fixed build time, so the same source always gives the same bytes.
        .build_epoch(UNIX_EPOCH)
        .build();
    for (network, iso_code) in networks(&text) {
        let record = Value::map([("country", Value::map([("iso_code", iso_code)]))]);
        writer
            .insert_value(network, record)
            .unwrap_or_else(|e| panic!("insert {network}: {e}"));
    }
    let path = dir.join("test-countries.mmdb");
    let bytes = writer.to_bytes().expect("serialize the test database");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// The `(network, country code)` entries of the source text; panics, naming the line, on one
/// that is not `CIDR  CODE`.
fn networks(text: &str) -> Vec<(IpNet, &str)> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let bad = |why: &str| -> ! {
            panic!(
                "geoip/test-countries.txt line {}: {why}: {line:?}",
                index + 1
            )
        };
        let mut fields = content.split_whitespace();
        let (Some(cidr), Some(code), None) = (fields.next(), fields.next(), fields.next()) else {
            bad("expected `CIDR  ISO-CODE`");
        };
        let Ok(network) = cidr.parse::<IpNet>() else {
            bad("not a CIDR network");
        };
        if network.addr() != network.network() {
            bad("host bits set after the prefix");
        }
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            bad("not a two-letter upper-case ISO 3166-1 code");
        }
        entries.push((network, code));
    }
    entries
}

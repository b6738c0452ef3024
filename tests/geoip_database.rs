//! The test Geo-IP database that `common::geoip` generates reads back through `maxminddb`
//! (the reader the server is to use) with the countries `geoip/test-countries.txt` gives.

mod common;

use std::net::IpAddr;

use maxminddb::{Reader, geoip2};

/// The country code the database holds for `address`, or `None` where it has no record.
fn country_of(reader: &Reader<Vec<u8>>, address: &str) -> Option<String> {
    let address: IpAddr = address.parse().unwrap();
    let record = reader
        .lookup(address)
        .expect("lookup")
        .decode::<geoip2::Country>()
        .expect("decode a Country record")?;
    Some(
        record
            .country
            .iso_code
            .expect("the record has an iso_code")
            .to_owned(),
    )
}

fn open_test_database() -> (tempfile::TempDir, Reader<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::geoip::test_database(dir.path());
    let reader = Reader::open_readfile(&path).expect("open the test database");
    (dir, reader)
}

#[test]
fn test_database_is_a_country_database() {
    let (_dir, reader) = open_test_database();
    assert_eq!(reader.metadata().database_type, "GeoLite2-Country");
    assert_eq!(reader.metadata().ip_version, 6);
}

#[test]
fn loopback_addresses_map_to_their_listed_countries() {
    let (_dir, reader) = open_test_database();
    assert_eq!(country_of(&reader, "127.0.0.2").as_deref(), Some("DE"));
    assert_eq!(country_of(&reader, "127.0.0.3").as_deref(), Some("FR"));
    assert_eq!(country_of(&reader, "127.0.0.4").as_deref(), Some("KP"));
    assert_eq!(country_of(&reader, "127.0.0.5").as_deref(), Some("US"));
}

#[test]
fn ipv4_mapped_form_finds_the_same_country() {
    let (_dir, reader) = open_test_database();
    assert_eq!(
        country_of(&reader, "::ffff:127.0.0.2").as_deref(),
        Some("DE")
    );
}

#[test]
fn ipv6_range_maps_to_its_country() {
    let (_dir, reader) = open_test_database();
    assert_eq!(country_of(&reader, "2001:db8:de::1").as_deref(), Some("DE"));
    assert_eq!(
        country_of(&reader, "2001:db8:de:ffff::9").as_deref(),
        Some("DE")
    );
    assert_eq!(country_of(&reader, "2001:db8:df::1"), None);
}

#[test]
fn unlisted_addresses_are_not_found() {
    let (_dir, reader) = open_test_database();
    assert_eq!(country_of(&reader, "127.0.0.1"), None);
    assert_eq!(country_of(&reader, "127.0.0.9"), None);
    assert_eq!(country_of(&reader, "::1"), None);
}

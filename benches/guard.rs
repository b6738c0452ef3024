//! Micro-benchmarks of the guard's decisions (`Guard::admit_api`, `Guard::admit_socket`) for
//! an app with 100 CIDR entries and a geo rule, and for an app without rules, so the cost of
//! Relay's network rules on every API request and handshake is known. Run with
//! `cargo bench --bench guard`; the figures are in docs/benchmarks.md.
//!
//! The country database is synthetic but of a realistic depth: 100,000 /24 networks spread
//! over the IPv4 space (GeoLite2-Country holds about 400,000 networks), so a look-up walks
//! about as far as it would in the real one. It is also written to
//! `target/guard-bench/countries.mmdb` with the config the benchmark uses
//! (`target/guard-bench/relay.toml`), for measuring the server with `relay-bench`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use actix_http::header::{HeaderMap, HeaderValue, ORIGIN};
use criterion::{Criterion, criterion_group, criterion_main};
use mmdb_writer::ipnet::{IpNet, Ipv4Net};
use mmdb_writer::{Value, Writer};
use relay::config::Config;
use relay::guard::{Guard, PeerHeaders};

const COUNTRIES: [&str; 8] = ["DE", "FR", "US", "GB", "JP", "BR", "IN", "KP"];

/// Writes the synthetic country database and returns its path.
fn database(dir: &Path) -> PathBuf {
    let mut writer = Writer::builder("GeoLite2-Country").build();
    for n in 0..100_000u32 {
        let address = network_address(n);
        if address.octets()[0] == 127 || address.octets()[0] == 0 {
            continue;
        }
        let network = IpNet::V4(Ipv4Net::new(address, 24).expect("a /24"));
        let country = COUNTRIES[(n % 8) as usize];
        let record = Value::map([("country", Value::map([("iso_code", country)]))]);
        // A network that overlaps one already written is skipped.
        let _ = writer.insert_value(network, record);
    }
    let path = dir.join("countries.mmdb");
    std::fs::write(&path, writer.to_bytes().expect("database bytes")).expect("write database");
    path
}

/// The `n`th /24 of the database, spread over the space (127/8 is skipped, so loopback stays
/// unknown, as in the real database).
fn network_address(n: u32) -> Ipv4Addr {
    let first = (n.wrapping_mul(2_654_435_761) >> 8) & 0x00ff_ffff;
    Ipv4Addr::from_bits(first << 8)
}

/// The benchmark's configuration: the bench app with 99 ranges that do not hold loopback
/// and, last, the whole IPv4 space (the look-up scans them all), a geo rule, and the rules on
/// handshakes too.
fn config_text(database: &Path) -> String {
    let mut ranges: Vec<String> = (0..99).map(|n| format!("\"10.{n}.0.0/16\"")).collect();
    ranges.push("\"0.0.0.0/0\"".to_owned());
    format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 6001\n\n[[apps]]\nid = \"123456\"\nkey = \"app-key\"\n\
         secret = \"app-secret\"\nenable_client_messages = true\nmax_presence_members = 1000\n\n\
         [apps.security]\nip_allowlist = [{}]\ngeo = {{ mode = \"block\", countries = [\"KP\"] }}\n\
         apply_to_websocket = true\n\n[geoip]\ndatabase = \"{}\"\n",
        ranges.join(", "),
        database.display()
    )
}

fn guard_decisions(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guard-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let database = database(&dir);
    let text = config_text(&database);
    std::fs::write(dir.join("relay.toml"), &text).expect("write the bench config");
    let config = Config::from_toml(&text, &dir.join("relay.toml")).expect("bench config");
    let guard = Guard::from_config(&config).expect("guard");
    let socket: SocketAddr = "127.0.0.1:50000".parse().expect("address");
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
    let peer = PeerHeaders::from_request(Some(socket), &headers);
    assert!(
        guard.admit_api("123456", &peer).is_ok(),
        "loopback is allowed"
    );
    c.bench_function("guard/admit_api/100_cidrs_and_geo", |b| {
        b.iter(|| guard.admit_api("123456", std::hint::black_box(&peer)))
    });
    c.bench_function("guard/admit_socket/100_cidrs_and_geo", |b| {
        b.iter(|| guard.admit_socket("123456", std::hint::black_box(&peer)))
    });
    // An address the database places (its /24 is the 1000th written): the full tree walk.
    let placed = SocketAddr::new(network_address(1000).into(), 50000);
    let placed = PeerHeaders::from_request(Some(placed), &headers);
    c.bench_function("guard/admit_api/100_cidrs_and_geo_placed_address", |b| {
        b.iter(|| guard.admit_api("123456", std::hint::black_box(&placed)))
    });
    c.bench_function("guard/admit_api/app_without_rules", |b| {
        b.iter(|| guard.admit_api("other", std::hint::black_box(&peer)))
    });
    c.bench_function("guard/peer_headers_from_request", |b| {
        b.iter(|| PeerHeaders::from_request(Some(socket), std::hint::black_box(&headers)))
    });
}

criterion_group!(benches, guard_decisions);
criterion_main!(benches);

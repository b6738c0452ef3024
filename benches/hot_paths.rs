//! Micro-benchmarks of the functions on Relay's hot paths: channel-auth verification, HTTP API
//! signature verification, and serializing a broadcast frame. Run with `cargo bench`; the
//! figures are recorded in docs/benchmarks.md. (The secret scanner has its own, benches/scan.rs.)

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use relay::apps::{AppRegistry, CredentialUse, Via};
use relay::config::Config;
use relay::http::{UnverifiedRequest, decode_query, verify_body_md5, verify_query_signature};
use relay::protocol::frames;
use relay::protocol::http_signature::{body_md5, string_to_sign};
use relay::protocol::signature::{channel_string_to_sign, presence_string_to_sign, sign};

const CONFIG: &str = r#"
[[apps]]
id = "123456"
key = "app-key"
secret = "app-secret"
[[apps.previous_credentials]]
key = "app-key"
secret = "old-secret"
valid_until = "2999-01-01T00:00:00Z"
"#;
const SOCKET_ID: &str = "123456.7890123";

fn app() -> Arc<relay::apps::App> {
    let config = Config::from_toml(CONFIG, Path::new("bench.toml")).expect("bench config");
    AppRegistry::from_config(&config)
        .by_id("123456")
        .expect("bench app")
        .clone()
}

fn channel_auth(c: &mut Criterion) {
    let app = app();
    let channel = "private-orders-42";
    let signed = channel_string_to_sign(SOCKET_ID, channel);
    let auth = format!("app-key:{}", sign(b"app-secret", signed.as_bytes()));
    c.bench_function("channel_auth/private", |b| {
        b.iter(|| {
            let signed = channel_string_to_sign(SOCKET_ID, channel);
            let used = CredentialUse::now(Via::ChannelAuth, None);
            app.verify_auth(Some(&auth), &signed, &used)
                .expect("valid auth");
        })
    });
    // A client still on the previous secret: the current one is tried first.
    let old_auth = format!("app-key:{}", sign(b"old-secret", signed.as_bytes()));
    c.bench_function("channel_auth/private_previous_pair", |b| {
        b.iter(|| {
            let signed = channel_string_to_sign(SOCKET_ID, channel);
            let used = CredentialUse::now(Via::ChannelAuth, None);
            app.verify_auth(Some(&old_auth), &signed, &used)
                .expect("valid auth");
        })
    });
    let channel = "presence-room";
    let data = r#"{"user_id":"42","user_info":{"name":"Ada"}}"#;
    let signed = presence_string_to_sign(SOCKET_ID, channel, data);
    let auth = format!("app-key:{}", sign(b"app-secret", signed.as_bytes()));
    c.bench_function("channel_auth/presence", |b| {
        b.iter(|| {
            let signed = presence_string_to_sign(SOCKET_ID, channel, data);
            let used = CredentialUse::now(Via::ChannelAuth, None);
            app.verify_auth(Some(&auth), &signed, &used)
                .expect("valid auth");
        })
    });
}

fn http_signature(c: &mut Criterion) {
    let app = app();
    let path = "/apps/123456/events";
    let body = br#"{"name":"order-updated","channels":["orders"],"data":"{\"id\":42,\"state\":\"shipped\"}"}"#;
    let now = 1_700_000_000u64;
    let params = vec![
        ("auth_key".to_owned(), "app-key".to_owned()),
        ("auth_timestamp".to_owned(), now.to_string()),
        ("auth_version".to_owned(), "1.0".to_owned()),
        ("body_md5".to_owned(), body_md5(body)),
    ];
    let signature = sign(
        b"app-secret",
        string_to_sign("POST", path, &params).as_bytes(),
    );
    let query_string = format!(
        "auth_key=app-key&auth_timestamp={now}&auth_version=1.0&body_md5={}&auth_signature={signature}",
        body_md5(body)
    );
    c.bench_function("http_signature/trigger", |b| {
        b.iter(|| {
            let query = decode_query(&query_string);
            let request = UnverifiedRequest {
                method: "POST",
                path,
                query: &query,
            };
            let used = CredentialUse {
                now: std::time::UNIX_EPOCH + std::time::Duration::from_secs(now),
                ..CredentialUse::now(Via::Api, None)
            };
            verify_query_signature(&app, &request, 600, &used).expect("valid signature");
            verify_body_md5(&query, body).expect("matching body_md5");
        })
    });
}

fn broadcast_serialization(c: &mut Criterion) {
    let data =
        r#"{"id":42,"state":"shipped","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]}"#;
    c.bench_function("frames/channel_event", |b| {
        b.iter(|| frames::channel_event("order-updated", "orders", data))
    });
}

criterion_group!(
    hot_paths,
    channel_auth,
    http_signature,
    broadcast_serialization
);
criterion_main!(hot_paths);

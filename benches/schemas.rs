//! Micro-benchmarks of channel schemas through the guard's public check
//! (`relay::guard::Guard::check_schemas`), which parses the data and runs each compiled
//! schema that applies: a small order object against a small schema (valid, and failing deep
//! inside), a channel no entry applies to (the prefix comparisons alone), and 10 KB of orders
//! (the default `max_event_size`) against the same schema. Run with
//! `cargo bench --bench schemas`; the figures are in docs/benchmarks.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use relay::config::Config;
use relay::guard::Guard;
use relay::protocol::ChannelName;

/// The bench app with four entries, the order schema among them; only `orders-` ones apply
/// to the benchmark's channel.
const CONFIG: &str = r#"
[[apps]]
id = "123456"
key = "app-key"
secret = "app-secret"

[[apps.schemas]]
channel_prefix = "chat-"
schema = { type = "object", required = ["text"] }

[[apps.schemas]]
channel_prefix = "orders-"
event = "order.updated"
schema = { type = "object", required = ["id", "items"], additionalProperties = false, properties = { id = { type = "integer", minimum = 1 }, status = { enum = ["open", "paid", "shipped"] }, items = { type = "array", maxItems = 1000, items = { type = "object", required = ["sku", "qty"], properties = { sku = { type = "string", pattern = "^[A-Z]{3}-[0-9]{4}$" }, qty = { type = "integer", minimum = 1 } } } } } }

[[apps.schemas]]
channel_prefix = "presence-"
schema = { type = "object" }

[[apps.schemas]]
channel_prefix = "private-audit-"
schema = { type = "object", required = ["by"] }
"#;

const SMALL: &str =
    r#"{"id":42,"status":"paid","items":[{"sku":"ABC-1234","qty":2},{"sku":"XYZ-0001","qty":1}]}"#;
const SMALL_INVALID: &str =
    r#"{"id":42,"status":"paid","items":[{"sku":"ABC-1234","qty":2},{"sku":"XYZ-0001","qty":0}]}"#;

/// About 10 KB of order items.
fn large() -> String {
    let items: Vec<String> = (0..375)
        .map(|n| format!(r#"{{"sku":"ABC-{:04}","qty":{}}}"#, n, 1 + n % 9))
        .collect();
    format!(
        r#"{{"id":42,"status":"open","items":[{}]}}"#,
        items.join(",")
    )
}

fn schema_checks(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG, Path::new("bench.toml")).expect("bench config");
    let guard = Guard::from_config(&config).expect("guard");
    let orders = [ChannelName::parse("orders-eu-1", 200).expect("a channel name")];
    let news = [ChannelName::parse("news", 200).expect("a channel name")];
    let large = large();
    let check = |channels: &[ChannelName], data: &str| {
        guard.check_schemas("123456", channels, "order.updated", data)
    };
    assert!(check(&orders, SMALL).is_ok());
    assert!(check(&orders, SMALL_INVALID).is_err());
    assert!(
        (10_000..=10_240).contains(&large.len()),
        "{} bytes",
        large.len()
    );
    assert!(check(&orders, &large).is_ok());

    c.bench_function("schemas/check/small_object_valid", |b| {
        b.iter(|| check(black_box(&orders), black_box(SMALL)))
    });
    c.bench_function("schemas/check/small_object_invalid", |b| {
        b.iter(|| check(black_box(&orders), black_box(SMALL_INVALID)))
    });
    c.bench_function("schemas/check/no_entry_applies", |b| {
        b.iter(|| check(black_box(&news), black_box(SMALL)))
    });
    c.bench_function("schemas/check/10kb_of_orders_valid", |b| {
        b.iter(|| check(black_box(&orders), black_box(&large)))
    });
    c.bench_function("schemas/compile/four_entries", |b| {
        b.iter(|| Guard::from_config(black_box(&config)))
    });
}

criterion_group!(benches, schema_checks);
criterion_main!(benches);

//! Channel schemas against the real server: an event whose data satisfies the schemas of its
//! channel is delivered; one that does not, or is not JSON, is refused with 422 naming the
//! failing path and keyword and never a value (a batch as a whole, naming the event), and a
//! client event with a `pusher:error` to its sender; nothing refused reaches a subscriber.
//! Schema files are found beside config.toml, encrypted channels are never validated, and a
//! schema that does not compile stops `relay check-config` with the entry's line.

mod common;

use common::http::{Response, api, now, raw_request, signed_path, trigger};
use common::{APP_ID, APP_SECRET, Client, TestServer, check_config_with_files, default_config};
use serde_json::{Value, json};

/// An order: an integer `id`, and items of at least one each.
const ORDER_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["id"],
  "properties": {
    "id": {"type": "integer"},
    "items": {"type": "array", "items": {"properties": {"qty": {"type": "integer", "minimum": 1}}}}
  }
}"#;

/// A value no error message could contain by chance.
const DISTINCTIVE: &str = "zebra-unicorn-7731";

/// The default app with the order schema (in `schemas/order.json`, beside config.toml) on
/// `orders-` and `private-orders-` channels.
fn config() -> String {
    format!(
        "{}[[apps.schemas]]\nchannel_prefix = \"orders-\"\nschema_file = \"schemas/order.json\"\n\n\
         [[apps.schemas]]\nchannel_prefix = \"private-\"\nevent = \"client-order\"\n\
         schema_file = \"schemas/order.json\"\n",
        default_config()
    )
}

fn start() -> TestServer {
    TestServer::start_with_files(&config(), &[("schemas/order.json", ORDER_SCHEMA)])
}

async fn subscriber(server: &TestServer, channel: &str) -> Client {
    let mut client = Client::connect(server).await;
    client.subscribe(channel).await;
    client
}

/// `POST {prefix}/apps/123456{suffix}`, signed over the path as sent.
async fn post(server: &TestServer, prefix: &str, suffix: &str, body: &Value) -> Response {
    let path = format!("{prefix}/apps/{APP_ID}{suffix}");
    let body = body.to_string();
    let target = signed_path("POST", &path, &[], &body, APP_SECRET, now());
    raw_request(server, "POST", &target, &body).await
}

#[tokio::test]
async fn an_event_that_matches_is_delivered_and_one_that_does_not_gets_422_on_both_prefixes() {
    let server = start();
    let mut client = subscriber(&server, "orders-eu").await;
    for prefix in ["", "/api/v1"] {
        let valid = json!({"id": 7, "items": [{"qty": 2}]}).to_string();
        let event = json!({"name": "order.updated", "channels": ["orders-eu"], "data": valid});
        let response = post(&server, prefix, "/events", &event).await;
        assert_eq!(response.status, 200, "{prefix}: {}", response.body);
        assert_eq!(
            client.recv_event("order.updated").await["data"],
            valid.as_str()
        );

        let invalid = json!({"id": 7, "items": [{"qty": 0, "note": DISTINCTIVE}]}).to_string();
        let event = json!({"name": "order.updated", "channels": ["orders-eu"], "data": invalid});
        let response = post(&server, prefix, "/events", &event).await;
        assert_eq!(response.status, 422, "{prefix}: {}", response.body);
        assert_eq!(
            response.json(),
            json!({"error": "data does not match the schema: /items/0/qty: minimum"})
        );
        assert!(!response.body.contains(DISTINCTIVE), "{}", response.body);
    }
    client.assert_nothing_pending().await;
    assert!(!server.log().contains(DISTINCTIVE), "nor in the log");
}

#[tokio::test]
async fn data_that_is_not_json_gets_422_on_a_validated_channel_only() {
    let server = start();
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["orders-eu"], "data": format!("id={DISTINCTIVE}")}),
    )
    .await;
    assert_eq!(response.status, 422, "{}", response.body);
    assert_eq!(response.json(), json!({"error": "data is not JSON"}));
    let plain = trigger(
        &server,
        json!({"name": "e", "channels": ["news"], "data": "free text"}),
    )
    .await;
    assert_eq!(plain.status, 200, "no schema applies to news");
}

#[tokio::test]
async fn a_batch_with_one_bad_event_is_refused_whole_naming_it() {
    let server = start();
    let mut client = subscriber(&server, "orders-eu").await;
    for prefix in ["", "/api/v1"] {
        let batch = json!({"batch": [
            {"name": "ok", "channel": "orders-eu", "data": json!({"id": 1}).to_string()},
            {"name": "ok", "channel": "news", "data": "anything"},
            {"name": "bad", "channel": "orders-eu", "data": json!({"id": DISTINCTIVE}).to_string()},
        ]});
        let response = post(&server, prefix, "/batch_events", &batch).await;
        assert_eq!(response.status, 422, "{prefix}: {}", response.body);
        assert_eq!(
            response.error(),
            "batch[2]: data does not match the schema: /id: type"
        );
        assert!(!response.body.contains(DISTINCTIVE));
    }
    client.assert_nothing_pending().await;
    let batch = json!({"batch": [{"name": "ok", "channel": "orders-eu", "data": "{\"id\": 1}"}]});
    let response = api(&server, "POST", "/batch_events", &[], &batch.to_string()).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(client.recv_event("ok").await["data"], "{\"id\": 1}");
}

#[tokio::test]
async fn an_invalid_client_event_is_refused_to_its_sender_and_reaches_no_one() {
    let server = start();
    let channel = "private-orders";
    let mut sender = subscriber(&server, channel).await;
    let mut other = subscriber(&server, channel).await;
    sender
        .trigger(channel, "client-order", json!({"id": DISTINCTIVE}))
        .await;
    let error = sender.recv_event("pusher:error").await;
    assert_eq!(
        error["data"]["message"],
        "Client event rejected: data does not match the schema: /id: type"
    );
    assert!(!error.to_string().contains(DISTINCTIVE));
    other.assert_nothing_pending().await;

    // The connection stays open, and an event that matches (or that no entry names) passes.
    sender
        .trigger(channel, "client-order", json!({"id": 3}))
        .await;
    assert_eq!(
        other.recv_event("client-order").await["data"],
        json!({"id": 3})
    );
    sender.trigger(channel, "client-typing", json!("…")).await;
    assert_eq!(other.recv_event("client-typing").await["data"], json!("…"));
    sender.assert_nothing_pending().await;
}

#[tokio::test]
async fn encrypted_channels_are_never_validated() {
    let config = format!(
        "{}[[apps.schemas]]\nchannel_prefix = \"private-\"\nschema = {{ type = \"object\", required = [\"id\"] }}\n",
        default_config()
    );
    let server = TestServer::start_with(&config);
    let mut client = subscriber(&server, "private-encrypted-vault").await;
    let data = json!({"nonce": "n", "ciphertext": "c"}).to_string();
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["private-encrypted-vault"], "data": data}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(client.recv_event("e").await["data"], data.as_str());
    let private = trigger(
        &server,
        json!({"name": "e", "channels": ["private-vault"], "data": data}),
    )
    .await;
    assert_eq!(private.status, 422, "the inline schema holds on private-");
    assert_eq!(
        private.error(),
        "data does not match the schema: /: required"
    );
}

#[test]
fn check_config_finds_schema_files_beside_the_config_and_names_a_broken_one_with_its_line() {
    let (ok, said) = check_config_with_files(&config(), &[("schemas/order.json", ORDER_SCHEMA)]);
    assert!(ok, "{said}");

    let broken = r#"{"type": "object", "properties": {"id": {"type": "integr"}}}"#;
    let (ok, said) = check_config_with_files(&config(), &[("schemas/order.json", broken)]);
    assert!(!ok);
    let line = config()
        .lines()
        .position(|line| line == "[[apps.schemas]]")
        .unwrap()
        + 1;
    assert!(
        said.contains(&format!(
            "config.toml: app {APP_ID}: schemas[0] (line {line}): the schema does not compile: /properties/id/type: "
        )),
        "{said}"
    );

    let (ok, said) = check_config_with_files(&config(), &[]);
    assert!(!ok);
    assert!(
        said.contains(&format!(
            "app {APP_ID}: schemas[0] (line {line}): schema_file "
        )) && said.contains("order.json: cannot read"),
        "{said}"
    );
}

//! Which schemas apply, what a refusal says, and what stops the start-up: from the text of a
//! configuration to the guard's answer.

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::guard::{Guard, GuardError};

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

/// An order: an object with an integer `id` and items of positive `qty`.
const ORDER: &str = r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}, "items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}}}}"#;

fn entry(prefix: &str, event: Option<&str>, schema: &str) -> String {
    let event = event
        .map(|name| format!("event = \"{name}\"\n"))
        .unwrap_or_default();
    format!("[[apps.schemas]]\nchannel_prefix = \"{prefix}\"\n{event}schema_file = \"{schema}\"\n")
}

/// A guard for `entries`, whose schema files are written to a temporary folder first.
fn guard_with(files: &[(&str, &str)], entries: &str) -> Result<Guard, GuardError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let config = Config::from_toml(&format!("{APP}{entries}"), &dir.path().join("c.toml"))
        .unwrap_or_else(|error| panic!("{error}"));
    Guard::from_config(&config)
}

fn guard(files: &[(&str, &str)], entries: &str) -> Guard {
    guard_with(files, entries).unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name, 200).unwrap()
}

fn check(guard: &Guard, channel_name: &str, event: &str, data: &str) -> Result<(), String> {
    guard
        .check_schemas("1", &[channel(channel_name)], event, data)
        .map_err(|violation| violation.to_string())
}

#[test]
fn a_schema_applies_to_channels_with_its_prefix_and_only_to_them() {
    let guard = guard(
        &[("order.json", ORDER)],
        &entry("orders-", None, "order.json"),
    );
    assert_eq!(check(&guard, "orders-1", "e", r#"{"id": 7}"#), Ok(()));
    assert_eq!(
        check(&guard, "orders-1", "e", r#"{"id": "7"}"#),
        Err("data does not match the schema: /id: type".to_owned())
    );
    assert_eq!(check(&guard, "chat", "e", "not even JSON"), Ok(()));
    assert_eq!(
        check(&guard, "x-orders-1", "e", "{}"),
        Ok(()),
        "a prefix, not a substring"
    );
    assert_eq!(
        guard.check_schemas("2", &[channel("orders-1")], "e", "{}"),
        Ok(()),
        "another app's schemas are not this one's"
    );
}

#[test]
fn an_event_filter_narrows_the_entry_to_that_event() {
    let guard = guard(
        &[("order.json", ORDER)],
        &entry("orders-", Some("order.updated"), "order.json"),
    );
    assert!(check(&guard, "orders-1", "order.updated", "{}").is_err());
    assert_eq!(check(&guard, "orders-1", "order.deleted", "{}"), Ok(()));
}

#[test]
fn the_refusal_names_the_path_and_keyword_and_never_a_value() {
    let guard = guard(
        &[("order.json", ORDER)],
        &entry("orders-", None, "order.json"),
    );
    let data = r#"{"id": 1, "items": [{"qty": -424242}], "note": "zebra-unicorn"}"#;
    let refusal = check(&guard, "orders-1", "e", data).unwrap_err();
    assert_eq!(
        refusal,
        "data does not match the schema: /items/0/qty: minimum"
    );
    let whole = check(&guard, "orders-1", "e", r#""zebra-unicorn""#).unwrap_err();
    assert_eq!(whole, "data does not match the schema: /: type");
    let missing = check(&guard, "orders-1", "e", r#"{"note": "zebra-unicorn"}"#).unwrap_err();
    assert_eq!(missing, "data does not match the schema: /: required");
}

#[test]
fn a_long_key_in_the_path_is_cut() {
    let guard = guard(
        &[("s.json", r#"{"additionalProperties": {"type": "integer"}}"#)],
        &entry("a-", None, "s.json"),
    );
    let key = "k".repeat(300);
    let refusal = check(&guard, "a-1", "e", &format!("{{\"{key}\": \"v\"}}")).unwrap_err();
    assert_eq!(
        refusal,
        format!("data does not match the schema: /{}…: type", &key[..159])
    );
}

#[test]
fn data_that_is_not_json_is_refused_where_a_schema_applies() {
    let guard = guard(&[("any.json", "{}")], &entry("orders-", None, "any.json"));
    for data in ["", "{\"id\": ", "plain text", "{'id': 1}"] {
        assert_eq!(
            check(&guard, "orders-1", "e", data),
            Err("data is not JSON".to_owned()),
            "{data:?}"
        );
    }
    assert_eq!(
        check(&guard, "orders-1", "e", "42"),
        Ok(()),
        "any JSON value"
    );
}

#[test]
fn every_schema_that_applies_must_pass_and_the_first_failure_in_file_order_answers() {
    let entries = format!(
        "{}{}[[apps.schemas]]\nchannel_prefix = \"orders-eu-\"\nschema = {{ required = [\"vat\"] }}\n",
        entry("orders-", None, "order.json"),
        entry("orders-", Some("order.created"), "small.json"),
    );
    let guard = guard(
        &[
            ("order.json", ORDER),
            ("small.json", r#"{"maxProperties": 1}"#),
        ],
        &entries,
    );
    assert_eq!(
        check(&guard, "orders-eu-1", "e", r#"{"id": 1, "vat": 2}"#),
        Ok(())
    );
    assert_eq!(
        check(&guard, "orders-eu-1", "e", r#"{"id": 1}"#),
        Err("data does not match the schema: /: required".to_owned()),
        "the third entry"
    );
    assert_eq!(
        check(
            &guard,
            "orders-eu-1",
            "order.created",
            r#"{"id": 1, "vat": 2}"#
        ),
        Err("data does not match the schema: /: maxProperties".to_owned()),
        "the second entry applies to this event"
    );
    assert_eq!(
        check(&guard, "orders-eu-1", "order.created", r#"{"id": "x"}"#),
        Err("data does not match the schema: /id: type".to_owned()),
        "the first entry fails first"
    );
}

#[test]
fn an_event_on_several_channels_meets_the_schemas_of_each() {
    let entries = format!(
        "{}[[apps.schemas]]\nchannel_prefix = \"audit-\"\nschema = {{ required = [\"by\"] }}\n",
        entry("orders-", None, "order.json")
    );
    let guard = guard(&[("order.json", ORDER)], &entries);
    let both = [channel("orders-1"), channel("audit-1")];
    assert_eq!(
        guard.check_schemas("1", &both, "e", r#"{"id": 1}"#),
        Err(SchemaViolation::Mismatch {
            path: "/".to_owned(),
            keyword: "required".to_owned()
        })
    );
    assert_eq!(
        guard.check_schemas("1", &both, "e", r#"{"id": 1, "by": "me"}"#),
        Ok(())
    );
}

#[test]
fn encrypted_channels_are_never_validated() {
    let guard = guard(
        &[("order.json", ORDER)],
        &entry("private-", None, "order.json"),
    );
    assert!(check(&guard, "private-orders", "e", "{}").is_err());
    assert_eq!(
        check(
            &guard,
            "private-encrypted-orders",
            "e",
            "ciphertext, not JSON"
        ),
        Ok(())
    );
}

#[test]
fn a_missing_file_a_file_that_is_not_json_and_a_broken_schema_stop_the_start_up() {
    let error =
        |files: &[(&str, &str)], entries: &str| guard_with(files, entries).unwrap_err().to_string();
    let missing = error(&[], &entry("a-", None, "missing.json"));
    assert!(
        missing.starts_with("app 1: schemas[0] (line 5): schema_file ")
            && missing.contains("missing.json: cannot read: "),
        "{missing}"
    );
    let not_json = error(
        &[("bad.json", "{\"type\": ")],
        &entry("a-", None, "bad.json"),
    );
    assert!(
        not_json.starts_with("app 1: schemas[0] (line 5): schema_file ")
            && not_json.contains("bad.json: not JSON: EOF while parsing"),
        "{not_json}"
    );
    let second = format!(
        "{}{}",
        entry("a-", None, "ok.json"),
        entry("b-", None, "broken.json")
    );
    let broken = error(
        &[
            ("ok.json", "{}"),
            (
                "broken.json",
                r#"{"properties": {"id": {"type": "integr"}}}"#,
            ),
        ],
        &second,
    );
    assert!(
        broken.starts_with(
            "app 1: schemas[1] (line 8): the schema does not compile: /properties/id/type: "
        ),
        "{broken}"
    );
}

#[test]
fn no_reference_is_ever_fetched_and_look_arounds_are_refused() {
    for (schema, named) in [
        (
            r#"{"$ref": "https://example.com/order.json"}"#,
            "https://example.com/order.json",
        ),
        (r#"{"$ref": "file:///etc/passwd"}"#, "file:///etc/passwd"),
        (r#"{"$ref": "other.json"}"#, "other.json"),
        (r#"{"type": "string", "pattern": "(?=a)a"}"#, "/pattern"),
    ] {
        let error = guard_with(&[("s.json", schema)], &entry("a-", None, "s.json"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("app 1: schemas[0] (line 5): the schema does not compile: ")
                && error.contains(named),
            "{schema}: {error}"
        );
    }
    let local =
        r##"{"$defs": {"id": {"type": "integer"}}, "properties": {"id": {"$ref": "#/$defs/id"}}}"##;
    let guard = guard(&[("s.json", local)], &entry("a-", None, "s.json"));
    assert!(
        check(&guard, "a-1", "e", r#"{"id": "x"}"#).is_err(),
        "local references work"
    );
}

#[test]
fn format_is_an_assertion_only_where_the_draft_says_so() {
    let entries = "[[apps.schemas]]\nchannel_prefix = \"new-\"\nschema = { format = \"email\" }\n\
                   [[apps.schemas]]\nchannel_prefix = \"old-\"\nschema_file = \"07.json\"\n";
    let draft_07 = r#"{"$schema": "http://json-schema.org/draft-07/schema#", "format": "email"}"#;
    let guard = guard(&[("07.json", draft_07)], entries);
    assert_eq!(
        check(&guard, "new-1", "e", r#""not an address""#),
        Ok(()),
        "2020-12"
    );
    assert_eq!(
        check(&guard, "old-1", "e", r#""not an address""#),
        Err("data does not match the schema: /: format".to_owned())
    );
    assert_eq!(check(&guard, "old-1", "e", r#""a@example.com""#), Ok(()));
}

#[test]
fn an_app_with_schemas_and_no_security_table_is_guarded_and_others_are_not() {
    let guard = guard(
        &[("order.json", ORDER)],
        &entry("orders-", None, "order.json"),
    );
    assert!(guard.rules.load().apps.contains_key("1"));
    let plain = Guard::from_config(&Config::from_toml(APP, Path::new("c.toml")).unwrap()).unwrap();
    assert!(plain.rules.load().apps.is_empty(), "no rules, no entry");
}

//! `[[apps.schemas]]`: the JSON Schemas an app's event data must satisfy, per channel prefix
//! and optionally per event name. Each entry is parsed while the file is read, so a prefix no
//! channel can have, an empty event name, both or neither of `schema` and `schema_file`, or an
//! inline schema with no JSON form is reported with its line. Reading a `schema_file` and
//! compiling the schema wait for the guard (as the country database does), which names the
//! app, the entry and its line; what a schema means is the `guard`'s.

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::ConfigString;
use crate::protocol::ChannelName;

/// One `[[apps.schemas]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Spanned<SchemaEntry>")]
pub struct SchemaConfig {
    /// Channels whose names start with this are validated (never empty).
    pub channel_prefix: String,
    /// Only events of this name; `None`: every event on those channels.
    pub event: Option<String>,
    /// The schema, inline or in a file.
    pub source: SchemaSource,
    /// 1-based line of the entry in the file (set by [`Config::from_toml`](super::Config)).
    pub line: usize,
    /// Where the entry is in the file's text.
    span: Range<usize>,
}

/// Two entries are the same when they say the same; where they stand in the file does not
/// matter (a reload compares apps, and an edit above an entry moves it).
impl PartialEq for SchemaConfig {
    fn eq(&self, other: &Self) -> bool {
        self.channel_prefix == other.channel_prefix
            && self.event == other.event
            && self.source == other.source
    }
}

/// Where an entry's schema is.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaSource {
    /// `schema = { … }`, as JSON.
    Inline(Value),
    /// `schema_file = "…"`, relative to the configuration file's folder.
    File(PathBuf),
}

/// An entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaEntry {
    channel_prefix: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    schema: Option<toml::Value>,
    #[serde(default)]
    schema_file: Option<ConfigString>,
}

impl TryFrom<Spanned<SchemaEntry>> for SchemaConfig {
    type Error = String;

    fn try_from(entry: Spanned<SchemaEntry>) -> Result<Self, String> {
        let span = entry.span();
        let entry = entry.into_inner();
        let prefix = &entry.channel_prefix;
        if prefix.is_empty() {
            return Err("schemas: channel_prefix must not be empty".to_owned());
        }
        if !ChannelName::may_begin_with(prefix) {
            return Err(format!(
                "schemas: channel_prefix {prefix:?} begins no channel name (names use A-Z, a-z, 0-9 and _ - = @ , . ; and only #server-to-user- starts with #)"
            ));
        }
        if entry.event.as_deref() == Some("") {
            return Err(
                "schemas: event must not be empty (leave it out to validate every event)"
                    .to_owned(),
            );
        }
        let source = match (entry.schema, entry.schema_file) {
            (Some(schema), None) => SchemaSource::Inline(json_of(schema)?),
            (None, Some(file)) if !file.is_empty() => {
                SchemaSource::File(PathBuf::from(file.as_str()))
            }
            (None, Some(_)) => return Err("schemas: schema_file must not be empty".to_owned()),
            (Some(_), Some(_)) => {
                return Err("schemas: set schema or schema_file, not both".to_owned());
            }
            (None, None) => {
                return Err(
                    "schemas: set schema (inline) or schema_file (a JSON Schema file)".to_owned(),
                );
            }
        };
        Ok(SchemaConfig {
            channel_prefix: entry.channel_prefix,
            event: entry.event,
            source,
            line: 0,
            span,
        })
    }
}

impl SchemaConfig {
    /// Where the entry starts in the file's text.
    pub(super) fn offset(&self) -> usize {
        self.span.start
    }
}

/// An inline schema as JSON: TOML has dates and non-finite floats that JSON has not.
fn json_of(value: toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(text) => Value::String(text),
        toml::Value::Integer(number) => Value::from(number),
        toml::Value::Float(number) => serde_json::Number::from_f64(number)
            .map(Value::Number)
            .ok_or_else(|| format!("schemas: schema has {number}, which JSON cannot hold"))?,
        toml::Value::Boolean(flag) => Value::Bool(flag),
        toml::Value::Datetime(date) => {
            return Err(format!(
                "schemas: schema has the TOML date {date}, which JSON cannot hold; quote it"
            ));
        }
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(json_of)
                .collect::<Result<_, String>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, value)| Ok((key, json_of(value)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

    fn load(entries: &str) -> Result<Config, String> {
        Config::from_toml(
            &format!("{APP}{entries}"),
            Path::new("/etc/relay/config.toml"),
        )
        .map_err(|error| error.to_string())
    }

    #[test]
    fn an_entry_is_read_with_its_line() {
        let config = load(
            "\n[[apps.schemas]]\nchannel_prefix = \"orders-\"\nevent = \"order.updated\"\nschema_file = \"schemas/order.json\"\n\
             [[apps.schemas]]\nchannel_prefix = \"chat-\"\nschema = { type = \"string\" }\n",
        )
        .unwrap();
        let [file, inline] = &config.apps[0].schemas[..] else {
            panic!("two entries");
        };
        assert_eq!(file.channel_prefix, "orders-");
        assert_eq!(file.event.as_deref(), Some("order.updated"));
        assert_eq!(file.line, 6);
        assert_eq!(
            file.source,
            SchemaSource::File(PathBuf::from("schemas/order.json"))
        );
        assert_eq!(
            config.config_dir,
            Path::new("/etc/relay"),
            "what it is relative to"
        );
        assert_eq!(inline.event, None);
        assert_eq!(inline.line, 10);
        assert_eq!(
            inline.source,
            SchemaSource::Inline(serde_json::json!({"type": "string"}))
        );
    }

    #[test]
    fn both_or_neither_schema_key_is_refused_with_the_entry_s_line() {
        let both = load(
            "[[apps.schemas]]\nchannel_prefix = \"a-\"\nschema = {}\nschema_file = \"a.json\"\n",
        )
        .unwrap_err();
        assert!(
            both.starts_with(
                "/etc/relay/config.toml:5: schemas: set schema or schema_file, not both"
            ),
            "{both}"
        );
        let neither = load("[[apps.schemas]]\nchannel_prefix = \"a-\"\n").unwrap_err();
        assert!(
            neither.starts_with(
                "/etc/relay/config.toml:5: schemas: set schema (inline) or schema_file"
            ),
            "{neither}"
        );
    }

    #[test]
    fn empty_or_impossible_prefixes_and_empty_names_are_refused() {
        let cases = [
            ("channel_prefix = \"\"", "channel_prefix must not be empty"),
            (
                "channel_prefix = \"#orders-\"",
                "channel_prefix \"#orders-\" begins no channel name",
            ),
            (
                "channel_prefix = \"a b\"",
                "channel_prefix \"a b\" begins no channel name",
            ),
            (
                "channel_prefix = \"a-\"\nevent = \"\"",
                "event must not be empty",
            ),
            (
                "channel_prefix = \"a-\"\nschema_file = \"\"",
                "schema_file must not be empty",
            ),
            (
                "event = \"e\"\nschema = {}",
                "missing field `channel_prefix`",
            ),
            (
                "channel_prefix = \"a-\"\nschema = {}\nevents = [\"e\"]",
                "unknown field `events`",
            ),
        ];
        for (entry, message) in cases {
            let error = load(&format!("[[apps.schemas]]\n{entry}\n")).unwrap_err();
            assert!(error.contains(message), "{entry}: {error}");
            assert!(error.starts_with("/etc/relay/config.toml:"), "{error}");
        }
    }

    #[test]
    fn an_entry_for_encrypted_channels_is_warned_about_as_never_applying() {
        let config = load(
            "[[apps.schemas]]\nchannel_prefix = \"private-\"\nschema = {}\n\
             [[apps.schemas]]\nchannel_prefix = \"private-encrypted-x\"\nschema = {}\n",
        )
        .unwrap();
        assert_eq!(
            config.warnings(),
            [
                "apps[0]: schemas[1] (line 8) never applies: private-encrypted- channels carry ciphertext and are not validated"
            ]
        );
    }

    #[test]
    fn inline_schemas_become_the_same_json() {
        let toml: toml::Value = toml::from_str(
            "type = \"object\"\nrequired = [\"id\"]\nproperties = { id = { type = \"integer\", minimum = 1, multipleOf = 0.5 } }",
        )
        .unwrap();
        assert_eq!(
            json_of(toml).unwrap(),
            serde_json::json!({
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "integer", "minimum": 1, "multipleOf": 0.5}},
            })
        );
    }

    #[test]
    fn dates_and_non_finite_floats_have_no_json_form() {
        let date: toml::Value = toml::from_str("const = 2026-01-01").unwrap();
        assert!(json_of(date).unwrap_err().contains("TOML date 2026-01-01"));
        let nan: toml::Value = toml::from_str("minimum = nan").unwrap();
        assert!(json_of(nan).unwrap_err().contains("JSON cannot hold"));
    }
}

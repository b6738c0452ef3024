//! Channel schemas: an app's `[[apps.schemas]]`, compiled once when the guard is built, and
//! the check of an event's data against the ones that apply. An entry applies to an event on
//! channel C named E when C starts with its `channel_prefix` and its `event`, if set, is E;
//! every entry that applies must pass, in the order of the file, and the first failure is the
//! answer. `private-encrypted-` channels carry ciphertext and are never validated.
//!
//! The data is parsed only when an entry applies, so a channel without schemas costs a prefix
//! comparison per entry. A refusal is built from the failing instance path (its keys cut to a
//! bound) and keyword alone, never from the library's message, which quotes the data's values.
//!
//! The schemas come from the operator, the data from anyone, so compilation is shut off from
//! the world: no `$ref` is ever fetched (`offline`: neither the web nor files; the crate is
//! built without its resolvers too), and `pattern` uses the linear-time `regex` engine, so
//! no payload can make a pattern backtrack.

use std::path::PathBuf;

use jsonschema::{PatternOptions, ValidationError, Validator};
use serde_json::Value;

use crate::config::{SchemaConfig, SchemaSource};
use crate::protocol::{ChannelKind, ChannelName, echo};

/// Why an entry of `[[apps.schemas]]` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("schemas[{index}] (line {line}): {problem}")]
pub struct SchemaError {
    /// The entry's place among the app's schemas.
    pub index: usize,
    /// Its line in the configuration file.
    pub line: usize,
    /// What is wrong.
    pub problem: SchemaProblem,
}

/// What is wrong with a schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaProblem {
    /// The `schema_file` cannot be read.
    #[error("schema_file {}: cannot read: {source}", path.display())]
    Unreadable {
        /// The file, resolved against the configuration's folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `schema_file` is not JSON.
    #[error("schema_file {}: not JSON: {source}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where parsing stopped.
        source: serde_json::Error,
    },
    /// The schema is not a valid JSON Schema, or refers to one that is not in it.
    #[error("the schema does not compile: {0}")]
    DoesNotCompile(String),
}

/// Why an event's data is refused; the message names only where and which keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaViolation {
    /// A schema applies, and the data does not parse as JSON.
    #[error("data is not JSON")]
    NotJson,
    /// The data fails a schema.
    #[error("data does not match the schema: {path}: {keyword}")]
    Mismatch {
        /// The JSON Pointer of the failing part of the data (`/` for the whole).
        path: String,
        /// The keyword it fails (`type`, `required`, `minimum`, …).
        keyword: String,
    },
}

/// An app's compiled schemas, in the order of the file.
#[derive(Debug)]
pub struct ChannelSchemas {
    entries: Vec<ChannelSchema>,
}

/// One compiled entry.
struct ChannelSchema {
    channel_prefix: String,
    event: Option<String>,
    validator: Validator,
}

impl std::fmt::Debug for ChannelSchema {
    // The compiled tree says nothing a reader of the guard needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSchema")
            .field("channel_prefix", &self.channel_prefix)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl ChannelSchemas {
    /// Reads (relative to `config_dir`) and compiles every entry; `None` when there are none.
    pub fn compile(
        entries: &[SchemaConfig],
        config_dir: &std::path::Path,
    ) -> Result<Option<Self>, SchemaError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let compiled = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                ChannelSchema::compile(entry, config_dir).map_err(|problem| SchemaError {
                    index,
                    line: entry.line,
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(ChannelSchemas { entries: compiled }))
    }

    /// Checks `data`, an event named `event` on `channels`, against every entry that applies
    /// to one of them (each entry once); the first failure in file order is the answer.
    pub fn check(
        &self,
        channels: &[ChannelName],
        event: &str,
        data: &str,
    ) -> Result<(), SchemaViolation> {
        let mut applying = self
            .entries
            .iter()
            .filter(|entry| entry.applies(channels, event))
            .peekable();
        if applying.peek().is_none() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|_| SchemaViolation::NotJson)?;
        for entry in applying {
            entry
                .validator
                .validate(&value)
                .map_err(|error| violation(&error))?;
        }
        Ok(())
    }
}

impl ChannelSchema {
    fn compile(entry: &SchemaConfig, config_dir: &std::path::Path) -> Result<Self, SchemaProblem> {
        let read;
        let schema = match &entry.source {
            SchemaSource::Inline(schema) => schema,
            SchemaSource::File(file) => {
                let path = config_dir.join(file);
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(source) => return Err(SchemaProblem::Unreadable { path, source }),
                };
                read = serde_json::from_str::<Value>(&text)
                    .map_err(|source| SchemaProblem::NotJson { path, source })?;
                &read
            }
        };
        let validator = jsonschema::options()
            .offline()
            .with_pattern_options(PatternOptions::regex())
            .build(schema)
            .map_err(|error| SchemaProblem::DoesNotCompile(compile_message(&error)))?;
        Ok(ChannelSchema {
            channel_prefix: entry.channel_prefix.clone(),
            event: entry.event.clone(),
            validator,
        })
    }

    fn applies(&self, channels: &[ChannelName], event: &str) -> bool {
        self.event.as_deref().is_none_or(|name| name == event)
            && channels.iter().any(|channel| {
                channel.kind() != ChannelKind::PrivateEncrypted
                    && channel.as_str().starts_with(&self.channel_prefix)
            })
    }
}

/// Most bytes of a failing path quoted in a refusal: its keys are the sender's own, and an
/// error never echoes a large input.
const MAX_QUOTED_PATH: usize = 160;

/// A refusal from the failure's place and keyword only: the library's own message quotes the
/// data.
fn violation(error: &ValidationError<'_>) -> SchemaViolation {
    let path = error.instance_path().as_str();
    let path = if path.is_empty() { "/" } else { path };
    SchemaViolation::Mismatch {
        path: echo::quote(path, MAX_QUOTED_PATH).into_owned(),
        keyword: error.kind().keyword().to_owned(),
    }
}

/// A compilation error for the operator: where in the schema, and the library's message (it
/// quotes the schema, which is the operator's own).
fn compile_message(error: &ValidationError<'_>) -> String {
    let place = error.instance_path().as_str();
    if place.is_empty() {
        error.to_string()
    } else {
        format!("{place}: {error}")
    }
}

#[cfg(test)]
mod tests;

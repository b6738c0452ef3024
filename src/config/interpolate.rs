//! `${VAR}` interpolation of string values, done while the TOML is parsed so that a missing
//! variable is reported with the line that names it. `${file:/run/secrets/NAME}` is replaced
//! by that file's content, one trailing newline trimmed (Docker and Kubernetes secrets); an
//! error names the file, never its content.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, de::Error as _};

/// A string from the config file with every `${VAR}` replaced by that environment variable.
/// Its `Debug` does not reveal the value, since it may hold a secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConfigString(String);

impl ConfigString {
    /// The resolved value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConfigString {
    fn from(value: &str) -> Self {
        ConfigString(value.to_owned())
    }
}

impl Deref for ConfigString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConfigString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfigString(..)")
    }
}

impl<'de> Deserialize<'de> for ConfigString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        interpolate(&raw, |name| std::env::var(name).ok(), read_secret_file)
            .map(ConfigString)
            .map_err(D::Error::custom)
    }
}

/// The content of the secret file at `path`, one trailing newline (`\n` or `\r\n`) trimmed.
fn read_secret_file(path: &str) -> Result<String, String> {
    let mut text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the secret file {path}: {error}"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Replaces each `${NAME}` in `raw` using `lookup`, and each `${file:PATH}` using `read`;
/// `$` not followed by `{` is kept as is.
fn interpolate(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${ in value".to_owned())?;
        let name = &after[..end];
        if let Some(path) = name.strip_prefix("file:") {
            if path.is_empty() {
                return Err("${file:} needs a path".to_owned());
            }
            out.push_str(&read(path)?);
            rest = &after[end + 1..];
            continue;
        }
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        let value =
            lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr3t".to_owned())
    }

    fn with_env(raw: &str) -> Result<String, String> {
        interpolate(raw, lookup, read_secret_file)
    }

    #[test]
    fn replaces_variables_anywhere_in_the_value() {
        assert_eq!(with_env("${SECRET}").unwrap(), "s3cr3t");
        assert_eq!(with_env("a-${SECRET}-b").unwrap(), "a-s3cr3t-b");
        assert_eq!(with_env("plain $x").unwrap(), "plain $x");
    }

    #[test]
    fn names_the_missing_variable() {
        assert_eq!(
            with_env("${NOPE}").unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert!(with_env("${OPEN").is_err());
        assert!(with_env("${bad name}").is_err());
    }

    #[test]
    fn a_file_reference_reads_the_file_and_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let unix = dir.path().join("unix");
        std::fs::write(&unix, "from-file\n\n").unwrap();
        let windows = dir.path().join("windows");
        std::fs::write(&windows, "crlf\r\n").unwrap();
        let unix_ref = format!("${{file:{}}}", unix.display());
        assert_eq!(
            with_env(&unix_ref).unwrap(),
            "from-file\n",
            "one newline only"
        );
        let both = format!("${{file:{}}}-${{SECRET}}", windows.display());
        assert_eq!(with_env(&both).unwrap(), "crlf-s3cr3t");
        let missing = format!("${{file:{}}}", dir.path().join("nope").display());
        let error = with_env(&missing).unwrap_err();
        assert!(error.starts_with("cannot read the secret file "), "{error}");
        assert!(with_env("${file:}").is_err());
    }
}

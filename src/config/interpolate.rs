//! `${VAR}` interpolation of string values, done while the TOML is parsed so that a missing
//! variable is reported with the line that names it.

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
        interpolate(&raw, |name| std::env::var(name).ok())
            .map(ConfigString)
            .map_err(D::Error::custom)
    }
}

/// Replaces each `${NAME}` in `raw` using `lookup`; `$` not followed by `{` is kept as is.
fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${ in value".to_owned())?;
        let name = &after[..end];
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

    #[test]
    fn replaces_variables_anywhere_in_the_value() {
        assert_eq!(interpolate("${SECRET}", lookup).unwrap(), "s3cr3t");
        assert_eq!(interpolate("a-${SECRET}-b", lookup).unwrap(), "a-s3cr3t-b");
        assert_eq!(interpolate("plain $x", lookup).unwrap(), "plain $x");
    }

    #[test]
    fn names_the_missing_variable() {
        assert_eq!(
            interpolate("${NOPE}", lookup).unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert!(interpolate("${OPEN", lookup).is_err());
        assert!(interpolate("${bad name}", lookup).is_err());
    }
}

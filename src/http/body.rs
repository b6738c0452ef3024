//! Reading fields out of a JSON request body with errors that name the field.

use serde_json::{Map, Value};

use super::ApiError;

/// A JSON object body.
#[derive(Debug)]
pub struct JsonFields(Map<String, Value>);

impl JsonFields {
    /// Parses a body that must be a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(JsonFields(map)),
            Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object")),
            Err(_) => Err(ApiError::bad_request("Request body is not valid JSON")),
        }
    }

    /// Wraps an object already parsed (a batch item).
    pub fn from_value(value: Value, what: &str) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(JsonFields(map)),
            _ => Err(ApiError::bad_request(format!(
                "{what} must be a JSON object"
            ))),
        }
    }

    /// A field that must be present and a string.
    pub fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        self.optional_str(name)?
            .ok_or_else(|| ApiError::bad_request(format!("Missing \"{name}\"")))
    }

    /// A field that, when present and not null, must be a string.
    pub fn optional_str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_request(format!(
                "\"{name}\" must be a string"
            ))),
        }
    }

    /// A field that, when present and not null, must be an array of strings.
    pub fn optional_str_list(&self, name: &str) -> Result<Option<Vec<&str>>, ApiError> {
        let wrong = || ApiError::bad_request(format!("\"{name}\" must be an array of strings"));
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().ok_or_else(wrong))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(wrong()),
        }
    }

    /// Takes a field that must be an array.
    pub fn take_array(&mut self, name: &str) -> Result<Vec<Value>, ApiError> {
        match self.0.remove(name) {
            Some(Value::Array(items)) => Ok(items),
            None | Some(Value::Null) => Err(ApiError::bad_request(format!("Missing \"{name}\""))),
            Some(_) => Err(ApiError::bad_request(format!(
                "\"{name}\" must be an array"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let fields = JsonFields::parse(br#"{"name": 5, "channels": ["a", 1]}"#).unwrap();
        assert_eq!(
            fields.required_str("name").unwrap_err().to_string(),
            "\"name\" must be a string"
        );
        assert_eq!(
            fields.required_str("data").unwrap_err().to_string(),
            "Missing \"data\""
        );
        assert_eq!(
            fields
                .optional_str_list("channels")
                .unwrap_err()
                .to_string(),
            "\"channels\" must be an array of strings"
        );
        assert!(JsonFields::parse(b"[1]").is_err());
        assert!(JsonFields::parse(b"{").is_err());
    }
}

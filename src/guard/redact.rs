//! Redaction that keeps a JSON payload JSON. An event's `data` is often JSON text (and a
//! client event's always is): a secret inside a string literal is replaced by `[REDACTED]`,
//! one outside (a card number written as a number) by the string `"[REDACTED]"` in place of
//! the whole number. A payload that is not JSON is redacted as plain text. Should the result
//! still not parse (a finding that crosses a string's quotes, which the detectors' shapes
//! do not allow), the whole payload becomes `"[REDACTED]"`: losing the payload is better than
//! delivering broken JSON or the secret.

use serde::de::IgnoredAny;

use super::scan::{Finding, REDACTED, Scanner};

/// `text` with every finding redacted, still JSON when it was.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    if findings.is_empty() {
        return text.to_owned();
    }
    if !is_json(text) {
        return Scanner::redact(text, findings);
    }
    let strings = string_literals(text);
    let mut redacted = String::with_capacity(text.len());
    let mut copied_until = 0;
    for finding in findings {
        let range = &finding.range;
        let (start, end, replacement) = if inside_a_string(&strings, range.start, range.end) {
            (range.start, range.end, REDACTED.to_owned())
        } else {
            let (start, end) = widen_to_bare_token(text, range.start, range.end);
            (start, end, format!("\"{REDACTED}\""))
        };
        let start = start.max(copied_until);
        if start >= end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        redacted.push_str(&text[copied_until..start]);
        redacted.push_str(&replacement);
        copied_until = end;
    }
    redacted.push_str(&text[copied_until..]);
    if is_json(&redacted) {
        redacted
    } else {
        format!("\"{REDACTED}\"")
    }
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// The byte ranges of the contents of every string literal of the JSON `text` (between the
/// quotes).
fn string_literals(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut literals = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'"' {
            index += 1;
            continue;
        }
        let start = index + 1;
        index = start;
        while index < bytes.len() && bytes[index] != b'"' {
            index += if bytes[index] == b'\\' { 2 } else { 1 };
        }
        literals.push((start, index.min(bytes.len())));
        index += 1;
    }
    literals
}

/// Whether `start..end` lies within the contents of one string literal.
fn inside_a_string(literals: &[(usize, usize)], start: usize, end: usize) -> bool {
    let after = literals.partition_point(|&(literal_start, _)| literal_start <= start);
    after > 0 && {
        let (_, literal_end) = literals[after - 1];
        end <= literal_end
    }
}

/// `start..end` widened to the bare token around it (a number's sign, fraction and exponent).
fn widen_to_bare_token(text: &str, start: usize, end: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let is_token = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'+' | b'.');
    let mut start = start;
    while start > 0 && is_token(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = end;
    while end < bytes.len() && is_token(bytes[end]) {
        end += 1;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::scan::Detector;

    fn redacted(text: &str) -> String {
        let scanner = Scanner::new(&Detector::ALL);
        redact(text, &scanner.scan(text))
    }

    #[test]
    fn a_secret_in_a_string_is_replaced_inside_it() {
        let text = r#"{"note":"key AKIAIOSFODNN7EXAMPLF here","n":1}"#;
        assert_eq!(redacted(text), r#"{"note":"key [REDACTED] here","n":1}"#);
    }

    #[test]
    fn a_card_number_written_as_a_number_becomes_a_string() {
        for text in [
            r#"{"card":4111111111111111}"#,
            r#"{"card":-4111111111111111}"#,
            r#"[4111111111111111.5e3]"#,
        ] {
            let out = redacted(text);
            assert!(is_json(&out), "{text} -> {out}");
            assert!(!out.contains("4111"), "{out}");
            assert!(out.contains("\"[REDACTED]\""), "{out}");
        }
    }

    #[test]
    fn plain_text_is_redacted_as_text() {
        assert_eq!(
            redacted("my key is AKIAIOSFODNN7EXAMPLF, ok"),
            "my key is [REDACTED], ok"
        );
    }

    #[test]
    fn a_pem_block_with_escaped_newlines_stays_inside_its_string() {
        let key = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----";
        let text = format!(r#"{{"k":"{key}","x":"y"}}"#);
        assert_eq!(redacted(&text), r#"{"k":"[REDACTED]","x":"y"}"#);
    }

    #[test]
    fn escaped_quotes_do_not_end_a_literal() {
        let literals = string_literals(r#"{"a":"x\"y","b":2}"#);
        assert_eq!(literals, vec![(2, 3), (6, 10), (13, 14)]);
    }
}

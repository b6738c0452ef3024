//! The string an HTTP API request signs: `METHOD\nPATH\nQUERY`.
//!
//! QUERY is every query parameter except `auth_signature`, keys lower-cased and sorted, each
//! `key=value` with the *decoded* value, joined with `&`. The Node SDK sends values raw and the
//! PHP SDK percent-escapes them, but both sign the decoded value, which is why the server
//! rebuilds the string from decoded pairs rather than from the raw query text.

/// The name of the parameter that carries the signature (excluded from the signed string).
pub const SIGNATURE_PARAM: &str = "auth_signature";

/// Builds the string to sign from the method, the path and decoded query pairs.
pub fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case(SIGNATURE_PARAM))
        .map(|(key, value)| (key.to_ascii_lowercase(), value.as_str()))
        .collect();
    pairs.sort();
    let mut signed = method.to_ascii_uppercase();
    signed.push('\n');
    signed.push_str(path);
    signed.push('\n');
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            signed.push('&');
        }
        signed.push_str(key);
        signed.push('=');
        signed.push_str(value);
    }
    signed
}

/// Lowercase hex MD5 of a request body, as `body_md5` carries it.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(md5::compute(body).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::signature::sign;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_reference_worked_example() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let params = pairs(&[
            ("auth_version", "1.0"),
            ("auth_key", "278d425bdf160c739803"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
            ("auth_timestamp", "1353088179"),
            ("auth_signature", "ignored"),
        ]);
        let signed = string_to_sign("post", "/apps/3/events", &params);
        assert_eq!(
            signed,
            "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
        );
        assert_eq!(
            sign(b"7ad3773142a6692b25b8", signed.as_bytes()),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn keys_are_lower_cased_and_values_kept_decoded() {
        let params = pairs(&[("Name", "Something else"), ("auth_key", "foo")]);
        assert_eq!(
            string_to_sign("GET", "/x", &params),
            "GET\n/x\nauth_key=foo&name=Something else"
        );
    }

    #[test]
    fn empty_body_md5_is_the_python_sdk_value() {
        assert_eq!(body_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}

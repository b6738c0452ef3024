//! HMAC-SHA256 signatures, as Pusher uses them for channel auth and sign-in.
//!
//! A client's `auth` field is `<app key>:<lowercase hex HMAC>`. The key part selects the
//! secret (which is what lets a rotated key stay valid through a grace period later); the
//! signature is compared in constant time. Neither the expected signature nor the string to
//! sign ever leaves this module.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex HMAC-SHA256 of `message` under `secret`.
pub fn sign(secret: &[u8], message: &[u8]) -> String {
    hex::encode(mac(secret, message).finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `message` under `secret`, compared in
/// constant time. Malformed hex is simply a mismatch.
pub fn verify(secret: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let Ok(provided) = hex::decode(signature_hex) else {
        return false;
    };
    mac(secret, message).verify_slice(&provided).is_ok()
}

fn mac(secret: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message);
    mac
}

/// The string a private or encrypted channel subscription signs.
pub fn channel_string_to_sign(socket_id: &str, channel: &str) -> String {
    format!("{socket_id}:{channel}")
}

/// The string a user sign-in signs: `socket_id::user::user_data` (`user_data` exactly as
/// sent).
pub fn user_string_to_sign(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// The string a presence channel subscription signs (`channel_data` exactly as sent).
pub fn presence_string_to_sign(socket_id: &str, channel: &str, channel_data: &str) -> String {
    format!("{socket_id}:{channel}:{channel_data}")
}

/// A client-supplied `auth` value split into its key and signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthToken<'a> {
    /// The app key the client claims to sign with.
    pub key: &'a str,
    /// The hex signature.
    pub signature: &'a str,
}

impl<'a> AuthToken<'a> {
    /// Splits `key:signature`; `None` when there is no `:` or either side is empty.
    pub fn parse(auth: &'a str) -> Option<Self> {
        let (key, signature) = auth.split_once(':')?;
        if key.is_empty() || signature.is_empty() {
            return None;
        }
        Some(AuthToken { key, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the protocol reference, §9 (key 278d425bdf160c739803).
    const SECRET: &[u8] = b"7ad3773142a6692b25b8";

    #[test]
    fn private_channel_vector() {
        let message = channel_string_to_sign("1234.1234", "private-foobar");
        assert_eq!(
            sign(SECRET, message.as_bytes()),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn presence_channel_vector() {
        let message = presence_string_to_sign(
            "1234.1234",
            "presence-foobar",
            r#"{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#,
        );
        assert_eq!(
            sign(SECRET, message.as_bytes()),
            "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
        );
    }

    #[test]
    fn user_signin_vector() {
        let signed = user_string_to_sign("1234.1234", r#"{"id":"12345"}"#);
        assert_eq!(signed, r#"1234.1234::user::{"id":"12345"}"#);
        assert_eq!(
            sign(SECRET, signed.as_bytes()),
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let good = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        assert!(verify(SECRET, b"1234.1234:private-foobar", good));
        assert!(!verify(SECRET, b"1234.1234:private-foobaz", good));
        assert!(!verify(SECRET, b"1234.1234:private-foobar", &good[..62]));
        assert!(!verify(SECRET, b"1234.1234:private-foobar", "zz"));
        assert!(!verify(b"other", b"1234.1234:private-foobar", good));
    }

    #[test]
    fn auth_tokens_split_on_the_first_colon() {
        assert_eq!(
            AuthToken::parse("key:abc"),
            Some(AuthToken {
                key: "key",
                signature: "abc"
            })
        );
        assert_eq!(AuthToken::parse("keyabc"), None);
        assert_eq!(AuthToken::parse(":abc"), None);
        assert_eq!(AuthToken::parse("key:"), None);
    }
}

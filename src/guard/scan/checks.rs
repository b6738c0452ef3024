//! The checks a match of a detector's shape must pass before it is a finding: the ones that
//! a regular expression cannot say, or cannot say cheaply. Each runs on one match only, so
//! none of them costs anything on a payload without secrets.

/// Bits per character below which a token reads like prose or a placeholder
/// (`sk-your-key-goes-here` is about 3.3; 20 random base62 characters are above 3.3 nearly
/// always, longer ones above 3.9).
const ENTROPY_FLOOR: f64 = 3.0;
/// The longest JWT header decoded (real ones are under 200 characters).
const LONGEST_JWT_HEADER: usize = 1024;

/// Whether `token` looks machine-made: enough entropy, and both a digit and a letter (prose
/// and placeholders such as `this-is-not-a-real-key` have no digit).
pub(super) fn looks_random(token: &[u8]) -> bool {
    token.iter().any(u8::is_ascii_digit)
        && token.iter().any(u8::is_ascii_alphabetic)
        && shannon_entropy(token) >= ENTROPY_FLOOR
}

/// The Shannon entropy of `bytes`, in bits per byte.
fn shannon_entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &byte in bytes {
        counts[usize::from(byte)] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let share = f64::from(count) / len;
            -share * share.log2()
        })
        .sum()
}

/// Whether `key` is one of the placeholder keys of AWS's documentation
/// (`AKIAIOSFODNN7EXAMPLE`), which are everywhere in tutorials.
pub(super) fn is_aws_example(key: &str) -> bool {
    key.ends_with("EXAMPLE")
}

/// Whether the header of `jwt` (the part before its first dot) is a JSON object naming an
/// `alg`, as every JWT's must.
pub(super) fn jwt_header_names_alg(jwt: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "alg")]
        _alg: serde::de::IgnoredAny,
    }
    let header = jwt.split('.').next().unwrap_or_default();
    if header.len() > LONGEST_JWT_HEADER {
        return false;
    }
    // The header starts with `eyJ`, which is `{"`: it can only be an object.
    decode_base64url(header.as_bytes())
        .is_some_and(|json| serde_json::from_slice::<Header>(&json).is_ok())
}

/// `text` decoded as unpadded base64url.
fn decode_base64url(text: &[u8]) -> Option<Vec<u8>> {
    let value = |byte: u8| -> Option<u32> {
        Some(u32::from(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    };
    let mut decoded = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut bits = 0u32;
        for &byte in chunk {
            bits = bits << 6 | value(byte)?;
        }
        bits <<= 6 * (4 - chunk.len() as u32);
        let bytes = bits.to_be_bytes();
        decoded.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(decoded)
}

/// The length of a private key block without the line breaks after its base64 (a block cut
/// off before its END line ends at its last base64 character). The breaks are real ones or
/// JSON's `\n` and `\r`, escaped once or twice.
pub(super) fn private_key_len(block: &[u8]) -> usize {
    let mut len = block.len();
    loop {
        match block[..len] {
            [.., b'\\', b'\\', b'n' | b'r'] => len -= 3,
            [.., b'\\', b'n' | b'r'] => len -= 2,
            [.., b'\n' | b'\r' | b' ' | b'\t'] => len -= 1,
            _ => return len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_look_random_and_prose_does_not() {
        assert!(looks_random(b"Qm9vX2ZpdGhpc2lzcmFuZG9t4A7x"));
        assert!(looks_random(b"3f9a1c0e7b2d4a6f8e0c1b3a5d7f9e2c"), "hex");
        assert!(
            !looks_random(b"this-is-definitely-not-a-real-key"),
            "no digit"
        );
        assert!(!looks_random(b"abc123abc123abc123abc123"), "repetitive");
        assert!(!looks_random(b"12345678901234567890"), "no letter");
    }

    #[test]
    fn entropy_counts_bits_per_character() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert_eq!(shannon_entropy(b"abab"), 1.0);
        assert_eq!(shannon_entropy(b"abcd"), 2.0);
    }

    #[test]
    fn base64url_decodes_without_padding() {
        assert_eq!(
            decode_base64url(b"eyJhbGciOiJIUzI1NiJ9").unwrap(),
            br#"{"alg":"HS256"}"#
        );
        assert_eq!(decode_base64url(b"YQ").unwrap(), b"a");
        assert_eq!(decode_base64url(b"YWI").unwrap(), b"ab");
        assert_eq!(decode_base64url(b"Y"), None);
        assert_eq!(decode_base64url(b"YW=="), None);
    }

    #[test]
    fn a_jwt_header_must_name_its_algorithm() {
        assert!(jwt_header_names_alg(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.x.y"
        ));
        // {"typ":"JWT"}
        assert!(!jwt_header_names_alg("eyJ0eXAiOiJKV1QifQ.x.y"));
        // {"alg" cut off
        assert!(!jwt_header_names_alg("eyJhbGci.x.y"));
    }

    #[test]
    fn a_private_key_block_ends_at_its_last_base64_character() {
        assert_eq!(private_key_len(br"MIIE\nAB==\n"), 10);
        assert_eq!(private_key_len(b"MIIE\r\nAB== \n"), 10);
        assert_eq!(private_key_len(br"MIIE\\nAB==\\n\\r"), 11);
        assert_eq!(private_key_len(b"-----END PRIVATE KEY-----"), 25);
    }
}

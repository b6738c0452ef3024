//! Relay's API tokens: `rly_` + 30 random base62 characters + a 6-character checksum, the
//! CRC32 (IEEE) of the random part in base62, zero-padded (GitHub's token design). The
//! checksum makes a leaked token recognisable offline (the secret scanner relies on it) and
//! lets a mistyped or made-up one be refused before any look-up. Tokens are stored only as
//! the SHA-256 of the whole string.

use sha2::{Digest, Sha256};

use crate::config::TokenHash;

/// Every token starts with this.
pub const PREFIX: &str = "rly_";
/// Random characters after the prefix.
const RANDOM_LEN: usize = 30;
/// Checksum characters at the end.
const CHECKSUM_LEN: usize = 6;
/// A token's whole length.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// The base62 digits, in value order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token whose shape and checksum are right (it may still be unknown, expired or revoked).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WellFormedToken<'a>(&'a str);

impl std::fmt::Debug for WellFormedToken<'_> {
    /// Never the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WellFormedToken(…)")
    }
}

impl<'a> WellFormedToken<'a> {
    /// `text` if it is `rly_`, 30 base62 characters and their checksum.
    pub fn parse(text: &'a str) -> Option<Self> {
        let body = text.strip_prefix(PREFIX)?;
        if body.len() != RANDOM_LEN + CHECKSUM_LEN
            || !body.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        let (random, checksum) = body.split_at(RANDOM_LEN);
        (checksum.as_bytes() == checksum_of(random)).then_some(WellFormedToken(text))
    }

    /// The SHA-256 of the whole token, as stored in `[[apps.tokens]] hash`.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// A new random token (30 characters from the OS's generator, through `rand`).
pub fn generate() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_LEN)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect();
    let checksum = checksum_of(&random);
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(PREFIX);
    token.push_str(&random);
    token.push_str(std::str::from_utf8(&checksum).unwrap_or_default());
    token
}

/// The CRC32 of `random` in base62, zero-padded to 6 digits (62^6 > 2^32, so it fits).
fn checksum_of(random: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32fast::hash(random.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.starts_with("rly_"));
        assert!(WellFormedToken::parse(&a).is_some() && WellFormedToken::parse(&b).is_some());
        assert_ne!(a, b);
    }

    #[test]
    fn the_checksum_is_the_crc32_of_the_random_part_in_base62() {
        // CRC32 of thirty "0"s is 0x77e5db82 = 2,011,552,642 (Python's zlib.crc32 agrees),
        // which in base62 is 2 × 62^5 + 12 × 62^4 + 8 × 62^3 + 16 × 62^2 + 45 × 62 + 28.
        let random = "0".repeat(30);
        assert_eq!(crc32fast::hash(random.as_bytes()), 0x77e5_db82);
        assert_eq!(&checksum_of(&random), b"2C8GjS");
        let token = format!("rly_{random}2C8GjS");
        assert!(WellFormedToken::parse(&token).is_some());
    }

    #[test]
    fn a_wrong_checksum_length_prefix_or_character_is_refused() {
        let token = generate();
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(WellFormedToken::parse(&flipped).is_none(), "checksum");
        assert!(
            WellFormedToken::parse(&token[..TOKEN_LEN - 1]).is_none(),
            "length"
        );
        assert!(
            WellFormedToken::parse(&token.replacen("rly_", "rlx_", 1)).is_none(),
            "prefix"
        );
        assert!(WellFormedToken::parse(&token.replacen('_', "-", 1)).is_none());
        assert!(WellFormedToken::parse(&format!("{}é", &token[..TOKEN_LEN - 2])).is_none());
    }

    #[test]
    fn hashes_are_the_sha256_of_the_whole_token() {
        let token = generate();
        let hash = WellFormedToken::parse(&token).unwrap().hash();
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())));
        assert_eq!(format!("{hash:?}"), expected);
    }
}

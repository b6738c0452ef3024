//! Admin passwords as Argon2id hashes in PHC string form (`$argon2id$v=19$m=…`), with the
//! `argon2` crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's minimum for Argon2id) and a
//! random 16-byte salt. Verification is the crate's, in constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

/// The shortest password `relay admin add` takes.
pub const SHORTEST_PASSWORD: usize = 12;

/// Why a password or a hash cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short to be worth hashing.
    #[error("the password must be at least {SHORTEST_PASSWORD} characters")]
    TooShort,
    /// Not a PHC string of Argon2id.
    #[error(
        "password_hash must be an Argon2id hash in PHC form (\"$argon2id$v=19$…\"; `relay admin add` makes one)"
    )]
    NotArgon2id,
    /// The hasher failed (it does not with its defaults).
    #[error("cannot hash the password")]
    Hashing,
}

/// The Argon2id hash of `password` in PHC form.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < SHORTEST_PASSWORD {
        return Err(PasswordError::TooShort);
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| PasswordError::Hashing)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Checks that `phc` is an Argon2id hash this module can verify against.
pub fn check_hash(phc: &str) -> Result<(), PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::NotArgon2id)?;
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.hash.is_none() {
        return Err(PasswordError::NotArgon2id);
    }
    Ok(())
}

/// Whether `password` is the one `phc` was made from (false for a hash that does not parse).
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_two_hashes_differ() {
        let first = hash("correct horse battery").unwrap();
        assert!(first.starts_with("$argon2id$v=19$"), "{first}");
        assert!(check_hash(&first).is_ok());
        assert!(verify(&first, "correct horse battery"));
        assert!(!verify(&first, "correct horse batterz"));
        let second = hash("correct horse battery").unwrap();
        assert_ne!(first, second, "a fresh salt each time");
    }

    #[test]
    fn short_passwords_and_other_hashes_are_refused() {
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
        assert_eq!(check_hash("plain text"), Err(PasswordError::NotArgon2id));
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$Y2Q5NzU4OGNhODRkYTIxZQ";
        assert_eq!(check_hash(argon2i), Err(PasswordError::NotArgon2id));
        assert!(!verify("plain text", "plain text"));
    }
}

//! `relay secret` and `relay app new`: fresh credentials for `config.toml`, so that nobody
//! has to invent a secret (or copy the bundled development one). Random hex from the thread
//! RNG, which the operating system seeds; a key as long as Pusher's (20 hex characters), a
//! secret of 256 bits.

use crate::apps::rotation::{KEY_HEX_LEN, random_hex};

/// Hex characters of a secret made here: 256 bits.
pub const SECRET_HEX_LEN: usize = 64;

/// Why `relay app new` made nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppNewError {
    /// The id could not be an app id.
    #[error(
        "--id must be non-empty and use only letters, digits, - and _ (digits for the Python SDK)"
    )]
    BadId,
}

/// A new secret.
pub fn secret() -> String {
    random_hex(SECRET_HEX_LEN)
}

/// A complete `[[apps]]` block for the app `id` with a new key and secret, and the same block
/// with the secret taken from the environment instead (and the line that sets it).
pub fn app_block(id: &str) -> Result<String, AppNewError> {
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(AppNewError::BadId);
    }
    let key = random_hex(KEY_HEX_LEN);
    let secret = secret();
    let variable = format!(
        "RELAY_APP_{}_SECRET",
        id.to_ascii_uppercase().replace('-', "_")
    );
    Ok(format!(
        "# A new app for config.toml. The secret is shown once; keep it out of version control.\n\
         [[apps]]\n\
         id = \"{id}\"\n\
         key = \"{key}\"\n\
         secret = \"{secret}\"\n\
         \n\
         # Or with the secret in the environment ({variable}={secret}, e.g. in .env):\n\
         [[apps]]\n\
         id = \"{id}\"\n\
         key = \"{key}\"\n\
         secret = \"${{{variable}}}\"\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_secret_is_256_random_bits_in_hex() {
        let (one, two) = (secret(), secret());
        assert_eq!(one.len(), 64);
        assert!(one.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(one, two);
    }

    #[test]
    fn an_app_block_is_a_valid_app_both_ways() {
        let block = app_block("my-app").unwrap();
        let (literal, from_env) = block.split_once("\n\n").unwrap();
        let path = std::path::Path::new("config.toml");
        let config = Config::from_toml(literal, path).unwrap();
        let app = &config.apps[0];
        assert_eq!(
            (app.id.as_str(), app.key.len(), app.secret.len()),
            ("my-app", 20, 64)
        );
        assert!(from_env.contains("secret = \"${RELAY_APP_MY_APP_SECRET}\""));
        assert!(from_env.contains(&format!("key = \"{}\"", app.key.as_str())));
        assert!(from_env.contains(&format!("RELAY_APP_MY_APP_SECRET={}", app.secret.as_str())));
        assert_ne!(app_block("my-app").unwrap(), block, "fresh each time");
    }

    #[test]
    fn a_bad_id_is_refused() {
        for id in ["", "a b", "x/y", "é"] {
            assert!(app_block(id).is_err(), "{id:?}");
        }
    }
}

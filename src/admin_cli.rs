//! `relay admin add --name N [--role R]`: a console admin's `[[admins]]` block. The password
//! comes from stdin (never the command line, where `ps` and shell history would keep it) and
//! leaves only as its Argon2id hash; a new TOTP secret is printed once, with the `otpauth://`
//! URI an authenticator app scans, and the block reads it from the environment (`${VAR}`), so
//! the file holds no secret.

use crate::admins::{TotpSecret, password};
use crate::config::AdminRole;

/// The issuer authenticator apps show for Relay's codes.
pub const ISSUER: &str = "Relay";

/// Why no admin was made.
#[derive(Debug, thiserror::Error)]
pub enum AdminAddError {
    /// The name could not be an admin name.
    #[error("--name must be 1 to 64 letters, digits or . _ - @")]
    BadName,
    /// The password cannot be used.
    #[error(transparent)]
    Password(#[from] password::PasswordError),
}

/// A new admin: its block, the environment line that holds its TOTP secret, and the URI.
#[derive(Debug)]
pub struct AddedAdmin {
    /// The `[[admins]]` block for `config.toml`.
    pub block: String,
    /// `VAR=SECRET`, for the server's environment (or `.env`).
    pub environment: String,
    /// The `otpauth://` URI for the authenticator app.
    pub provisioning_uri: String,
}

/// The admin `name` with `role`, signing in with `password`.
pub fn add(name: &str, role: AdminRole, password: &str) -> Result<AddedAdmin, AdminAddError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b));
    if !valid {
        return Err(AdminAddError::BadName);
    }
    let hash = password::hash(password)?;
    let secret = TotpSecret::generate();
    let variable = format!(
        "RELAY_ADMIN_{}_TOTP",
        name.bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                b.to_ascii_uppercase() as char
            } else {
                '_'
            })
            .collect::<String>()
    );
    let block = format!(
        "[[admins]]\nname = \"{name}\"\nrole = \"{}\"\npassword_hash = \"{hash}\"\ntotp_secret = \"${{{variable}}}\"\n",
        role.as_str()
    );
    Ok(AddedAdmin {
        block,
        environment: format!("{variable}={}", secret.to_base32()),
        provisioning_uri: secret.provisioning_uri(ISSUER, name),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    #[test]
    fn the_block_passes_check_config_with_its_variable_set_and_holds_no_secret() {
        let added = add("ops.lead", AdminRole::Admin, "a long enough password").unwrap();
        let (variable, secret) = added.environment.split_once('=').unwrap();
        assert_eq!(variable, "RELAY_ADMIN_OPS_LEAD_TOTP");
        assert!(!added.block.contains(secret), "{}", added.block);
        assert!(!added.block.contains("a long enough password"));
        assert!(added.provisioning_uri.contains(&format!("secret={secret}")));
        // The block as a config would read it, the variable as the environment would give it.
        let text = added.block.replace(&format!("${{{variable}}}"), secret);
        let config = Config::from_toml(
            &format!(
                "require_2fa = true\n{text}[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n"
            ),
            Path::new("c.toml"),
        )
        .unwrap();
        let admin = &config.admins[0];
        assert_eq!(admin.role, AdminRole::Admin);
        assert!(password::verify(
            admin.password_hash.as_str(),
            "a long enough password"
        ));
    }

    #[test]
    fn bad_names_and_short_passwords_make_nothing() {
        assert!(matches!(
            add("", AdminRole::Viewer, "a long enough password"),
            Err(AdminAddError::BadName)
        ));
        assert!(matches!(
            add("a\"b", AdminRole::Viewer, "a long enough password"),
            Err(AdminAddError::BadName)
        ));
        assert!(matches!(
            add("ops", AdminRole::Viewer, "short"),
            Err(AdminAddError::Password(_))
        ));
    }
}

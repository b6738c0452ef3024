//! `[[admins]]` and `require_2fa`: the browser console's accounts. A password is kept only as
//! its Argon2id hash, a TOTP secret as base32 (best through `${VAR}` or `${file:…}`); both are
//! checked here with the rules of [`crate::admins`], so a file `relay check-config` passes has
//! only usable accounts.

use serde::Deserialize;

use super::{Config, ConfigString};
use crate::admins::{TotpSecret, password};

/// One `[[admins]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The name the admin signs in with (unique).
    pub name: ConfigString,
    /// The password's Argon2id hash in PHC form (`relay admin add` prints it).
    pub password_hash: ConfigString,
    /// The RFC 6238 secret, base32; absent: no second factor (refused with `require_2fa`).
    #[serde(default)]
    pub totp_secret: Option<ConfigString>,
    /// What the admin may do.
    #[serde(default)]
    pub role: AdminRole,
}

/// What an admin may do in the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Sees everything, changes nothing.
    #[default]
    Viewer,
    /// Sees and acts (publishes, terminates, revokes, rotates, resolves).
    Admin,
}

impl AdminRole {
    /// Its name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Viewer => "viewer",
            AdminRole::Admin => "admin",
        }
    }
}

/// Every problem of the file's admins, one line each.
pub(super) fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, admin) in config.admins.iter().enumerate() {
        let at = format!("admins[{index}]");
        let name = admin.name.as_str();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            problems.push(format!("{at}: name must be 1 to 64 printable characters"));
        } else if !names.insert(name) {
            problems.push(format!("{at}: duplicate admin name {name:?}"));
        }
        if let Err(error) = password::check_hash(admin.password_hash.as_str()) {
            problems.push(format!("{at}: {error}"));
        }
        match &admin.totp_secret {
            Some(secret) => {
                if let Err(error) = TotpSecret::parse(secret.as_str()) {
                    problems.push(format!("{at}: {error}"));
                }
            }
            None if config.require_2fa => problems.push(format!(
                "{at}: require_2fa = true, so every admin needs a totp_secret (`relay admin add` makes one)"
            )),
            None => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

    fn problems(text: &str) -> String {
        match Config::from_toml(&format!("{text}\n{APP}"), Path::new("c.toml")) {
            Ok(_) => String::new(),
            Err(error) => error.to_string(),
        }
    }

    fn hash() -> String {
        crate::admins::password::hash("a long enough password").unwrap()
    }

    #[test]
    fn a_complete_admin_passes_and_its_role_defaults_to_viewer() {
        let secret = crate::admins::TotpSecret::generate().to_base32();
        let text = format!(
            "require_2fa = true\n[[admins]]\nname = \"ops\"\npassword_hash = \"{}\"\ntotp_secret = \"{secret}\"\n",
            hash()
        );
        let config = Config::from_toml(&format!("{text}\n{APP}"), Path::new("c.toml")).unwrap();
        assert_eq!(config.admins[0].role, super::AdminRole::Viewer);
        assert!(config.require_2fa);
    }

    #[test]
    fn each_problem_is_named() {
        let hash = hash();
        let text = format!(
            "require_2fa = true\n[[admins]]\nname = \"ops\"\npassword_hash = \"{hash}\"\n\
             [[admins]]\nname = \"ops\"\npassword_hash = \"secret\"\ntotp_secret = \"GEZDGNBV\"\nrole = \"admin\"\n"
        );
        let said = problems(&text);
        assert!(
            said.contains("admins[0]: require_2fa = true, so every admin needs a totp_secret"),
            "{said}"
        );
        assert!(
            said.contains("admins[1]: duplicate admin name \"ops\""),
            "{said}"
        );
        assert!(
            said.contains("admins[1]: password_hash must be an Argon2id hash"),
            "{said}"
        );
        assert!(
            said.contains("admins[1]: totp_secret must hold at least 16 bytes"),
            "{said}"
        );
        assert!(
            problems("[[admins]]\nname = \"x\"\npassword_hash = \"h\"\nrole = \"root\"\n")
                .contains("unknown variant")
        );
    }
}

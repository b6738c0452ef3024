//! The browser console's accounts (`[[admins]]`): what proves an admin is who they say.
//!
//! Passwords are kept only as Argon2id hashes in PHC form ([`password`]); the second factor
//! is RFC 6238 TOTP as authenticator apps expect it: HMAC-SHA-1, 6 digits, 30-second steps,
//! one step of clock skew either way, and a code of a step at or before the last one accepted
//! refused, so no code is accepted twice ([`totp`]). Both are pure (the time comes in), so the
//! console's sign-in is tested without a clock.

pub mod password;
pub mod totp;

pub use totp::{TotpRefusal, TotpSecret};

//! RFC 6238 one-time codes for the console's second factor, as authenticator apps make them:
//! HMAC-SHA-1 over the 30-second step, 6 digits (the `totp-rs` crate computes a code). A code
//! is accepted for the step now or one step either side (clock skew), only for a step later
//! than the last one accepted for the admin, so no code works twice; the comparison is in
//! constant time.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;

/// Digits per code.
pub const DIGITS: usize = 6;

/// Steps accepted either side of now.
pub const SKEW_STEPS: u64 = 1;

/// The fewest secret bytes accepted (RFC 4226 asks for at least 128 bits).
pub const SHORTEST_SECRET: usize = 16;

/// Bytes of a secret `relay admin add` makes (160 bits, RFC 4226's recommendation).
pub const NEW_SECRET_BYTES: usize = 20;

/// Why a code was refused (one answer for the client: "invalid code").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpRefusal {
    /// Not six digits, or no step within the skew has it.
    #[error("invalid code")]
    Wrong,
    /// It is right, but a code of this step (or a later one) was accepted already.
    #[error("invalid code")]
    Replayed,
}

/// Why a `totp_secret` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not unpadded RFC 4648 base32.
    #[error("totp_secret must be base32 (A-Z, 2-7, as `relay admin add` prints it)")]
    NotBase32,
    /// Fewer than [`SHORTEST_SECRET`] bytes.
    #[error("totp_secret must hold at least {SHORTEST_SECRET} bytes (26 base32 characters)")]
    TooShort,
}

/// An admin's TOTP secret.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// Parses the base32 text of `totp_secret` (spaces and case as authenticator apps show
    /// it are forgiven).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = Secret::Encoded(compact.trim_end_matches('=').to_owned())
            .to_bytes()
            .map_err(|_| SecretError::NotBase32)?;
        if bytes.len() < SHORTEST_SECRET {
            return Err(SecretError::TooShort);
        }
        Ok(TotpSecret(bytes))
    }

    /// A new random secret of [`NEW_SECRET_BYTES`].
    pub fn generate() -> Self {
        let bytes: [u8; NEW_SECRET_BYTES] = rand::random();
        TotpSecret(bytes.to_vec())
    }

    /// Its base32 text (what `totp_secret` holds and an authenticator app is given).
    pub fn to_base32(&self) -> String {
        match Secret::Raw(self.0.clone()).to_encoded() {
            Secret::Encoded(text) => text,
            Secret::Raw(_) => unreachable!("to_encoded encodes"),
        }
    }

    /// The `otpauth://` URI an authenticator app scans, for `account` at `issuer`.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        // Form encoding writes a space as `+`; a URI's label wants `%20` (a `+` of the text
        // itself is `%2B` by then).
        let encode = |text: &str| {
            form_urlencoded::byte_serialize(text.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        };
        let (issuer, account) = (encode(issuer), encode(account));
        format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            self.to_base32()
        )
    }

    /// The code of `step` (seconds since the epoch / [`STEP_SECONDS`]).
    pub fn code_at(&self, step: u64) -> String {
        let totp = TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS, self.0.clone());
        totp.generate(step * STEP_SECONDS)
    }

    /// Checks `code` at `unix_seconds`: the step it belongs to, if it is one within the skew
    /// and later than `last_accepted` (the step of the admin's last accepted code).
    pub fn verify(
        &self,
        code: &str,
        unix_seconds: u64,
        last_accepted: Option<u64>,
    ) -> Result<u64, TotpRefusal> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpRefusal::Wrong);
        }
        let now = unix_seconds / STEP_SECONDS;
        let mut matched = None;
        for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
            // Every candidate is computed and compared, so the time taken says nothing.
            let equal: bool = self.code_at(step).as_bytes().ct_eq(code.as_bytes()).into();
            if equal && matched.is_none() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpRefusal::Wrong)?;
        if last_accepted.is_some_and(|last| step <= last) {
            return Err(TotpRefusal::Replayed);
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890" (20 bytes).
    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn codes_are_rfc_6238_s_test_vectors_cut_to_six_digits() {
        // Appendix B (8 digits): 94287082 at T=59, 07081804 at 1111111109, 14050471 at
        // 1111111111, 89005924 at 1234567890, 69279037 at 2000000000.
        let secret = rfc_secret();
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(secret.code_at(time / STEP_SECONDS), code, "T = {time}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = now / STEP_SECONDS;
        for offset in [-1i64, 0, 1] {
            let code = secret.code_at(step.checked_add_signed(offset).unwrap());
            assert!(secret.verify(&code, now, None).is_ok(), "offset {offset}");
        }
        for offset in [-2i64, 2] {
            let code = secret.code_at(step.checked_add_signed(offset).unwrap());
            assert_eq!(secret.verify(&code, now, None), Err(TotpRefusal::Wrong));
        }
        assert_eq!(secret.verify("12345", now, None), Err(TotpRefusal::Wrong));
        assert_eq!(secret.verify("abcdef", now, None), Err(TotpRefusal::Wrong));
    }

    #[test]
    fn a_code_is_never_accepted_twice() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let code = secret.code_at(now / STEP_SECONDS);
        let accepted = secret.verify(&code, now, None).unwrap();
        assert_eq!(
            secret.verify(&code, now, Some(accepted)),
            Err(TotpRefusal::Replayed)
        );
        let earlier = secret.code_at(now / STEP_SECONDS - 1);
        assert_eq!(
            secret.verify(&earlier, now, Some(accepted)),
            Err(TotpRefusal::Replayed),
            "nor an older step's once a later one was used"
        );
        let next = secret.code_at(now / STEP_SECONDS + 1);
        assert!(
            secret
                .verify(&next, now + STEP_SECONDS, Some(accepted))
                .is_ok()
        );
    }

    #[test]
    fn secrets_parse_as_authenticator_apps_show_them_and_short_ones_are_refused() {
        let made = TotpSecret::generate();
        let text = made.to_base32();
        assert_eq!(text.len(), 32);
        let spaced: String = text
            .to_lowercase()
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|chunk| chunk.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        let parsed = TotpSecret::parse(&spaced).unwrap();
        assert_eq!(parsed.code_at(42), made.code_at(42));
        assert_eq!(
            TotpSecret::parse("GEZDGNBV").unwrap_err(),
            SecretError::TooShort
        );
        assert_eq!(
            TotpSecret::parse("not base32!").unwrap_err(),
            SecretError::NotBase32
        );
        let uri = made.provisioning_uri("Relay", "ops lead");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/Relay:ops%20lead?secret={text}&issuer=Relay&algorithm=SHA1&digits=6&period=30"
            )
        );
        assert_eq!(format!("{made:?}"), "TotpSecret(…)");
    }
}

//! Properties of Signatures.

use super::*;

pub(super) fn secret() -> impl Strategy<Value = Vec<u8>> {
    // Past 64 bytes HMAC hashes the key first; both sides of that are covered.
    prop::collection::vec(any::<u8>(), 0..80)
}

pub(super) fn message() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..200)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn signatures_are_lowercase_hex_hmac_sha256(secret in secret(), message in message()) {
        let signature = sign(&secret, &message);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(&message);
        prop_assert_eq!(&signature, &hex::encode(mac.finalize().into_bytes()));
        prop_assert!(signature.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        prop_assert!(verify(&secret, &message, &signature));
    }

    #[test]
    fn verify_accepts_only_the_signature(
        secret in secret(),
        message in message(),
        candidate in prop_oneof![any_text(), "[0-9a-fA-F]{0,70}"],
    ) {
        // hex decoding is case-insensitive, so an upper-cased signature is the same bytes.
        let same = candidate.eq_ignore_ascii_case(&sign(&secret, &message));
        prop_assert_eq!(verify(&secret, &message, &candidate), same);
    }

    #[test]
    fn verify_refuses_a_cut_or_changed_signature_message_or_secret(
        secret in secret(),
        message in message(),
        position in any::<Index>(),
        shift in 1u32..16,
        other in message(),
        cut in any::<Index>(),
    ) {
        let signature = sign(&secret, &message);
        let truncated = &signature[..2 * cut.index(signature.len() / 2)];
        prop_assert!(!verify(&secret, &message, truncated));
        let mut changed: Vec<char> = signature.chars().collect();
        let position = position.index(changed.len());
        let digit = changed[position].to_digit(16).unwrap();
        changed[position] = char::from_digit((digit + shift) % 16, 16).unwrap();
        let changed: String = changed.into_iter().collect();
        prop_assert!(!verify(&secret, &message, &changed));
        prop_assert_eq!(verify(&secret, &other, &signature), other == message);
        let mut other_secret = secret.clone();
        // Not a zero byte: HMAC pads short keys with zeros, so `k` and `k\0` sign alike.
        other_secret.push(1);
        prop_assert!(!verify(&other_secret, &message, &signature));
    }

    #[test]
    fn auth_tokens_split_at_the_first_colon(
        auth in prop_oneof![
            any_text(),
            "[a-z:]{0,3}:[0-9a-f:]{0,3}",
            "[a-z0-9]{0,8}:[0-9a-f]{0,64}",
        ],
    ) {
        let colon = auth.find(':');
        let splits = colon.is_some_and(|at| at > 0 && at + 1 < auth.len());
        let token = AuthToken::parse(&auth);
        prop_assert_eq!(token.is_some(), splits);
        if let Some(token) = token {
            prop_assert!(!token.key.is_empty() && !token.key.contains(':'));
            prop_assert!(!token.signature.is_empty());
            prop_assert_eq!(format!("{}:{}", token.key, token.signature), auth);
        }
    }

    #[test]
    fn a_signed_auth_token_verifies(
        key in "[a-z0-9]{1,20}",
        secret in secret(),
        message in message(),
    ) {
        let auth = format!("{key}:{}", sign(&secret, &message));
        let token = AuthToken::parse(&auth).unwrap();
        prop_assert_eq!(token.key, key.as_str());
        prop_assert!(verify(&secret, &message, token.signature));
    }
}

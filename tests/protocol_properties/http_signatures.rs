//! Properties of HTTP API signatures.

use super::*;

pub(super) const QUERY_KEYS: &[&str] = &[
    "auth_key",
    "AUTH_Key",
    "auth_timestamp",
    "body_md5",
    "auth_signature",
    "",
];

/// Query pairs with duplicate, empty, upper-case and Unicode keys.
pub(super) fn query_params() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        select(QUERY_KEYS).prop_map(String::from),
        "[a-zA-Z_]{0,8}",
        any::<String>(),
    ];
    prop::collection::vec((key, prop_oneof!["[ -~]{0,12}", any::<String>()]), 0..8)
}

/// `auth_signature` in any ASCII case.
pub(super) fn signature_variant() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), SIGNATURE_PARAM.len()).prop_map(|upper| {
        let flip = |(c, upper): (char, bool)| if upper { c.to_ascii_uppercase() } else { c };
        SIGNATURE_PARAM.chars().zip(upper).map(flip).collect()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn string_to_sign_is_method_path_then_every_pair(
        method in "[a-zA-Z]{0,7}",
        path in any::<String>(),
        params in query_params(),
    ) {
        let signed = string_to_sign(&method, &path, &params);
        let head = format!("{}\n{path}\n", method.to_ascii_uppercase());
        prop_assert!(signed.starts_with(&head), "{:?} lacks {:?}", signed, head);
        let query = &signed[head.len()..];
        for (key, value) in &params {
            if !key.eq_ignore_ascii_case(SIGNATURE_PARAM) {
                let pair = format!("{}={value}", key.to_ascii_lowercase());
                prop_assert!(query.contains(&pair), "{:?} lacks {:?}", query, pair);
            }
        }
    }

    #[test]
    fn string_to_sign_ignores_order_key_case_and_the_signature(
        (params, shuffled) in query_params()
            .prop_flat_map(|params| (Just(params.clone()), Just(params).prop_shuffle())),
        upper_keys in any::<bool>(),
        signature in (signature_variant(), any::<String>()),
    ) {
        let mut changed: Vec<(String, String)> = shuffled
            .into_iter()
            .map(|(key, value)| {
                let key = if upper_keys { key.to_ascii_uppercase() } else { key };
                (key, value)
            })
            .collect();
        changed.push(signature);
        prop_assert_eq!(
            string_to_sign("get", "/apps/1/events", &changed),
            string_to_sign("GET", "/apps/1/events", &params)
        );
    }

    #[test]
    fn plain_queries_are_sorted_key_value_pairs(
        params in prop::collection::vec(("[a-z_]{1,6}", "[A-Za-z0-9 .]{0,6}"), 1..8),
    ) {
        let signed = string_to_sign("POST", "/x", &params);
        let query = signed.strip_prefix("POST\n/x\n").unwrap();
        let pairs: Vec<(&str, &str)> =
            query.split('&').map(|pair| pair.split_once('=').unwrap()).collect();
        prop_assert!(pairs.windows(2).all(|w| w[0].0 <= w[1].0), "{:?} unsorted", query);
        let mut sent: Vec<(&str, &str)> =
            params.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        let mut got = pairs.clone();
        sent.sort();
        got.sort();
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn body_md5_is_32_lowercase_hex_digits(body in message(), position in any::<Index>()) {
        let digest = body_md5(&body);
        prop_assert_eq!(digest.len(), 32);
        prop_assert!(digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        let mut changed = body.clone();
        if changed.is_empty() {
            changed.push(0);
        } else {
            changed[position.index(body.len())] ^= 1;
        }
        prop_assert_ne!(body_md5(&changed), digest);
    }
}

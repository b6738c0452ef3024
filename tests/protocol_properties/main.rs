//! Property tests of the pure parsers in `relay::protocol`: whatever a client or an API caller
//! sends, each parser returns a value or a typed error, never a panic, and what it returns keeps
//! the promises of its docs.
//!
//! Arbitrary text alone rarely gets past a parser's first byte, so most properties run on
//! near-valid input: real event names, channel-name prefixes, `data` as an object or as a JSON
//! string, ids around their length limits. Each property compares the parser with a small model
//! of its documented rules, written independently of the code under test. One module per
//! parser; the generators they share (and this file's) are imported here for all of them.

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use relay::protocol::frames::{ClientMessage, FrameError};
use relay::protocol::http_signature::{SIGNATURE_PARAM, body_md5, string_to_sign};
use relay::protocol::signature::{AuthToken, sign, verify};
use relay::protocol::user::MAX_WATCHLIST;
use relay::protocol::{
    ChannelKind, ChannelName, ChannelNameError, PresenceMember, PresenceMemberError, SocketId,
    UserData, UserDataError,
};
use serde_json::{Map, Value};

mod channel_names;
mod frames;
mod http_signatures;
mod presence;
mod signatures;
mod socket_ids;
mod user_data;

use channel_names::*;
use frames::*;
use presence::*;
use signatures::*;
use user_data::*;

/// Few enough cases to run in seconds in debug builds (`PROPTEST_CASES=10000` searches
/// deeper); no regression files in the repo.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text a client might send: arbitrary Unicode, bytes read as lossy UTF-8, or JSON-ish noise.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..128)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        r#"[{}\[\]":,.0-9a-z\\ -]{0,40}"#,
    ]
}

/// A float with few digits: serde_json reads longer ones back to the nearest value only
/// with its `float_roundtrip` feature, and a user id's text is compared after a round trip.
fn decimal() -> impl Strategy<Value = f64> {
    (any::<i32>(), 1..4).prop_map(|(digits, places)| f64::from(digits) / 10f64.powi(places))
}

/// Any JSON document, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        decimal().prop_map(Value::from),
        "[ -~é\n]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A limit for an input of `len` bytes: anywhere in `0..250`, or within one of `len`, where an
/// off-by-one would show.
fn limit_near(len: usize, (near, slack, anywhere): (bool, isize, usize)) -> usize {
    if near {
        len.saturating_add_signed(slack)
    } else {
        anywhere
    }
}

/// The random part of [`limit_near`].
fn limit() -> impl Strategy<Value = (bool, isize, usize)> {
    (any::<bool>(), -1isize..=1, 0usize..250)
}

/// An object as compact JSON text.
fn json_text(fields: Map<String, Value>) -> String {
    Value::Object(fields).to_string()
}

/// Builds an object from the fields that are present.
fn object(fields: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
        .collect()
}

/// A field that is usually a string from `strings`, sometimes missing, null or another type.
fn field(strings: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => strings.prop_map(|s| Some(Value::String(s))),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => json_value().prop_map(Some),
    ]
    .boxed()
}

//! Properties of Sign-in user_data.

use super::*;

/// Sign-in `user_data` objects, watchlists around the 100-id limit.
pub(super) fn user_data() -> BoxedStrategy<Map<String, Value>> {
    let ids = prop_oneof![0usize..5, 95usize..110]
        .prop_flat_map(|len| prop::collection::vec("[a-z0-9]{1,6}".prop_map(Value::from), len));
    let watchlist = prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        4 => ids.prop_map(|ids| Some(Value::Array(ids))),
        1 => (prop::collection::vec(json_value(), 1..4)).prop_map(|v| Some(Value::Array(v))),
        1 => json_value().prop_map(Some),
    ];
    (
        field("[a-z0-9]{0,6}"),
        watchlist,
        prop::option::of(json_value()),
    )
        .prop_map(|(id, watchlist, info)| {
            object([("id", id), ("watchlist", watchlist), ("user_info", info)])
        })
        .boxed()
}

/// The `user_data` rules, as a model of `UserData::parse`.
pub(super) fn expected_user(data: &Map<String, Value>) -> Result<UserData, UserDataError> {
    let id = match data.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(UserDataError::MissingId),
    };
    let watchlist: Vec<String> = match data.get("watchlist") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|id| {
                id.as_str()
                    .map(str::to_owned)
                    .ok_or(UserDataError::BadWatchlist)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(UserDataError::BadWatchlist),
    };
    Ok(UserData {
        id,
        watchlist_truncated: watchlist.len() > MAX_WATCHLIST,
        watchlist: watchlist.into_iter().take(MAX_WATCHLIST).collect(),
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn user_data_follows_the_signin_rules(data in user_data()) {
        let text = json_text(data.clone());
        prop_assert_eq!(UserData::parse(&text), expected_user(&data));
    }

    #[test]
    fn user_data_as_an_array_of_its_fields_is_not_an_object(data in user_data()) {
        let text = positional(data).to_string();
        prop_assert_eq!(UserData::parse(&text), Err(UserDataError::NotAnObject));
    }

    #[test]
    fn arbitrary_user_data_is_parsed_or_refused(text in any_text()) {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(data)) => {
                prop_assert_eq!(UserData::parse(&text), expected_user(&data));
            }
            _ => prop_assert_eq!(UserData::parse(&text), Err(UserDataError::NotAnObject)),
        }
    }
}

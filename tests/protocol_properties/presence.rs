//! Properties of Presence channel_data.

use super::*;

/// `user_id` values: short and around-the-limit strings, numbers, and other JSON.
pub(super) fn user_id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => "[a-z0-9é]{0,8}".prop_map(Value::from),
        1 => "[a-z]{126,131}".prop_map(Value::from),
        1 => "[a-zé]{64,135}".prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        1 => decimal().prop_map(Value::from),
        1 => json_value(),
    ]
}

/// Presence `channel_data` objects, `user_id` usually present.
pub(super) fn channel_data() -> BoxedStrategy<Map<String, Value>> {
    let info = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        json_value().prop_map(Some)
    ];
    (
        prop::option::weighted(0.9, user_id_value()),
        info,
        prop::option::of(json_value()),
    )
        .prop_map(|(user_id, user_info, extra)| {
            object([
                ("user_id", user_id),
                ("user_info", user_info),
                ("extra", extra),
            ])
        })
        .boxed()
}

/// What `PresenceMember::parse` should give: `(user_key, user_id JSON, user_info JSON)`.
pub(super) fn expected_member(
    data: &Map<String, Value>,
    max_info_bytes: usize,
) -> Result<(String, String, Option<String>), PresenceMemberError> {
    let user_id = data.get("user_id").ok_or(PresenceMemberError::Malformed)?;
    let user_key = match user_id {
        Value::String(id) if !id.is_empty() => id.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err(PresenceMemberError::InvalidUserId),
    };
    if user_key.len() > 128 {
        return Err(PresenceMemberError::UserIdTooLong);
    }
    let user_info = data.get("user_info").filter(|info| !info.is_null());
    let user_info = user_info.map(Value::to_string);
    if user_info
        .as_ref()
        .is_some_and(|info| info.len() > max_info_bytes)
    {
        return Err(PresenceMemberError::UserInfoTooLarge {
            max: max_info_bytes,
        });
    }
    Ok((user_key, user_id.to_string(), user_info))
}

/// A member as the `(user_key, user_id JSON, user_info JSON)` that `expected_member` gives.
pub(super) fn member_parts(member: PresenceMember) -> (String, String, Option<String>) {
    let info = member.user_info.map(|info| info.get().to_owned());
    (member.user_key, member.user_id_json.get().to_owned(), info)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn presence_members_follow_the_channel_data_rules(data in channel_data(), limit in limit()) {
        let info_len = data.get("user_info").map_or(0, |info| info.to_string().len());
        let max_info_bytes = limit_near(info_len, limit);
        let text = json_text(data.clone());
        let parsed = PresenceMember::parse(&text, max_info_bytes).map(member_parts);
        prop_assert_eq!(parsed, expected_member(&data, max_info_bytes));
    }

    #[test]
    fn channel_data_as_an_array_of_its_fields_is_malformed(data in channel_data()) {
        // serde would read a struct from its fields in order; the protocol sends objects.
        let text = positional(data).to_string();
        prop_assert_eq!(
            PresenceMember::parse(&text, 1024).unwrap_err(),
            PresenceMemberError::Malformed
        );
    }

    #[test]
    fn arbitrary_channel_data_is_parsed_or_refused(
        text in any_text(),
        max_info_bytes in 0usize..64,
    ) {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(data)) => {
                let parsed = PresenceMember::parse(&text, max_info_bytes).map(member_parts);
                prop_assert_eq!(parsed, expected_member(&data, max_info_bytes));
            }
            _ => prop_assert_eq!(
                PresenceMember::parse(&text, max_info_bytes).unwrap_err(),
                PresenceMemberError::Malformed
            ),
        }
    }
}

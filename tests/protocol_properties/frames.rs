//! Properties of WebSocket frames.

use super::*;

/// The events whose `data` holds request fields.
pub(super) const REQUEST_EVENTS: &[&str] =
    &["pusher:subscribe", "pusher:unsubscribe", "pusher:signin"];

/// Other known events and near misses.
pub(super) const OTHER_EVENTS: &[&str] = &[
    "pusher:ping",
    "pusher:pong",
    "pusher:Subscribe",
    "pusher_internal:subscription_succeeded",
    "client-",
    "client",
    "Client-typing",
    "",
];

/// Event names: the known ones, look-alikes, `client-*` and `pusher:*` names, anything.
pub(super) fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(REQUEST_EVENTS).prop_map(String::from),
        2 => select(OTHER_EVENTS).prop_map(String::from),
        2 => "client-[a-z-]{0,10}",
        1 => "pusher:[a-z_]{0,12}",
        1 => any::<String>(),
    ]
}

/// The `data` of a `pusher:*` event: the fields of subscribe and signin, each maybe wrong.
pub(super) fn request_fields() -> BoxedStrategy<Map<String, Value>> {
    let auth = prop_oneof!["[a-z0-9]{1,8}:[0-9a-f]{64}", any_text()];
    let presence = channel_data().prop_map(json_text);
    let user = user_data().prop_map(json_text);
    (
        field(channel_name()),
        field(auth),
        field(presence),
        field(user),
    )
        .prop_map(|(channel, auth, channel_data, user_data)| {
            object([
                ("channel", channel),
                ("auth", auth),
                ("channel_data", channel_data),
                ("user_data", user_data),
            ])
        })
        .boxed()
}

/// The values of `fields` as an array, in field order: the form serde would also read a
/// struct from.
pub(super) fn positional(fields: Map<String, Value>) -> Value {
    Value::Array(fields.into_iter().map(|(_, value)| value).collect())
}

/// A frame's `data`: missing, null, an object of request fields, the same as a JSON string,
/// the fields as an array, or anything else.
pub(super) fn data() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        5 => request_fields().prop_map(|fields| Some(Value::Object(fields))),
        1 => request_fields().prop_map(|fields| Some(positional(fields))),
        4 => request_fields().prop_map(|fields| Some(Value::from(json_text(fields)))),
        1 => any_text().prop_map(|text| Some(Value::String(text))),
        2 => json_value().prop_map(Some),
    ]
    .boxed()
}

/// A frame as a client might send it, with each top-level field sometimes missing or mistyped.
pub(super) fn envelope() -> BoxedStrategy<Map<String, Value>> {
    let event = prop_oneof![
        14 => event_name().prop_map(|event| Some(Value::String(event))),
        1 => Just(None),
        1 => json_value().prop_map(Some),
    ];
    let channel = prop_oneof![
        6 => channel_name().prop_map(|channel| Some(Value::String(channel))),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => any::<i64>().prop_map(|n| Some(Value::from(n))),
    ];
    (event, channel, data(), prop::option::of(json_value()))
        .prop_map(|(event, channel, data, user_id)| {
            object([
                ("event", event),
                ("channel", channel),
                ("data", data),
                ("user_id", user_id),
            ])
        })
        .boxed()
}

/// What a parsed frame holds, in a form that can be compared.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    Ping,
    Pong,
    Subscribe {
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    Signin {
        auth: String,
        user_data: String,
    },
    ClientEvent {
        event: String,
        channel: String,
        data: String,
    },
    Refused(FrameError),
}

/// Parses one frame into its comparable [`Outcome`].
pub(super) fn parse_frame(text: &str) -> Outcome {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Ping) => Outcome::Ping,
        Ok(ClientMessage::Pong) => Outcome::Pong,
        Ok(ClientMessage::Subscribe(request)) => Outcome::Subscribe {
            channel: request.channel,
            auth: request.auth,
            channel_data: request.channel_data,
        },
        Ok(ClientMessage::Unsubscribe { channel }) => Outcome::Unsubscribe { channel },
        Ok(ClientMessage::Signin(request)) => Outcome::Signin {
            auth: request.auth,
            user_data: request.user_data,
        },
        Ok(ClientMessage::ClientEvent(event)) => Outcome::ClientEvent {
            event: event.event,
            channel: event.channel,
            data: event.data.get().to_owned(),
        },
        Err(error) => Outcome::Refused(error),
    }
}

/// `InvalidData` for `event` with the `problem` a client reads.
pub(super) fn invalid(event: &'static str, problem: &'static str) -> Outcome {
    Outcome::Refused(FrameError::InvalidData { event, problem })
}

/// A required string field, or `None` when it is missing or not a string.
pub(super) fn string_field(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key)?.as_str().map(str::to_owned)
}

/// An optional string field (missing and null are `None`), or `None` for another type.
pub(super) fn optional_string_field(
    fields: &Map<String, Value>,
    key: &str,
) -> Option<Option<String>> {
    match fields.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(value)) => Some(Some(value.clone())),
        Some(_) => None,
    }
}

/// The `data` rules of `pusher:*` events: an object, or a JSON string holding one.
pub(super) fn expected_request(
    data: Option<&Value>,
    event: &'static str,
    read: impl Fn(&Map<String, Value>) -> Option<Outcome>,
) -> Outcome {
    let Some(data) = data else {
        return invalid(event, "\"data\" is required");
    };
    let fields = match data {
        Value::String(inner) => serde_json::from_str(inner).ok(),
        other => Some(other.clone()),
    };
    let wrong = match event {
        "pusher:signin" => "\"data\" must be an object with \"auth\" and \"user_data\" strings",
        _ => "\"data\" must be an object with a \"channel\" string",
    };
    match fields {
        Some(Value::Object(fields)) => read(&fields).unwrap_or_else(|| invalid(event, wrong)),
        _ => invalid(event, wrong),
    }
}

/// The frame rules of the protocol reference, as a model of `ClientMessage::parse`.
pub(super) fn expected_frame(envelope: &Map<String, Value>) -> Outcome {
    let not_an_event = Outcome::Refused(FrameError::NotAnEvent);
    let Some(Value::String(event)) = envelope.get("event") else {
        return not_an_event;
    };
    let channel = match envelope.get("channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(channel)) => Some(channel.clone()),
        Some(_) => return not_an_event,
    };
    let data = envelope.get("data").filter(|data| !data.is_null());
    match event.as_str() {
        "pusher:ping" => Outcome::Ping,
        "pusher:pong" => Outcome::Pong,
        "pusher:subscribe" => expected_request(data, "pusher:subscribe", |fields| {
            Some(Outcome::Subscribe {
                channel: string_field(fields, "channel")?,
                auth: optional_string_field(fields, "auth")?,
                channel_data: optional_string_field(fields, "channel_data")?,
            })
        }),
        "pusher:unsubscribe" => expected_request(data, "pusher:unsubscribe", |fields| {
            let channel = string_field(fields, "channel")?;
            Some(Outcome::Unsubscribe { channel })
        }),
        "pusher:signin" => expected_request(data, "pusher:signin", |fields| {
            Some(Outcome::Signin {
                auth: string_field(fields, "auth")?,
                user_data: string_field(fields, "user_data")?,
            })
        }),
        name if name.starts_with("client-") => match (channel, data) {
            (None, _) => invalid("client", "\"channel\" is required"),
            (_, None) => invalid("client", "\"data\" is required"),
            (Some(channel), Some(data)) => Outcome::ClientEvent {
                event: event.clone(),
                channel,
                data: data.to_string(),
            },
        },
        _ => Outcome::Refused(FrameError::UnknownEvent(event.clone())),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_follow_the_protocol_rules(
        envelope in envelope(),
        before in "[ \t\r\n]{0,2}",
        after in "[ \t\r\n]{0,2}",
    ) {
        let text = format!("{before}{}{after}", Value::Object(envelope.clone()));
        prop_assert_eq!(parse_frame(&text), expected_frame(&envelope));
    }

    #[test]
    fn a_frame_as_an_array_of_its_fields_is_not_an_event(envelope in envelope()) {
        let text = positional(envelope);
        prop_assert_eq!(
            parse_frame(&text.to_string()),
            Outcome::Refused(FrameError::NotAnEvent)
        );
    }

    #[test]
    fn arbitrary_text_is_a_frame_or_not_an_event(text in any_text()) {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(envelope)) => {
                prop_assert_eq!(parse_frame(&text), expected_frame(&envelope));
            }
            _ => prop_assert_eq!(parse_frame(&text), Outcome::Refused(FrameError::NotAnEvent)),
        }
    }

    #[test]
    fn a_cut_frame_is_not_an_event(
        envelope in envelope(),
        (near_end, from_end, cut) in (any::<bool>(), 1usize..4, any::<Index>()),
    ) {
        let text = json_text(envelope);
        let mut end = if near_end {
            text.len().saturating_sub(from_end)
        } else {
            cut.index(text.len())
        };
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        prop_assert_eq!(parse_frame(&text[..end]), Outcome::Refused(FrameError::NotAnEvent));
    }

    #[test]
    fn valid_subscribes_keep_their_fields(
        channel in prop_oneof![channel_name(), any::<String>()],
        auth in prop::option::of(any::<String>()),
        channel_data in prop::option::of(any::<String>()),
        as_string in any::<bool>(),
    ) {
        let fields = object([
            ("channel", Some(Value::from(channel.clone()))),
            ("auth", auth.clone().map(Value::from)),
            ("channel_data", channel_data.clone().map(Value::from)),
        ]);
        let fields = Value::Object(fields);
        let data = if as_string { Value::from(fields.to_string()) } else { fields };
        let text = format!(r#"{{"event":"pusher:subscribe","data":{data}}}"#);
        prop_assert_eq!(parse_frame(&text), Outcome::Subscribe { channel, auth, channel_data });
    }

    #[test]
    fn client_event_data_is_kept_byte_for_byte(
        event in "client-[a-z-]{0,10}",
        channel in channel_name(),
        data in json_value().prop_filter("null is no data", |data| !data.is_null()),
    ) {
        // Pretty-printed, so whitespace inside `data` must survive too.
        let data = serde_json::to_string_pretty(&data).unwrap();
        let text = format!(
            r#"{{ "event": {}, "channel": {}, "data": {data} }}"#,
            Value::from(event.clone()),
            Value::from(channel.clone()),
        );
        prop_assert_eq!(parse_frame(&text), Outcome::ClientEvent { event, channel, data });
    }
}

//! Properties of Channel names.

use super::*;

pub(super) const CHANNEL_PREFIXES: &[&str] = &[
    "",
    "private-",
    "presence-",
    "private-encrypted-",
    "cache-",
    "private-cache-",
    "presence-cache-",
    "private-encrypted-cache-",
    "#server-to-user-",
    "#server-to-user",
    "#",
    "my-private-",
    "privat-",
];

/// A prefix of a channel kind (or a near miss) and a body, sometimes with a forbidden character.
pub(super) fn channel_name() -> impl Strategy<Value = String> {
    let body = prop_oneof![
        4 => "[A-Za-z0-9_=@,.;-]{0,40}",
        1 => "[A-Za-z0-9_=@,.;-]{150,220}",
        1 => "[A-Za-z0-9_=@,.;-]{198,202}",
        1 => "[A-Za-z0-9 #é:/_-]{0,20}",
    ];
    (select(CHANNEL_PREFIXES), body).prop_map(|(prefix, body)| format!("{prefix}{body}"))
}

/// The naming rules of the protocol reference, as a model of `ChannelName::parse(..).kind()`.
pub(super) fn expected_channel(
    name: &str,
    max_len: usize,
) -> Result<ChannelKind, ChannelNameError> {
    let (checked, limit) = match name.chars().next() {
        None => return Err(ChannelNameError::Empty),
        Some('#') => match name.strip_prefix("#server-to-user-") {
            Some(user_id) if !user_id.is_empty() => (user_id, 200),
            _ => return Err(ChannelNameError::Reserved),
        },
        Some(_) => (name, max_len),
    };
    if checked.len() > limit {
        return Err(ChannelNameError::TooLong { max: limit });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c);
    if !checked.chars().all(allowed) {
        return Err(ChannelNameError::InvalidCharacter);
    }
    let kinds = [
        ("#server-to-user-", ChannelKind::ServerToUser),
        ("private-encrypted-", ChannelKind::PrivateEncrypted),
        ("private-", ChannelKind::Private),
        ("presence-", ChannelKind::Presence),
    ];
    Ok(kinds
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or(ChannelKind::Public, |&(_, kind)| kind))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn channel_names_follow_the_naming_rules(
        name in prop_oneof![3 => channel_name(), 1 => any_text()],
        limit in limit(),
    ) {
        let checked = name.strip_prefix("#server-to-user-").unwrap_or(&name);
        let max_len = limit_near(checked.len(), limit);
        let parsed = ChannelName::parse(&name, max_len);
        prop_assert_eq!(parsed.clone().map(|c| c.kind()), expected_channel(&name, max_len));
        let Ok(channel) = parsed else { return Ok(()) };
        prop_assert_eq!(channel.as_str(), name.as_str());
        prop_assert_eq!(channel.to_string(), name.clone());
        match channel.server_to_user_id() {
            Some(user_id) => prop_assert!(user_id.chars().count() <= 200),
            None => prop_assert!(name.chars().count() <= max_len),
        }
        prop_assert_eq!(channel.server_to_user_id(), name.strip_prefix("#server-to-user-"));
        prop_assert_eq!(channel.kind().requires_auth(), channel.kind() != ChannelKind::Public);
        let cache_prefixes =
            ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"];
        let is_cache = cache_prefixes.iter().any(|prefix| name.starts_with(prefix));
        prop_assert_eq!(channel.is_cache(), is_cache);
    }

    #[test]
    fn server_to_user_names_ignore_the_app_length_limit(user_id in "[A-Za-z0-9_=@,.;-]{1,200}") {
        let channel = ChannelName::server_to_user(&user_id).unwrap();
        prop_assert_eq!(channel.kind(), ChannelKind::ServerToUser);
        prop_assert_eq!(channel.server_to_user_id(), Some(user_id.as_str()));
        let name = format!("#server-to-user-{user_id}");
        prop_assert_eq!(ChannelName::parse(&name, 1), Ok(channel));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn names_are_quoted_exactly_within_their_limit_and_cut_with_a_marker_beyond(
        name in prop_oneof![channel_name(), any_text()],
        limit in limit(),
    ) {
        let max_len = limit_near(name.len(), limit);
        let quoted = ChannelName::quote(&name, max_len);
        let user_id_limit = "#server-to-user-".len() + 200;
        let quote_limit = if name.starts_with("#server-to-user-") { user_id_limit } else { max_len };
        if name.len() <= quote_limit {
            prop_assert_eq!(quoted.as_ref(), name.as_str());
        } else {
            let cut = quoted.strip_suffix("…").expect("a cut name ends with the marker");
            prop_assert!(name.starts_with(cut));
            prop_assert!(cut.len() <= quote_limit && quote_limit - cut.len() < 4);
        }
    }
}

//! Properties of Socket ids.

use super::*;

/// `^\d+\.\d+$` with both halves within `u32`, as its canonical (unpadded) text.
pub(super) fn expected_socket_id(text: &str) -> Option<String> {
    let (high, low) = text.split_once('.')?;
    let half = |digits: &str| {
        let fits = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
        let trimmed = digits.trim_start_matches('0');
        let value = if trimmed.is_empty() {
            Some(0)
        } else {
            trimmed.parse::<u64>().ok()
        };
        value.filter(|&value| fits && value <= u64::from(u32::MAX))
    };
    Some(format!("{}.{}", half(high)?, half(low)?))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn socket_ids_are_digits_dot_digits(
        text in prop_oneof![
            any_text(),
            r"[0-9]{0,12}\.[0-9]{0,12}",
            r"[0-9.+ a-]{0,12}",
            (any::<u32>(), any::<u32>()).prop_map(|(high, low)| format!("{high}.{low}")),
        ],
    ) {
        let parsed = SocketId::parse(&text);
        prop_assert_eq!(parsed.map(|id| id.to_string()), expected_socket_id(&text));
        if let Some(id) = parsed {
            prop_assert_eq!(SocketId::parse(&id.to_string()), Some(id));
        }
    }

    #[test]
    fn socket_ids_round_trip_through_their_text(high in any::<u32>(), low in any::<u32>()) {
        let text = format!("{high}.{low}");
        prop_assert_eq!(SocketId::parse(&text).map(|id| id.to_string()), Some(text));
    }
}

//! Client input quoted back in an error, cut to its limit.
//!
//! An error must never echo a whole oversized input: a refused 65,000-character channel name
//! would otherwise be queued twice per refusal (in `pusher:subscription_error` and in
//! `pusher:error`). Input within its limit is quoted exactly, because pusher-js routes
//! `pusher:subscription_error` to the channel with that exact name.

use std::borrow::Cow;

/// Marks where quoted input was cut.
pub const CUT_MARKER: &str = "…";

/// `input`, or its first `max_bytes` bytes (at a character boundary) followed by
/// [`CUT_MARKER`] when it is longer.
pub fn quote(input: &str, max_bytes: usize) -> Cow<'_, str> {
    if input.len() <= max_bytes {
        return Cow::Borrowed(input);
    }
    let mut end = max_bytes;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT_MARKER}", &input[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_within_its_limit_is_quoted_exactly() {
        assert_eq!(quote("private-a", 9), "private-a");
        assert!(matches!(quote("", 0), Cow::Borrowed("")));
    }

    #[test]
    fn longer_input_is_cut_at_a_character_boundary_and_marked() {
        assert_eq!(quote("abcdef", 3), "abc…");
        // "é" is two bytes: a cut inside it moves back before it.
        assert_eq!(quote("aé", 2), "a…");
        assert_eq!(
            quote(&"x".repeat(65_000), 164).len(),
            164 + CUT_MARKER.len()
        );
    }
}

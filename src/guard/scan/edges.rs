//! Where a secret may start and end in the scanned text. A token counts only when it stands
//! alone: the characters on either side must not belong to its alphabet ([`TokenChars`]),
//! or `AKIA…` inside a longer word would be found. The scanned text is often JSON, so the
//! end of an escape such as `\n` counts as an edge too, and a finding never starts or ends
//! inside an escape (redacting half of `\u00e9` would leave invalid JSON).

/// The characters a token is made of, which must not touch it on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenChars {
    /// `[A-Za-z0-9]`.
    Alphanumeric,
    /// `[A-Za-z0-9_-]`, the base64url alphabet.
    Base64Url,
    /// `[A-Za-z0-9._~+/=-]`, RFC 6750's `b64token`.
    Bearer,
}

impl TokenChars {
    /// Whether `byte` belongs to the alphabet.
    pub(super) fn contains(self, byte: u8) -> bool {
        byte.is_ascii_alphanumeric()
            || match self {
                TokenChars::Alphanumeric => false,
                TokenChars::Base64Url => matches!(byte, b'_' | b'-'),
                TokenChars::Bearer => {
                    matches!(byte, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=')
                }
            }
    }
}

/// Whether a token made of `chars` may start at `start`.
pub(super) fn starts_alone(text: &[u8], start: usize, chars: TokenChars) -> bool {
    start == 0 || !chars.contains(text[start - 1]) || json_escape_ends_at(text, start)
}

/// Whether a token made of `chars` may end at `end`.
pub(super) fn ends_alone(text: &[u8], end: usize, chars: TokenChars) -> bool {
    text.get(end).is_none_or(|&byte| !chars.contains(byte))
}

/// Whether `text[..end]` ends with a whole JSON escape (`\n`, `\"`, `\u00e9`…).
pub(super) fn json_escape_ends_at(text: &[u8], end: usize) -> bool {
    let escapes_at = |backslash: usize| text[backslash] == b'\\' && !is_escaped(text, backslash);
    let short = end >= 2 && text[end - 1] != b'u' && escapes_at(end - 2);
    let unicode = end >= 6
        && text[end - 5] == b'u'
        && text[end - 4..end].iter().all(u8::is_ascii_hexdigit)
        && escapes_at(end - 6);
    short || unicode
}

/// Where the JSON escape that `position` falls inside (after its backslash) ends, if any.
pub(super) fn end_of_escape_around(text: &[u8], position: usize) -> Option<usize> {
    let backslash = (position.saturating_sub(5)..position)
        .rev()
        .find(|&at| text[at] == b'\\')?;
    if is_escaped(text, backslash) {
        return None;
    }
    let is_unicode = text.get(backslash + 1) == Some(&b'u')
        && text
            .get(backslash + 2..backslash + 6)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
    let end = backslash + if is_unicode { 6 } else { 2 };
    (end > position).then_some(end)
}

/// Whether the backslash at `backslash` is itself escaped (an odd run of backslashes
/// before it).
fn is_escaped(text: &[u8], backslash: usize) -> bool {
    let run = text[..backslash]
        .iter()
        .rev()
        .take_while(|&&byte| byte == b'\\')
        .count();
    run % 2 == 1
}

/// The last char boundary of `text` at or before `index`.
pub(super) fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The first char boundary of `text` at or after `index`.
pub(super) fn ceil_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_stands_alone_between_characters_outside_its_alphabet() {
        let text = b"key=AKIA1234;";
        assert!(starts_alone(text, 4, TokenChars::Alphanumeric));
        assert!(ends_alone(text, 12, TokenChars::Alphanumeric));
        assert!(!starts_alone(text, 5, TokenChars::Alphanumeric));
        assert!(
            ends_alone(b"ab", 2, TokenChars::Alphanumeric),
            "end of text"
        );
        assert!(!starts_alone(b"x-ab", 2, TokenChars::Base64Url));
        assert!(starts_alone(b"x-ab", 2, TokenChars::Alphanumeric));
    }

    #[test]
    fn the_end_of_a_json_escape_is_an_edge_but_an_escaped_backslash_is_not_one() {
        assert!(starts_alone(br"x\nAKIA", 3, TokenChars::Alphanumeric));
        assert!(starts_alone(br"x\u00e9AKIA", 7, TokenChars::Alphanumeric));
        assert!(!starts_alone(br"x\\nAKIA", 4, TokenChars::Alphanumeric));
        assert!(starts_alone(br"x\\\nAKIA", 5, TokenChars::Alphanumeric));
    }

    #[test]
    fn positions_inside_an_escape_are_moved_past_it() {
        let text = br#"a\u00e9b\"c\\d"#;
        assert_eq!(end_of_escape_around(text, 2), Some(7));
        assert_eq!(end_of_escape_around(text, 6), Some(7));
        assert_eq!(end_of_escape_around(text, 7), None);
        assert_eq!(end_of_escape_around(text, 9), Some(10));
        assert_eq!(end_of_escape_around(text, 12), Some(13));
        assert_eq!(
            end_of_escape_around(text, 13),
            None,
            "after an escaped backslash"
        );
        assert_eq!(end_of_escape_around(b"ab", 1), None);
    }

    #[test]
    fn char_boundaries_round_outwards() {
        let text = "aé";
        assert_eq!(floor_char_boundary(text, 2), 1);
        assert_eq!(ceil_char_boundary(text, 2), 3);
        assert_eq!(ceil_char_boundary(text, 10), 3);
    }
}

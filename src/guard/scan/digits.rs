//! Card numbers and US social security numbers, the detectors without a keyword. A run of
//! digits (groups joined by single spaces or dashes) is checked only if it is long enough to
//! be either, and is taken whole: no number is found inside a longer one, so
//! `4111 1111 1111 1111 2` is not a card. The cheap checks come first (length, grouping,
//! brand prefix, SSN ranges), the Luhn sum last. The runs themselves are found by
//! [`digit_runs`](super::digit_runs).

use std::ops::Range;

use super::Finding;
use super::detector::Detector;
use super::digit_runs::{DigitRun, long_runs};
use super::edges;

/// Which of the two run.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DigitDetectors {
    pub(super) card: bool,
    pub(super) ssn: bool,
}

/// The fewest digits in one group of a grouped card number (`4111 1111 …`, `3782 822463 …`).
const SHORTEST_CARD_GROUP: usize = 3;

impl DigitDetectors {
    /// Whether any of the two runs.
    pub(super) fn any(self) -> bool {
        self.card || self.ssn
    }

    /// Each card number and SSN in `text`, in order.
    pub(super) fn find(self, text: &str, found: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        for mut run in long_runs(bytes) {
            if let Some(end) = edges::end_of_escape_around(bytes, run.start) {
                // The run starts with the hex digits of a JSON `\u` escape: it starts after it.
                if !bytes.get(end).is_some_and(u8::is_ascii_digit) {
                    continue;
                }
                run = DigitRun::at(bytes, end);
            }
            if run.is_decimal_fraction(bytes) {
                continue;
            }
            let digits = &bytes[run.start..run.end];
            let detector = if self.ssn && is_ssn(digits) {
                Detector::Ssn
            } else if self.card && grouped_like_a_card(&run) && is_card(digits) {
                Detector::Card
            } else {
                continue;
            };
            found.push(Finding {
                detector,
                range: run.start..run.end,
            });
        }
    }
}

/// Whether the digits and grouping of `run` can be a card number's.
fn grouped_like_a_card(run: &DigitRun) -> bool {
    (13..=19).contains(&run.digits)
        && (run.groups == 1 || (!run.mixed_separators && run.shortest_group >= SHORTEST_CARD_GROUP))
}

/// Whether `run` is `ddd-dd-dddd` with an area, group and serial that are issued.
fn is_ssn(run: &[u8]) -> bool {
    let [a1, a2, a3, b'-', g1, g2, b'-', s1, s2, s3, s4] = *run else {
        return false;
    };
    let digits = [a1, a2, a3, g1, g2, s1, s2, s3, s4];
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'))
    };
    let area = number(&digits[..3]);
    area != 0
        && area != 666
        && area < 900
        && number(&digits[3..5]) != 0
        && number(&digits[5..]) != 0
}

/// Whether the digits of `run` (separators skipped) are a card number: a brand's prefix and
/// length, and a right Luhn check digit.
fn is_card(run: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let mut count = 0;
    for &byte in run.iter().filter(|byte| byte.is_ascii_digit()) {
        digits[count] = byte - b'0';
        count += 1;
    }
    let digits = &digits[..count];
    CardBrand::of(digits).is_some_and(|brand| brand.lengths().contains(&count))
        && luhn_holds(digits)
}

/// The card networks whose numbers are found, told apart by their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
}

impl CardBrand {
    /// The brand whose prefix `digits` starts with.
    fn of(digits: &[u8]) -> Option<Self> {
        let prefix = |len: usize| {
            digits[..len]
                .iter()
                .fold(0u32, |value, &digit| value * 10 + u32::from(digit))
        };
        let (two, three, four) = (prefix(2), prefix(3), prefix(4));
        Some(match () {
            _ if digits[0] == 4 => CardBrand::Visa,
            _ if (51..=55).contains(&two) || (2221..=2720).contains(&four) => CardBrand::Mastercard,
            _ if two == 34 || two == 37 => CardBrand::Amex,
            _ if four == 6011 || (644..=649).contains(&three) || two == 65 => CardBrand::Discover,
            _ if (3528..=3589).contains(&four) => CardBrand::Jcb,
            _ if (300..=305).contains(&three) || two == 36 || two == 38 => CardBrand::Diners,
            _ if two == 62 => CardBrand::UnionPay,
            _ => return None,
        })
    }

    /// How many digits the brand's numbers have.
    fn lengths(self) -> Range<usize> {
        match self {
            CardBrand::Visa => 13..20,
            CardBrand::Mastercard => 16..17,
            CardBrand::Amex => 15..16,
            CardBrand::Discover | CardBrand::Jcb | CardBrand::UnionPay => 16..20,
            CardBrand::Diners => 14..20,
        }
    }
}

/// Whether the Luhn sum of `digits` (the check digit last) is a multiple of 10.
fn luhn_holds(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(index, &digit)| {
            let digit = u32::from(digit);
            match index % 2 {
                0 => digit,
                _ if digit * 2 > 9 => digit * 2 - 9,
                _ => digit * 2,
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Detector, &str)> {
        let mut found = Vec::new();
        DigitDetectors {
            card: true,
            ssn: true,
        }
        .find(text, &mut found);
        found
            .into_iter()
            .map(|finding| (finding.detector, &text[finding.range]))
            .collect()
    }

    #[test]
    fn test_numbers_of_every_brand_are_cards() {
        for number in [
            "4111111111111111",
            "4222222222222",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
        ] {
            assert_eq!(
                found(&format!("card {number}.")),
                [(Detector::Card, number)]
            );
        }
    }

    #[test]
    fn grouped_card_numbers_are_found_whole() {
        let text = r#"{"card":"4111 1111 1111 1111","amex":"3782-822463-10005"}"#;
        assert_eq!(
            found(text),
            [
                (Detector::Card, "4111 1111 1111 1111"),
                (Detector::Card, "3782-822463-10005")
            ]
        );
    }

    #[test]
    fn a_luhn_failure_an_unknown_prefix_or_a_longer_number_is_no_card() {
        assert!(found("4111111111111112").is_empty(), "Luhn");
        assert!(
            found("1234567812345670").is_empty(),
            "no brand starts with 1"
        );
        assert!(
            found("94111111111111111").is_empty(),
            "inside a longer number"
        );
        assert!(found("4111 1111 1111 1111 2").is_empty(), "a fifth group");
        assert!(found("4111-1111 1111-1111").is_empty(), "mixed separators");
        assert!(found("41 11 11 11 11 11 11 11").is_empty(), "groups of two");
        assert!(found("0.4111111111111111").is_empty(), "a decimal fraction");
        assert!(
            found("5555555555554444555").is_empty(),
            "Mastercard has 16 digits"
        );
    }

    #[test]
    fn ssns_with_issued_ranges_are_found() {
        assert_eq!(found("ssn 123-45-6789,"), [(Detector::Ssn, "123-45-6789")]);
        assert_eq!(found("899-99-9999"), [(Detector::Ssn, "899-99-9999")]);
    }

    #[test]
    fn ssns_with_unissued_areas_groups_or_serials_are_not() {
        for text in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "1123-45-6789",
            "123-45-67890",
            "123 45 6789",
            "2024-01-15",
        ] {
            assert!(found(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_run_starting_in_a_unicode_escape_is_read_after_it() {
        assert_eq!(
            found(r"\u00204111111111111111"),
            [(Detector::Card, "4111111111111111")]
        );
    }
}

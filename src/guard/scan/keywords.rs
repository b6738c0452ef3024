//! The pass every scanned text gets: Aho-Corasick automata over the keywords of the enabled
//! rules (`AKIA`, `ghp_`, `-----BEGIN`, `eyJ`, `@`…), which tell which rules to run and
//! where. A text without any keyword costs this pass and nothing else.
//!
//! The keywords of two bytes or more share one automaton; the one-byte keywords (`@`) get
//! their own. One automaton for all would be simpler, but its SIMD prefilter keys on the
//! first bytes of every keyword, and a one-byte keyword makes it give up: 10 KB of chat then
//! take about 18 µs instead of 1.6 µs. The `@` automaton searches like memchr: about 0.1 µs per 10 KB,
//! and some 20 ns per `@` seen (mentions), the email rule's first check included.
//!
//! Each automaton reports the longest keyword at the leftmost place, and the search goes on
//! from the byte after that keyword's start, so keywords that overlap are all seen; a
//! keyword also stands for the shorter keywords it starts with (`sk-ant-` for `sk-`), so no
//! rule misses a place where one of its keywords occurs.

use aho_corasick::{AhoCorasick, Input, MatchKind};

use super::rules::Rule;

/// The keywords of a set of rules: one automaton for those of two bytes or more, one for
/// the one-byte keywords.
#[derive(Debug)]
pub(super) struct Keywords {
    automata: Vec<KeywordAutomaton>,
}

/// Some keywords, and the rules to run where each is seen.
#[derive(Debug)]
struct KeywordAutomaton {
    automaton: AhoCorasick,
    /// For each keyword (by pattern id), the indexes of its rules.
    rules_of: Vec<Vec<usize>>,
}

/// A keyword seen in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeywordHit<'a> {
    /// Where the keyword starts.
    pub(super) start: usize,
    /// The indexes of the rules to run there.
    pub(super) rules: &'a [usize],
}

impl Keywords {
    /// The keywords of `rules`; `None` if there are none.
    pub(super) fn new(rules: &[Rule]) -> Option<Self> {
        // The rules with `keyword` or a shorter keyword it starts with, in the same automaton.
        let owners = |keyword: &str| -> Vec<usize> {
            let same_automaton = |owned: &str| (owned.len() == 1) == (keyword.len() == 1);
            (0..rules.len())
                .filter(|&index| {
                    rules[index]
                        .keywords
                        .iter()
                        .any(|owned| keyword.starts_with(owned) && same_automaton(owned))
                })
                .collect()
        };
        let mut keywords: Vec<&'static str> = rules
            .iter()
            .flat_map(|rule| rule.keywords.iter().copied())
            .collect();
        keywords.sort_unstable();
        keywords.dedup();
        let (short, long): (Vec<&str>, Vec<&str>) =
            keywords.into_iter().partition(|keyword| keyword.len() == 1);
        let automata: Vec<_> = [long, short]
            .into_iter()
            .filter(|keywords| !keywords.is_empty())
            .map(|keywords| {
                let automaton = AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&keywords)
                    .unwrap_or_else(|error| panic!("the keywords make an automaton: {error}"));
                let rules_of = keywords.iter().map(|keyword| owners(keyword)).collect();
                KeywordAutomaton {
                    automaton,
                    rules_of,
                }
            })
            .collect();
        (!automata.is_empty()).then_some(Keywords { automata })
    }

    /// Every keyword in `text`: by automaton, then by start.
    pub(super) fn hits<'a>(&'a self, text: &'a str) -> impl Iterator<Item = KeywordHit<'a>> + 'a {
        self.automata.iter().flat_map(move |keywords| {
            let mut from = 0;
            std::iter::from_fn(move || {
                let found = keywords
                    .automaton
                    .find(Input::new(text).span(from..text.len()))?;
                from = found.start() + 1;
                Some(KeywordHit {
                    start: found.start(),
                    rules: &keywords.rules_of[found.pattern().as_usize()],
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::scan::Detector;

    fn hits(detectors: &[Detector], text: &str) -> Vec<(usize, Vec<Detector>)> {
        let rules: Vec<Rule> = detectors
            .iter()
            .filter_map(|&detector| Rule::new(detector))
            .collect();
        let keywords = Keywords::new(&rules).unwrap();
        keywords
            .hits(text)
            .map(|hit| {
                let detectors = hit
                    .rules
                    .iter()
                    .map(|&index| rules[index].detector)
                    .collect();
                (hit.start, detectors)
            })
            .collect()
    }

    #[test]
    fn a_keyword_stands_for_the_shorter_keywords_it_starts_with() {
        let both = [Detector::OpenAiKey, Detector::AnthropicKey];
        assert_eq!(
            hits(&both, "x sk-ant-y sk-z"),
            [(2, both.to_vec()), (11, vec![Detector::OpenAiKey])]
        );
    }

    #[test]
    fn overlapping_keywords_are_all_seen() {
        let detectors = [Detector::OpenAiKey, Detector::PrivateKey, Detector::Email];
        assert_eq!(
            hits(&detectors, "sk-----BEGIN @"),
            [
                (0, vec![Detector::OpenAiKey]),
                (2, vec![Detector::PrivateKey]),
                (13, vec![Detector::Email]),
            ]
        );
    }

    #[test]
    fn rules_without_keywords_need_no_automaton() {
        assert!(Keywords::new(&[]).is_none());
    }
}

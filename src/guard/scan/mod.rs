//! The secret scanner: finds credentials (cloud and API keys, tokens, private keys) and,
//! when asked, personal data (card numbers, SSNs, emails) in an event's `data`, so the edges
//! can refuse or redact what a client should not have published. Pure: text in, byte ranges
//! out; where it runs and what follows a finding is the caller's business.
//!
//! The shape follows the cost: almost every payload holds no secret, so a clean one must
//! cost almost nothing. An Aho-Corasick pass over the text looks for the keywords of the
//! enabled detectors (`AKIA`, `ghp_`, `eyJ`…: [`keywords`]); only where a keyword is seen
//! does that detector's rule run ([`rules`]: an anchored regular expression on a bounded
//! window, then checks such as entropy, a checksum or a decoded JWT header, [`checks`]).
//! Card numbers and SSNs have no keyword; a pass that samples the text for long runs of
//! digits finds them ([`digit_runs`], [`digits`]), only when one of the two is enabled.
//! Everything is compiled once, in [`Scanner::new`]. On 10 KB of chat JSON a scan takes
//! about 2 µs with the credential detectors, 6–8 µs with all of them (benches/scan.rs).
//!
//! The work is bounded per keyword: a rule's window is at most a private key long, a hit
//! inside a token's run of characters is not a token's start ([`edges`]), and hits inside
//! a finding already made are skipped, so no part of the text is rescanned over and over.

mod checks;
mod detector;
mod digit_runs;
mod digits;
mod edges;
mod keywords;
mod rules;

use std::ops::Range;

pub use detector::Detector;

use digits::DigitDetectors;
use keywords::Keywords;
use rules::Rule;

/// What a finding is replaced with by [`Scanner::redact`].
pub const REDACTED: &str = "[REDACTED]";

/// A secret or a piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub detector: Detector,
    /// Where, in bytes of the scanned text (on char boundaries).
    pub range: Range<usize>,
}

/// The enabled detectors, compiled; built once per app and shared.
#[derive(Debug)]
pub struct Scanner {
    /// The keyword detectors' rules, in [`Detector::ALL`] order.
    rules: Vec<Rule>,
    /// The keywords of `rules`; `None` when no keyword detector is enabled.
    keywords: Option<Keywords>,
    digits: DigitDetectors,
}

impl Scanner {
    /// A scanner running the `enabled` detectors (the caller decides which: all the
    /// credential detectors less a skip list, plus the personal-data ones asked for).
    pub fn new(enabled: &[Detector]) -> Self {
        let enabled = |detector: &Detector| enabled.contains(detector);
        let rules: Vec<Rule> = Detector::ALL
            .iter()
            .filter(|detector| enabled(detector))
            .filter_map(|&detector| Rule::new(detector))
            .collect();
        Scanner {
            keywords: Keywords::new(&rules),
            rules,
            digits: DigitDetectors {
                card: enabled(&Detector::Card),
                ssn: enabled(&Detector::Ssn),
            },
        }
    }

    /// Every finding in `text`, sorted by start and not overlapping (of two that overlap, the
    /// longer is kept; of two as long, the earlier).
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(keywords) = &self.keywords {
            // Each rule's last finding: a keyword inside it starts nothing new.
            let mut last_found: [Range<usize>; Detector::ALL.len()] = std::array::from_fn(|_| 0..0);
            for hit in keywords.hits(text) {
                for &index in hit.rules {
                    if last_found[index].contains(&hit.start) {
                        continue;
                    }
                    let rule = &self.rules[index];
                    if let Some(range) = rule.find_at(text, hit.start) {
                        last_found[index] = range.clone();
                        findings.push(Finding {
                            detector: rule.detector,
                            range,
                        });
                    }
                }
            }
        }
        if self.digits.any() {
            self.digits.find(text, &mut findings);
        }
        without_overlaps(findings)
    }

    /// `text` with each of `findings` (from [`Scanner::scan`] of the same text) replaced by
    /// [`REDACTED`]. A range that does not fall on char boundaries is widened to them.
    pub fn redact(text: &str, findings: &[Finding]) -> String {
        let mut redacted = String::with_capacity(text.len());
        let mut copied_until = 0;
        for finding in findings {
            let start = edges::floor_char_boundary(text, finding.range.start).max(copied_until);
            let end = edges::ceil_char_boundary(text, finding.range.end);
            if start >= end {
                continue;
            }
            redacted.push_str(&text[copied_until..start]);
            redacted.push_str(REDACTED);
            copied_until = end;
        }
        redacted.push_str(&text[copied_until..]);
        redacted
    }
}

/// `findings` sorted by start, with the shorter (or later) of two overlapping ones left out.
fn without_overlaps(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_unstable_by_key(|finding| {
        let range = &finding.range;
        (range.start, std::cmp::Reverse(range.end), finding.detector)
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(findings.len());
    for finding in findings {
        match kept.last_mut() {
            Some(last) if finding.range.start < last.range.end => {
                // It starts inside the last one kept, which ends before any other starts: if
                // it is the longer, it replaces that one alone.
                if finding.range.len() > last.range.len() {
                    *last = finding;
                }
            }
            _ => kept.push(finding),
        }
    }
    kept
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

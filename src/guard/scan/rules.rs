//! One rule per keyword detector: the keywords the scanner's keyword pass looks for, the
//! shape (a regular expression) matched where a keyword was seen, how far a secret may
//! reach, and the checks a match must pass. The shape is anchored at the candidate's start
//! and sees only the window of the longest secret from there, so a keyword costs a bounded
//! amount of work however long the text is; a token longer than that is not the detector's.
//!
//! The shapes are written for Relay from the public descriptions of each format; none is
//! copied from another scanner.

use std::ops::Range;

use regex::Regex;

use super::checks;
use super::detector::Detector;
use super::edges::{self, TokenChars};
use crate::guard::WellFormedToken;

/// The alphabets the characters just before and just after a match must be outside of;
/// `None`: anything, the shape has a delimiter of its own there (`-----BEGIN`, `-----`).
#[derive(Debug, Clone, Copy)]
struct Edges {
    before: Option<TokenChars>,
    after: Option<TokenChars>,
}

impl Edges {
    /// A token standing alone: outside its alphabet on both sides.
    const fn token(chars: TokenChars) -> Self {
        Edges {
            before: Some(chars),
            after: Some(chars),
        }
    }

    /// A block with delimiters of its own on both sides.
    const DELIMITED: Edges = Edges {
        before: None,
        after: None,
    };
}

/// A keyword detector, ready to run.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) detector: Detector,
    /// Texts one of which every secret of the detector contains, at a known place.
    pub(super) keywords: &'static [&'static str],
    /// The detector's shape, anchored (`^`).
    shape: Regex,
    /// The most bytes a match spans.
    longest: usize,
    edges: Edges,
}

/// The parts of a rule, as written.
struct Spec {
    keywords: &'static [&'static str],
    shape: &'static str,
    longest: usize,
    edges: Edges,
}

/// A private key's BEGIN line, optional RFC 1421 headers, base64 with line breaks, and the
/// END line if it is there. The breaks are real ones, or JSON's `\n` and `\r`, escaped once
/// (a payload) or twice (a payload in a JSON string); so is the `/` of base64 (`\/`).
const PRIVATE_KEY_SHAPE: &str = concat!(
    r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----",
    r"(?:(?:\r?\n|(?:\\\\?r)?\\\\?n)[A-Za-z-]+: [A-Za-z0-9,-]+)*",
    r"(?:[A-Za-z0-9+/= \t\r\n]|\\\\?[nr/])*",
    r"(?:-----END (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----)?",
);

/// An email address: a local part, dot-separated domain labels, and a top-level domain of
/// letters.
const EMAIL_SHAPE: &str = concat!(
    r"[A-Za-z0-9._%+-]{1,64}@",
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}",
);

/// The most characters of an email's local part.
const LONGEST_LOCAL_PART: usize = 64;

/// The rule of `detector`; `None` for the detectors without a keyword (card, SSN).
fn spec(detector: Detector) -> Option<Spec> {
    use TokenChars::{Alphanumeric, Base64Url, Bearer};
    let token = Edges::token;
    let spec = |keywords, shape, longest, edges| {
        Some(Spec {
            keywords,
            shape,
            longest,
            edges,
        })
    };
    match detector {
        Detector::AwsAccessKey => spec(
            &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
            r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
            20,
            token(Alphanumeric),
        ),
        Detector::GithubToken => spec(
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
            93,
            token(Alphanumeric),
        ),
        Detector::GitlabPat => spec(
            &["glpat-"],
            r"glpat-[A-Za-z0-9_-]{20,}",
            106,
            token(Base64Url),
        ),
        Detector::StripeKey => spec(
            &["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
            r"[sr]k_(?:live|test)_[A-Za-z0-9]{24,}",
            255,
            token(Alphanumeric),
        ),
        // Every Slack token has digits right after its prefix (the team or app id).
        Detector::SlackToken => spec(
            &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-"],
            r"(?:xox[bpars]|xapp)-[0-9][A-Za-z0-9-]{9,}",
            255,
            token(Base64Url),
        ),
        // `\/` too: some JSON encoders escape slashes.
        Detector::SlackWebhook => spec(
            &["hooks.slack.com"],
            concat!(
                r"(?:https?:(?:\\?/){2})?hooks\.slack\.com(?:\\?/)services",
                r"(?:\\?/)T[A-Z0-9]{6,12}(?:\\?/)B[A-Z0-9]{6,12}(?:\\?/)[A-Za-z0-9]{16,32}",
            ),
            128,
            token(Alphanumeric),
        ),
        Detector::GoogleApiKey => spec(&["AIza"], r"AIza[A-Za-z0-9_-]{35}", 39, token(Base64Url)),
        Detector::OpenAiKey => spec(&["sk-"], r"sk-[A-Za-z0-9_-]{20,}", 256, token(Base64Url)),
        Detector::AnthropicKey => spec(
            &["sk-ant-"],
            r"sk-ant-[A-Za-z0-9_-]{32,}",
            256,
            token(Base64Url),
        ),
        Detector::SendgridKey => spec(
            &["SG."],
            r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
            69,
            token(Base64Url),
        ),
        Detector::NpmToken => spec(&["npm_"], r"npm_[A-Za-z0-9]{36}", 40, token(Alphanumeric)),
        Detector::PrivateKey => spec(
            &["-----BEGIN"],
            PRIVATE_KEY_SHAPE,
            16 * 1024,
            Edges::DELIMITED,
        ),
        Detector::Jwt => spec(
            &["eyJ"],
            r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{10,}",
            8 * 1024,
            token(Base64Url),
        ),
        // "earer": one keyword for `Bearer` and `bearer`.
        Detector::BearerToken => spec(
            &["earer"],
            r"[Bb]earer +[A-Za-z0-9._~+/=-]{20,}",
            8 * 1024,
            // The word before (`Authorization=Bearer` is fine), the token after.
            Edges {
                before: Some(Alphanumeric),
                after: Some(Bearer),
            },
        ),
        Detector::RelayToken => spec(&["rly_"], r"rly_[A-Za-z0-9]{36}", 40, token(Alphanumeric)),
        Detector::Email => spec(
            &["@"],
            EMAIL_SHAPE,
            LONGEST_LOCAL_PART + 1 + 255,
            token(Base64Url),
        ),
        Detector::Card | Detector::Ssn => None,
    }
}

impl Rule {
    /// The rule of `detector`, its shape compiled; `None` for card and SSN.
    pub(super) fn new(detector: Detector) -> Option<Self> {
        let spec = spec(detector)?;
        let shape = Regex::new(&format!("^(?:{})", spec.shape))
            .unwrap_or_else(|error| panic!("the {detector} shape is a valid regex: {error}"));
        Some(Rule {
            detector,
            keywords: spec.keywords,
            shape,
            longest: spec.longest,
            edges: spec.edges,
        })
    }

    /// The secret around the keyword at `keyword_start`, if there is one.
    pub(super) fn find_at(&self, text: &str, keyword_start: usize) -> Option<Range<usize>> {
        let bytes = text.as_bytes();
        let start = self.candidate_start(bytes, keyword_start)?;
        if let Some(chars) = self.edges.before
            && !edges::starts_alone(bytes, start, chars)
        {
            return None;
        }
        let window_end = edges::ceil_char_boundary(text, start + self.longest);
        let end = start + self.shape.find(&text[start..window_end])?.end();
        if let Some(chars) = self.edges.after
            && !edges::ends_alone(bytes, end, chars)
        {
            return None;
        }
        self.finding(&text[start..end])
            .map(|found| start + found.start..start + found.end)
    }

    /// Where a secret holding the keyword at `keyword_start` would start.
    fn candidate_start(&self, text: &[u8], keyword_start: usize) -> Option<usize> {
        match self.detector {
            Detector::BearerToken => {
                let start = keyword_start.checked_sub(1)?;
                matches!(text[start], b'B' | b'b').then_some(start)
            }
            Detector::SlackWebhook => {
                let before = &text[..keyword_start];
                let scheme = [r"https:\/\/", r"http:\/\/", "https://", "http://"]
                    .into_iter()
                    .find(|scheme| before.ends_with(scheme.as_bytes()));
                Some(keyword_start - scheme.map_or(0, str::len))
            }
            Detector::Email => email_start(text, keyword_start),
            _ => Some(keyword_start),
        }
    }

    /// The finding within `matched` (a match of the shape with the right edges), if the
    /// detector's checks pass.
    fn finding(&self, matched: &str) -> Option<Range<usize>> {
        let whole = Some(0..matched.len());
        let bytes = matched.as_bytes();
        match self.detector {
            Detector::AwsAccessKey => whole.filter(|_| !checks::is_aws_example(matched)),
            Detector::OpenAiKey => {
                let key = &bytes["sk-".len()..];
                whole.filter(|_| !matched.starts_with("sk-ant-") && checks::looks_random(key))
            }
            Detector::Jwt => whole.filter(|_| checks::jwt_header_names_alg(matched)),
            // The token only, so `"Bearer [REDACTED]"` still says what was sent.
            Detector::BearerToken => {
                let token_start = "Bearer".len()
                    + bytes["Bearer".len()..]
                        .iter()
                        .take_while(|&&byte| byte == b' ')
                        .count();
                checks::looks_random(&bytes[token_start..]).then_some(token_start..matched.len())
            }
            Detector::RelayToken => whole.filter(|_| WellFormedToken::parse(matched).is_some()),
            Detector::PrivateKey => Some(0..checks::private_key_len(bytes)),
            _ => whole,
        }
    }
}

/// Where the email whose `@` is at `at` starts: the local part's characters before it, no
/// further back than a local part can reach, nor into a JSON escape (`\n` before an
/// address is no part of it), nor over leading dots.
fn email_start(text: &[u8], at: usize) -> Option<usize> {
    let is_local = |byte: u8| byte.is_ascii_alphanumeric() || b"._%+-".contains(&byte);
    let mut start = at;
    while start > at.saturating_sub(LONGEST_LOCAL_PART)
        && is_local(text[start - 1])
        && !edges::json_escape_ends_at(text, start)
    {
        start -= 1;
    }
    while text[start] == b'.' {
        start += 1;
    }
    (start < at).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_detector_has_a_rule_whose_shape_compiles() {
        for detector in Detector::ALL {
            let rule = Rule::new(detector);
            assert_eq!(
                rule.is_some(),
                !matches!(detector, Detector::Card | Detector::Ssn),
                "{detector}"
            );
        }
    }

    #[test]
    fn an_email_starts_after_the_escape_before_it() {
        let text = br"a\nbob@x.io";
        assert_eq!(email_start(text, 6), Some(3));
        assert_eq!(email_start(b" ..bob@x.io", 6), Some(3));
        assert_eq!(email_start(b" @x.io", 1), None);
    }

    #[test]
    fn a_webhook_s_scheme_is_part_of_it_even_with_escaped_slashes() {
        let rule = Rule::new(Detector::SlackWebhook).unwrap();
        let text =
            r"x https:\/\/hooks.slack.com\/services\/T0000000\/B0000000\/XXXXXXXXXXXXXXXXXXXXXXXX";
        let keyword = text.find("hooks").unwrap();
        assert_eq!(rule.find_at(text, keyword), Some(2..text.len()));
    }
}

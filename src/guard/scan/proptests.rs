//! Properties over many texts: redaction keeps a JSON payload valid and removes every
//! secret, the scanner never panics or splits a character, and a text made of one keyword
//! repeated costs bounded work.

use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::select;

use super::tests::{JWT, all, random_base62};
use super::*;

/// A scanner with keyword detectors and the digit pass both, but few keywords.
static PERSONAL_DATA_ONLY: LazyLock<Scanner> =
    LazyLock::new(|| Scanner::new(&[Detector::Card, Detector::Ssn, Detector::Email]));

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A secret of `detector` built from `seed`, as it would sit in a string value, and the
/// part of it that must not survive redaction.
fn planted(detector: Detector, seed: u64) -> (String, String) {
    let random = |len| random_base62(seed, len);
    // Entropy checks pass on any seed: random characters, then a digit and a letter.
    let random_token = |len| format!("{}7q", random_base62(seed, len));
    let digits = |len: usize| -> String {
        random(len)
            .bytes()
            .map(|byte| char::from(b'0' + byte % 10))
            .collect()
    };
    let secret = match detector {
        Detector::AwsAccessKey => {
            let base32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            let body: String = random(16)
                .bytes()
                .map(|byte| char::from(base32[usize::from(byte) % 32]))
                .collect();
            format!("AKIA{body}")
        }
        Detector::GithubToken => format!("ghp_{}", random(36)),
        Detector::GitlabPat => format!("glpat-{}", random(20)),
        Detector::StripeKey => format!("sk_live_{}", random(30)),
        Detector::SlackToken => format!("xoxb-{}-{}", digits(12), random(24)),
        Detector::SlackWebhook => {
            let upper = random(16).to_uppercase();
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                &upper[..8],
                &upper[8..],
                random(24)
            )
        }
        Detector::GoogleApiKey => format!("AIza{}", random(35)),
        Detector::OpenAiKey => format!("sk-proj-{}", random_token(46)),
        Detector::AnthropicKey => format!("sk-ant-api03-{}", random(80)),
        Detector::SendgridKey => format!("SG.{}.{}", random(22), random_base62(!seed, 43)),
        Detector::NpmToken => format!("npm_{}", random(36)),
        Detector::PrivateKey => {
            let breaks = if seed % 2 == 0 { "\n" } else { r"\n" };
            let body = [
                random(64),
                random_base62(!seed, 64),
                random_base62(seed / 3, 20),
            ];
            format!(
                "-----BEGIN RSA PRIVATE KEY-----{breaks}{}==={breaks}-----END RSA PRIVATE KEY-----",
                body.join(breaks)
            )
        }
        Detector::Jwt => format!(
            "{}.eyJ{}.{}",
            &JWT[..36],
            random(30),
            random_base62(!seed, 43)
        ),
        Detector::BearerToken => {
            let token = random_token(38);
            return (format!("Bearer {token}"), token);
        }
        Detector::RelayToken => crate::guard::generate_token(),
        Detector::Card => {
            let mut card = format!("4{}", digits(14));
            card.push(luhn_check_digit(&card));
            card
        }
        Detector::Ssn => format!(
            "{:03}-{:02}-{:04}",
            1 + seed % 665,
            1 + seed % 99,
            1 + seed % 9999
        ),
        Detector::Email => format!("user.{}@mail.example.com", random(8).to_lowercase()),
    };
    (secret.clone(), secret)
}

/// The digit that makes `digits` followed by it pass the Luhn check.
fn luhn_check_digit(digits: &str) -> char {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 0 {
                (digit * 2) % 9 + u32::from(digit == 9) * 9
            } else {
                digit
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// What may stand between a secret and the text around it (never a lone space or dash: a
/// card number would join the digits beside it).
const SEPARATORS: &[&str] = &["\n", "\"", "=", ", ", "\t", " ; ", "'", ": "];

/// One value of the payload: prose, a secret, prose.
fn value() -> impl Strategy<Value = (String, String, String)> {
    let prose = prop_oneof!["\\PC{0,30}", "[ -~]{0,30}", "[a-z .,!?'\"\\\\]{0,30}"];
    (
        prose.clone(),
        select(SEPARATORS),
        select(Detector::ALL.to_vec()),
        any::<u64>(),
        select(SEPARATORS),
        prose,
    )
        .prop_map(|(before, open, detector, seed, close, after)| {
            let (text, secret) = planted(detector, seed);
            (format!("{before}{open}{text}{close}{after}"), secret, text)
        })
}

/// `text` as the inside of a JSON string.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Text a client might send: arbitrary Unicode, or keywords, escapes and digits run together.
fn any_text() -> impl Strategy<Value = String> {
    let fragment = select(vec![
        "AKIA",
        "A3T",
        "ghp_",
        "github_pat_",
        "glpat-",
        "sk-",
        "sk-ant-",
        "sk_live_",
        "xoxb-1",
        "hooks.slack.com",
        "https://",
        "AIza",
        "SG.",
        "npm_",
        "rly_",
        "-----BEGIN ",
        "RSA PRIVATE KEY-----",
        "-----END ",
        "eyJ",
        ".",
        "Bearer ",
        "earer",
        "@",
        "a@b.co",
        "\\n",
        "\\u00e9",
        "\\\"",
        "\\",
        "\n",
        "é",
        "日本",
        "🔑",
        " ",
        "-",
        "_",
        "4111",
        "1111",
        "123-45-",
        "6789",
        "0",
        "7",
        "Zq9",
        "=",
    ]);
    prop_oneof![
        "\\PC{0,200}",
        any::<Vec<u8>>().prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        proptest::collection::vec(fragment, 0..60).prop_map(|parts| parts.concat()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn redaction_keeps_json_valid_and_removes_every_planted_secret(
        values in proptest::collection::vec(value(), 1..6)
    ) {
        let object: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .enumerate()
            .map(|(index, (text, _, _))| (format!("k{index}"), text.clone().into()))
            .collect();
        let json = serde_json::to_string(&object).unwrap();
        let findings = all().scan(&json);
        let redacted = Scanner::redact(&json, &findings);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&redacted).is_ok(), "{redacted}");
        for (_, secret, text) in &values {
            let escaped = json_escaped(secret);
            let at = json.find(&json_escaped(text)).unwrap() + json_escaped(text).find(&escaped).unwrap();
            prop_assert!(
                findings.iter().any(|finding| finding.range.start <= at && at + escaped.len() <= finding.range.end),
                "{escaped} not found whole in {json}: {findings:?}"
            );
        }
        for finding in &findings {
            prop_assert!(!redacted.contains(&json[finding.range.clone()]), "{finding:?} in {redacted}");
        }
        let mut expected = String::new();
        let mut copied_until = 0;
        for finding in &findings {
            expected.push_str(&json[copied_until..finding.range.start]);
            expected.push_str(REDACTED);
            copied_until = finding.range.end;
        }
        expected.push_str(&json[copied_until..]);
        prop_assert_eq!(redacted, expected);
    }

    #[test]
    fn any_text_scans_to_sorted_disjoint_findings_on_char_boundaries(text in any_text()) {
        for scanner in [all(), &*PERSONAL_DATA_ONLY] {
            let findings = scanner.scan(&text);
            for finding in &findings {
                let range = finding.range.clone();
                prop_assert!(range.start < range.end && range.end <= text.len());
                prop_assert!(text.is_char_boundary(range.start) && text.is_char_boundary(range.end));
            }
            prop_assert!(findings.windows(2).all(|pair| pair[0].range.end <= pair[1].range.start));
            let found: usize = findings.iter().map(|finding| finding.range.len()).sum();
            let redacted = Scanner::redact(&text, &findings);
            prop_assert_eq!(redacted.len(), text.len() - found + findings.len() * REDACTED.len());
        }
    }
}

/// About `len` bytes of `unit` repeated.
fn repeated(unit: &str, len: usize) -> String {
    unit.repeat(len / unit.len())
}

const MEGABYTE: usize = 1 << 20;

// The work per keyword is bounded, and a keyword inside a token's run of characters does
// not restart the rule, so these finish in about as long as a megabyte of anything else.
// (They assert on the findings, not on time; the aho-corasick crate is slow in debug builds,
// about 1.5 µs per keyword seen, which is why the other keywords get less text.)

#[test]
fn a_megabyte_of_akia_eyj_or_at_signs_holds_nothing() {
    for unit in ["AKIA", "eyJ", "@"] {
        assert_eq!(all().scan(&repeated(unit, MEGABYTE)), [], "{unit}");
    }
}

#[test]
fn a_megabyte_of_digits_or_begin_lines_holds_nothing() {
    for unit in ["1", "1-", "4111 ", "-----BEGIN"] {
        assert_eq!(all().scan(&repeated(unit, MEGABYTE)), [], "{unit}");
    }
}

#[test]
fn every_other_keyword_repeated_holds_nothing() {
    let units = [
        "A3T",
        "ghp_",
        "github_pat_",
        "glpat-",
        "sk_live_",
        "xoxb-1",
        "hooks.slack.com",
        "https://hooks.slack.com/services/",
        "AIza",
        "sk-",
        "sk-ant-",
        "SG.",
        "npm_",
        "earer",
        "Bearer ",
        "rly_",
        "eyJ.",
        "a@",
        "4111-",
    ];
    for unit in units {
        assert_eq!(all().scan(&repeated(unit, 64 * 1024)), [], "{unit}");
    }
}

#[test]
fn a_megabyte_of_repeated_secrets_finds_each_once() {
    let line = "-----BEGIN PRIVATE KEY-----";
    let text = repeated(line, MEGABYTE);
    let findings = all().scan(&text);
    assert_eq!(findings.len(), text.len() / line.len());
    assert!(
        findings
            .iter()
            .all(|finding| finding.range.len() == line.len())
    );
    let jwts = repeated(&format!("{JWT} "), MEGABYTE);
    assert_eq!(all().scan(&jwts).len(), jwts.len() / (JWT.len() + 1));
}

//! Each detector through the scanner: what it finds, and the near misses it must leave alone.

use std::sync::LazyLock;

use super::*;

/// `len` base62 characters that look random, the same for the same `seed`.
pub(super) fn random_base62(seed: u64, len: usize) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut state = seed;
    (0..len)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            char::from(BASE62[((z ^ (z >> 31)) % 62) as usize])
        })
        .collect()
}

pub(super) const JWT: &str = concat!(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.",
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
);

/// A scanner running every detector (built once: compiling the shapes is the slow part).
pub(super) fn all() -> &'static Scanner {
    static ALL: LazyLock<Scanner> = LazyLock::new(|| Scanner::new(&Detector::ALL));
    &ALL
}

/// What `scanner` finds in `text`, as (id, text found).
fn found<'a>(scanner: &Scanner, text: &'a str) -> Vec<(&'static str, &'a str)> {
    scanner
        .scan(text)
        .into_iter()
        .map(|finding| (finding.detector.id(), &text[finding.range]))
        .collect()
}

/// Asserts that `secret`, written inside a JSON string, is found whole by `detector`.
#[track_caller]
fn finds(detector: Detector, secret: &str) {
    let text = format!(r#"{{"msg":"look: {secret} ok","n":1}}"#);
    assert_eq!(found(all(), &text), [(detector.id(), secret)], "{text}");
}

/// Asserts that nothing is found in `text`.
#[track_caller]
fn finds_nothing(text: &str) {
    assert_eq!(found(all(), text), [], "{text}");
}

#[test]
fn a_scanner_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    shared(all());
}

#[test]
fn aws_access_keys_are_found_but_the_documentation_examples_are_not() {
    finds(Detector::AwsAccessKey, "AKIAZ2QW7XKJ4HBLQ5NM");
    finds(Detector::AwsAccessKey, "ASIAY34FZKBOKMUTVV7A");
    finds(Detector::AwsAccessKey, "A3TXZ2QW7XKJ4HBLQ5NM");
    finds_nothing("AKIAIOSFODNN7EXAMPLE");
    finds_nothing("ASIAQWERTYUIOEXAMPLE");
    finds_nothing("AKIAZ2QW7XKJ4HBLQ5NMX");
    finds_nothing("XAKIAZ2QW7XKJ4HBLQ5NM");
    finds_nothing("AKIAZ2QW7XKJ4HBLQ5N");
    finds_nothing("AKIAZ2QW7XKJ4HBLQ5N0");
}

#[test]
fn github_tokens_are_found_and_short_ones_are_not() {
    for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        finds(
            Detector::GithubToken,
            &format!("{prefix}{}", random_base62(1, 36)),
        );
    }
    let fine_grained = format!(
        "github_pat_{}_{}",
        random_base62(2, 22),
        random_base62(3, 59)
    );
    finds(Detector::GithubToken, &fine_grained);
    finds_nothing(&format!("ghp_{}", random_base62(1, 35)));
    finds_nothing(&format!("ghp_{}", random_base62(1, 37)));
    finds_nothing(&format!("ghx_{}", random_base62(1, 36)));
}

#[test]
fn gitlab_tokens_are_found() {
    finds(Detector::GitlabPat, "glpat-x8Kd_2mQ-pL0vZ7nR4sT");
    finds_nothing("glpat-x8Kd_2mQ-pL0vZ7nR4s");
}

#[test]
fn stripe_keys_are_found() {
    for prefix in ["sk_live_", "sk_test_", "rk_live_", "rk_test_"] {
        finds(
            Detector::StripeKey,
            &format!("{prefix}{}", random_base62(4, 24)),
        );
    }
    finds(
        Detector::StripeKey,
        &format!("sk_live_{}", random_base62(4, 99)),
    );
    finds_nothing(&format!("sk_live_{}", random_base62(4, 23)));
    finds_nothing(&format!("pk_live_{}", random_base62(4, 24)));
}

#[test]
fn slack_tokens_and_webhooks_are_found() {
    finds(
        Detector::SlackToken,
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    );
    finds(
        Detector::SlackToken,
        "xapp-1-A0123456789-1234567890123-abcdef0123",
    );
    finds_nothing("xoxb-not-a-token-at-all");
    finds_nothing("xoxb-12345");
    let webhook = "https://hooks.slack.com/services/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";
    finds(Detector::SlackWebhook, webhook);
    let escaped =
        r"https:\/\/hooks.slack.com\/services\/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";
    finds(Detector::SlackWebhook, escaped);
    finds_nothing("see https://hooks.slack.com/services/ for the docs");
}

#[test]
fn google_openai_anthropic_sendgrid_and_npm_keys_are_found() {
    finds(
        Detector::GoogleApiKey,
        &format!("AIza{}", random_base62(5, 35)),
    );
    finds(Detector::OpenAiKey, &format!("sk-{}", random_base62(6, 48)));
    finds(
        Detector::OpenAiKey,
        &format!("sk-proj-{}", random_base62(7, 120)),
    );
    finds(
        Detector::OpenAiKey,
        &format!(
            "sk-svcacct-{}_{}",
            random_base62(8, 40),
            random_base62(9, 40)
        ),
    );
    finds(
        Detector::AnthropicKey,
        &format!(
            "sk-ant-api03-{}-{}AA",
            random_base62(10, 60),
            random_base62(11, 31)
        ),
    );
    finds(
        Detector::SendgridKey,
        &format!("SG.{}.{}", random_base62(12, 22), random_base62(13, 43)),
    );
    finds(
        Detector::NpmToken,
        &format!("npm_{}", random_base62(14, 36)),
    );
    finds_nothing(&format!("AIza{}", random_base62(5, 34)));
    finds_nothing(&format!("npm_{}", random_base62(14, 35)));
    finds_nothing(&format!(
        "SG.{}-{}",
        random_base62(12, 22),
        random_base62(13, 43)
    ));
}

#[test]
fn sk_prose_and_placeholders_are_no_openai_key() {
    finds_nothing("sk-this-is-definitely-not-a-real-key");
    finds_nothing("sk-your-api-key-goes-here-please");
    finds_nothing("sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    finds_nothing("sk-abc123abc123abc123abc123");
    finds_nothing(&format!("risk-{}", random_base62(6, 48)));
    finds_nothing(&format!("sk-{}", random_base62(6, 19)));
}

#[test]
fn an_anthropic_key_is_not_also_an_openai_key() {
    let key = format!("sk-ant-api03-{}", random_base62(15, 90));
    assert_eq!(found(all(), &key), [("anthropic-key", key.as_str())]);
    let only_openai = Scanner::new(&[Detector::OpenAiKey]);
    assert_eq!(found(&only_openai, &key), []);
}

#[test]
fn private_key_blocks_are_found_whole_with_real_or_escaped_line_breaks() {
    let body = format!(
        "{}\n{}\n{}==",
        random_base62(16, 64),
        random_base62(17, 64),
        random_base62(18, 20)
    );
    for kind in ["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "] {
        let block =
            format!("-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----");
        let text = format!("key:\n{block}\nthanks");
        assert_eq!(found(all(), &text), [("private-key", block.as_str())]);
        let escaped = block.replace('\n', r"\n");
        finds(Detector::PrivateKey, &escaped);
    }
}

#[test]
fn a_private_key_without_its_end_line_is_found_to_the_end_of_its_base64() {
    let block = format!(
        r"-----BEGIN RSA PRIVATE KEY-----\n{}\n{}",
        random_base62(19, 64),
        random_base62(20, 30)
    );
    let text = format!(r#"{{"k":"{block}\n","more":"text"}}"#);
    assert_eq!(found(all(), &text), [("private-key", block.as_str())]);
}

#[test]
fn an_encrypted_pem_s_headers_are_part_of_its_block() {
    let block = format!(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n{}\n-----END RSA PRIVATE KEY-----",
        random_base62(21, 64)
    );
    assert_eq!(found(all(), &block), [("private-key", block.as_str())]);
    finds_nothing(
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    );
}

#[test]
fn jwts_are_found_when_their_header_names_an_algorithm() {
    finds(Detector::Jwt, JWT);
    // {"typ":"JWT"}: no alg.
    finds_nothing(
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
    );
    // A signature of 9 characters.
    finds_nothing("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJS");
}

#[test]
fn a_bearer_token_is_found_without_the_word_bearer() {
    let token = random_base62(22, 40);
    let text = format!(r#"{{"headers":{{"Authorization":"Bearer {token}"}}}}"#);
    assert_eq!(found(all(), &text), [("bearer-token", token.as_str())]);
    let lower = format!("curl -H 'authorization: bearer {token}'");
    assert_eq!(found(all(), &lower), [("bearer-token", token.as_str())]);
    finds_nothing("Bearer authentication-is-required-here");
    finds_nothing(&format!("Bearer {}", random_base62(22, 19)));
    finds_nothing(&format!("Unbearer {token}"));
}

#[test]
fn a_jwt_sent_as_a_bearer_token_is_reported_as_a_jwt() {
    let text = format!("Authorization: Bearer {JWT}");
    assert_eq!(found(all(), &text), [("jwt", JWT)]);
}

#[test]
fn relay_tokens_are_found_only_with_a_right_checksum() {
    let token = crate::guard::generate_token();
    finds(Detector::RelayToken, &token);
    finds(
        Detector::RelayToken,
        &format!("rly_{}2C8GjS", "0".repeat(30)),
    );
    finds_nothing(&format!("rly_{}2C8GjT", "0".repeat(30)));
    finds_nothing(&format!("rly_{}", random_base62(23, 36)));
}

#[test]
fn cards_and_ssns_are_found_when_enabled() {
    finds(Detector::Card, "4111 1111 1111 1111");
    finds(Detector::Card, "5555555555554444");
    finds(Detector::Ssn, "123-45-6789");
    finds_nothing("4111111111111112");
    finds_nothing("666-45-6789");
    finds_nothing("000-45-6789");
    let default = Scanner::new(&[Detector::AwsAccessKey]);
    assert_eq!(found(&default, "4111111111111111 123-45-6789"), []);
}

#[test]
fn emails_are_found_with_a_top_level_domain_and_mentions_are_not() {
    finds(Detector::Email, "ada.lovelace+relay@example.co.uk");
    finds(Detector::Email, "bob_99@mail-server.example.com");
    let text = r#"{"to":"x\nbob@example.com."}"#;
    assert_eq!(found(all(), text), [("email", "bob@example.com")]);
    finds_nothing("user@localhost");
    finds_nothing("user@host.c");
    finds_nothing("thanks @alice and @bob!");
    finds_nothing("user@.com");
}

#[test]
fn a_secret_inside_an_email_is_covered_by_the_longer_email() {
    let key = format!("npm_{}", random_base62(24, 36));
    let text = format!("{key}@example.com");
    assert_eq!(found(all(), &text), [("email", text.as_str())]);
}

#[test]
fn findings_are_sorted_and_do_not_overlap() {
    let key = "AKIAZ2QW7XKJ4HBLQ5NM";
    let text = format!("b@example.org {JWT} {key} 4111111111111111 a@example.org Bearer {JWT}");
    let findings = all().scan(&text);
    let ids: Vec<&str> = findings
        .iter()
        .map(|finding| finding.detector.id())
        .collect();
    assert_eq!(
        ids,
        ["email", "jwt", "aws-access-key", "card", "email", "jwt"]
    );
    assert!(
        findings
            .windows(2)
            .all(|pair| pair[0].range.end <= pair[1].range.start)
    );
}

#[test]
fn only_the_enabled_detectors_run() {
    let key = "AKIAZ2QW7XKJ4HBLQ5NM";
    let text = format!("{key} {JWT} me@example.com");
    let scanner = Scanner::new(&[Detector::Jwt]);
    assert_eq!(found(&scanner, &text), [("jwt", JWT)]);
    assert_eq!(found(&Scanner::new(&[]), &text), []);
}

#[test]
fn redaction_replaces_each_finding_and_keeps_the_rest() {
    let key = "AKIAZ2QW7XKJ4HBLQ5NM";
    let text = format!(r#"{{"msg":"my key is {key}","auth":"Bearer {JWT}"}}"#);
    let findings = all().scan(&text);
    assert_eq!(
        Scanner::redact(&text, &findings),
        r#"{"msg":"my key is [REDACTED]","auth":"Bearer [REDACTED]"}"#
    );
    assert_eq!(Scanner::redact("clean", &[]), "clean");
}

#[test]
fn redaction_widens_ranges_to_char_boundaries_and_skips_overlaps() {
    let text = "aéb";
    let findings = [
        Finding {
            detector: Detector::Email,
            range: 2..3,
        },
        Finding {
            detector: Detector::Email,
            range: 1..2,
        },
    ];
    assert_eq!(Scanner::redact(text, &findings), "a[REDACTED]b");
}

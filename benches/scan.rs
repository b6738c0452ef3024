//! Micro-benchmarks of the secret scanner (`relay::guard::scan::Scanner::scan`) on payloads of
//! 10 KB shaped like a chat app's events: JSON messages with prose, ids, timestamps, numbers,
//! URLs and hex ids. Run with `cargo bench --bench scan`.
//!
//! Two detector sets: the default one (every credential detector, no personal data) and all
//! of them (card, SSN and email too). A clean payload costs the keyword pass and, with cards
//! or SSNs enabled, the digit pass; `@` mentions are keywords of the email detector, so a
//! payload full of them costs more with email on, and is measured on its own.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay::guard::scan::{Detector, Scanner};

/// The payloads' size.
const PAYLOAD_LEN: usize = 10 * 1024;

const WORDS: &[&str] = &[
    "the",
    "deploy",
    "is",
    "green",
    "again",
    "can",
    "you",
    "review",
    "my",
    "PR",
    "before",
    "lunch",
    "tests",
    "pass",
    "on",
    "CI",
    "but",
    "staging",
    "still",
    "shows",
    "old",
    "build",
    "I",
    "think",
    "cache",
    "needs",
    "a",
    "purge",
    "meeting",
    "moved",
    "to",
    "3pm",
    "thanks",
    "looks",
    "good",
    "merged",
    "ship",
    "it",
    "rollback",
    "done",
    "latency",
    "p99",
    "is",
    "down",
    "to",
    "120ms",
    "after",
    "the",
    "fix",
    "v2.4.1",
    "tagged",
    "for",
    "release",
    "see",
    "ticket",
    "#4821",
    "and",
    "the",
    "dashboard",
    "numbers",
    "12",
    "of",
    "40",
    "users",
    "saw",
    "errors",
    "between",
    "14:02",
    "and",
    "14:09",
    "UTC",
];
const NAMES: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace"];

/// A small deterministic generator (an LCG), so every run measures the same bytes.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % sides as u64) as usize
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.roll(alphabet.len())]))
            .collect()
    }
}

/// One chat message as JSON; `mentions`: how many `@name`s its text has.
fn message(dice: &mut Dice, index: usize, mentions: usize, text_extra: &str) -> String {
    let mut words: Vec<String> = (0..8 + dice.roll(18))
        .map(|_| WORDS[dice.roll(WORDS.len())].to_owned())
        .collect();
    for _ in 0..mentions {
        let at = dice.roll(words.len());
        words.insert(at, format!("@{}", NAMES[dice.roll(NAMES.len())]));
    }
    if dice.roll(4) == 0 {
        words.push(format!(
            "https://github.com/acme/app/pull/{}",
            1000 + dice.roll(9000)
        ));
    }
    if !text_extra.is_empty() {
        words.push(text_extra.to_owned());
    }
    let ulid = dice.chars(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", 26);
    let object_id = dice.chars(b"0123456789abcdef", 24);
    let trace = dice.chars(b"0123456789abcdef", 32);
    let user = 10_000 + dice.roll(90_000);
    format!(
        concat!(
            r#"{{"id":"msg_{}","channel":"presence-room-{}","user":{{"id":"u_{}","name":"{}","#,
            r#""avatar":"https://cdn.example.com/avatars/{}.png"}},"ts":"2024-06-10T14:{:02}:{:02}.{:03}Z","#,
            r#""epoch_ms":{},"text":"{}","reply_to":"{}","trace":"00-{}-01","#,
            r#""reactions":{{"thumbsup":{},"eyes":{}}},"score":0.{}{}}}"#
        ),
        ulid,
        dice.roll(100),
        user,
        NAMES[dice.roll(NAMES.len())],
        user,
        dice.roll(60),
        dice.roll(60),
        dice.roll(1000),
        1_718_030_000_000u64 + index as u64 * 7919,
        words.join(" "),
        object_id,
        trace,
        dice.roll(9),
        dice.roll(4),
        dice.chars(b"0123456789", 15),
        dice.roll(10),
    )
}

/// A 10 KB `{"messages":[…]}` payload; `mentions` per message, and `secrets` put in the texts
/// of messages spread over it.
fn payload(mentions: usize, secrets: &[&str]) -> String {
    let mut dice = Dice(42);
    let mut messages = Vec::new();
    let mut len = r#"{"messages":[]}"#.len();
    while len < PAYLOAD_LEN {
        let index = messages.len();
        // A payload has about 20 messages: secrets in the 4th, 11th and 18th.
        let extra = secrets
            .get(index / 7)
            .filter(|_| index % 7 == 3)
            .copied()
            .unwrap_or("");
        let message = message(&mut dice, index, mentions, extra);
        len += message.len() + 1;
        messages.push(message);
    }
    format!(r#"{{"messages":[{}]}}"#, messages.join(","))
}

fn scans(c: &mut Criterion) {
    let default: Vec<Detector> = Detector::ALL
        .into_iter()
        .filter(|detector| !detector.is_personal_data())
        .collect();
    let sets = [
        ("default", Scanner::new(&default)),
        ("all", Scanner::new(&Detector::ALL)),
    ];
    let jwt = concat!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    );
    let bearer = format!("Authorization: Bearer {jwt}");
    let secrets = [
        "my key is AKIAZ2QW7XKJ4HBLQ5NM oops",
        bearer.as_str(),
        "token ghp_R4nd0mT0k3nV4lu3F0rB3nchm4rk1ngX9q2w",
    ];
    let payloads = [
        ("clean", payload(0, &[])),
        ("clean_with_mentions", payload(1, &[])),
        ("clean_mention_heavy", payload(4, &[])),
        ("three_secrets", payload(1, &secrets)),
    ];
    let mut group = c.benchmark_group("scan");
    for (payload_name, text) in &payloads {
        group.throughput(Throughput::Bytes(text.len() as u64));
        for (set_name, scanner) in &sets {
            let expected = if payload_name.starts_with("clean") {
                0
            } else {
                3
            };
            assert_eq!(
                scanner.scan(text).len(),
                expected,
                "{payload_name} with {set_name}"
            );
            group.bench_function(format!("{payload_name}_10k/{set_name}"), |b| {
                b.iter(|| scanner.scan(std::hint::black_box(text)))
            });
        }
    }
    let (_, text) = &payloads[3];
    let findings = sets[0].1.scan(text);
    group.bench_function("redact_three_secrets_10k", |b| {
        b.iter(|| Scanner::redact(std::hint::black_box(text), &findings))
    });
    group.finish();
    c.bench_function("scan/new/all", |b| {
        b.iter(|| Scanner::new(std::hint::black_box(&Detector::ALL)))
    });
}

criterion_group!(benches, scans);
criterion_main!(benches);

//! The runs of digits the card and SSN detectors look at: digit groups joined by single
//! spaces or dashes, taken whole (maximal), and only those long enough to be an SSN or a
//! card number.
//!
//! Finding them is the cost of those detectors on a clean payload, which has many short
//! numbers (ids, timestamps): a loop over every byte takes about 15 µs per 10 KB of chat. A
//! run worth checking is at least [`SHORTEST_RUN`] bytes long, so [`long_runs`] looks at one
//! byte in that many and traces a run only around a sampled byte that belongs to one
//! (2–4 µs). A test checks it against reading every byte.

/// The fewest bytes of a run worth checking: `ddd-dd-dddd` (card numbers are longer).
pub(super) const SHORTEST_RUN: usize = 11;

/// The runs of `text` at least [`SHORTEST_RUN`] bytes long, in order. Such a run cannot fall
/// between two bytes that many apart, so only those are looked at until one is in a run.
pub(super) fn long_runs(text: &[u8]) -> impl Iterator<Item = DigitRun> + '_ {
    let mut sample = SHORTEST_RUN - 1;
    std::iter::from_fn(move || {
        while sample < text.len() {
            let Some(digit) = digit_of_run_at(text, sample) else {
                sample += SHORTEST_RUN;
                continue;
            };
            let run = DigitRun::at(text, run_start(text, digit));
            // The next run starts after `run.end`: as if the text began there.
            sample = run.end + SHORTEST_RUN - 1;
            if run.end - run.start >= SHORTEST_RUN {
                return Some(run);
            }
        }
        None
    })
}

/// A digit of the run that `text[at]` belongs to, if it belongs to one: `at` itself, or the
/// digit after a separator between two digits.
fn digit_of_run_at(text: &[u8], at: usize) -> Option<usize> {
    let is_digit = |at: usize| text.get(at).is_some_and(u8::is_ascii_digit);
    if is_digit(at) {
        Some(at)
    } else if is_separator(text[at]) && at > 0 && is_digit(at - 1) && is_digit(at + 1) {
        Some(at + 1)
    } else {
        None
    }
}

/// Where the run holding the digit `text[digit]` starts.
fn run_start(text: &[u8], digit: usize) -> usize {
    let mut start = digit;
    loop {
        match text[..start] {
            [.., last] if last.is_ascii_digit() => start -= 1,
            [.., before, joint] if is_separator(joint) && before.is_ascii_digit() => start -= 2,
            _ => return start,
        }
    }
}

/// Whether `byte` may join two digit groups.
fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'-'
}

/// Digit groups joined by single separators, as long as they go.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DigitRun {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) digits: usize,
    pub(super) groups: usize,
    pub(super) shortest_group: usize,
    /// Whether both spaces and dashes join its groups.
    pub(super) mixed_separators: bool,
}

impl DigitRun {
    /// The run that starts at the digit `text[start]`.
    pub(super) fn at(text: &[u8], start: usize) -> Self {
        let mut run = DigitRun {
            start,
            end: start,
            digits: 0,
            groups: 0,
            shortest_group: usize::MAX,
            mixed_separators: false,
        };
        let mut separator = None;
        loop {
            let group = text[run.end..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
            run.end += group;
            run.digits += group;
            run.groups += 1;
            run.shortest_group = run.shortest_group.min(group);
            match (text.get(run.end), text.get(run.end + 1)) {
                (Some(&joint @ (b' ' | b'-')), Some(next)) if next.is_ascii_digit() => {
                    run.mixed_separators |= separator.is_some_and(|seen| seen != joint);
                    separator = Some(joint);
                    run.end += 1;
                }
                _ => return run,
            }
        }
    }

    /// Whether the run is the fraction of a decimal number (`0.4532015112830366`, as
    /// `Math.random()` writes them), which is no card.
    pub(super) fn is_decimal_fraction(&self, text: &[u8]) -> bool {
        self.start >= 2 && text[self.start - 1] == b'.' && text[self.start - 2].is_ascii_digit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every run of `text` long enough to check, by reading every byte.
    fn long_runs_read_byte_by_byte(text: &[u8]) -> Vec<DigitRun> {
        let mut runs = Vec::new();
        let mut at = 0;
        while at < text.len() {
            if !text[at].is_ascii_digit() {
                at += 1;
                continue;
            }
            let run = DigitRun::at(text, at);
            at = run.end;
            if run.end - run.start >= SHORTEST_RUN {
                runs.push(run);
            }
        }
        runs
    }

    proptest::proptest! {
        #[test]
        fn sampling_finds_the_same_runs_as_reading_every_byte(text in "[0-9 a-]{0,120}") {
            let sampled: Vec<DigitRun> = long_runs(text.as_bytes()).collect();
            proptest::prop_assert_eq!(sampled, long_runs_read_byte_by_byte(text.as_bytes()));
        }
    }

    #[test]
    fn a_run_is_traced_back_from_any_of_its_bytes() {
        let text = b"x 12 345-6789012 y";
        let runs: Vec<DigitRun> = long_runs(text).collect();
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].start, runs[0].end), (2, 16));
        assert_eq!(run_start(text, 15), 2);
        assert_eq!(run_start(b"1--2", 3), 3);
    }

    #[test]
    fn the_runs_take_single_separators_between_digits_only() {
        let run = DigitRun::at(b"12 345-6789  0", 0);
        assert_eq!(
            (run.end, run.digits, run.groups, run.shortest_group),
            (11, 9, 3, 2)
        );
        assert!(run.mixed_separators);
        assert_eq!(DigitRun::at(b"12-", 0).end, 2);
    }
}

//! Socket ids: the per-connection identifier, `<digits>.<digits>`.
//!
//! Every official server SDK refuses to sign auth for a socket id that does not match
//! `^\d+\.\d+$`, so both halves are plain unsigned integers.

use std::fmt;

/// A connection's id, unique within the cluster with overwhelming probability (64 random bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    high: u32,
    low: u32,
}

impl SocketId {
    /// A fresh random socket id.
    pub fn random() -> Self {
        SocketId {
            high: rand::random(),
            low: rand::random(),
        }
    }

    /// Parses `<digits>.<digits>`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (high, low) = text.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(high) || !all_digits(low) {
            return None;
        }
        Some(SocketId {
            high: high.parse().ok()?,
            low: low.parse().ok()?,
        })
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.high, self.low)
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_digits_dot_digits_and_round_trip() {
        let id = SocketId::random();
        let text = id.to_string();
        let (a, b) = text.split_once('.').unwrap();
        assert!(a.bytes().all(|c| c.is_ascii_digit()) && !a.is_empty());
        assert!(b.bytes().all(|c| c.is_ascii_digit()) && !b.is_empty());
        assert_eq!(SocketId::parse(&text), Some(id));
    }

    #[test]
    fn parse_rejects_anything_else() {
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "1.2.3",
            "a.1",
            "1.-2",
            " 1.2",
            "99999999999.1",
        ] {
            assert_eq!(SocketId::parse(bad), None, "{bad:?}");
        }
    }
}

//! The bytes of HTTP API request bodies being received at once, bounded server-wide.
//!
//! Each body reserves its bytes here before they are read and gives them back when it is
//! done (the [`Reservation`] is dropped); a reservation that would pass the budget is refused,
//! and the HTTP API answers 503 with `Retry-After` (`http::body_reader`). It lives with the
//! shared state, not in `http`, because the state owns one for the whole server.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes of request bodies being received at once, across the server.
#[derive(Debug)]
pub struct PendingBodies {
    limit: usize,
    reserved: AtomicUsize,
}

/// The budget has no room for a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request-body budget is spent")]
pub struct OverBudget;

/// Bytes reserved for one body; given back on drop.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a PendingBodies,
    bytes: usize,
}

impl PendingBodies {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        PendingBodies {
            limit,
            reserved: AtomicUsize::new(0),
        }
    }

    /// Whether `bytes` more would fit in the budget now (a hint: another request may take
    /// the room before this one reserves it).
    pub fn has_room_for(&self, bytes: usize) -> bool {
        self.reserved
            .load(Ordering::Relaxed)
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limit)
    }

    #[cfg(test)]
    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, if they fit.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation<'_>, OverBudget> {
        let mut reservation = Reservation {
            budget: self,
            bytes: 0,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }
}

impl Reservation<'_> {
    /// The bytes reserved so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reserves `bytes` more, if they fit.
    pub fn grow(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let budget = self.budget;
        budget
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |reserved| {
                reserved
                    .checked_add(bytes)
                    .filter(|total| *total <= budget.limit)
            })
            .map_err(|_| OverBudget)?;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.reserved.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_are_given_back() {
        let budget = PendingBodies::new(100);
        let first = budget.reserve(60).unwrap();
        assert_eq!(budget.reserve(41).unwrap_err(), OverBudget);
        assert!(!budget.has_room_for(41));
        let mut second = budget.reserve(40).unwrap();
        assert_eq!(second.grow(1), Err(OverBudget));
        assert_eq!(budget.reserved(), 100);
        drop(first);
        second.grow(50).unwrap();
        assert_eq!(budget.reserved(), 90);
        drop(second);
        assert_eq!(budget.reserved(), 0);
    }
}

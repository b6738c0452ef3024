//! `max_client_events_per_second`: the client events one connection may send, a GCRA like
//! the app-wide limits, with a burst of one second's worth. Each connection holds its own
//! [`ClientEventLimit`] (one atomic word and the quota), so an event costs no map look-up and
//! no lock; the clock is a parameter, so tests move time instead of sleeping. What a refused
//! client hears (`pusher:error` 4301, the connection kept) is the `ws` module's part.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use super::Direct;

/// One connection's budget of client events.
pub struct ClientEventLimit<C: Clock = DefaultClock> {
    limiter: Direct<C>,
    per_second: NonZeroU32,
}

impl<C: Clock> std::fmt::Debug for ClientEventLimit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEventLimit")
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

impl ClientEventLimit {
    /// `per_second` client events a second, on the real clock.
    pub fn new(per_second: NonZeroU32) -> Self {
        Self::with_clock(per_second, DefaultClock::default())
    }
}

impl<C: Clock> ClientEventLimit<C> {
    /// `per_second` client events a second, on `clock`.
    pub fn with_clock(per_second: NonZeroU32, clock: C) -> Self {
        ClientEventLimit {
            limiter: RateLimiter::direct_with_clock(Quota::per_second(per_second), clock),
            per_second,
        }
    }

    /// Spends one client event; `false` when the connection has used up its rate for now.
    pub fn try_spend(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limit(per_second: u32) -> (ClientEventLimit<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let per_second = NonZeroU32::new(per_second).unwrap();
        (
            ClientEventLimit::with_clock(per_second, clock.clone()),
            clock,
        )
    }

    #[test]
    fn a_connection_gets_a_seconds_burst_then_one_event_per_share_of_a_second() {
        let (limit, clock) = limit(4);
        for n in 0..4 {
            assert!(limit.try_spend(), "event {n} of the burst");
        }
        assert!(!limit.try_spend(), "a fifth at once");
        clock.advance(Duration::from_millis(249));
        assert!(!limit.try_spend(), "not yet a quarter second");
        clock.advance(Duration::from_millis(1));
        assert!(limit.try_spend(), "a quarter second brings one back");
        assert!(!limit.try_spend());
    }

    #[test]
    fn an_idle_connection_gets_its_burst_back_and_no_more() {
        let (limit, clock) = limit(3);
        for _ in 0..3 {
            assert!(limit.try_spend());
        }
        clock.advance(Duration::from_secs(60));
        let admitted = (0..10).filter(|_| limit.try_spend()).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn connections_do_not_share_a_budget() {
        let clock = FakeRelativeClock::default();
        let one = NonZeroU32::new(1).unwrap();
        let first = ClientEventLimit::with_clock(one, clock.clone());
        let second = ClientEventLimit::with_clock(one, clock);
        assert!(first.try_spend());
        assert!(!first.try_spend());
        assert!(
            second.try_spend(),
            "the other connection's budget is its own"
        );
    }
}

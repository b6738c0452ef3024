//! The server side of Pusher keep-alive: ping a client that has been silent for its activity
//! timeout, and close it with 4201 if nothing arrives within the pong timeout.
//!
//! Incoming traffic only records the time ([`KeepAlive::saw_activity`]); the timer is re-armed
//! lazily when it fires, so busy connections pay no timer work per message.

use std::time::Duration;

use tokio::time::Instant;

/// What to do when the keep-alive timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tick {
    /// Nothing is due yet; sleep until the given time.
    Wait(Instant),
    /// Send `pusher:ping`, then sleep until the given time (the pong deadline).
    Ping(Instant),
    /// The ping went unanswered: close with 4201.
    TimedOut,
}

/// Keep-alive state of one connection.
#[derive(Debug)]
pub(super) struct KeepAlive {
    activity_timeout: Duration,
    pong_timeout: Duration,
    last_seen: Instant,
    ping_sent: Option<Instant>,
}

impl KeepAlive {
    /// Starts counting silence from `now`.
    pub fn new(activity_timeout: Duration, pong_timeout: Duration, now: Instant) -> Self {
        KeepAlive {
            activity_timeout,
            pong_timeout,
            last_seen: now,
            ping_sent: None,
        }
    }

    /// When the timer should first fire.
    pub fn first_deadline(&self) -> Instant {
        self.last_seen + self.activity_timeout
    }

    /// Any frame from the client counts as activity (and as the answer to a ping).
    pub fn saw_activity(&mut self, now: Instant) {
        self.last_seen = now;
        self.ping_sent = None;
    }

    /// Decides what the firing timer means at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Tick {
        if let Some(sent) = self.ping_sent {
            let deadline = sent + self.pong_timeout;
            return if now >= deadline {
                Tick::TimedOut
            } else {
                Tick::Wait(deadline)
            };
        }
        let idle_deadline = self.last_seen + self.activity_timeout;
        if now >= idle_deadline {
            self.ping_sent = Some(now);
            Tick::Ping(now + self.pong_timeout)
        } else {
            Tick::Wait(idle_deadline)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn pings_after_silence_then_times_out_without_an_answer() {
        let start = Instant::now();
        let mut keepalive = KeepAlive::new(10 * SECOND, 3 * SECOND, start);
        assert_eq!(keepalive.first_deadline(), start + 10 * SECOND);
        assert_eq!(
            keepalive.on_timer(start + 10 * SECOND),
            Tick::Ping(start + 13 * SECOND)
        );
        assert_eq!(
            keepalive.on_timer(start + 12 * SECOND),
            Tick::Wait(start + 13 * SECOND)
        );
        assert_eq!(keepalive.on_timer(start + 13 * SECOND), Tick::TimedOut);
    }

    #[test]
    fn activity_postpones_the_ping_and_answers_it() {
        let start = Instant::now();
        let mut keepalive = KeepAlive::new(10 * SECOND, 3 * SECOND, start);
        keepalive.saw_activity(start + 5 * SECOND);
        assert_eq!(
            keepalive.on_timer(start + 10 * SECOND),
            Tick::Wait(start + 15 * SECOND)
        );
        assert_eq!(
            keepalive.on_timer(start + 15 * SECOND),
            Tick::Ping(start + 18 * SECOND)
        );
        keepalive.saw_activity(start + 16 * SECOND);
        assert_eq!(
            keepalive.on_timer(start + 18 * SECOND),
            Tick::Wait(start + 26 * SECOND)
        );
    }
}

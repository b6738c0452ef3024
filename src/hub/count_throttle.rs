//! When to announce a channel's subscription count (`pusher_internal:subscription_count`).
//!
//! Pusher announces every change while a channel has at most 100 subscribers, and at most once
//! per 5 seconds above that. A change inside the quiet window is not lost: one announcement
//! is scheduled for the window's end, and it carries the count as it is then.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::ChannelName;

/// Counts up to this are announced on every change.
pub const ALWAYS_ANNOUNCED_UP_TO: usize = 100;
/// The shortest time between two announcements above that.
pub const QUIET_WINDOW: Duration = Duration::from_secs(5);

/// What to do about one change of a channel's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Announce now.
    Now,
    /// Announce the count at this time (the caller schedules it).
    At(Instant),
    /// An announcement is already scheduled; it will carry this change.
    AlreadyScheduled,
}

/// The announcement state of one app's channels.
#[derive(Debug, Default)]
pub struct CountThrottle {
    channels: Mutex<HashMap<ChannelName, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    last_announced: Instant,
    scheduled: bool,
}

impl CountThrottle {
    /// Decides how to announce that `channel` now has `count` subscribers.
    pub fn on_change(&self, channel: &ChannelName, count: usize, now: Instant) -> Announce {
        let mut channels = self.lock();
        if count == 0 {
            channels.remove(channel);
            return Announce::Now;
        }
        let window = channels.get(channel).copied();
        let decision = match window {
            Some(window) if window.scheduled => Announce::AlreadyScheduled,
            Some(window)
                if count > ALWAYS_ANNOUNCED_UP_TO && now < window.last_announced + QUIET_WINDOW =>
            {
                Announce::At(window.last_announced + QUIET_WINDOW)
            }
            _ => Announce::Now,
        };
        let entry = channels.entry(channel.clone()).or_insert(Window {
            last_announced: now,
            scheduled: false,
        });
        match decision {
            Announce::Now => entry.last_announced = now,
            Announce::At(_) => entry.scheduled = true,
            Announce::AlreadyScheduled => {}
        }
        decision
    }

    /// Records that the scheduled announcement for `channel` went out at `now`.
    pub fn on_scheduled_sent(&self, channel: &ChannelName, now: Instant) {
        if let Some(window) = self.lock().get_mut(channel) {
            window.last_announced = now;
            window.scheduled = false;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelName, Window>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> ChannelName {
        ChannelName::parse("busy", 164).unwrap()
    }

    #[test]
    fn small_channels_announce_every_change() {
        let throttle = CountThrottle::default();
        let t0 = Instant::now();
        for (i, count) in [1, 2, 100, 99].into_iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64);
            assert_eq!(throttle.on_change(&channel(), count, now), Announce::Now);
        }
    }

    #[test]
    fn large_channels_announce_at_most_once_per_window_and_never_drop_the_last_change() {
        let throttle = CountThrottle::default();
        let t0 = Instant::now();
        assert_eq!(throttle.on_change(&channel(), 101, t0), Announce::Now);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            throttle.on_change(&channel(), 102, t1),
            Announce::At(t0 + QUIET_WINDOW)
        );
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(
            throttle.on_change(&channel(), 103, t2),
            Announce::AlreadyScheduled
        );
        let sent = t0 + QUIET_WINDOW;
        throttle.on_scheduled_sent(&channel(), sent);
        let t3 = sent + Duration::from_secs(1);
        assert_eq!(
            throttle.on_change(&channel(), 104, t3),
            Announce::At(sent + QUIET_WINDOW)
        );
        let t4 = sent + QUIET_WINDOW + Duration::from_secs(6);
        throttle.on_scheduled_sent(&channel(), sent + QUIET_WINDOW);
        assert_eq!(throttle.on_change(&channel(), 105, t4), Announce::Now);
    }

    #[test]
    fn an_emptied_channel_is_forgotten() {
        let throttle = CountThrottle::default();
        let t0 = Instant::now();
        throttle.on_change(&channel(), 150, t0);
        assert_eq!(throttle.on_change(&channel(), 0, t0), Announce::Now);
        assert_eq!(throttle.on_change(&channel(), 150, t0), Announce::Now);
    }
}

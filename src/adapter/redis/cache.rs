//! Cache channels across the cluster: each channel's last event lives in Redis (an expiring
//! hash), and storing it and publishing it are one script, so every node sees the same last
//! event.
//!
//! The event reaches every node through Redis, the publisher's included (`E1`, see
//! [`envelope`](super::envelope)), rather than being delivered locally first: a new subscriber
//! reads the last event with a script that also publishes a marker, and takes its place in
//! the channel's stream at that marker (as a presence joiner does). So it gets exactly the
//! events stored after the one it was greeted with, never an older one after a newer, and none
//! twice. While Redis is away a node falls back on its own cache (the [`LocalAdapter`]'s).
//!
//! [`LocalAdapter`]: crate::adapter::LocalAdapter

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::Instant;

use super::envelope::{self, NodeId};
use super::keys::Keys;
use super::link::Link;
use super::scripts::Scripts;
use super::subscriptions::{Hold, Marker, Pin, Subscriptions};
use crate::hub::CachedEvent;
use crate::protocol::{ChannelName, SocketId};

/// How long a read waits for its marker after the script answered.
const MARKER_WAIT: Duration = Duration::from_secs(2);

/// The cluster's cache channels, as one node uses them.
pub struct ClusterCache {
    pub node: NodeId,
    pub keys: Keys,
    pub link: Arc<Link>,
    pub scripts: Arc<Scripts>,
    pub subscriptions: Arc<Subscriptions>,
}

impl ClusterCache {
    /// Stores `event` as `channel`'s last and publishes it to every node; `false` when Redis
    /// did not take it (the caller then serves this node alone).
    pub async fn publish(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: &CachedEvent,
        except: Option<SocketId>,
    ) -> bool {
        let ttl_ms = event.ttl_left(Instant::now()).as_millis().max(1) as u64;
        let stored: Option<i64> = self
            .link
            .invoke(
                self.scripts
                    .cache_event
                    .key(self.keys.cache(app_id, channel.as_str()))
                    .arg(&*event.frame)
                    .arg(&event.data)
                    .arg(ttl_ms)
                    .arg(self.keys.pubsub(app_id, channel.as_str()))
                    .arg(envelope::encode_cached(except, &event.frame)),
            )
            .await;
        stored.is_some()
    }

    /// Reads `channel`'s last event where this node's socket takes its place in the stream
    /// (`pin` says the subscription is acknowledged): the event, and the hold to drop once
    /// the socket is in the hub. When Redis did not answer, the marker, to be dropped once the
    /// socket is in the hub (it keeps the subscription meanwhile).
    pub async fn read_at_marker(
        &self,
        app_id: &str,
        channel: &ChannelName,
        pin: Pin,
    ) -> Result<(Option<CachedEvent>, Hold), Marker> {
        let marker = self.subscriptions.expect_marker(pin);
        let read: Option<Vec<String>> = self
            .link
            .invoke(
                self.scripts
                    .read_cache
                    .key(self.keys.cache(app_id, channel.as_str()))
                    .arg(self.keys.pubsub(app_id, channel.as_str()))
                    .arg(envelope::encode_join_marker(self.node, marker.token())),
            )
            .await;
        let Some(read) = read else {
            return Err(marker);
        };
        let hold = marker.wait(MARKER_WAIT).await;
        Ok((cached_event(read), hold))
    }

    /// `channel`'s last event, cluster-wide; `None` when Redis did not answer.
    pub async fn read(&self, app_id: &str, channel: &ChannelName) -> Option<Option<CachedEvent>> {
        let read: Vec<String> = self
            .link
            .invoke(
                self.scripts
                    .read_cache
                    .key(self.keys.cache(app_id, channel.as_str()))
                    .arg(self.keys.pubsub(app_id, channel.as_str())),
            )
            .await?;
        Some(cached_event(read))
    }
}

/// The event a read answered (frame, data, ms left), if any.
fn cached_event(read: Vec<String>) -> Option<CachedEvent> {
    let [frame, data, left]: [String; 3] = read.try_into().ok()?;
    let left = Duration::from_millis(left.parse().ok()?);
    Some(CachedEvent {
        frame: ByteString::from(frame),
        data,
        expires_at: Instant::now() + left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_answer_becomes_the_event_or_nothing() {
        let event = cached_event(vec!["{}".into(), "d".into(), "1500".into()]).unwrap();
        assert_eq!((event.frame.as_ref(), event.data.as_str()), ("{}", "d"));
        let left = event.ttl_left(Instant::now());
        assert!(left <= Duration::from_millis(1500) && left > Duration::from_millis(1000));
        assert_eq!(cached_event(Vec::new()), None);
        assert_eq!(
            cached_event(vec!["{}".into(), "d".into(), "soon".into()]),
            None
        );
    }
}

//! What one node publishes to the others for a broadcast: the publishing node's id (so it
//! skips its own message, having delivered it locally already), the socket to leave out, and
//! the frame exactly as the publisher serialized it.
//!
//! `R1|<node id>|<socket id or nothing>|<frame>`: a version tag, two fields that cannot hold
//! `|`, then the frame's bytes untouched, so a receiving node copies them once and parses
//! nothing but the header. `T1|<node id>|`, published on a user's `#server-to-user-` channel,
//! closes that user's connections on every node (`terminate_connections`).
//!
//! Frames that must take their place in the channel's stream on every node, the publisher's
//! included, are published by the Redis scripts that change the state they belong to: `M1|<socket
//! id or nothing>|<frame>` is a presence member event (`presence`), `E1|…` the same for a cache
//! channel's event (`cache`; counted toward the daily quota like any broadcast, which member
//! events are not; so are subscription-count announcements, built by the scripts that move the
//! counts), and `J1|<node id>|<token>` marks where in the stream a read of that state
//! happened (a presence join, a cache channel's last event), so the reading node adds its
//! socket exactly there (the `subscriptions` registry). `W1|1` (online) and `W1|0` (offline),
//! published on a user's `#server-to-user-` channel by the script that moves the user's
//! cluster-wide connection count, go to the user's watchers on every node. Anything else on a Relay
//! channel is ignored (another version, another program publishing on the prefix).

use bytes::Bytes;
use bytestring::ByteString;

use crate::protocol::SocketId;

const TAG: &[u8] = b"R1|";
const TERMINATE_TAG: &[u8] = b"T1|";
const MEMBER_TAG: &[u8] = b"M1|";
const EVENT_TAG: &[u8] = b"E1|";
const WATCHED_TAG: &[u8] = b"W1|";
const MARKER_TAG: &[u8] = b"J1|";

/// A node of the cluster, named by 64 random bits at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(u64);

impl NodeId {
    /// A fresh id for this process.
    pub fn random() -> Self {
        NodeId(rand::random())
    }

    fn parse(text: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        (text.len() == 16)
            .then(|| u64::from_str_radix(text, 16).ok())
            .flatten()
            .map(NodeId)
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A broadcast as received from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// The node that published it.
    pub origin: NodeId,
    /// The connection not to deliver to.
    pub except: Option<SocketId>,
    /// The frame to deliver.
    pub frame: ByteString,
    /// Whether its deliveries count toward the app's daily message quota.
    pub counted: bool,
    /// Whether a Redis script published it with the state it belongs to (`M1`, `E1`).
    pub scripted: bool,
}

/// What another node published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A frame for the channel's subscribers.
    Broadcast(Broadcast),
    /// Close the connections of the user whose channel it came on.
    Terminate {
        /// The node that asked.
        origin: NodeId,
    },
    /// A frame for every node's subscribers but `except` (no node delivered it before).
    ForEveryNode(Broadcast),
    /// The user whose channel it came on came online (`true`) or went offline.
    Watched {
        /// Online or offline.
        online: bool,
    },
    /// Where `origin`'s join number `token` happened in the channel's stream.
    JoinMarker {
        /// The joining node.
        origin: NodeId,
        /// The join's number on that node.
        token: u64,
    },
}

/// The message a presence script publishes for a member event `frame`, leaving out `except`.
pub fn encode_member(except: Option<SocketId>, frame: &str) -> Vec<u8> {
    encode_for_every_node(MEMBER_TAG, except, frame)
}

/// The message a cache script publishes for the event `frame`, leaving out `except`.
pub fn encode_cached(except: Option<SocketId>, frame: &str) -> Vec<u8> {
    encode_for_every_node(EVENT_TAG, except, frame)
}

fn encode_for_every_node(tag: &[u8], except: Option<SocketId>, frame: &str) -> Vec<u8> {
    let except = except.map(|socket| socket.to_string()).unwrap_or_default();
    let mut message = Vec::with_capacity(tag.len() + except.len() + 1 + frame.len());
    message.extend_from_slice(tag);
    message.extend_from_slice(except.as_bytes());
    message.push(b'|');
    message.extend_from_slice(frame.as_bytes());
    message
}

/// The marker a presence script publishes for `origin`'s join number `token`.
pub fn encode_join_marker(origin: NodeId, token: u64) -> Vec<u8> {
    format!("J1|{origin}|{token}").into_bytes()
}

/// The message `origin` publishes to close a user's connections on every node.
pub fn encode_terminate(origin: NodeId) -> Vec<u8> {
    format!("T1|{origin}|").into_bytes()
}

/// What `message` asks, or `None` when it is not one of ours.
pub fn decode_any(message: &[u8]) -> Option<Received> {
    if message.starts_with(TAG) {
        return decode(message).map(Received::Broadcast);
    }
    if let Some(rest) = message.strip_prefix(TERMINATE_TAG) {
        let (origin, rest) = split_field(rest)?;
        return rest.is_empty().then_some(Received::Terminate {
            origin: NodeId::parse(origin)?,
        });
    }
    for (tag, counted) in [(MEMBER_TAG, false), (EVENT_TAG, true)] {
        if let Some(rest) = message.strip_prefix(tag) {
            let (except, frame) = split_field(rest)?;
            return Some(Received::ForEveryNode(Broadcast {
                // Published by a script, for every node alike.
                origin: NodeId(0),
                except: parse_except(except)?,
                frame: ByteString::try_from(Bytes::copy_from_slice(frame)).ok()?,
                counted,
                scripted: true,
            }));
        }
    }
    match message.strip_prefix(WATCHED_TAG) {
        Some(b"1") => return Some(Received::Watched { online: true }),
        Some(b"0") => return Some(Received::Watched { online: false }),
        Some(_) => return None,
        None => {}
    }
    if let Some(rest) = message.strip_prefix(MARKER_TAG) {
        let (origin, token) = split_field(rest)?;
        return Some(Received::JoinMarker {
            origin: NodeId::parse(origin)?,
            token: std::str::from_utf8(token).ok()?.parse().ok()?,
        });
    }
    None
}

/// The socket to leave out, from its field (empty: none); `None` when it is not one.
fn parse_except(field: &[u8]) -> Option<Option<SocketId>> {
    match field {
        b"" => Some(None),
        text => Some(Some(SocketId::parse(std::str::from_utf8(text).ok()?)?)),
    }
}

/// The message `origin` publishes for `frame`, leaving out `except`.
pub fn encode(origin: NodeId, except: Option<SocketId>, frame: &str) -> Vec<u8> {
    use std::io::Write;
    let mut message = Vec::with_capacity(TAG.len() + 16 + 24 + frame.len());
    message.extend_from_slice(TAG);
    let _ = write!(message, "{origin}|");
    if let Some(socket) = except {
        let _ = write!(message, "{socket}");
    }
    message.push(b'|');
    message.extend_from_slice(frame.as_bytes());
    message
}

/// The broadcast in `message`, or `None` when it is not one of ours.
pub fn decode(message: &[u8]) -> Option<Broadcast> {
    let rest = message.strip_prefix(TAG)?;
    let (origin, rest) = split_field(rest)?;
    let (except, frame) = split_field(rest)?;
    Some(Broadcast {
        origin: NodeId::parse(origin)?,
        except: parse_except(except)?,
        frame: ByteString::try_from(Bytes::copy_from_slice(frame)).ok()?,
        counted: true,
        scripted: false,
    })
}

fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'|')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_broadcast_survives_the_trip() {
        let origin = NodeId::random();
        let socket = SocketId::random();
        let frame = r#"{"event":"a|b","channel":"c","data":"{\"x\":1}"}"#;
        let decoded = decode(&encode(origin, Some(socket), frame)).unwrap();
        assert_eq!(
            decoded,
            Broadcast {
                origin,
                except: Some(socket),
                frame: ByteString::from(frame),
                counted: true,
                scripted: false,
            }
        );
        assert_eq!(decode(&encode(origin, None, "")).unwrap().except, None);
    }

    #[test]
    fn a_terminate_request_is_told_from_a_broadcast() {
        let origin = NodeId::random();
        assert_eq!(
            decode_any(&encode_terminate(origin)),
            Some(Received::Terminate { origin })
        );
        assert!(matches!(
            decode_any(&encode(origin, None, "{}")),
            Some(Received::Broadcast(_))
        ));
        assert_eq!(decode_any(b"T1|0123456789abcdef|extra"), None);
        assert_eq!(decode_any(b"T1|nonsense|"), None);
    }

    #[test]
    fn member_events_and_join_markers_are_told_apart() {
        let socket = SocketId::random();
        let frame = r#"{"event":"pusher_internal:member_added","channel":"presence-a|b"}"#;
        let Some(Received::ForEveryNode(member)) = decode_any(&encode_member(Some(socket), frame))
        else {
            panic!("not a member event");
        };
        assert_eq!(member.except, Some(socket));
        assert_eq!(member.frame, frame);
        assert!(
            !member.counted,
            "member events are not messages of the quota"
        );
        let Some(Received::ForEveryNode(event)) = decode_any(&encode_cached(None, "{}")) else {
            panic!("not a cache event");
        };
        assert_eq!((event.except, event.counted), (None, true));
        let origin = NodeId::random();
        assert_eq!(
            decode_any(&encode_join_marker(origin, 42)),
            Some(Received::JoinMarker { origin, token: 42 })
        );
        assert_eq!(
            decode_any(b"W1|1"),
            Some(Received::Watched { online: true })
        );
        assert_eq!(
            decode_any(b"W1|0"),
            Some(Received::Watched { online: false })
        );
        for foreign in [
            &b"W1|2"[..],
            b"W1|",
            b"J1|0123456789abcdef|x",
            b"J1|0123|1",
            b"M1|x.y|{}",
            b"E1|x|{}",
        ] {
            assert_eq!(decode_any(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn foreign_messages_are_ignored() {
        for message in [
            &b"hello"[..],
            b"R1|",
            b"R1|0123|1.2|{}",
            b"R1|0123456789abcdef|x.y|{}",
            b"R1|0123456789abcdef|1.2",
            b"R2|0123456789abcdef|1.2|{}",
            b"R1|0123456789abcdef||\xff",
        ] {
            assert_eq!(decode(message), None, "{message:?}");
        }
    }

    proptest! {
        #[test]
        fn any_frame_and_origin_round_trip(frame in ".*", origin in any::<u64>(), high in any::<u32>()) {
            let origin = NodeId(origin);
            let except = SocketId::parse(&format!("{high}.7"));
            let decoded = decode(&encode(origin, except, &frame)).unwrap();
            prop_assert_eq!(decoded.origin, origin);
            prop_assert_eq!(decoded.except, except);
            prop_assert_eq!(decoded.frame.as_ref() as &str, frame.as_str());
        }

        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut message = b"R1|".to_vec();
            message.extend(bytes);
            let _ = decode(&message);
        }
    }
}

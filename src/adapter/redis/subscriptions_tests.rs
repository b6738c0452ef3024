//! The registry against a scripted link: each command waits until the test answers it.

use std::sync::Mutex as StdMutex;

use bytestring::ByteString;
use tokio::sync::oneshot;

use super::*;
use crate::adapter::redis::envelope::{self, encode};
use crate::adapter::redis::roster::{Reconcile, Roster};
use crate::hub::{TestOutbox, Unreported};
use crate::protocol::{SocketId, frames};

/// Commands as the test sees them: their name and the switch that answers them.
#[derive(Default)]
struct ScriptedLink {
    generation: StdMutex<Option<u64>>,
    sent: StdMutex<Vec<(&'static str, String, oneshot::Sender<bool>)>>,
}

impl ScriptedLink {
    fn up(generation: u64) -> Arc<Self> {
        let link = ScriptedLink::default();
        *link.generation.lock().unwrap() = Some(generation);
        Arc::new(link)
    }

    fn command(&self, kind: &'static str, name: String) -> BoxFuture<'static, Sent> {
        let (answer, answered) = oneshot::channel();
        let generation = *self.generation.lock().unwrap();
        self.sent.lock().unwrap().push((kind, name, answer));
        Box::pin(async move {
            Sent {
                generation,
                acknowledged: answered.await.unwrap_or(false),
            }
        })
    }

    /// Answers the oldest unanswered command, which must be `kind` on `name`.
    fn answer(&self, kind: &str, name: &str, acknowledged: bool) {
        let (sent_kind, sent_name, answer) = self.sent.lock().unwrap().remove(0);
        assert_eq!((sent_kind, sent_name.as_str()), (kind, name));
        answer.send(acknowledged).unwrap();
    }

    fn pending(&self) -> Vec<(&'static str, String)> {
        let sent = self.sent.lock().unwrap();
        sent.iter().map(|(k, n, _)| (*k, n.clone())).collect()
    }
}

impl PubSubCommands for ScriptedLink {
    fn generation(&self) -> Option<u64> {
        *self.generation.lock().unwrap()
    }
    fn subscribe(&self, name: String) -> BoxFuture<'static, Sent> {
        self.command("SUBSCRIBE", name)
    }
    fn unsubscribe(&self, name: String) -> BoxFuture<'static, Sent> {
        self.command("UNSUBSCRIBE", name)
    }
}

const NAME: &str = "relay:1:news";

fn channel() -> ChannelName {
    ChannelName::parse("news", 164).unwrap()
}

fn setup(link: &Arc<ScriptedLink>) -> (Arc<Subscriptions>, Arc<Hub>) {
    let hub = Arc::new(Hub::default());
    let registry = Subscriptions::new(NodeId::random(), hub.clone(), link.clone(), 1024);
    (registry, hub)
}

fn from_elsewhere(frame: &str) -> Vec<u8> {
    encode(NodeId::random(), None, frame)
}

/// A task pinning `NAME` of app 1, as a subscribing socket does.
fn spawn_pin(registry: &Arc<Subscriptions>) -> tokio::task::JoinHandle<Pin> {
    let registry = registry.clone();
    tokio::spawn(async move { registry.pin(NAME.to_owned(), "1", &channel()).await })
}

/// Adds `socket` to `NAME`'s channel in the hub, delivering to `queue`, greeted with `greeting`.
fn add_socket(hub: &Hub, socket: SocketId, queue: &TestOutbox, greeting: Option<&ByteString>) {
    let outbox = queue.outbox().clone();
    hub.app("1")
        .subscribe(&channel(), socket, outbox, greeting, &Unreported);
}

/// Lets spawned tasks run until they wait again.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_subscriber_is_greeted_after_the_acknowledgement_and_misses_nothing_after_it() {
    let link = ScriptedLink::up(1);
    let (registry, hub) = setup(&link);
    let pinning = spawn_pin(&registry);
    settle().await;
    assert_eq!(link.pending(), [("SUBSCRIBE", NAME.to_owned())]);
    assert!(!pinning.is_finished(), "greeted before Redis acknowledged");
    link.answer("SUBSCRIBE", NAME, true);
    let pin = pinning.await.unwrap();
    // Read before the socket is in the hub: held, not lost.
    registry.deliver(NAME, &from_elsewhere("early"));
    let queue = TestOutbox::new(8);
    let greeting = ByteString::from_static("greeting");
    add_socket(&hub, SocketId::random(), &queue, Some(&greeting));
    drop(pin);
    registry.deliver(NAME, &from_elsewhere("late"));
    let frames: Vec<_> = std::iter::from_fn(|| queue.next_text()).collect();
    assert_eq!(frames, ["greeting", "early", "late"]);
}

#[tokio::test]
async fn a_nodes_own_messages_and_foreign_ones_are_skipped() {
    let link = ScriptedLink::up(1);
    let node = NodeId::random();
    let hub = Arc::new(Hub::default());
    let registry = Subscriptions::new(node, hub.clone(), link.clone(), 1024);
    let pinning = spawn_pin(&registry);
    settle().await;
    link.answer("SUBSCRIBE", NAME, true);
    let pin = pinning.await.unwrap();
    let queue = TestOutbox::new(8);
    let socket = SocketId::random();
    add_socket(&hub, socket, &queue, None);
    drop(pin);
    registry.deliver(NAME, &encode(node, None, "mine"));
    registry.deliver(NAME, b"not a broadcast");
    registry.deliver(NAME, &encode(NodeId::random(), Some(socket), "not for me"));
    registry.deliver("relay:1:other", &from_elsewhere("other channel"));
    registry.deliver(NAME, &from_elsewhere("for me"));
    assert_eq!(queue.next_text().as_deref(), Some("for me"));
    assert_eq!(queue.next_text(), None);
}

#[tokio::test]
async fn the_last_subscriber_leaving_unsubscribes_and_a_newcomer_meanwhile_resubscribes() {
    let link = ScriptedLink::up(1);
    let (registry, hub) = setup(&link);
    let pinning = spawn_pin(&registry);
    settle().await;
    link.answer("SUBSCRIBE", NAME, true);
    let socket = SocketId::random();
    let queue = TestOutbox::new(8);
    add_socket(&hub, socket, &queue, None);
    drop(pinning.await.unwrap());
    assert!(link.pending().is_empty());

    hub.app("1").unsubscribe("news", socket, &Unreported);
    registry.release(NAME);
    assert_eq!(link.pending(), [("UNSUBSCRIBE", NAME.to_owned())]);
    // A newcomer while the UNSUBSCRIBE is out waits for it, then for a new SUBSCRIBE.
    let newcomer = spawn_pin(&registry);
    settle().await;
    link.answer("UNSUBSCRIBE", NAME, true);
    settle().await;
    assert_eq!(link.pending(), [("SUBSCRIBE", NAME.to_owned())]);
    assert!(!newcomer.is_finished());
    link.answer("SUBSCRIBE", NAME, true);
    let pin = newcomer.await.unwrap();
    drop(pin);
    // Nobody joined the hub after all: the subscription goes again.
    assert_eq!(link.pending(), [("UNSUBSCRIBE", NAME.to_owned())]);
    link.answer("UNSUBSCRIBE", NAME, true);
    settle().await;
    assert_eq!(registry.len(), 0);
}

#[tokio::test]
async fn without_redis_subscribers_are_served_at_once_and_resubscribed_on_reconnection() {
    let link = Arc::new(ScriptedLink::default());
    let (registry, hub) = setup(&link);
    let pin = registry.pin(NAME.to_owned(), "1", &channel()).await;
    let queue = TestOutbox::new(8);
    add_socket(&hub, SocketId::random(), &queue, None);
    drop(pin);
    assert!(link.pending().is_empty());
    *link.generation.lock().unwrap() = Some(2);
    registry.resubscribe_all();
    assert_eq!(link.pending(), [("SUBSCRIBE", NAME.to_owned())]);
    // Delivered straight away while resubscribing: the subscriber was greeted long ago.
    registry.deliver(NAME, &from_elsewhere("after"));
    assert_eq!(queue.next_text().as_deref(), Some("after"));
    link.answer("SUBSCRIBE", NAME, true);
    settle().await;
    assert_eq!(registry.len(), 1);
}

#[tokio::test]
async fn a_newcomer_while_resubscribing_waits_for_the_acknowledgement_and_misses_nothing() {
    let link = Arc::new(ScriptedLink::default());
    let (registry, hub) = setup(&link);
    let pin = registry.pin(NAME.to_owned(), "1", &channel()).await;
    let old = TestOutbox::new(8);
    add_socket(&hub, SocketId::random(), &old, None);
    drop(pin);
    *link.generation.lock().unwrap() = Some(2);
    registry.resubscribe_all();
    let pinning = spawn_pin(&registry);
    settle().await;
    assert!(!pinning.is_finished(), "greeted before Redis acknowledged");
    // Read before the acknowledgement is handled: it may be newer than the newcomer's
    // greeting, so it waits for the newcomer (and the old subscriber with it).
    registry.deliver(NAME, &from_elsewhere("early"));
    assert_eq!(old.next_text(), None);
    link.answer("SUBSCRIBE", NAME, true);
    let pin = pinning.await.unwrap();
    let new = TestOutbox::new(8);
    let greeting = ByteString::from_static("greeting");
    add_socket(&hub, SocketId::random(), &new, Some(&greeting));
    drop(pin);
    registry.deliver(NAME, &from_elsewhere("late"));
    assert_eq!(texts(&new), ["greeting", "early", "late"]);
    assert_eq!(texts(&old), ["early", "late"]);
}

#[tokio::test]
async fn a_pin_given_up_while_waiting_lets_the_channel_go() {
    let link = ScriptedLink::up(1);
    let (registry, _hub) = setup(&link);
    let pinning = spawn_pin(&registry);
    settle().await;
    pinning.abort();
    assert!(pinning.await.is_err_and(|error| error.is_cancelled()));
    link.answer("SUBSCRIBE", NAME, true);
    settle().await;
    // Nobody waits any more: the subscription is dropped at once.
    assert_eq!(link.pending(), [("UNSUBSCRIBE", NAME.to_owned())]);
    link.answer("UNSUBSCRIBE", NAME, true);
    settle().await;
    assert_eq!(registry.len(), 0);
}

#[tokio::test]
async fn a_refused_subscription_serves_locally_and_the_buffer_is_bounded() {
    let link = ScriptedLink::up(1);
    let (registry, _hub) = setup(&link);
    let pinning = spawn_pin(&registry);
    settle().await;
    // Far more than the 1024-byte bound arrives before the acknowledgement.
    for _ in 0..100 {
        registry.deliver(NAME, &from_elsewhere(&"x".repeat(100)));
    }
    {
        let entries = registry.lock();
        let entry = &entries[NAME];
        assert!(entry.buffered_bytes <= 1024);
        assert_eq!(entry.buffer.len() + entry.dropped, 100);
    }
    *link.generation.lock().unwrap() = None;
    link.answer("SUBSCRIBE", NAME, false);
    drop(pinning.await.unwrap());
    // Nobody is subscribed in the hub, and Redis is away: the entry is gone.
    assert_eq!(registry.len(), 0);
}

/// A registry subscribed to `NAME` (acknowledged), one socket in the hub, and the pin of a
/// joiner still to be added; with the node's id, for its markers.
async fn subscribed_with_a_joiner(
    link: &Arc<ScriptedLink>,
) -> (Arc<Subscriptions>, Arc<Hub>, NodeId, TestOutbox, Pin) {
    let hub = Arc::new(Hub::default());
    let node = NodeId::random();
    let registry = Subscriptions::new(node, hub.clone(), link.clone(), 1024);
    let pinning = spawn_pin(&registry);
    settle().await;
    link.answer("SUBSCRIBE", NAME, true);
    let first = pinning.await.unwrap();
    let member = TestOutbox::new(8);
    let socket = SocketId::random();
    add_socket(&hub, socket, &member, None);
    drop(first);
    let pin = registry.pin(NAME.to_owned(), "1", &channel()).await;
    (registry, hub, node, member, pin)
}

fn texts(queue: &TestOutbox) -> Vec<String> {
    std::iter::from_fn(|| queue.next_text())
        .map(|text| text.to_string())
        .collect()
}

#[tokio::test]
async fn a_joiner_gets_exactly_the_messages_after_its_marker() {
    let link = ScriptedLink::up(1);
    let (registry, hub, node, member, pin) = subscribed_with_a_joiner(&link).await;
    let marker = registry.expect_marker(pin);
    registry.deliver(NAME, &envelope::encode_member(None, "before"));
    // Another node's marker with the same number is not this join's.
    registry.deliver(
        NAME,
        &envelope::encode_join_marker(NodeId::random(), marker.token()),
    );
    registry.deliver(NAME, &from_elsewhere("still before"));
    registry.deliver(NAME, &envelope::encode_join_marker(node, marker.token()));
    registry.deliver(NAME, &from_elsewhere("after"));
    let hold = marker.wait(std::time::Duration::from_secs(5)).await;
    // Held: the member already in the channel waits too, so order stays one for everyone.
    assert_eq!(texts(&member), ["before", "still before"]);
    let joiner = TestOutbox::new(8);
    let greeting = ByteString::from_static("snapshot");
    add_socket(&hub, SocketId::random(), &joiner, Some(&greeting));
    drop(hold);
    registry.deliver(NAME, &envelope::encode_member(None, "later"));
    assert_eq!(texts(&joiner), ["snapshot", "after", "later"]);
    assert_eq!(texts(&member), ["after", "later"]);
}

#[tokio::test]
async fn a_marker_lost_with_the_connection_lets_the_joiner_go_on() {
    let link = ScriptedLink::up(1);
    let (registry, _hub, _node, member, pin) = subscribed_with_a_joiner(&link).await;
    let marker = registry.expect_marker(pin);
    registry.resubscribe_all();
    let hold = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        marker.wait(std::time::Duration::from_secs(60)),
    )
    .await
    .expect("released at once, not after the wait");
    // Nothing is held: messages flow.
    registry.deliver(NAME, &from_elsewhere("flows"));
    assert_eq!(texts(&member), ["flows"]);
    drop(hold);
}

#[tokio::test]
async fn a_joiner_that_gives_up_after_its_marker_releases_the_channel() {
    let link = ScriptedLink::up(1);
    let (registry, _hub, node, member, pin) = subscribed_with_a_joiner(&link).await;
    let marker = registry.expect_marker(pin);
    registry.deliver(NAME, &envelope::encode_join_marker(node, marker.token()));
    registry.deliver(NAME, &from_elsewhere("held"));
    assert!(texts(&member).is_empty());
    // The joiner failed (its socket refused) without waiting: the hold goes with it.
    drop(marker);
    assert_eq!(texts(&member), ["held"]);
}

#[tokio::test]
async fn a_join_marker_read_while_confirming_keeps_its_place() {
    let link = ScriptedLink::up(1);
    let (registry, hub) = setup(&link);
    let node = registry.node;
    let (subscriber_pinning, joiner_pinning) = (spawn_pin(&registry), spawn_pin(&registry));
    settle().await;
    link.answer("SUBSCRIBE", NAME, true);
    let (subscriber_pin, joiner_pin) = (
        subscriber_pinning.await.unwrap(),
        joiner_pinning.await.unwrap(),
    );
    registry.deliver(NAME, &from_elsewhere("before"));
    let marker = registry.expect_marker(joiner_pin);
    registry.deliver(NAME, &envelope::encode_join_marker(node, marker.token()));
    registry.deliver(NAME, &from_elsewhere("after"));
    // The plain subscriber is added; confirming ends and the stream runs up to the marker.
    let subscriber = TestOutbox::new(8);
    add_socket(&hub, SocketId::random(), &subscriber, None);
    drop(subscriber_pin);
    assert_eq!(texts(&subscriber), ["before"]);
    let hold = marker.wait(std::time::Duration::from_secs(5)).await;
    let joiner = TestOutbox::new(8);
    let greeting = ByteString::from_static("snapshot");
    add_socket(&hub, SocketId::random(), &joiner, Some(&greeting));
    drop(hold);
    assert_eq!(texts(&joiner), ["snapshot", "after"]);
    assert_eq!(texts(&subscriber), ["after"]);
}

/// A roster as `HGETALL` answers it, with `ids` (string ids, no user info).
fn roster(ids: &[&str]) -> Roster {
    Roster::parse(
        ids.iter()
            .flat_map(|id| [(*id).to_owned(), format!("[\"{id}\",null]")]),
    )
}

/// A member event as a presence script publishes it.
fn member_event(added: bool, id: &str) -> Vec<u8> {
    let id = serde_json::value::RawValue::from_string(format!("\"{id}\"")).unwrap();
    let frame = if added {
        frames::member_added("news", &id, None)
    } else {
        frames::member_removed("news", &id)
    };
    envelope::encode_member(None, &frame)
}

/// The (event, user id) of each member event in `queue`.
fn member_events(queue: &TestOutbox) -> Vec<(String, String)> {
    texts(queue)
        .iter()
        .map(|text| {
            let frame: serde_json::Value = serde_json::from_str(text).unwrap();
            let data: serde_json::Value =
                serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
            let event = frame["event"]
                .as_str()
                .unwrap()
                .trim_start_matches("pusher_internal:");
            (
                event.to_owned(),
                data["user_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits for `pin`'s marker (published by this node), holding the stream there.
async fn hold_at_marker(registry: &Arc<Subscriptions>, node: NodeId, pin: Pin) -> Hold {
    let marker = registry.expect_marker(pin);
    registry.deliver(NAME, &envelope::encode_join_marker(node, marker.token()));
    marker.wait(std::time::Duration::from_secs(5)).await
}

/// A refresh's read of a roster with `ids`, reconciled at its marker.
async fn read_at_marker(registry: &Arc<Subscriptions>, node: NodeId, ids: &[&str], how: Reconcile) {
    let pin = registry.pin(NAME.to_owned(), "1", &channel()).await;
    let hold = hold_at_marker(registry, node, pin).await;
    hold.reconcile(&roster(ids), how);
}

#[tokio::test]
async fn what_subscribers_know_of_the_members_follows_the_stream_and_is_made_up_at_a_marker() {
    let link = ScriptedLink::up(1);
    let (registry, _hub, node, member, pin) = subscribed_with_a_joiner(&link).await;
    // The first joiner's roster is what the subscribers were greeted with: nothing to tell,
    // and a later join's changes nothing.
    let hold = hold_at_marker(&registry, node, pin).await;
    hold.first_roster(&roster(&["a", "b"]));
    drop(hold);
    let pin = registry.pin(NAME.to_owned(), "1", &channel()).await;
    let hold = hold_at_marker(&registry, node, pin).await;
    hold.first_roster(&roster(&["x"]));
    drop(hold);
    assert!(texts(&member).is_empty());
    registry.deliver(NAME, &member_event(true, "c"));
    registry.deliver(NAME, &member_event(false, "a"));
    assert_eq!(member_events(&member).len(), 2);
    // Missed: b left, d joined. Adds are told at once, leaves only by a full read.
    read_at_marker(&registry, node, &["c", "d"], Reconcile::AddsOnly).await;
    assert_eq!(
        member_events(&member),
        [("member_added".into(), "d".into())]
    );
    read_at_marker(&registry, node, &["c", "d"], Reconcile::Full).await;
    assert_eq!(
        member_events(&member),
        [("member_removed".into(), "b".into())]
    );
    // A reading whose marker was never reached tells nothing.
    let pin = registry.pin(NAME.to_owned(), "1", &channel()).await;
    let marker = registry.expect_marker(pin);
    let hold = marker.wait(std::time::Duration::from_millis(1)).await;
    hold.reconcile(&roster(&[]), Reconcile::Full);
    assert!(texts(&member).is_empty());
}

#[tokio::test]
async fn a_message_dropped_from_a_full_buffer_queues_a_read_of_the_roster() {
    let link = ScriptedLink::up(1);
    let (registry, hub) = setup(&link);
    let name = "relay:1:presence-room";
    let room = ChannelName::parse("presence-room", 164).unwrap();
    let pinning = {
        let (registry, room) = (registry.clone(), room.clone());
        tokio::spawn(async move { registry.pin(name.to_owned(), "1", &room).await })
    };
    settle().await;
    link.answer("SUBSCRIBE", name, true);
    let marker = registry.expect_marker(pinning.await.unwrap());
    registry.deliver(
        name,
        &envelope::encode_join_marker(registry.node, marker.token()),
    );
    let hold = marker.wait(std::time::Duration::from_secs(5)).await;
    let queue = TestOutbox::new(8);
    let socket = SocketId::random();
    let outbox = queue.outbox().clone();
    hub.app("1")
        .subscribe(&room, socket, outbox, None, &Unreported);
    hold.first_roster(&roster(&["a"]));
    // Held at the marker: what arrives waits, and more than the 1024-byte bound arrives.
    for _ in 0..20 {
        registry.deliver(name, &from_elsewhere(&"x".repeat(100)));
    }
    drop(hold);
    let due = tokio::time::timeout(std::time::Duration::from_secs(5), registry.refreshes())
        .await
        .expect("a refresh queued");
    let app_id = "1".to_owned();
    assert_eq!(
        due,
        [Refresh::Roster {
            app_id,
            channel: room
        }]
    );
}

//! The registry against a scripted link: each command waits until the test answers it.

use std::sync::Mutex as StdMutex;

use bytestring::ByteString;
use tokio::sync::oneshot;

use super::*;
use crate::adapter::redis::envelope::encode;
use crate::hub::{TestOutbox, Unreported};
use crate::protocol::SocketId;

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
    hub.app("1").subscribe(
        &channel(),
        SocketId::random(),
        queue.outbox().clone(),
        Some(&greeting),
        &Unreported,
    );
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
    hub.app("1").subscribe(
        &channel(),
        socket,
        queue.outbox().clone(),
        None,
        &Unreported,
    );
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
    hub.app("1").subscribe(
        &channel(),
        socket,
        queue.outbox().clone(),
        None,
        &Unreported,
    );
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
    hub.app("1").subscribe(
        &channel(),
        SocketId::random(),
        queue.outbox().clone(),
        None,
        &Unreported,
    );
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

//! The node's connections to Redis, kept up: one multiplexed connection for commands (each
//! broadcast's `PUBLISH`) and one pub/sub connection whose messages go to the
//! [`Subscriptions`]. Neither reconnects by itself (redis-rs leaves that to the caller), so a
//! supervisor does: when either fails, or the pub/sub connection stops answering its
//! keep-alive `PING`, both are dropped and made again with a growing back-off, and every
//! channel with local subscribers is subscribed again. Each pair of connections has a
//! generation, so a reply from a lost pair is known as such.
//!
//! The pub/sub stream redis-rs hands over is fed by its connection driver through a channel
//! with no bound of its own. The reader here hands each message to
//! [`Subscriptions::deliver`] as it comes, which does not wait (it pushes into bounded
//! outboxes or a bounded buffer), so that channel holds more than a few messages only while
//! this node's CPU is behind what Redis sends, or for the round trip of a keep-alive `PING`
//! (awaited here); what other nodes publish, not what a client sends, fills it.
//!
//! Redis being away is logged once, when it goes (and once when it is back); in between the
//! node serves its own clients and [`Link::reachable`] is false (`/ready` says so). The URL
//! may hold a password: logs name only the host and port.
//!
//! The redis crate comes through `deadpool-redis` (the stack's choice), but its pool is not
//! used: every command here is a short non-blocking one, which one multiplexed connection
//! pipelines for the whole node, in the order they were sent (which per-channel order
//! needs), while a pool would spread them over connections and `PING` each one it lends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncConnectionConfig, aio::MultiplexedConnection};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::subscriptions::{PubSubCommands, Sent, Subscriptions};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis may take to answer a command (a publish, a subscription).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The first wait before reconnecting, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Connected {
    generation: u64,
    commands: MultiplexedConnection,
    pubsub: redis::aio::PubSubSink,
}

/// The connections to one Redis, reconnected while the node runs.
pub struct Link {
    client: redis::Client,
    address: String,
    keepalive: Duration,
    current: RwLock<Option<Connected>>,
    generations: AtomicU64,
    broken_generation: AtomicU64,
    broken: Notify,
    up: watch::Sender<bool>,
}

impl Link {
    /// A link to the Redis at `url` (not yet connected: see [`Link::run`]); `address` is
    /// what logs may say of it, `keepalive` how often the pub/sub connection is pinged.
    pub fn new(url: &str, address: String, keepalive: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|error| error.to_string())?;
        Ok(Link {
            client,
            address,
            keepalive,
            current: RwLock::new(None),
            generations: AtomicU64::new(0),
            broken_generation: AtomicU64::new(0),
            broken: Notify::new(),
            up: watch::Sender::new(false),
        })
    }

    /// Whether Redis is connected now.
    pub fn reachable(&self) -> bool {
        *self.up.borrow()
    }

    /// Waits until Redis is connected or `limit` has passed; returns whether it is.
    pub async fn wait_until_reachable(&self, limit: Duration) -> bool {
        let mut up = self.up.subscribe();
        tokio::time::timeout(limit, up.wait_for(|up| *up))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    fn connected(&self) -> Option<Connected> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publishes `message` on `name`; while Redis is away it is not sent (at most once to
    /// the other nodes).
    pub async fn publish(&self, name: String, message: Vec<u8>) {
        let started = std::time::Instant::now();
        let published: Option<i64> = self
            .query(redis::cmd("PUBLISH").arg(name).arg(message))
            .await;
        if published.is_some() {
            let took = started.elapsed().as_secs_f64();
            crate::metrics::global()
                .adapter_publish_seconds
                .observe(took);
        }
    }

    /// Runs `script`; `None` when Redis is away or the script failed (logged at debug; a
    /// failed connection is replaced).
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let connected = self.connected()?;
        let mut commands = connected.commands;
        let answer = script.invoke_async(&mut commands).await;
        self.answered(connected.generation, answer)
    }

    /// Runs one command; `None` as for [`Link::invoke`].
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Option<T> {
        let connected = self.connected()?;
        let mut commands = connected.commands;
        let answer = command.query_async(&mut commands).await;
        self.answered(connected.generation, answer)
    }

    /// The answer of a command sent on the connections of `generation`; a failure that
    /// means the connection is gone has it replaced.
    fn answered<T>(&self, generation: u64, answer: redis::RedisResult<T>) -> Option<T> {
        answer
            .inspect_err(|error| {
                tracing::debug!(%error, "a Redis command failed");
                crate::metrics::global().adapter_errors.inc();
                if error.is_unrecoverable_error() || error.is_timeout() {
                    self.report_broken(generation);
                }
            })
            .ok()
    }

    /// A receiver that sees every change of [`Link::reachable`].
    pub fn watch_reachable(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Marks the connections of `generation` as failed; the supervisor replaces them.
    fn report_broken(&self, generation: u64) {
        self.broken_generation
            .fetch_max(generation, Ordering::AcqRel);
        self.broken.notify_one();
    }

    /// Keeps the connections up until `stop`, handing pub/sub messages to `subscriptions`.
    pub async fn run(self: Arc<Self>, subscriptions: Arc<Subscriptions>, stop: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        let mut reported_away = false;
        loop {
            match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok((connected, messages))) => {
                    let generation = connected.generation;
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(connected);
                    self.up.send_replace(true);
                    if reported_away {
                        crate::metrics::global().adapter_reconnects.inc();
                        tracing::info!(redis = %self.address, "Redis is reachable again; subscriptions restored");
                    } else {
                        tracing::info!(redis = %self.address, "connected to Redis");
                    }
                    backoff = FIRST_BACKOFF;
                    subscriptions.resubscribe_all();
                    let why = self
                        .serve(generation, messages, &subscriptions, &stop)
                        .await;
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
                    self.up.send_replace(false);
                    if stop.is_cancelled() {
                        return;
                    }
                    tracing::warn!(redis = %self.address, why, "lost Redis; serving this node's clients only until it is back");
                    reported_away = true;
                }
                failed => {
                    if !reported_away {
                        let why = match failed {
                            Ok(Err(error)) => error.to_string(),
                            _ => "no answer in time".to_owned(),
                        };
                        tracing::warn!(redis = %self.address, why, "cannot reach Redis; serving this node's clients only and retrying");
                        reported_away = true;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connect(&self) -> redis::RedisResult<(Connected, redis::aio::PubSubStream)> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let commands = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let (pubsub, messages) = self.client.get_async_pubsub().await?.split();
        let generation = self.generations.fetch_add(1, Ordering::AcqRel) + 1;
        Ok((
            Connected {
                generation,
                commands,
                pubsub,
            },
            messages,
        ))
    }

    /// Reads messages until the connections of `generation` fail; says why.
    async fn serve(
        &self,
        generation: u64,
        mut messages: redis::aio::PubSubStream,
        subscriptions: &Subscriptions,
        stop: &CancellationToken,
    ) -> &'static str {
        let mut keepalive = tokio::time::interval(self.keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => subscriptions
                        .deliver(message.get_channel_name(), message.get_payload_bytes()),
                    None => return "the connection closed",
                },
                _ = keepalive.tick() => {
                    let Some(connected) = self.connected() else {
                        return "the connection was dropped";
                    };
                    let mut pubsub = connected.pubsub;
                    let answered = tokio::time::timeout(
                        self.keepalive.max(COMMAND_TIMEOUT),
                        pubsub.ping::<redis::Value>(),
                    )
                    .await;
                    if !matches!(answered, Ok(Ok(_))) {
                        return "no answer to a keep-alive ping";
                    }
                }
                () = self.broken.notified() => {
                    if self.broken_generation.load(Ordering::Acquire) >= generation {
                        return "a command failed";
                    }
                }
                () = stop.cancelled() => return "the node is stopping",
            }
        }
    }
}

/// The link as the subscription registry uses it.
pub struct LinkCommands(pub Arc<Link>);

#[derive(Clone, Copy)]
enum Command {
    Subscribe,
    Unsubscribe,
}

impl LinkCommands {
    fn send(&self, command: Command, name: String) -> BoxFuture<'static, Sent> {
        let Some(connected) = self.0.connected() else {
            return Box::pin(std::future::ready(Sent {
                generation: None,
                acknowledged: false,
            }));
        };
        let link = self.0.clone();
        Box::pin(async move {
            let mut pubsub = connected.pubsub;
            let answered = match command {
                Command::Subscribe => {
                    tokio::time::timeout(COMMAND_TIMEOUT, pubsub.subscribe(&name)).await
                }
                Command::Unsubscribe => {
                    tokio::time::timeout(COMMAND_TIMEOUT, pubsub.unsubscribe(&name)).await
                }
            };
            let acknowledged = matches!(answered, Ok(Ok(())));
            if !acknowledged {
                link.report_broken(connected.generation);
            }
            Sent {
                generation: Some(connected.generation),
                acknowledged,
            }
        })
    }
}

impl PubSubCommands for LinkCommands {
    fn generation(&self) -> Option<u64> {
        self.0.connected().map(|connected| connected.generation)
    }

    fn subscribe(&self, name: String) -> BoxFuture<'static, Sent> {
        self.send(Command::Subscribe, name)
    }

    fn unsubscribe(&self, name: String) -> BoxFuture<'static, Sent> {
        self.send(Command::Unsubscribe, name)
    }
}

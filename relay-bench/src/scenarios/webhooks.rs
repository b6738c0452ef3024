//! `webhooks`: how fast the server delivers webhooks to a receiver of the tool's own, which
//! keeps its connections (`--mode keep-alive`) or closes every one (`--mode close`).
//!
//! N clients each subscribe to K public channels of their own and leave them again, R rounds
//! (subscribe to all K, wait for each `subscription_succeeded`, unsubscribe from all K). Every
//! subscribe occupies a channel and every leave vacates it, so the server owes 2·N·K·R webhook
//! events; its app must send `channel_occupied` and `channel_vacated` to the receiver with
//! `webhook_vacate_delay_ms = 0` (docs/bench-config.toml has such an app). The figures:
//! events delivered per second from the first subscribe to the last receipt, the latency from
//! each subscribe to the arrival of its `channel_occupied`, and the server's CPU per event. The
//! run fails unless every event arrived, signed with the app secret, in per-channel order
//! ([`Ledger`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::webhook_ledger::{ChannelNames, Ledger};
use super::{Launch, collect};
use crate::error::BenchError;
use crate::report::Report;
use crate::socket::PusherSocket;
use crate::target::Target;
use crate::usage::{Meter, ServerProcess, UsageDelta};
use crate::webhook_receiver::{ReceiverMode, WebhookReceiver};

/// Options of the `webhooks` scenario.
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// How the receiver treats its connections.
    #[arg(long, value_enum, default_value_t = ReceiverMode::KeepAlive)]
    pub mode: ReceiverMode,
    /// Address the receiver listens on (the server's webhook URL must point to it).
    #[arg(long, default_value = "127.0.0.1")]
    pub receiver_host: IpAddr,
    /// Port the receiver listens on.
    #[arg(long, default_value_t = 9701)]
    pub receiver_port: u16,
    /// Client sockets.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Public channels of each client's own.
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Times each client occupies and vacates its channels.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Webhook events per second the clients cause, on an open-loop schedule; 0: as fast as
    /// the server answers them (the server then builds up a backlog, which the latency shows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Once the clients are done, seconds without a new webhook after which the missing ones
    /// count as lost (a backlog that is still arriving is waited for, within --timeout).
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &WebhooksArgs,
) -> Result<Report, BenchError> {
    if args.clients == 0 || args.channels == 0 || args.rounds == 0 {
        return Err(BenchError::Incomplete(
            "--clients, --channels and --rounds must be at least 1".into(),
        ));
    }
    let address = SocketAddr::new(args.receiver_host, args.receiver_port);
    let mut receiver = WebhookReceiver::start(address, args.mode, target).await?;
    let names = ChannelNames::new(rand::random(), args.clients, args.channels);
    let (launch, mut ready) = Launch::new(args.concurrency);
    let (go, go_signal) = watch::channel(None);
    // One round of one client is worth 2·K events.
    let slot =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(2.0 * args.channels as f64 / args.rate));
    let tasks: Vec<_> = (0..args.clients)
        .map(|index| {
            let client = Cycler {
                index,
                clients: args.clients,
                channels: names.of_client(index),
                rounds: args.rounds,
                slot,
                go: go_signal.clone(),
            };
            tokio::spawn(client.run(target.clone(), launch.clone()))
        })
        .collect();
    drop(launch);
    ready.wait(args.clients).await?;

    let mut ledger = Ledger::new(names, args.rounds);
    let meter = Meter::start(server)?;
    go.send_replace(Some(Instant::now()));
    let drain = Duration::from_secs(args.drain);
    let sent = receive(&mut receiver, &mut ledger, tasks, drain).await?;
    let usage = meter.read()?;
    summarize(args, &ledger, &sent, receiver.connections(), usage)
}

/// Takes webhooks until the clients are done and every expected event has arrived, or until
/// nothing has arrived for `drain` since the clients were done; returns each client's
/// subscribe times.
async fn receive(
    receiver: &mut WebhookReceiver,
    ledger: &mut Ledger,
    tasks: Vec<JoinHandle<Result<Vec<Instant>, BenchError>>>,
    drain: Duration,
) -> Result<Vec<Vec<Instant>>, BenchError> {
    let mut clients = std::pin::pin!(collect(tasks));
    let mut sent = None;
    let mut deadline = None;
    while sent.is_none() || !ledger.is_complete() {
        tokio::select! {
            results = &mut clients, if sent.is_none() => {
                sent = Some(results?);
                deadline = Some(Instant::now() + drain);
            }
            arrival = receiver.next() => match arrival {
                Some(arrival) => {
                    ledger.record(arrival);
                    if deadline.is_some() {
                        deadline = Some(Instant::now() + drain);
                    }
                }
                None => return Err(BenchError::Receiver("the listener stopped".into())),
            },
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => break,
        }
    }
    Ok(sent.unwrap_or_default())
}

fn summarize(
    args: &WebhooksArgs,
    ledger: &Ledger,
    sent: &[Vec<Instant>],
    connections: usize,
    usage: Option<UsageDelta>,
) -> Result<Report, BenchError> {
    let first = sent.iter().filter_map(|times| times.first()).min().copied();
    let span = match (first, ledger.last_at) {
        (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
        _ => 0.0,
    }
    .max(1e-9);
    let faults = ledger.faults;
    let lost = ledger.lost();
    let mut report = Report::new("webhooks");
    report
        .add("mode", args.mode.as_str())
        .add("clients", args.clients)
        .add("channels", args.channels)
        .add("rounds", args.rounds)
        .add_f64("rate_per_sec", args.rate)
        .add("expected_webhooks", ledger.expected())
        .add("webhooks", ledger.received)
        .add("requests", ledger.requests)
        .add("receiver_connections", connections)
        .add_f64("webhooks_per_sec", ledger.received as f64 / span)
        .add_f64("requests_per_sec", ledger.requests as f64 / span)
        .add_latencies("latency_", &ledger.occupied_latencies(sent))
        .add("lost", lost)
        .add("out_of_order", faults.out_of_order)
        .add("unexpected", faults.unexpected)
        .add("duplicate_requests", ledger.duplicate_requests)
        .add("bad_signatures", faults.bad_signatures)
        .add("malformed", faults.malformed)
        .add_server_usage(usage, "webhook", ledger.received);
    if lost + faults.out_of_order + faults.bad_signatures + faults.malformed > 0 {
        let example = ledger
            .first_malformed
            .as_deref()
            .map(|body| format!(" (first malformed: {body})"))
            .unwrap_or_default();
        return Err(BenchError::Incomplete(format!(
            "{lost} of {} webhook events lost, {} out of order, {} requests with a bad signature, {} malformed{example}",
            ledger.expected(),
            faults.out_of_order,
            faults.bad_signatures,
            faults.malformed
        )));
    }
    Ok(report)
}

/// One client: occupies and vacates its channels, round after round.
struct Cycler {
    index: usize,
    clients: usize,
    channels: Vec<String>,
    rounds: usize,
    /// Time between two rounds' starts across all clients; `None`: as fast as possible.
    slot: Option<Duration>,
    /// Carries the start of the measured phase.
    go: watch::Receiver<Option<Instant>>,
}

impl Cycler {
    /// Connects, waits for the start, runs its rounds; returns when each subscribe was sent,
    /// round after round, each round in channel order.
    async fn run(mut self, target: Target, launch: Launch) -> Result<Vec<Instant>, BenchError> {
        let Some(mut socket) = launch.setup(PusherSocket::connect(&target)).await else {
            return Ok(Vec::new());
        };
        let started = match self.go.wait_for(Option::is_some).await {
            Ok(start) => start.unwrap_or_else(Instant::now),
            Err(_) => return Ok(Vec::new()),
        };
        let mut sent = Vec::with_capacity(self.channels.len() * self.rounds);
        for round in 0..self.rounds {
            if let Some(slot) = self.slot {
                let turn = round * self.clients + self.index;
                sleep_until(started + slot.mul_f64(turn as f64)).await;
            }
            for channel in &self.channels {
                sent.push(Instant::now());
                socket.subscribe(channel, None, None).await?;
            }
            self.await_subscriptions(&mut socket).await?;
            for channel in &self.channels {
                socket.unsubscribe(channel).await?;
            }
        }
        socket.close().await;
        Ok(sent)
    }

    /// Reads until every channel's `subscription_succeeded` has arrived.
    async fn await_subscriptions(&self, socket: &mut PusherSocket) -> Result<(), BenchError> {
        let mut pending = self.channels.len();
        while pending > 0 {
            let event = socket.next_event().await?;
            if event.event == "pusher_internal:subscription_succeeded" {
                pending -= 1;
            }
        }
        Ok(())
    }
}

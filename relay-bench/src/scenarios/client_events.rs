//! `client-events`: pairs of clients on private channels; one sends `client-ping`, the other
//! answers `client-pong`, and the round trip is timed. The app must enable client events, and
//! the interval keeps each socket under Pusher's 10 client events per second.

use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Launch, collect, contains};
use crate::error::BenchError;
use crate::report::{Latencies, Report};
use crate::socket::PusherSocket;
use crate::target::Target;
use crate::usage::{Meter, ServerProcess};

/// Options of the `client-events` scenario.
#[derive(Debug, Args)]
pub struct ClientEventsArgs {
    /// Pairs of clients, each on its own private channel.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Round trips per pair.
    #[arg(long, default_value_t = 20)]
    pub round_trips: usize,
    /// Milliseconds between a pair's round trips.
    #[arg(long, default_value_t = 120)]
    pub interval_ms: u64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &ClientEventsArgs,
) -> Result<Report, BenchError> {
    let (launch, mut ready) = Launch::new(args.concurrency);
    let (go, go_signal) = watch::channel(false);
    let tasks: Vec<_> = (0..args.pairs)
        .map(|index| {
            let pair = Pair {
                channel: format!("private-bench-pair-{index}"),
                round_trips: args.round_trips,
                interval: Duration::from_millis(args.interval_ms),
            };
            tokio::spawn(pair.run(target.clone(), launch.clone(), go_signal.clone()))
        })
        .collect();
    drop(launch);
    ready.wait(args.pairs).await?;

    let meter = Meter::start(server)?;
    let started = Instant::now();
    let _ = go.send(true);
    let results = collect(tasks).await?;
    let elapsed = started.elapsed();
    let usage = meter.read()?;

    let mut latencies = Latencies::default();
    for result in results {
        latencies.extend(result);
    }
    let round_trips = latencies.len();
    let mut report = Report::new("client-events");
    report
        .add("pairs", args.pairs)
        .add("round_trips", round_trips)
        .add_f64(
            "round_trips_per_sec",
            round_trips as f64 / elapsed.as_secs_f64(),
        )
        .add_latencies("round_trip_", &latencies)
        .add_server_usage(usage, "client_event", round_trips * 2);
    Ok(report)
}

/// Two clients on one private channel.
struct Pair {
    channel: String,
    round_trips: usize,
    interval: Duration,
}

impl Pair {
    async fn run(
        self,
        target: Target,
        launch: Launch,
        mut go: watch::Receiver<bool>,
    ) -> Result<Latencies, BenchError> {
        let setup = async {
            let pinger = self.join(&target).await?;
            let ponger = self.join(&target).await?;
            Ok((pinger, ponger))
        };
        let mut latencies = Latencies::with_capacity(self.round_trips);
        let Some((mut pinger, mut ponger)) = launch.setup(setup).await else {
            return Ok(latencies);
        };
        if go.wait_for(|go| *go).await.is_err() {
            return Ok(latencies);
        }
        for round in 0..self.round_trips {
            if round > 0 {
                tokio::time::sleep(self.interval).await;
            }
            let sent = Instant::now();
            let data = format!("bench:{round}");
            pinger
                .trigger_client_event(&self.channel, "client-ping", &data)
                .await?;
            exchange(&mut ponger, "client-ping", &mut pinger).await?;
            ponger
                .trigger_client_event(&self.channel, "client-pong", &data)
                .await?;
            exchange(&mut pinger, "client-pong", &mut ponger).await?;
            latencies.record(sent.elapsed());
        }
        pinger.close().await;
        ponger.close().await;
        Ok(latencies)
    }

    async fn join(&self, target: &Target) -> Result<PusherSocket, BenchError> {
        let mut socket = PusherSocket::connect(target).await?;
        let auth = target.private_auth(socket.socket_id(), &self.channel);
        socket
            .subscribe_and_wait(&self.channel, Some(&auth), None)
            .await?;
        Ok(socket)
    }
}

/// Waits until `receiver` gets the client event `name`, while watching `sender` for the
/// `pusher:error` a server sends when it refuses the event.
async fn exchange(
    receiver: &mut PusherSocket,
    name: &str,
    sender: &mut PusherSocket,
) -> Result<(), BenchError> {
    tokio::select! {
        received = wait_for(receiver, name) => received,
        refused = watch_for_errors(sender) => refused,
    }
}

/// Reads `socket` until it fails; only errors come back (pings are answered).
async fn watch_for_errors(socket: &mut PusherSocket) -> Result<(), BenchError> {
    loop {
        let text = socket.next_text().await?;
        socket.handle(&text).await?;
    }
}

/// Reads until the client event `name` arrives (no JSON parse for it).
async fn wait_for(socket: &mut PusherSocket, name: &str) -> Result<(), BenchError> {
    let quoted = format!("\"{name}\"");
    loop {
        let text = socket.next_text().await?;
        if contains(&text, &quoted) {
            return Ok(());
        }
        socket.handle(&text).await?;
    }
}

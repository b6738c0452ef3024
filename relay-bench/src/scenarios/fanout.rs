//! `fanout`: N subscribers on C public channels; E events triggered through the signed HTTP
//! API (each to every channel), on an open-loop schedule at a fixed rate or as fast as the
//! posters can. Each event carries its scheduled send time, so latency is measured from when
//! the event *should* have been sent: a server that stalls the trigger cannot hide the delay.
//! With `--api-port` the triggers go to another node of a cluster (same host) than the one the
//! subscribers are on, so every delivery crosses the cluster's backend.

use std::time::Duration;

use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Launch, collect, number_after};
use crate::api::ApiClient;
use crate::error::BenchError;
use crate::report::{Latencies, Report};
use crate::socket::PusherSocket;
use crate::target::Target;
use crate::usage::{Meter, ServerProcess, UsageDelta};

/// The marker in each event's data, followed by the send time in µs since the epoch.
const MARKER: &[u8] = b"bench:";

/// Options of the `fanout` scenario.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Subscribing sockets.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Public channels (`bench-fanout-<i>`, at most 100); every event goes to all of them.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Events to trigger.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Events per second on an open-loop schedule; 0 triggers as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// HTTP connections triggering concurrently.
    #[arg(long, default_value_t = 4)]
    pub posters: usize,
    /// Extra bytes of padding in each event's data.
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// Seconds to wait for the last deliveries after the last trigger.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Port of the node that takes the HTTP API triggers, on the same `--host`; the
    /// subscribers stay on `--port`. Default: `--port`.
    #[arg(long)]
    pub api_port: Option<u16>,
    /// PID of the node behind `--api-port`, to report its CPU time and RSS as well
    /// (`api_server_cpu_ms`, `api_server_cpu_us_per_delivery`, `api_server_rss_mib`).
    #[arg(long)]
    pub api_server_pid: Option<u32>,
}

impl FanoutArgs {
    /// Where the triggers go: `--api-port` on the same host, or the subscribers' server.
    fn api_target(&self, target: &Target) -> Target {
        Target {
            port: self.api_port.unwrap_or(target.port),
            ..target.clone()
        }
    }
}

/// What one subscriber saw.
struct Received {
    count: usize,
    latencies: Latencies,
    last: Option<Instant>,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &FanoutArgs,
) -> Result<Report, BenchError> {
    if !(1..=100).contains(&args.channels) {
        return Err(BenchError::Incomplete("--channels must be 1 to 100".into()));
    }
    let channels: Vec<String> = (0..args.channels)
        .map(|i| format!("bench-fanout-{i}"))
        .collect();
    let epoch = Instant::now();
    let (launch, mut ready) = Launch::new(args.concurrency);
    let stop = CancellationToken::new();
    let tasks: Vec<_> = (0..args.subscribers)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let subscriber = Subscriber {
                expected: args.events,
                epoch,
                stop: stop.clone(),
            };
            tokio::spawn(subscriber.run(target.clone(), channel, launch.clone()))
        })
        .collect();
    drop(launch);
    ready.wait(args.subscribers).await?;

    let api = args.api_target(target);
    let meter = Meter::start(server)?;
    let api_meter = Meter::start(args.api_server_pid.map(ServerProcess::new))?;
    let started = Instant::now();
    let reconnects = post_all(&api, args, &channels, epoch, started).await?;
    let posted = started.elapsed();
    let mut collecting = std::pin::pin!(collect(tasks));
    let results = tokio::select! {
        results = &mut collecting => results?,
        () = tokio::time::sleep(Duration::from_secs(args.drain)) => {
            // Subscribers stop where they are; the shortfall is reported below.
            stop.cancel();
            collecting.await?
        }
    };
    let usage = meter.read()?;
    let posting = Posting {
        started,
        took: posted,
        reconnects,
        usage: api_meter.read()?,
    };
    summarize(args, results, &posting, usage)
}

/// How the triggering went.
struct Posting {
    started: Instant,
    took: Duration,
    reconnects: usize,
    /// The `--api-server-pid` node's resource use, when one was given.
    usage: Option<UsageDelta>,
}

fn summarize(
    args: &FanoutArgs,
    results: Vec<Received>,
    posting: &Posting,
    usage: Option<UsageDelta>,
) -> Result<Report, BenchError> {
    let started = posting.started;
    let expected = args.subscribers * args.events;
    let delivered: usize = results.iter().map(|r| r.count).sum();
    let last = results
        .iter()
        .filter_map(|r| r.last)
        .max()
        .unwrap_or(started);
    let span = last.duration_since(started).as_secs_f64().max(1e-9);
    let mut latencies = Latencies::with_capacity(delivered);
    for result in results {
        latencies.extend(result.latencies);
    }
    let mut report = Report::new("fanout");
    report
        .add("subscribers", args.subscribers)
        .add("channels", args.channels)
        .add("events", args.events)
        .add_f64("rate_per_sec", args.rate)
        .add("deliveries", delivered)
        .add_f64("delivered_share", delivered as f64 / expected.max(1) as f64)
        .add_f64("trigger_time_ms", posting.took.as_secs_f64() * 1e3)
        .add("api_reconnects", posting.reconnects)
        .add_f64("deliveries_per_sec", delivered as f64 / span)
        .add_latencies("latency_", &latencies)
        .add_server_usage(usage, "delivery", delivered)
        .add_process_usage("api_server", posting.usage, "delivery", delivered);
    if delivered != expected {
        return Err(BenchError::Incomplete(format!(
            "delivered {delivered} of {expected} events"
        )));
    }
    Ok(report)
}

/// Triggers every event, spread over `--posters` keep-alive connections; returns how many
/// times the posters had to reconnect.
async fn post_all(
    target: &Target,
    args: &FanoutArgs,
    channels: &[String],
    epoch: Instant,
    started: Instant,
) -> Result<usize, BenchError> {
    let posters = args.posters.clamp(1, args.events.max(1));
    let padding = "x".repeat(args.payload);
    let tasks: Vec<_> = (0..posters)
        .map(|poster| {
            let schedule = Schedule {
                first: poster,
                step: posters,
                total: args.events,
                rate: args.rate,
                epoch,
                started,
            };
            let (target, channels, padding) = (target.clone(), channels.to_vec(), padding.clone());
            tokio::spawn(async move {
                let mut api = ApiClient::connect(&target).await?;
                for send_at in schedule.send_times() {
                    let sent_us = schedule.wait_until(send_at).await;
                    let data = format!("bench:{sent_us}:{padding}");
                    let response = api.trigger(&channels, "bench-event", &data).await?;
                    if !(200..300).contains(&response.status) {
                        return Err(BenchError::Http(format!(
                            "trigger answered {}: {}",
                            response.status,
                            response.body_text()
                        )));
                    }
                }
                Ok(api.reconnects())
            })
        })
        .collect();
    Ok(collect(tasks).await?.into_iter().sum())
}

/// Which events one poster sends, and when.
struct Schedule {
    first: usize,
    step: usize,
    total: usize,
    rate: f64,
    epoch: Instant,
    started: Instant,
}

impl Schedule {
    /// The planned send time of each of this poster's events (`None`: as fast as possible).
    fn send_times(&self) -> impl Iterator<Item = Option<Instant>> + '_ {
        (self.first..self.total).step_by(self.step).map(|index| {
            (self.rate > 0.0)
                .then(|| self.started + Duration::from_secs_f64(index as f64 / self.rate))
        })
    }

    /// Waits for the planned time; returns the time the latency is measured from, in µs
    /// since the epoch (the planned time, or now when there is no plan).
    async fn wait_until(&self, send_at: Option<Instant>) -> u64 {
        let at = match send_at {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                at
            }
            None => Instant::now(),
        };
        micros_since(self.epoch, at)
    }
}

fn micros_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

/// One subscribing socket.
struct Subscriber {
    expected: usize,
    epoch: Instant,
    stop: CancellationToken,
}

impl Subscriber {
    async fn run(
        self,
        target: Target,
        channel: String,
        launch: Launch,
    ) -> Result<Received, BenchError> {
        let mut received = Received {
            count: 0,
            latencies: Latencies::with_capacity(self.expected),
            last: None,
        };
        let setup = async {
            let mut socket = PusherSocket::connect(&target).await?;
            socket.subscribe_and_wait(&channel, None, None).await?;
            Ok(socket)
        };
        let Some(mut socket) = launch.setup(setup).await else {
            return Ok(received);
        };
        while received.count < self.expected {
            let text = tokio::select! {
                () = self.stop.cancelled() => break,
                text = socket.next_text() => text?,
            };
            // The hot path: a substring search, no JSON parse.
            if let Some(sent_us) = number_after(&text, MARKER) {
                let now = Instant::now();
                received
                    .latencies
                    .record_micros(micros_since(self.epoch, now).saturating_sub(sent_us));
                received.count += 1;
                received.last = Some(now);
            } else {
                socket.handle(&text).await?;
            }
        }
        socket.close().await;
        Ok(received)
    }
}

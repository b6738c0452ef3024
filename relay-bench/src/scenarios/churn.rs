//! `churn`: connections that come and go. Each of K client slots repeatedly connects,
//! subscribes (a public, a private and a presence channel in turn) and disconnects, for D
//! seconds, while the server's RSS is sampled at a fixed interval. A server that leaks per
//! connection, subscription or presence member grows; one that does not stays flat once warm.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::collect;
use crate::error::BenchError;
use crate::report::Report;
use crate::socket::PusherSocket;
use crate::target::Target;
use crate::usage::{Meter, ServerProcess};

/// Options of the `churn` scenario.
#[derive(Debug, Args)]
pub struct ChurnArgs {
    /// Client slots cycling at once.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Seconds to churn.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// Seconds between RSS samples; the first interval is the warm-up, so the baseline is the
    /// sample taken at its end.
    #[arg(long, default_value_t = 10)]
    pub sample_every: u64,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &ChurnArgs,
) -> Result<Report, BenchError> {
    if args.sample_every == 0 || args.duration < 2 * args.sample_every {
        return Err(BenchError::Incomplete(
            "--duration must cover at least two --sample-every intervals".into(),
        ));
    }
    let meter = Meter::start(server)?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|slot| tokio::spawn(cycle(target.clone(), slot, stop.clone())))
        .collect();
    let mut samples = Vec::new();
    let interval = Duration::from_secs(args.sample_every);
    let mut next = started + interval;
    while next <= started + Duration::from_secs(args.duration) {
        tokio::time::sleep_until(next).await;
        if let Some(usage) = meter.read()? {
            samples.push(usage.rss_bytes);
        }
        next += interval;
    }
    stop.cancel();
    let cycles: u64 = collect(tasks).await?.into_iter().sum();
    let elapsed = started.elapsed();
    let usage = meter.read()?;

    let mut report = Report::new("churn");
    report
        .add("clients", args.clients)
        .add("cycles", cycles)
        .add_f64("cycles_per_sec", cycles as f64 / elapsed.as_secs_f64())
        .add_server_usage(
            usage,
            "cycle",
            usize::try_from(cycles).unwrap_or(usize::MAX),
        );
    if let (Some(&baseline), Some(&last)) = (samples.first(), samples.last()) {
        let max = samples.iter().copied().max().unwrap_or(baseline);
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let percent = |bytes: u64| (bytes as f64 / baseline.max(1) as f64 - 1.0) * 100.0;
        report
            .add("rss_samples", samples.len())
            .add_f64("rss_baseline_mib", mib(baseline))
            .add_f64("rss_last_mib", mib(last))
            .add_f64("rss_max_mib", mib(max))
            .add_f64("rss_drift_pct", percent(last))
            .add_f64("rss_max_over_baseline_pct", percent(max));
    }
    Ok(report)
}

/// One client slot: connect, subscribe, disconnect, until stopped; returns its cycle count.
async fn cycle(target: Target, slot: usize, stop: CancellationToken) -> Result<u64, BenchError> {
    let mut cycles = 0u64;
    while !stop.is_cancelled() {
        let mut socket = PusherSocket::connect(&target).await?;
        let room = slot % 10;
        match cycles % 3 {
            0 => {
                let channel = format!("churn-{room}");
                socket.subscribe_and_wait(&channel, None, None).await?;
            }
            1 => {
                let channel = format!("private-churn-{room}");
                let auth = target.private_auth(socket.socket_id(), &channel);
                socket
                    .subscribe_and_wait(&channel, Some(&auth), None)
                    .await?;
            }
            _ => {
                let channel = format!("presence-churn-{room}");
                let channel_data = json!({"user_id": format!("churn-{slot}-{cycles}")}).to_string();
                let auth = target.presence_auth(socket.socket_id(), &channel, &channel_data);
                socket
                    .subscribe_and_wait(&channel, Some(&auth), Some(&channel_data))
                    .await?;
            }
        }
        socket.close().await;
        cycles += 1;
    }
    Ok(cycles)
}

//! `connect`: open N sockets that each subscribe to a public channel, time until all are
//! subscribed, hold them, and report the server's CPU and RSS per connection.

use std::time::Duration;

use clap::Args;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Launch, collect};
use crate::error::BenchError;
use crate::report::Report;
use crate::socket::PusherSocket;
use crate::target::Target;
use crate::usage::{Meter, ServerProcess};

/// Options of the `connect` scenario.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Sockets to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Public channels the sockets spread over (`bench-connect-<i>`).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Seconds to hold the subscribed sockets before measuring RSS.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &ConnectArgs,
) -> Result<Report, BenchError> {
    let count = args.connections;
    let meter = Meter::start(server)?;
    let started = Instant::now();
    let (launch, mut ready) = Launch::new(args.concurrency);
    let stop = CancellationToken::new();
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let channel = format!("bench-connect-{}", i % args.channels.max(1));
            tokio::spawn(client(
                target.clone(),
                channel,
                launch.clone(),
                stop.clone(),
            ))
        })
        .collect();
    drop(launch);
    ready.wait(count).await?;
    let subscribe_time = started.elapsed();
    let subscribed = meter.read()?;
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let held = meter.read()?;
    stop.cancel();
    collect(tasks).await?;

    let mut report = Report::new("connect");
    report
        .add("connections", count)
        .add_f64(
            "time_to_all_subscribed_ms",
            subscribe_time.as_secs_f64() * 1e3,
        )
        .add_f64(
            "connections_per_sec",
            count as f64 / subscribe_time.as_secs_f64(),
        );
    report.add_server_usage(subscribed, "connection", count);
    if let Some(held) = held {
        report
            .add_f64("server_rss_held_mib", held.rss_bytes as f64 / 1048576.0)
            .add_f64(
                "server_rss_kib_per_connection",
                held.rss_growth as f64 / 1024.0 / count as f64,
            );
    }
    Ok(report)
}

/// One socket: connect and subscribe, then stay idle (answering pings) until told to stop.
async fn client(
    target: Target,
    channel: String,
    launch: Launch,
    stop: CancellationToken,
) -> Result<(), BenchError> {
    let setup = async {
        let mut socket = PusherSocket::connect(&target).await?;
        socket.subscribe_and_wait(&channel, None, None).await?;
        Ok(socket)
    };
    let Some(mut socket) = launch.setup(setup).await else {
        return Ok(());
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            text = socket.next_text() => { socket.handle(&text?).await?; }
        }
    }
    socket.close().await;
    Ok(())
}

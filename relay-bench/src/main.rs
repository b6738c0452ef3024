//! `relay-bench`: a load tool that speaks the Pusher protocol like a real client.
//!
//! It measures any Pusher-compatible server (Relay, Soketi, Sockudo, …) given its host, port
//! and app credentials, so users can size a deployment and compare servers on one machine.
//! Each scenario stops by itself (bounded counts and a `--timeout`), fails loudly with a
//! non-zero exit on any protocol error, and prints a table (or, with `--json`, one JSON
//! object per line). With `--server-pid` it reports the server's CPU time and RSS from
//! `/proc`, so a throughput figure never depends on how fast the load tool itself is.
//!
//! # Layout
//! - [`target`]: where the server is and the app credentials.
//! - [`socket`]: a lean Pusher WebSocket client.
//! - [`api`]: a signed HTTP API client (hyper) on one persistent connection, renewed when
//!   the server closes it.
//! - [`usage`]: the server process's CPU time and RSS.
//! - [`report`]: latency percentiles and the printed result.
//! - [`webhook_receiver`]: the HTTP server that takes the server's webhooks (`webhooks`).
//! - [`scenarios`]: `connect`, `fanout`, `trigger`, `presence`, `client-events`, `churn`,
//!   `webhooks`.

mod api;
mod error;
mod report;
mod scenarios;
mod socket;
mod target;
mod usage;
mod webhook_receiver;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use error::BenchError;
use report::Report;
use scenarios::{
    ChurnArgs, ClientEventsArgs, ConnectArgs, FanoutArgs, PresenceArgs, TriggerArgs, WebhooksArgs,
    churn, client_events, connect, fanout, presence, trigger, webhooks,
};
use target::Target;
use usage::ServerProcess;

/// Load tool for Pusher-compatible servers.
#[derive(Debug, Parser)]
#[command(name = "relay-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    target: Target,
    /// PID of the server process, to report its CPU time and RSS from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Print one JSON object per scenario instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Longest a scenario may run, in seconds, before it fails.
    #[arg(long, global = true, default_value_t = 120)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open N sockets that each subscribe to a channel, then hold them.
    Connect(ConnectArgs),
    /// N subscribers receive E events triggered through the HTTP API.
    Fanout(FanoutArgs),
    /// K concurrent keep-alive clients trigger events to an empty channel.
    Trigger(TriggerArgs),
    /// N members join one presence channel.
    Presence(PresenceArgs),
    /// Pairs of clients exchange client events on private channels.
    ClientEvents(ClientEventsArgs),
    /// Clients connect, subscribe and disconnect over and over; the server's RSS is sampled.
    Churn(ChurnArgs),
    /// Clients occupy and vacate channels; the tool's own receiver takes the webhooks.
    Webhooks(WebhooksArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("relay-bench: cannot raise the open-file limit: {error}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail("runtime", &BenchError::Io(error)),
    };
    let name = scenario_name(&cli.scenario);
    let limit = Duration::from_secs(cli.timeout);
    let outcome = runtime.block_on(async {
        match tokio::time::timeout(limit, run(&cli)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(BenchError::Timeout(format!(
                "did not finish within --timeout {}s",
                cli.timeout
            ))),
        }
    });
    match outcome {
        Ok(report) => {
            report.print(cli.json);
            ExitCode::SUCCESS
        }
        Err(error) => fail(name, &error),
    }
}

async fn run(cli: &Cli) -> Result<Report, BenchError> {
    let server = cli.server_pid.map(ServerProcess::new);
    let target = &cli.target;
    match &cli.scenario {
        Scenario::Connect(args) => connect::run(target, server, args).await,
        Scenario::Fanout(args) => fanout::run(target, server, args).await,
        Scenario::Trigger(args) => trigger::run(target, server, args).await,
        Scenario::Presence(args) => presence::run(target, server, args).await,
        Scenario::ClientEvents(args) => client_events::run(target, server, args).await,
        Scenario::Churn(args) => churn::run(target, server, args).await,
        Scenario::Webhooks(args) => webhooks::run(target, server, args).await,
    }
}

fn scenario_name(scenario: &Scenario) -> &'static str {
    match scenario {
        Scenario::Connect(_) => "connect",
        Scenario::Fanout(_) => "fanout",
        Scenario::Trigger(_) => "trigger",
        Scenario::Presence(_) => "presence",
        Scenario::ClientEvents(_) => "client-events",
        Scenario::Churn(_) => "churn",
        Scenario::Webhooks(_) => "webhooks",
    }
}

fn fail(scenario: &str, error: &BenchError) -> ExitCode {
    eprintln!("relay-bench: {scenario} failed: {error}");
    ExitCode::FAILURE
}

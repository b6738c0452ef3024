//! `trigger`: K concurrent keep-alive clients post signed events to a channel nobody
//! subscribes to, for D seconds; requests per second, latency and the server's CPU per request,
//! and how often the server made a client reconnect (`api_reconnects`). `--data-bytes` makes
//! each event's data a clean chat-like JSON object of that size.

use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::collect;
use crate::api::ApiClient;
use crate::error::BenchError;
use crate::report::{Latencies, Report};
use crate::target::Target;
use crate::usage::{Meter, ServerProcess};

/// Options of the `trigger` scenario.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds to post for.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of each event's `data`: `{}` by default; larger, a chat-like JSON object of about
    /// that size with no secret in it (what a payload scanner must get through quickly).
    #[arg(long, default_value_t = 2)]
    pub data_bytes: usize,
}

/// Chat-like JSON of about `bytes` bytes (at least `{}`): messages with prose, ids and times.
fn event_data(bytes: usize) -> String {
    const MESSAGE: &str = r#"{"id":"m-1042","user":"ada","at":"2026-12-02T10:04:11Z","text":"see you at the standup, the deploy of build 7731 went fine"}"#;
    if bytes <= 2 {
        return "{}".to_owned();
    }
    let count = (bytes / (MESSAGE.len() + 1)).max(1);
    format!("{{\"messages\":[{}]}}", vec![MESSAGE; count].join(","))
}

/// What one posting connection saw.
struct Posted {
    requests: usize,
    failures: usize,
    first_failure: Option<String>,
    latencies: Latencies,
    reconnects: usize,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &TriggerArgs,
) -> Result<Report, BenchError> {
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(ApiClient::connect(target).await?);
    }
    let meter = Meter::start(server)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(post_until(client, deadline, event_data(args.data_bytes))))
        .collect();
    let results = collect(tasks).await?;
    let elapsed = started.elapsed();
    let usage = meter.read()?;

    let requests: usize = results.iter().map(|r| r.requests).sum();
    let failures: usize = results.iter().map(|r| r.failures).sum();
    let reconnects: usize = results.iter().map(|r| r.reconnects).sum();
    if requests > 0 && failures == requests {
        let reason = results.into_iter().find_map(|r| r.first_failure);
        return Err(BenchError::Http(format!(
            "every trigger failed, e.g. {}",
            reason.unwrap_or_default()
        )));
    }
    let mut latencies = Latencies::with_capacity(requests);
    for result in results {
        latencies.extend(result.latencies);
    }
    let mut report = Report::new("trigger");
    report
        .add("clients", args.clients)
        .add("requests", requests)
        .add("non_2xx", failures)
        .add("api_reconnects", reconnects)
        .add_f64("requests_per_sec", requests as f64 / elapsed.as_secs_f64())
        .add_latencies("latency_", &latencies)
        .add_server_usage(usage, "request", requests);
    Ok(report)
}

async fn post_until(
    mut api: ApiClient,
    deadline: Instant,
    data: String,
) -> Result<Posted, BenchError> {
    let channels = ["bench-trigger-empty".to_owned()];
    let mut posted = Posted {
        requests: 0,
        failures: 0,
        first_failure: None,
        latencies: Latencies::default(),
        reconnects: 0,
    };
    while Instant::now() < deadline {
        let sent = Instant::now();
        let response = api.trigger(&channels, "bench-event", &data).await?;
        posted.latencies.record(sent.elapsed());
        posted.requests += 1;
        if !(200..300).contains(&response.status) {
            posted.failures += 1;
            posted
                .first_failure
                .get_or_insert_with(|| format!("{} {}", response.status, response.body_text()));
        }
    }
    posted.reconnects = api.reconnects();
    Ok(posted)
}

#[cfg(test)]
mod tests {
    use super::event_data;

    #[test]
    fn event_data_is_json_of_about_the_size_asked() {
        assert_eq!(event_data(2), "{}");
        for bytes in [200, 10_000] {
            let data = event_data(bytes);
            serde_json::from_str::<serde_json::Value>(&data).unwrap();
            assert!(
                data.len() <= bytes + 200 && data.len() + 200 >= bytes,
                "{}",
                data.len()
            );
        }
    }
}

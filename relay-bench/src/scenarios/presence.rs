//! `presence`: N connected clients join one presence channel at once; the time until every
//! client counts N members, and proof that each one ends with exactly N.
//!
//! Each client keeps its own count the way pusher-js does: the `count` of
//! `subscription_succeeded`, plus one per `member_added`, minus one per `member_removed`.

use clap::Args;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Launch, collect, contains};
use crate::error::BenchError;
use crate::report::Report;
use crate::socket::PusherSocket;
use crate::target::Target;
use crate::usage::{Meter, ServerProcess};

/// Options of the `presence` scenario.
#[derive(Debug, Args)]
pub struct PresenceArgs {
    /// Members joining (the server's max_presence_members must allow them).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// The presence channel.
    #[arg(long, default_value = "presence-bench")]
    pub channel: String,
    /// Handshakes in flight at once (while connecting, before the timed join).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

/// Runs the scenario.
pub async fn run(
    target: &Target,
    server: Option<ServerProcess>,
    args: &PresenceArgs,
) -> Result<Report, BenchError> {
    let members = args.members;
    let (launch, mut ready) = Launch::new(args.concurrency);
    let (go, go_signal) = watch::channel(false);
    let (complete, mut completions) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let tasks: Vec<_> = (0..members)
        .map(|index| {
            let member = Member {
                index,
                expected: members,
                channel: args.channel.clone(),
                go: go_signal.clone(),
                complete: complete.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(member.run(target.clone(), launch.clone()))
        })
        .collect();
    drop((launch, complete));
    ready.wait(members).await?;

    let meter = Meter::start(server)?;
    let started = Instant::now();
    let _ = go.send(true);
    for _ in 0..members {
        if completions.recv().await.is_none() {
            break;
        }
    }
    let join_time = started.elapsed();
    let usage = meter.read()?;
    // Every client reports its count before any socket closes: a close would be a leave.
    stop.cancel();
    let finished = collect(tasks).await?;
    let mut wrong = Vec::new();
    for (count, socket) in finished {
        if count != members as i64 {
            wrong.push(count);
        }
        if let Some(socket) = socket {
            socket.close().await;
        }
    }
    if let (Some(low), Some(high)) = (wrong.iter().min(), wrong.iter().max()) {
        return Err(BenchError::Incomplete(format!(
            "{} of {members} clients did not end with {members} members (they counted {low} to {high})",
            wrong.len()
        )));
    }
    let mut report = Report::new("presence");
    report
        .add("members", members)
        .add_f64("join_time_ms", join_time.as_secs_f64() * 1e3)
        .add("final_member_count", members)
        .add_server_usage(usage, "member", members);
    Ok(report)
}

/// One member's client.
struct Member {
    index: usize,
    expected: usize,
    channel: String,
    go: watch::Receiver<bool>,
    complete: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
}

impl Member {
    /// Connects, joins on the go signal, and on the stop signal returns the member count it
    /// ended with and its still-open socket.
    async fn run(
        mut self,
        target: Target,
        launch: Launch,
    ) -> Result<(i64, Option<PusherSocket>), BenchError> {
        let Some(mut socket) = launch.setup(PusherSocket::connect(&target)).await else {
            return Ok((0, None));
        };
        if self.go.wait_for(|go| *go).await.is_err() {
            return Ok((0, Some(socket)));
        }
        let channel_data = json!({"user_id": format!("bench-{}", self.index)}).to_string();
        let auth = target.presence_auth(socket.socket_id(), &self.channel, &channel_data);
        socket
            .subscribe(&self.channel, Some(&auth), Some(&channel_data))
            .await?;
        let mut count: i64 = 0;
        let mut reported = false;
        loop {
            let text = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                text = socket.next_text() => text?,
            };
            count += self.count_change(&mut socket, &text).await?;
            if !reported && count == self.expected as i64 {
                reported = true;
                let _ = self.complete.send(());
            }
        }
        Ok((count, Some(socket)))
    }

    /// How a frame changes the member count; member events are recognised without a parse.
    async fn count_change(
        &self,
        socket: &mut PusherSocket,
        text: &[u8],
    ) -> Result<i64, BenchError> {
        if contains(text, "pusher_internal:member_added") {
            return Ok(1);
        }
        if contains(text, "pusher_internal:member_removed") {
            return Ok(-1);
        }
        match socket.handle(text).await? {
            Some(event) if event.event == "pusher_internal:subscription_succeeded" => {
                event.data["presence"]["count"].as_i64().ok_or_else(|| {
                    BenchError::Protocol("subscription_succeeded without count".into())
                })
            }
            _ => Ok(0),
        }
    }
}

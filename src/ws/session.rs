//! The task that drives one connection: it reads the client's frames, drains the connection's
//! outbound queue into the socket, keeps the connection alive, and reacts to shutdown and
//! overflow. Everything it does for a frame finishes before the next frame is read, so a
//! client's own requests are answered in order.

use std::sync::Arc;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError};
use tokio::time::{Instant, sleep_until};

use super::connection::{Connection, Ending};
use super::handshake::Admitted;
use super::keepalive::{KeepAlive, Tick};
use crate::hub::{OutboxReceiver, outbox};
use crate::protocol::CloseCode;
use crate::protocol::frames::{self, ClientMessage};
use crate::server::ServerState;

/// Serves an admitted connection until it ends, then cleans up after it.
pub(super) async fn run(
    state: Arc<ServerState>,
    admitted: Admitted,
    ws: actix_ws::Session,
    mut stream: AggregatedMessageStream,
) {
    let (outbox, mut inbox) = outbox(state.settings.outbound_queue_size);
    let mut connection = Connection::new(state, admitted.app, ws, outbox);
    let established =
        frames::connection_established(connection.socket_id, connection.app.activity_timeout);
    let ending = match connection.send(established).await {
        Ok(()) => drive(&mut connection, &mut stream, &mut inbox).await,
        Err(ending) => ending,
    };
    connection.leave_all().await;
    connection.finish(ending).await;
    drop(admitted.slot);
}

async fn drive(
    connection: &mut Connection,
    stream: &mut AggregatedMessageStream,
    inbox: &mut OutboxReceiver,
) -> Ending {
    // Both waits are created once and polled across iterations, so a loop turn does not
    // register and deregister two waiters.
    let shutdown = connection.state.shutdown.clone();
    let shutdown = shutdown.cancelled();
    tokio::pin!(shutdown);
    let overflow = inbox.overflow_signal();
    let overflow = overflow.wait();
    tokio::pin!(overflow);
    let mut keepalive = KeepAlive::new(
        Duration::from_secs(connection.app.activity_timeout),
        connection.state.settings.pong_timeout,
        Instant::now(),
    );
    let timer = sleep_until(keepalive.first_deadline());
    tokio::pin!(timer);
    loop {
        let step = tokio::select! {
            biased;
            () = &mut shutdown => Err(Ending::Pusher(CloseCode::ReconnectImmediately)),
            () = &mut overflow => Err(Ending::Pusher(CloseCode::OverCapacity)),
            // Queued frames go out before the next client frame is read, so a reply never
            // overtakes an event that was queued before the request arrived.
            Some(frame) = inbox.recv() => send_queued(connection, frame, inbox).await,
            message = stream.recv() => {
                keepalive.saw_activity(Instant::now());
                handle_message(connection, message).await
            }
            () = &mut timer => match keepalive.on_timer(Instant::now()) {
                Tick::Wait(deadline) => {
                    timer.as_mut().reset(deadline);
                    Ok(())
                }
                Tick::Ping(deadline) => {
                    timer.as_mut().reset(deadline);
                    connection.send(frames::ping()).await
                }
                Tick::TimedOut => Err(Ending::Pusher(CloseCode::PongNotReceived)),
            },
        };
        if let Err(ending) = step {
            return ending;
        }
    }
}

/// Frames sent per wake-up before the loop looks at the client and timers again.
const MAX_FRAMES_PER_WAKE: usize = 64;

/// Sends `first` and whatever else is already queued (up to a bound), so one wake-up of the
/// task moves a burst of frames.
async fn send_queued(
    connection: &mut Connection,
    first: bytestring::ByteString,
    inbox: &mut OutboxReceiver,
) -> Result<(), Ending> {
    connection.send(first).await?;
    for _ in 1..MAX_FRAMES_PER_WAKE {
        let Some(frame) = inbox.try_recv() else {
            break;
        };
        connection.send(frame).await?;
    }
    Ok(())
}

async fn handle_message(
    connection: &mut Connection,
    message: Option<Result<AggregatedMessage, ProtocolError>>,
) -> Result<(), Ending> {
    match message {
        None => Err(Ending::ClientGone),
        Some(Err(error)) => Err(ending_for(error)),
        Some(Ok(AggregatedMessage::Text(text))) => handle_text(connection, &text).await,
        Some(Ok(AggregatedMessage::Binary(_))) => {
            connection
                .send_error(
                    None,
                    "Binary frames are not supported; send JSON text frames",
                )
                .await
        }
        Some(Ok(AggregatedMessage::Ping(payload))) => connection.send_pong(&payload).await,
        Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
        Some(Ok(AggregatedMessage::Close(reason))) => Err(Ending::ClientClosed(reason)),
    }
}

async fn handle_text(connection: &mut Connection, text: &str) -> Result<(), Ending> {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Ping) => connection.send(frames::pong()).await,
        Ok(ClientMessage::Pong) => Ok(()),
        Ok(ClientMessage::Subscribe(request)) => connection.subscribe(request).await,
        Ok(ClientMessage::Unsubscribe { channel }) => connection.unsubscribe(&channel).await,
        Ok(ClientMessage::ClientEvent(event)) => connection.client_event(event).await,
        Err(error) => connection.send_error(None, &error.to_string()).await,
    }
}

/// A WebSocket protocol violation ends the connection; an oversized message with 1009.
fn ending_for(error: ProtocolError) -> Ending {
    let oversized = match &error {
        ProtocolError::Overflow => true,
        // actix-ws reports an oversized fragmented message as an I/O error.
        ProtocolError::Io(io) => io.to_string().contains("maximum continuation size"),
        _ => false,
    };
    if oversized {
        Ending::WebSocket(actix_ws::CloseCode::Size, "Message too large")
    } else {
        Ending::WebSocket(actix_ws::CloseCode::Protocol, "WebSocket protocol error")
    }
}

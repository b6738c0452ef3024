//! The task that drives one connection: it reads the client's messages, keeps the connection
//! alive, and reacts to shutdown and overflow. Replies are queued in the connection's outbox
//! behind any event queued before the request arrived, and everything done for a message
//! finishes before the next one is read, so a client's own requests are answered in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::connection::{Connection, Ending};
use super::handshake::Admitted;
use super::inbound::{Inbound, InboundError, InboundMessages};
use super::keepalive::{KeepAlive, Tick};
use crate::hub::OutboxOwner;
use crate::protocol::CloseCode;
use crate::protocol::frames::{self, ClientMessage};
use crate::server::ServerState;

/// Serves an admitted connection until it ends, then cleans up after it.
pub(super) async fn run(
    state: Arc<ServerState>,
    admitted: Admitted,
    outbox: OutboxOwner,
    mut inbound: InboundMessages,
) {
    let mut connection = Connection::new(state, admitted.app, outbox);
    let established =
        frames::connection_established(connection.socket_id, connection.app.activity_timeout);
    let ending = match connection.send(established) {
        Ok(()) => drive(&mut connection, &mut inbound).await,
        Err(ending) => ending,
    };
    connection.leave_all().await;
    connection.finish(ending);
    drop(admitted.slot);
}

async fn drive(connection: &mut Connection, inbound: &mut InboundMessages) -> Ending {
    // The waits are created once and polled across iterations, so a loop turn does not
    // register and deregister waiters.
    let state = connection.state.clone();
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    let outbox = connection.outbox_signals();
    let overflow = outbox.overflowed();
    tokio::pin!(overflow);
    let writer_gone = outbox.writer_gone();
    tokio::pin!(writer_gone);
    let mut keepalive = KeepAlive::new(
        Duration::from_secs(connection.app.activity_timeout),
        state.settings.pong_timeout,
        Instant::now(),
    );
    let timer = sleep_until(keepalive.first_deadline());
    tokio::pin!(timer);
    loop {
        let step = tokio::select! {
            biased;
            () = &mut shutdown => Err(Ending::Pusher(CloseCode::ReconnectImmediately)),
            () = &mut overflow => Err(Ending::Pusher(CloseCode::OverCapacity)),
            () = &mut writer_gone => Err(Ending::ClientGone),
            message = inbound.next() => {
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
                    connection.send(frames::ping())
                }
                Tick::TimedOut => Err(Ending::Pusher(CloseCode::PongNotReceived)),
            },
        };
        if let Err(ending) = step {
            return ending;
        }
    }
}

async fn handle_message(
    connection: &mut Connection,
    message: Option<Result<Inbound, InboundError>>,
) -> Result<(), Ending> {
    match message {
        None => Err(Ending::ClientGone),
        Some(Err(error)) => Err(ending_for(error)),
        Some(Ok(Inbound::Text(text))) => handle_text(connection, &text).await,
        Some(Ok(Inbound::Binary)) => connection.send_error(
            None,
            "Binary frames are not supported; send JSON text frames",
        ),
        Some(Ok(Inbound::Ping(payload))) => connection.send_pong(payload),
        Some(Ok(Inbound::Pong)) => Ok(()),
        Some(Ok(Inbound::Close(reason))) => Err(Ending::ClientClosed(reason)),
    }
}

async fn handle_text(connection: &mut Connection, text: &str) -> Result<(), Ending> {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Ping) => connection.send(frames::pong()),
        Ok(ClientMessage::Pong) => Ok(()),
        Ok(ClientMessage::Subscribe(request)) => connection.subscribe(request).await,
        Ok(ClientMessage::Unsubscribe { channel }) => connection.unsubscribe(&channel).await,
        Ok(ClientMessage::ClientEvent(event)) => connection.client_event(event).await,
        Err(error) => connection.send_error(None, &error.to_string()),
    }
}

/// A WebSocket protocol violation ends the connection with the RFC 6455 code for it.
fn ending_for(error: InboundError) -> Ending {
    match error {
        InboundError::TooLarge => Ending::WebSocket(1009, "Message too large"),
        InboundError::InvalidText => Ending::WebSocket(1007, "Text message is not valid UTF-8"),
        InboundError::Protocol => Ending::WebSocket(1002, "WebSocket protocol error"),
    }
}

//! The task that drives one connection: it reads the client's messages, writes what is
//! queued for it, keeps the connection alive, reacts to shutdown and overflow, and closes the
//! connection properly. Replies are queued in the connection's outbox behind any event queued
//! before the request arrived, and everything done for a message finishes before the next one
//! is read, so a client's own requests are answered in order.
//!
//! A message's handler may wait on the adapter (a Redis round trip). While it does, the task
//! keeps writing the outbox, answering keep-alives and watching for shutdown, overflow and
//! termination; only reading the next message waits. To let the handler hold the connection
//! across those turns of the loop, the handler future owns the [`Connection`] and hands it
//! back when it finishes (one future type, reused in place: no allocation per message).

use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;

use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::connection::{Connection, Ending, queue_on};
use super::handshake::Admitted;
use super::inbound::{Inbound, InboundError, InboundMessages};
use super::keepalive::{KeepAlive, Tick};
use super::outbound::{Flow, OutboundWriter};
use super::transport::{SocketReader, SocketWriter, Transport};
use super::upgrade::Upgraded;
use futures_util::future::OptionFuture;

use crate::hub::{EndRequest, OutboundFrame, OutboxLimits, outbox};
use crate::protocol::CloseCode;
use crate::protocol::frames::{self, ClientMessage};
use crate::state::ServerState;

/// How long the last frames may take to be written before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client then has to close its side (it should once it reads the close frame).
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves an admitted connection until it ends, then cleans up after it.
pub(super) async fn run<T: Transport>(
    state: Arc<ServerState>,
    admitted: Admitted,
    upgraded: Upgraded<T>,
) {
    let Upgraded {
        mut socket,
        response_head,
        early_bytes,
    } = upgraded;
    let max_message_size = state.settings.max_frame_size;
    let (owner, writer) = outbox(state.settings.outbox_limits);
    let (read_half, write_half) = socket.halves();
    let mut inbound = InboundMessages::new(read_half, early_bytes, max_message_size);
    let mut outbound = OutboundWriter::new(write_half, writer, response_head);
    let connection = Connection::new(state, admitted.app, admitted.address, owner);
    let mut slot = admitted.slot;
    slot.watch(connection.socket_id, connection.outbox().clone());
    let established =
        frames::connection_established(connection.socket_id, connection.app.activity_timeout);
    let (mut connection, ending) = match connection.send(established) {
        Ok(()) => {
            let lockdown = admitted.lockdown;
            drive(connection, &mut inbound, &mut outbound, lockdown).await
        }
        Err(ending) => (connection, ending),
    };
    connection.leave_all().await;
    let client_gone = matches!(ending, Ending::ClientGone);
    connection.finish(ending);
    drop(slot);
    drop(admitted.node_slot);
    drop(admitted.address_slot);
    if !client_gone {
        close(&mut inbound, &mut outbound).await;
    }
}

/// Closes a connection that was refused right after the handshake, with `last` (the frames
/// that say why).
pub(super) async fn refuse<T: Transport>(
    upgraded: Upgraded<T>,
    last: impl IntoIterator<Item = OutboundFrame>,
) {
    let Upgraded {
        mut socket,
        response_head,
        ..
    } = upgraded;
    let (owner, writer) = outbox(OutboxLimits::frames(1));
    owner.close(last, false);
    drop(owner);
    let (read_half, write_half) = socket.halves();
    let mut inbound = InboundMessages::new(read_half, Default::default(), 0);
    let mut outbound = OutboundWriter::new(write_half, writer, response_head);
    close(&mut inbound, &mut outbound).await;
}

/// Writes the queued closing frames, ends the server's side of the connection and waits
/// (boundedly) for the client to end its side, so the close frame is not lost to a reset.
async fn close<R: SocketReader, W: SocketWriter>(
    inbound: &mut InboundMessages<R>,
    outbound: &mut OutboundWriter<W>,
) {
    // The shutdown is inside the bound too: over TLS it writes a close_notify, which a client
    // that stopped reading never takes.
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
        outbound.write_to_end().await?;
        outbound.shutdown().await;
        Ok::<(), std::io::Error>(())
    })
    .await;
    if let Ok(Ok(())) = closed {
        let _ = tokio::time::timeout(LINGER_TIMEOUT, inbound.drain()).await;
    }
}

async fn drive<R: SocketReader, W: SocketWriter>(
    connection: Connection,
    inbound: &mut InboundMessages<R>,
    outbound: &mut OutboundWriter<W>,
    lockdown: Option<CancellationToken>,
) -> (Connection, Ending) {
    // The waits are created once and polled across iterations, so a loop turn does not
    // register and deregister waiters.
    let state = connection.state.clone();
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    // With `lockdown_closes_connections`, cancelled when the app is locked down.
    let mut locked_down = std::pin::pin!(closed_by(lockdown));
    let signals = connection.outbox_signals();
    let mut end_requested = std::pin::pin!(signals.end_requested());
    // Set when a reload replaced or removed the app (told through the outbox, or seen here
    // for a connection admitted just before); acted on while no handler runs.
    let mut app_changed = connection.app.is_retired();
    // Keep-alive pings are queued through this handle, so they need not wait for a handler.
    let pings = connection.outbox().clone();
    let mut keepalive = KeepAlive::new(
        Duration::from_secs(connection.app.activity_timeout),
        state.settings.pong_timeout,
        Instant::now(),
    );
    let timer = sleep_until(keepalive.first_deadline());
    tokio::pin!(timer);
    // With enable_user_authentication, the connection must authorize itself by this deadline
    // (boxed, so connections of other apps do not carry a timer).
    let mut auth_deadline = connection
        .app
        .user_authentication_timeout
        .map(|timeout| Box::pin(sleep(timeout)));
    // The connection while no handler runs; the handler that holds it otherwise.
    let mut idle = Some(connection);
    let handler = OptionFuture::default();
    tokio::pin!(handler);
    // Set when the authorization deadline passes while a handler holds the connection.
    let mut auth_due = false;
    let ending = loop {
        // Not biased: a client that keeps sending cannot starve its own deliveries, nor a
        // busy channel the client's requests.
        let step = tokio::select! {
            () = &mut shutdown => Err(Ending::Pusher(CloseCode::ReconnectImmediately)),
            () = &mut locked_down => Err(Ending::AppUnavailable(super::LOCKED_DOWN)),
            reason = &mut end_requested, if !app_changed => match reason {
                EndRequest::Overflow => Err(Ending::Pusher(CloseCode::OverCapacity)),
                EndRequest::Terminated => Err(Ending::Pusher(CloseCode::Unauthorized)),
                EndRequest::AppChanged => {
                    app_changed = true;
                    Ok(())
                }
            },
            () = expire(&mut auth_deadline), if auth_deadline.is_some() => {
                auth_deadline = None;
                auth_due = true;
                Ok(())
            }
            written = outbound.write_queued() => match written {
                Ok(Flow::Open) => Ok(()),
                Ok(Flow::Ended) | Err(_) => Err(Ending::ClientGone),
            },
            message = inbound.next(), if idle.is_some() => {
                keepalive.saw_activity(Instant::now());
                if let Some(connection) = idle.take() {
                    handler.set(Some(handle_message(connection, message)).into());
                }
                Ok(())
            }
            // Only while a handler runs: a finished one must not be polled again.
            Some((connection, handled)) = &mut handler, if idle.is_none() => {
                idle = Some(connection);
                handled
            }
            () = &mut timer => match keepalive.on_timer(Instant::now()) {
                Tick::Wait(deadline) => {
                    timer.as_mut().reset(deadline);
                    Ok(())
                }
                Tick::Ping(deadline) => {
                    timer.as_mut().reset(deadline);
                    queue_on(&pings, OutboundFrame::Text(frames::ping()))
                }
                Tick::TimedOut => Err(Ending::Pusher(CloseCode::PongNotReceived)),
            },
        };
        if let Err(ending) = step {
            break ending;
        }
        if app_changed && let Some(connection) = &mut idle {
            app_changed = false;
            signals.clear_app_changed();
            end_requested.set(signals.end_requested());
            match state.apps.by_id(&connection.app.id) {
                Some(app) if app.enabled => {
                    // The lockdown rule may have changed (a locked app that now closes its
                    // connections hands out a cancelled token: this one ends next turn).
                    locked_down.set(closed_by(state.guard.lockdown_signal(&app.id)));
                    if auth_deadline.is_none() && !connection.is_authorized() {
                        auth_deadline = app
                            .user_authentication_timeout
                            .map(|timeout| Box::pin(sleep(timeout)));
                    }
                    connection.adopt(app);
                }
                Some(_) => break Ending::AppUnavailable(super::APP_DISABLED),
                None => break Ending::AppUnavailable(super::APP_REMOVED),
            }
        }
        if auth_due && let Some(connection) = &idle {
            auth_due = false;
            if !connection.is_authorized() {
                break Ending::Pusher(CloseCode::Unauthorized);
            }
        }
    };
    // A handler still running finishes first (the adapter bounds its own waits), so that
    // what it changed is undone by the connection's leaving.
    let connection = match idle {
        Some(connection) => connection,
        None => match handler.await {
            Some((connection, _)) => connection,
            None => unreachable!("the connection is either idle or held by the handler"),
        },
    };
    (connection, ending)
}

/// Waits until `token` is cancelled (forever when there is none).
async fn closed_by(token: Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled_owned().await,
        None => std::future::pending().await,
    }
}

/// Waits for `deadline` (forever when there is none).
async fn expire(deadline: &mut Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(deadline) => deadline.await,
        None => std::future::pending().await,
    }
}

/// Handles one message with the connection, and hands the connection back.
async fn handle_message(
    mut connection: Connection,
    message: Option<Result<Inbound, InboundError>>,
) -> (Connection, Result<(), Ending>) {
    let handled = handle(&mut connection, message).await;
    (connection, handled)
}

async fn handle(
    connection: &mut Connection,
    message: Option<Result<Inbound, InboundError>>,
) -> Result<(), Ending> {
    match message {
        None => Err(Ending::ClientGone),
        Some(Err(error)) => Err(ending_for(error)),
        Some(Ok(Inbound::Text(text))) => {
            connection.count_received(text.len());
            handle_text(connection, &text).await
        }
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
        Ok(ClientMessage::Signin(request)) => connection.signin(request).await,
        Err(error) => {
            let error = error.quoting_at_most(connection.app.limits.max_event_name_length);
            connection.send_error(None, &error.to_string())
        }
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

#[cfg(test)]
mod tests;

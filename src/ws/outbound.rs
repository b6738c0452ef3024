//! Writes a connection's queued frames to its socket.
//!
//! Publishers queue frames in the connection's outbox and wake the connection's task at most
//! once per burst; [`OutboundWriter::write_queued`] then takes every queued frame, encodes
//! them into one buffer and writes it with one call, so a burst of deliveries costs one
//! wake-up and one write. The buffer is released once written, so an idle connection holds
//! none.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll, Waker};

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use actix_web::web::{Buf, BytesMut};

use super::frame_header::MAX_CONTROL_PAYLOAD;
use super::transport::SocketWriter;
use crate::hub::{CloseFrame, OutboundFrame, OutboxWriter};

/// A close payload starts with a two-byte code, within the control-frame limit.
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Whether more frames may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// The stream is open.
    Open,
    /// The close frame (or the end of the stream) has been written.
    Ended,
}

/// The server-to-client half of a WebSocket connection.
pub(super) struct OutboundWriter<W> {
    socket: W,
    outbox: OutboxWriter,
    /// The handshake response, until it goes out with the first frames.
    response_head: Option<BytesMut>,
    /// Encoded bytes the socket has not accepted yet (once it refuses some, their count is
    /// reported to the outbox, whose byte bound then applies). Frames are taken from the outbox
    /// only when this is empty, so a client that stops reading leaves them in the bounded
    /// outbox (which then overflows) instead of here.
    pending: BytesMut,
    /// The stream has ended; nothing more is taken from the outbox.
    ended: bool,
    /// The socket refused bytes that are still pending (and the outbox has been told).
    behind: bool,
    /// Bytes the transport took since its last completed flush (what TLS may still hold as
    /// records); always flushed before more frames are taken, even after a cancelled call.
    unflushed: usize,
}

impl<W: SocketWriter> OutboundWriter<W> {
    /// Writes `response_head`, then what `outbox` queues, to `socket`.
    pub fn new(socket: W, outbox: OutboxWriter, response_head: BytesMut) -> Self {
        OutboundWriter {
            socket,
            outbox,
            response_head: Some(response_head),
            pending: BytesMut::new(),
            ended: false,
            behind: false,
            unflushed: 0,
        }
    }

    /// Finishes writing pending bytes; with none pending, waits for queued frames and writes
    /// them all at once. The first time, the handshake response goes out together with
    /// whatever is already queued, without waiting. Cancel-safe: frames are taken only when
    /// they can be encoded at once, unwritten bytes stay pending, and what the transport took
    /// is flushed before more frames are taken.
    pub async fn write_queued(&mut self) -> io::Result<Flow> {
        if let Some(head) = self.response_head.take() {
            self.pending = head;
            self.take_frames(false).await;
        } else if self.pending.is_empty() && self.unflushed == 0 {
            self.take_frames(true).await;
        }
        while !self.pending.is_empty() {
            let written = match self.socket.try_write(&self.pending) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // The socket refused the rest: the client is behind by this much.
                    self.outbox.record_unwritten(self.pending.len());
                    self.behind = true;
                    let (socket, pending) = (&mut self.socket, &self.pending);
                    poll_fn(|cx| socket.poll_write_some(cx, pending)).await
                }
                written => written,
            };
            match written? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                written => {
                    self.pending.advance(written);
                    self.unflushed += written;
                    if self.behind {
                        self.outbox.record_unwritten(self.pending.len());
                    }
                }
            }
        }
        if self.unflushed > 0 {
            self.flush().await?;
        }
        if std::mem::take(&mut self.behind) {
            self.outbox.record_unwritten(0);
        }
        self.pending = BytesMut::new();
        Ok(if self.ended { Flow::Ended } else { Flow::Open })
    }

    /// Sends what the transport holds. One that cannot at once (TLS records the socket
    /// refuses) means the client is behind by what it holds, as for refused bytes.
    async fn flush(&mut self) -> io::Result<()> {
        let at_once = self
            .socket
            .poll_flush(&mut Context::from_waker(Waker::noop()));
        if let Poll::Ready(flushed) = at_once {
            flushed?;
        } else {
            self.outbox.record_unwritten(self.unflushed);
            self.behind = true;
            poll_fn(|cx| self.socket.poll_flush(cx)).await?;
        }
        self.unflushed = 0;
        Ok(())
    }

    /// Encodes every queued frame into `pending`; with `wait`, first waits for one (or for the
    /// end of the stream).
    async fn take_frames(&mut self, wait: bool) {
        let (outbox, pending, ended) = (&self.outbox, &mut self.pending, &mut self.ended);
        poll_fn(|cx| {
            if *ended {
                return Poll::Ready(());
            }
            let taken = outbox.poll_take(cx, |frame| {
                if !*ended {
                    *ended = encode(frame, pending);
                }
            });
            match taken {
                Poll::Ready(more) => {
                    *ended |= !more;
                    Poll::Ready(())
                }
                Poll::Pending if wait => Poll::Pending,
                Poll::Pending => Poll::Ready(()),
            }
        })
        .await;
    }

    /// Writes everything queued up to the end of the stream.
    pub async fn write_to_end(&mut self) -> io::Result<()> {
        while self.write_queued().await? == Flow::Open {}
        Ok(())
    }

    /// Ends the server's side of the TCP connection.
    pub async fn shutdown(&mut self) {
        self.socket.shutdown().await;
    }
}

/// Appends one frame to `buf`; `true` when it was the close frame.
fn encode(frame: OutboundFrame, buf: &mut BytesMut) -> bool {
    match frame {
        OutboundFrame::Text(text) => {
            Parser::write_message(buf, text.as_bytes(), OpCode::Text, true, false);
            false
        }
        OutboundFrame::Pong(payload) => {
            let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
            Parser::write_message(buf, payload, OpCode::Pong, true, false);
            false
        }
        OutboundFrame::Close(frame) => {
            Parser::write_close(buf, frame.map(close_reason), false);
            true
        }
    }
}

fn close_reason(frame: CloseFrame) -> CloseReason {
    let mut reason = frame.reason;
    if reason.len() > MAX_CLOSE_REASON {
        let mut end = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    CloseReason {
        code: CloseCode::from(frame.code),
        description: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::web::Bytes;
    use bytestring::ByteString;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::hub::{OutboxLimits, outbox};

    /// A connected pair of loopback sockets.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_overflows_the_outbox_instead_of_the_writer() {
        let (mut server, _peer_never_reads) = socket_pair().await;
        let (owner, writer) = outbox(OutboxLimits::frames(4));
        let (_, write_half) = server.split();
        let mut outbound = OutboundWriter::new(write_half, writer, BytesMut::new());
        let frame = ByteString::from("x".repeat(1 << 20));
        // The session re-creates `write_queued` whenever another event wakes it; model that
        // with short timeouts. Once the socket is full, frames must stay in the bounded outbox.
        for _ in 0..200 {
            if !owner.outbox().push(frame.clone()) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), outbound.write_queued()).await;
        }
        panic!("200 MiB were accepted for a peer that reads nothing");
    }

    #[test]
    fn frames_are_encoded_unmasked_and_a_close_reason_is_cut_to_fit() {
        let mut buf = BytesMut::new();
        assert!(!encode(
            OutboundFrame::Text(ByteString::from_static("hi")),
            &mut buf
        ));
        assert!(!encode(
            OutboundFrame::Pong(Bytes::from_static(b"p")),
            &mut buf
        ));
        assert!(encode(
            OutboundFrame::Close(Some(CloseFrame {
                code: 4200,
                reason: "é".repeat(100),
            })),
            &mut buf
        ));
        // Text "hi", pong "p", then a close frame: code 4200 and the reason cut to 122 bytes,
        // the longest run of whole two-byte characters within 123.
        assert_eq!(&buf[..4], b"\x81\x02hi");
        assert_eq!(&buf[4..7], b"\x8a\x01p");
        assert_eq!(buf[7], 0x88);
        assert_eq!(usize::from(buf[8]), 2 + 122);
        assert_eq!(u16::from_be_bytes([buf[9], buf[10]]), 4200);
        assert_eq!(buf.len(), 9 + 2 + 122);
    }
}

//! The WebSocket response body: writes a connection's queued frames to its socket.
//!
//! actix-web's HTTP/1 dispatcher owns the socket and polls this body whenever it can write.
//! Each poll takes every frame queued in the connection's outbox and encodes them into one
//! buffer, so a burst of deliveries costs one wake-up of the dispatcher and one write, and no
//! task of Relay's runs between a publish and the socket.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{Bytes, BytesMut};

use crate::hub::{CloseFrame, OutboundFrame, OutboxWriter};

/// RFC 6455 §5.5: control frame payloads are at most 125 bytes; a close payload starts with a
/// two-byte code.
const MAX_CONTROL_PAYLOAD: usize = 125;
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// The body of a `101 Switching Protocols` response: the server-to-client WebSocket stream.
pub(super) struct OutboundBody {
    writer: OutboxWriter,
    /// The close frame has been written; the stream ends.
    closed: bool,
}

impl OutboundBody {
    /// A body that writes what `writer` takes from the outbox.
    pub fn new(writer: OutboxWriter) -> Self {
        OutboundBody {
            writer,
            closed: false,
        }
    }
}

impl MessageBody for OutboundBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::new();
        let mut closed = false;
        let taken = this.writer.poll_take(cx, |frame| {
            if !closed {
                closed = encode(frame, &mut buf);
            }
        });
        match taken {
            Poll::Pending => Poll::Pending,
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Ready(true) => {
                this.closed = closed;
                Poll::Ready(Some(Ok(buf.freeze())))
            }
        }
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
    use std::task::Waker;

    use bytestring::ByteString;

    use super::*;
    use crate::hub::outbox;

    fn poll(body: &mut OutboundBody) -> Poll<Option<Bytes>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(body)
            .poll_next(&mut cx)
            .map(|item| item.map(|bytes| bytes.unwrap_or_else(|never| match never {})))
    }

    #[test]
    fn a_burst_is_encoded_into_one_buffer_and_the_close_ends_the_stream() {
        let (owner, writer) = outbox(8);
        let mut body = OutboundBody::new(writer);
        assert_eq!(poll(&mut body), Poll::Pending);
        assert!(owner.outbox().push(ByteString::from_static("hi")));
        owner
            .outbox()
            .push_frame(OutboundFrame::Pong(Bytes::from_static(b"p")))
            .unwrap();
        owner.close(
            [OutboundFrame::Close(Some(CloseFrame {
                code: 4200,
                reason: "é".repeat(100),
            }))],
            false,
        );
        let Poll::Ready(Some(bytes)) = poll(&mut body) else {
            panic!("expected one buffer");
        };
        // Unmasked text "hi", pong "p", then a close frame of 125 bytes: code 4200 and the
        // reason cut to 123 bytes on a character boundary (61 two-byte characters).
        assert_eq!(&bytes[..4], b"\x81\x02hi");
        assert_eq!(&bytes[4..7], b"\x8a\x01p");
        assert_eq!(bytes[7], 0x88);
        assert_eq!(usize::from(bytes[8]), 2 + 122);
        assert_eq!(u16::from_be_bytes([bytes[9], bytes[10]]), 4200);
        assert_eq!(bytes.len(), 9 + 2 + 122);
        assert_eq!(poll(&mut body), Poll::Ready(None));
    }
}

//! Reads a client's WebSocket messages from its socket.
//!
//! Frames are decoded with actix-http's WebSocket codec (which checks masking and opcodes);
//! fragmented messages are joined here. The size limit is enforced on each frame's header
//! ([`super::frame_header`]), before its payload is read: a frame, or a fragment taking its
//! message past the limit, ends the connection (1009) as soon as its length is known. Each
//! read is capped so that the read buffer and the fragments joined so far never hold more
//! than the limit plus one frame header (and one control frame, which may arrive between the
//! fragments of a message that has reached the limit), whatever the client declares or
//! streams. (What the client sent with its upgrade request arrives in actix-http's request
//! buffer, bounded by actix-http.) How the socket is read is the transport's
//! ([`super::transport`]): plain TCP only once it is readable, into a buffer released whenever
//! it is empty, so an idle connection holds no buffer.

use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use tokio_util::codec::Decoder;

use super::frame_header::{self, MAX_CONTROL_FRAME_LEN, MAX_HEADER_LEN};
use super::transport::SocketReader;

pub(super) use actix_http::ws::CloseReason;

/// One complete message from the client.
#[derive(Debug)]
pub(super) enum Inbound {
    /// A text message (valid UTF-8).
    Text(ByteString),
    /// A binary message; its content is not needed.
    Binary,
    /// A WebSocket ping, with its payload.
    Ping(Bytes),
    /// A WebSocket pong.
    Pong,
    /// The client's close frame.
    Close(Option<CloseReason>),
}

/// Why the client's stream cannot be read further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InboundError {
    /// A frame or a fragmented message exceeds the size limit (close code 1009).
    TooLarge,
    /// A text message is not valid UTF-8 (close code 1007).
    InvalidText,
    /// Any other violation of RFC 6455 (close code 1002).
    Protocol,
}

/// Room made in the read buffer for each read.
const READ_CHUNK: usize = super::transport::MAX_READ;

/// The client-to-server half of a WebSocket connection.
pub(super) struct InboundMessages<R> {
    socket: R,
    buf: BytesMut,
    codec: Codec,
    /// A fragmented message being joined: whether it is text, and its bytes so far.
    fragments: Option<(bool, BytesMut)>,
    max_message_size: usize,
}

impl<R: SocketReader> InboundMessages<R> {
    /// Reads messages of at most `max_message_size` bytes from `socket`, starting with
    /// `early_bytes` (what the client sent right after its upgrade request).
    pub fn new(socket: R, early_bytes: BytesMut, max_message_size: usize) -> Self {
        InboundMessages {
            socket,
            buf: early_bytes,
            codec: Codec::new().max_size(max_message_size),
            fragments: None,
            max_message_size,
        }
    }

    /// The next message; `None` once the transport is closed. Cancel-safe: everything read
    /// so far is kept in `self`.
    pub async fn next(&mut self) -> Option<Result<Inbound, InboundError>> {
        loop {
            match self.decode() {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
            if !self.read_more().await {
                return None;
            }
        }
    }

    /// Waits until the socket is readable and reads what is there, at most up to the bound
    /// on what an incomplete message may hold; `false` once the client has closed the
    /// connection or it failed.
    async fn read_more(&mut self) -> bool {
        let held = self.buf.len() + self.joined_len();
        // Never zero: a frame the header check let in fits within the bound (a control frame
        // between fragments in its allowance), so a full buffer would have been decoded.
        let bound = self.max_message_size + MAX_HEADER_LEN + MAX_CONTROL_FRAME_LEN;
        let room = bound.saturating_sub(held);
        self.read_at_most(room.clamp(1, READ_CHUNK)).await
    }

    async fn read_at_most(&mut self, limit: usize) -> bool {
        let (socket, buf) = (&mut self.socket, &mut self.buf);
        let read = std::future::poll_fn(|cx| socket.poll_read_at_most(cx, buf, limit)).await;
        matches!(read, Ok(read) if read > 0)
    }

    /// Reads and discards until the client closes the connection (used while closing).
    pub async fn drain(&mut self) {
        while self.read_at_most(READ_CHUNK).await {
            self.buf = BytesMut::new();
        }
    }

    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Decodes the next complete message from the buffer, if there is one.
    fn decode(&mut self) -> Result<Option<Inbound>, InboundError> {
        let result = self.decode_frames();
        self.release_if_empty();
        result
    }

    fn decode_frames(&mut self) -> Result<Option<Inbound>, InboundError> {
        loop {
            self.check_next_header()?;
            let Some(frame) = self.codec.decode(&mut self.buf).map_err(classify)? else {
                return Ok(None);
            };
            let message = match frame {
                Frame::Text(bytes) => Some(text(bytes)?),
                Frame::Binary(_) => Some(Inbound::Binary),
                Frame::Ping(payload) => Some(Inbound::Ping(payload)),
                Frame::Pong(_) => Some(Inbound::Pong),
                Frame::Close(reason) => Some(Inbound::Close(reason)),
                Frame::Continuation(item) => self.join(item)?,
            };
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    /// The bytes of the fragmented message joined so far.
    fn joined_len(&self) -> usize {
        self.fragments.as_ref().map_or(0, |(_, data)| data.len())
    }

    /// Refuses the next frame on its header: over the size limit (with the fragments of its
    /// message so far), or a control frame the codec would refuse once it had read it whole.
    fn check_next_header(&self) -> Result<(), InboundError> {
        let Some(header) = frame_header::peek(&self.buf) else {
            return Ok(());
        };
        if header.is_bad_control() {
            return Err(InboundError::Protocol);
        }
        // A control frame may come between fragments; it does not join their message.
        let joined = if header.is_control() {
            0
        } else {
            self.joined_len()
        };
        if (joined as u64).saturating_add(header.payload_len) > self.max_message_size as u64 {
            return Err(InboundError::TooLarge);
        }
        Ok(())
    }

    /// Adds a fragment; the message once its last fragment arrived.
    fn join(&mut self, item: Item) -> Result<Option<Inbound>, InboundError> {
        let (is_text, bytes, last) = match item {
            Item::FirstText(bytes) => (true, bytes, false),
            Item::FirstBinary(bytes) => (false, bytes, false),
            Item::Continue(bytes) => (false, bytes, false),
            Item::Last(bytes) => (false, bytes, true),
        };
        let (text_message, data) = self
            .fragments
            .get_or_insert_with(|| (is_text, BytesMut::new()));
        if data.len() + bytes.len() > self.max_message_size {
            self.fragments = None;
            return Err(InboundError::TooLarge);
        }
        data.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        let is_text = *text_message;
        let data = std::mem::take(data).freeze();
        self.fragments = None;
        Ok(Some(if is_text {
            text(data)?
        } else {
            Inbound::Binary
        }))
    }
}

fn text(bytes: Bytes) -> Result<Inbound, InboundError> {
    ByteString::try_from(bytes)
        .map(Inbound::Text)
        .map_err(|_| InboundError::InvalidText)
}

fn classify(error: ProtocolError) -> InboundError {
    match error {
        ProtocolError::Overflow => InboundError::TooLarge,
        _ => InboundError::Protocol,
    }
}

//! A WebSocket client that writes raw frame bytes, so a test can send what no well-behaved
//! library would: a header declaring 2^40 bytes, a fragment past the limit, a fragmented ping.
//! It reads the server's frames one by one, so a test can stop reading altogether.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{APP_KEY, TIMEOUT};

/// Text, continuation, ping and close opcodes (RFC 6455 §5.2).
pub const TEXT: u8 = 0x1;
pub const CONTINUATION: u8 = 0x0;
pub const PING: u8 = 0x9;
pub const CLOSE: u8 = 0x8;

/// A client socket after the `101`, with what it has read and not yet parsed.
pub struct RawWebSocket {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The header of a masked client frame declaring `len` payload bytes (an all-zero mask, so
/// the payload goes as it is).
pub fn frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut header = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=0xFFFF => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    header.extend_from_slice(&[0, 0, 0, 0]);
    header
}

/// A whole masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame_header(fin, opcode, payload.len() as u64);
    bytes.extend_from_slice(payload);
    bytes
}

impl RawWebSocket {
    /// Connects to the default app on the server at `port` and completes the handshake.
    pub async fn connect(port: u16) -> Self {
        Self::connect_with(port, None).await
    }

    /// Connects with a receive buffer of about `bytes` (a client that reads slowly, or never,
    /// fills it at once).
    pub async fn connect_with_receive_buffer(port: u16, bytes: u32) -> Self {
        Self::connect_with(port, Some(bytes)).await
    }

    async fn connect_with(port: u16, receive_buffer: Option<u32>) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes).unwrap();
        }
        let addr = ([127, 0, 0, 1], port).into();
        let mut stream = tokio::time::timeout(TIMEOUT, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        let request = format!(
            "GET /app/{APP_KEY}?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut client = RawWebSocket {
            stream,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(client.read_some().await, "no handshake response");
        };
        let head = String::from_utf8_lossy(&client.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        client.buf.drain(..head_end);
        client
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes raw bytes; `false` if the connection is gone. Waits for as long as the server
    /// does not read: bound it with a timeout (and keep polling the same future, so that no
    /// frame is cut in half).
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads more from the socket (bounded wait); `false` at the end of the stream.
    async fn read_some(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk))
            .await
            .expect("nothing to read within the timeout");
        match read {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The server's next frame (opcode, payload); `None` once the connection has ended.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((header_len, len)) = server_frame_len(&self.buf)
                && self.buf.len() >= header_len + len
            {
                let opcode = self.buf[0] & 0x0F;
                let payload = self.buf[header_len..header_len + len].to_vec();
                self.buf.drain(..header_len + len);
                return Some((opcode, payload));
            }
            if !self.read_some().await {
                return None;
            }
        }
    }

    /// Reads frames (at most `max_frames`) up to the close frame and returns its code.
    pub async fn close_code(&mut self, max_frames: usize) -> u16 {
        for _ in 0..max_frames {
            match self.next_frame().await {
                Some((CLOSE, payload)) => {
                    assert!(payload.len() >= 2, "close frame without a code");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
        panic!("no close frame within {max_frames} frames");
    }

    /// Waits (bounded) for the server to end the connection; `true` if it did.
    pub async fn ends_within(&mut self, limit: Duration) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let ended = tokio::time::timeout(limit, async {
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        });
        ended.await.is_ok()
    }
}

/// The header and payload length of the (unmasked) server frame at the start of `buf`.
fn server_frame_len(buf: &[u8]) -> Option<(usize, usize)> {
    let second = *buf.get(1)?;
    match second & 0x7F {
        126 => Some((
            4,
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
        )),
        127 => Some((
            10,
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
        )),
        short => Some((2, short as usize)),
    }
}

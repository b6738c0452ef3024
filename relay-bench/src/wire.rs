//! A minimal WebSocket client (RFC 6455) over plain TCP: the opening handshake, masked frames
//! out, and unmasked frames in, parsed in place from one read buffer. Many frames arriving
//! in one TCP read cost one read syscall and no copy: each text payload is a slice of the
//! buffer. Pings are answered here; fragmented messages are joined.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::BenchError;

/// The most a handshake response or a single message may take.
const MAX_HEAD: usize = 16 * 1024;
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// An open WebSocket connection.
pub struct WireSocket {
    stream: TcpStream,
    buf: BytesMut,
    /// A fragmented message being joined: its opcode and bytes so far.
    fragments: Option<(u8, BytesMut)>,
}

/// One frame header, parsed.
struct Header {
    fin: bool,
    opcode: u8,
    len: usize,
    header_len: usize,
}

impl WireSocket {
    /// Connects to `host:port` and upgrades `path_and_query`; fails unless the server answers
    /// `101 Switching Protocols`.
    pub async fn connect(host: &str, port: u16, path_and_query: &str) -> Result<Self, BenchError> {
        let mut stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let key = BASE64.encode(rand::random::<[u8; 16]>());
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let head_len = loop {
            if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_HEAD || stream.read_buf(&mut buf).await? == 0 {
                return Err(BenchError::Protocol(
                    "the server ended the WebSocket handshake".into(),
                ));
            }
        };
        let head = buf.split_to(head_len);
        let status_line = head[..].split(|&b| b == b'\r').next().unwrap_or_default();
        if !status_line.starts_with(b"HTTP/1.1 101") {
            return Err(BenchError::Protocol(format!(
                "WebSocket upgrade refused: {}",
                String::from_utf8_lossy(status_line)
            )));
        }
        Ok(WireSocket {
            stream,
            buf,
            fragments: None,
        })
    }

    /// The next text message. Pings are answered; a close frame or the end of the connection
    /// is an error naming the close code. Cancel-safe while waiting for data.
    pub async fn next_text(&mut self) -> Result<Bytes, BenchError> {
        loop {
            while let Some(header) = parse_header(&self.buf)? {
                if self.buf.len() < header.header_len + header.len {
                    break;
                }
                self.buf.advance(header.header_len);
                let payload = self.buf.split_to(header.len).freeze();
                if let Some(text) = self.on_frame(&header, payload).await? {
                    return Ok(text);
                }
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(BenchError::Protocol(
                    "server closed the TCP connection".into(),
                ));
            }
        }
    }

    /// Sends a text message (masked, as a client must).
    pub async fn send_text(&mut self, text: &str) -> Result<(), BenchError> {
        self.send(OP_TEXT, text.as_bytes()).await
    }

    /// Sends a close frame with code 1000 and shuts the connection down.
    pub async fn close(mut self) {
        let _ = self.send(OP_CLOSE, &1000u16.to_be_bytes()).await;
        let _ = self.stream.shutdown().await;
    }

    async fn on_frame(
        &mut self,
        header: &Header,
        payload: Bytes,
    ) -> Result<Option<Bytes>, BenchError> {
        match header.opcode {
            OP_TEXT | OP_BINARY if self.fragments.is_some() => Err(BenchError::Protocol(
                "a new message began inside a fragmented one".into(),
            )),
            OP_TEXT if header.fin => Ok(Some(payload)),
            OP_BINARY if header.fin => {
                Err(BenchError::Protocol("server sent a binary message".into()))
            }
            OP_TEXT | OP_BINARY => {
                self.fragments = Some((header.opcode, BytesMut::from(&payload[..])));
                Ok(None)
            }
            OP_CONTINUATION => {
                let Some((opcode, joined)) = self.fragments.as_mut() else {
                    return Err(BenchError::Protocol(
                        "continuation frame without a first fragment".into(),
                    ));
                };
                joined.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                let opcode = *opcode;
                let joined = self.fragments.take().map(|(_, bytes)| bytes.freeze());
                if opcode == OP_TEXT {
                    Ok(joined)
                } else {
                    Err(BenchError::Protocol("server sent a binary message".into()))
                }
            }
            OP_PING => {
                self.send(OP_PONG, &payload).await?;
                Ok(None)
            }
            OP_PONG => Ok(None),
            OP_CLOSE => Err(BenchError::Protocol(format!(
                "server closed: {}",
                describe_close(&payload)
            ))),
            other => Err(BenchError::Protocol(format!(
                "unexpected frame opcode {other:#x}"
            ))),
        }
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), BenchError> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let mask: [u8; 4] = rand::random();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.write_all(&frame).await?;
        Ok(())
    }
}

/// The header at the start of `buf`, once all of it has arrived.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, BenchError> {
    let [first, second, rest @ ..] = buf else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err(BenchError::Protocol("server sent a masked frame".into()));
    }
    let (len, extra) = match second & 0x7F {
        126 => match rest {
            [a, b, ..] => (usize::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (
                    usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX),
                    8,
                )
            }
            None => return Ok(None),
        },
        len => (usize::from(len), 0),
    };
    if len > MAX_MESSAGE {
        return Err(BenchError::Protocol(format!("frame of {len} bytes")));
    }
    Ok(Some(Header {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        len,
        header_len: 2 + extra,
    }))
}

/// "4100 Over capacity" from a close frame's payload.
fn describe_close(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!(
            "{} {}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "no close code".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_each_length_form() {
        let short = parse_header(&[0x81, 5]).unwrap().unwrap();
        assert_eq!(
            (short.fin, short.opcode, short.len, short.header_len),
            (true, 1, 5, 2)
        );
        let medium = parse_header(&[0x01, 126, 1, 0]).unwrap().unwrap();
        assert_eq!((medium.fin, medium.len, medium.header_len), (false, 256, 4));
        let long = parse_header(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((long.opcode, long.len, long.header_len), (2, 65536, 10));
        assert!(parse_header(&[0x81]).unwrap().is_none());
        assert!(parse_header(&[0x81, 126, 1]).unwrap().is_none());
        assert!(parse_header(&[0x81, 0x85]).is_err(), "masked server frame");
    }

    #[test]
    fn close_payloads_are_described() {
        assert_eq!(describe_close(b"\x10\x04Over"), "4100 Over");
        assert_eq!(describe_close(b""), "no close code");
    }
}

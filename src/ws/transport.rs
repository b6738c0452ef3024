//! The byte stream under a WebSocket: plain TCP, or TLS over TCP when `[server.tls]` is set.
//! The reader ([`super::inbound`]) and the writer ([`super::outbound`]) each own one half.
//!
//! The connection code is generic over [`Transport`], so plain TCP compiles to what it was
//! before TLS existed: its halves are tokio's borrowed TCP halves, read only once the socket
//! is readable (into a buffer released whenever it is empty, so an idle connection holds
//! none) and written with `try_write` (a client that is behind is noticed the moment its
//! socket refuses bytes). TLS goes through tokio-rustls's `AsyncRead`/`AsyncWrite`, split by
//! `tokio::io::split`: a read waits inside rustls with its buffer reserved, and rustls keeps
//! record buffers of its own (bounded by rustls' send limit), so an idle TLS connection costs
//! more than a plain one (docs/benchmarks.md).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use actix_web::web::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, tcp};
use tokio_rustls::server::TlsStream;

/// A connection's stream, split into the halves its reader and writer own.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + 'static {
    /// The half the reader owns.
    type Reader<'a>: SocketReader
    where
        Self: 'a;
    /// The half the writer owns.
    type Writer<'a>: SocketWriter
    where
        Self: 'a;

    /// Both halves, borrowed for the connection's life.
    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);

    /// Turns off Nagle's algorithm on the TCP socket underneath.
    fn set_nodelay(&self) -> io::Result<()>;
}

/// The client-to-server half.
pub trait SocketReader {
    /// Reads at most `limit` bytes into `buf` once there are some; `Ok(0)` once the client
    /// has closed its side.
    fn read_at_most(
        &mut self,
        buf: &mut BytesMut,
        limit: usize,
    ) -> impl Future<Output = io::Result<usize>>;
}

/// The server-to-client half.
pub trait SocketWriter {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize>;

    /// Waits until the socket takes bytes, then writes what it takes.
    fn write_when_ready(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<usize>>;

    /// Sends what the transport itself still holds (TLS records); nothing for plain TCP.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>>;

    /// Ends the server's side of the stream.
    fn shutdown(&mut self) -> impl Future<Output = ()>;
}

impl Transport for TcpStream {
    type Reader<'a> = tcp::ReadHalf<'a>;
    type Writer<'a> = tcp::WriteHalf<'a>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        self.split()
    }

    fn set_nodelay(&self) -> io::Result<()> {
        TcpStream::set_nodelay(self, true)
    }
}

impl SocketReader for tcp::ReadHalf<'_> {
    async fn read_at_most(&mut self, buf: &mut BytesMut, limit: usize) -> io::Result<usize> {
        loop {
            self.readable().await?;
            buf.reserve(limit);
            match self.try_read_buf(&mut (&mut *buf).limit(limit)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if buf.is_empty() && buf.capacity() > 0 {
                        *buf = BytesMut::new();
                    }
                }
                read => return read,
            }
        }
    }
}

impl SocketWriter for tcp::WriteHalf<'_> {
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        tcp::WriteHalf::try_write(self, bytes)
    }

    async fn write_when_ready(&mut self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            self.writable().await?;
            match tcp::WriteHalf::try_write(self, bytes) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                written => return written,
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl Transport for TlsStream<TcpStream> {
    type Reader<'a> = ReadHalf<&'a mut TlsStream<TcpStream>>;
    type Writer<'a> = WriteHalf<&'a mut TlsStream<TcpStream>>;

    fn halves(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        tokio::io::split(self)
    }

    fn set_nodelay(&self) -> io::Result<()> {
        self.get_ref().0.set_nodelay(true)
    }
}

impl<T: AsyncRead> SocketReader for ReadHalf<T> {
    async fn read_at_most(&mut self, buf: &mut BytesMut, limit: usize) -> io::Result<usize> {
        buf.reserve(limit);
        self.read_buf(&mut (&mut *buf).limit(limit)).await
    }
}

impl<T: AsyncWrite> SocketWriter for WriteHalf<T> {
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // One poll that wakes nobody: `write_when_ready` polls again with the task's waker.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(self).poll_write(&mut cx, bytes) {
            Poll::Ready(written) => written,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    async fn write_when_ready(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write(bytes).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        AsyncWriteExt::flush(self).await
    }

    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

//! The byte stream under a WebSocket: plain TCP, or TLS over TCP when `[server.tls]` is set.
//! The reader ([`super::inbound`]) and the writer ([`super::outbound`]) each own one half.
//!
//! The connection code is generic over [`Transport`], so plain TCP compiles to what it was
//! before TLS existed: its halves are tokio's borrowed TCP halves, read only once the socket
//! is readable (into a buffer released whenever it is empty, so an idle connection holds
//! none) and written with `try_write` (a client that is behind is noticed the moment its
//! socket refuses bytes). TLS goes through tokio-rustls's `AsyncRead`/`AsyncWrite`, split by
//! `tokio::io::split`; rustls keeps record buffers of its own (its send buffer bounded by
//! rustls' limit), so an idle TLS connection costs more than a plain one
//! (docs/benchmarks.md). Both halves are poll-based: an async method per read or write put
//! its future inside every idle connection's state, which measured 0.08 KiB per idle plain
//! connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use actix_web::web::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
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

/// The client-to-server half. Poll-based, so a connection waiting to read holds no future
/// of the transport's (an idle connection's size is what it waits with).
pub trait SocketReader {
    /// Reads at most `limit` bytes (at most [`MAX_READ`]) into `buf` once there are some;
    /// `Ok(0)` once the client has closed its side.
    fn poll_read_at_most(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Poll<io::Result<usize>>;
}

/// The server-to-client half, poll-based as the reader.
pub trait SocketWriter {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize>;

    /// Writes what the socket takes once it takes some.
    fn poll_write_some(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>>;

    /// Sends what the transport itself still holds (TLS records); nothing for plain TCP.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Ends the server's side of the stream.
    fn shutdown(&mut self) -> impl Future<Output = ()>;
}

/// The most one read takes (the reader's own chunk).
pub const MAX_READ: usize = 8 * 1024;

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
    fn poll_read_at_most(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.as_ref().poll_read_ready(cx))?;
            buf.reserve(limit);
            match self.try_read_buf(&mut (&mut *buf).limit(limit)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing there after all: wait without holding an empty buffer.
                    if buf.is_empty() && buf.capacity() > 0 {
                        *buf = BytesMut::new();
                    }
                }
                read => return Poll::Ready(read),
            }
        }
    }
}

impl SocketWriter for tcp::WriteHalf<'_> {
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        tcp::WriteHalf::try_write(self, bytes)
    }

    fn poll_write_some(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.as_ref().poll_write_ready(cx))?;
            match tcp::WriteHalf::try_write(self, bytes) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
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
    fn poll_read_at_most(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        // Read through a stack buffer, so the connection's own grows only by what arrived.
        let mut chunk = [0u8; MAX_READ];
        let mut read = ReadBuf::new(&mut chunk[..limit.min(MAX_READ)]);
        ready!(Pin::new(self).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl<T: AsyncWrite> SocketWriter for WriteHalf<T> {
    fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // One poll that wakes nobody: `poll_write_some` polls again with the task's waker.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(self).poll_write(&mut cx, bytes) {
            Poll::Ready(written) => written,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn poll_write_some(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write(cx, bytes)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_flush(cx)
    }

    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

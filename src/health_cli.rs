//! `relay health`: asks a running server's `GET /ready` and says whether it answered 200, so
//! a container image without curl can health-check with the binary it already has.
//!
//! One plain HTTP/1.1 request over a blocking `std::net::TcpStream`, bounded as a whole by
//! [`TIMEOUT`]: pulling in an HTTP client crate for one GET would make the server's build
//! heavier for no gain. Only the status line is read; any answer but 200 is "not ready".
//! Plain `http` only: `[server]` has no TLS, so there is nothing else to ask.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long connecting, sending and reading the status line may take together.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The path that answers 503 once shutdown has begun (`http::health::ready`).
pub const READY_PATH: &str = "/ready";

/// Longest status line read before the answer is taken for something that is not HTTP.
const MAX_STATUS_LINE: usize = 1024;

/// Why the server is not taken for ready.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// A `--url` that is not `http://HOST[:PORT][/PATH]`.
    #[error("--url {0:?} is not http://HOST[:PORT][/PATH]")]
    BadUrl(String),
    /// The host name does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host asked for.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// Nothing accepted the connection (refused, unreachable).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Connected, but no status line within [`TIMEOUT`].
    #[error("no answer from {addr} within {} s", TIMEOUT.as_secs())]
    Timeout {
        /// The address asked.
        addr: SocketAddr,
    },
    /// The connection failed or closed before a status line.
    #[error("{addr} closed the connection without an answer: {source}")]
    Io {
        /// The address asked.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Something answered that is not HTTP.
    #[error("{addr} did not answer HTTP")]
    NotHttp {
        /// The address asked.
        addr: SocketAddr,
    },
    /// The server answered, but not 200 (503 while it shuts down).
    #[error("not ready: {url} answered {status}")]
    NotReady {
        /// What was asked.
        url: ReadyUrl,
        /// The status it answered.
        status: u16,
    },
}

/// What `relay health` asks: a host, a port and a path, over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyUrl {
    /// A name or an IP address (an IPv6 one without brackets).
    host: String,
    port: u16,
    path: String,
}

impl ReadyUrl {
    /// `GET /ready` of the server bound to `host` and `port` (its `[server]` settings).
    pub fn for_server(host: &str, port: u16) -> Self {
        ReadyUrl {
            host: host.to_owned(),
            port,
            path: READY_PATH.to_owned(),
        }
    }

    /// Parses `http://HOST[:PORT][/PATH]` (port 80 and path `/` when absent, as in any URL).
    pub fn parse(text: &str) -> Result<Self, HealthError> {
        let bad = || HealthError::BadUrl(text.to_owned());
        let rest = text.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']').ok_or_else(bad)? {
                (host, "") => (host, None),
                (host, after) => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            },
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = port.map_or(Ok(80), str::parse).map_err(|_| bad())?;
        if host.is_empty() || host.contains(['@', '[', ']']) {
            return Err(bad());
        }
        Ok(ReadyUrl {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `host:port`, bracketing an IPv6 address, as the `Host` header and a URL write it.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ReadyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// Asks `url` once, within `timeout` in all; `Ok` when it answered 200.
pub fn check(url: &ReadyUrl, timeout: Duration) -> Result<(), HealthError> {
    let deadline = Instant::now() + timeout;
    let (mut stream, addr) = connect(url, deadline)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: relay-health\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority()
    );
    let failed = |source: io::Error| match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HealthError::Timeout { addr },
        _ => HealthError::Io { addr, source },
    };
    stream
        .set_write_timeout(Some(remaining(deadline, addr)?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(failed)?;
    let line = read_status_line(&mut stream, deadline, addr).map_err(|error| match error {
        StatusLineError::Io(source) => failed(source),
        StatusLineError::Late => HealthError::Timeout { addr },
        StatusLineError::NotHttp => HealthError::NotHttp { addr },
    })?;
    match status_of(&line) {
        Some(200) => Ok(()),
        Some(status) => Err(HealthError::NotReady {
            url: url.clone(),
            status,
        }),
        None => Err(HealthError::NotHttp { addr }),
    }
}

/// Connects to the first address of `url`'s host that accepts; an unspecified address
/// (`0.0.0.0`, `::`, what a server binds to listen everywhere) is asked on loopback.
fn connect(url: &ReadyUrl, deadline: Instant) -> Result<(TcpStream, SocketAddr), HealthError> {
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| HealthError::Resolve {
            host: url.host.clone(),
            source,
        })?;
    let mut last = None;
    for mut addr in addrs {
        if addr.ip().is_unspecified() {
            addr.set_ip(loopback_of(addr.ip()));
        }
        match TcpStream::connect_timeout(&addr, remaining(deadline, addr)?) {
            Ok(stream) => return Ok((stream, addr)),
            Err(source) if source.kind() == io::ErrorKind::TimedOut => {
                return Err(HealthError::Timeout { addr });
            }
            Err(source) => last = Some(HealthError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| HealthError::Resolve {
        host: url.host.clone(),
        source: io::Error::new(io::ErrorKind::NotFound, "no address"),
    }))
}

fn loopback_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// What is left until `deadline` (never zero, which the socket timeouts refuse).
fn remaining(deadline: Instant, addr: SocketAddr) -> Result<Duration, HealthError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(HealthError::Timeout { addr }),
    }
}

enum StatusLineError {
    Io(io::Error),
    Late,
    NotHttp,
}

/// Reads up to the end of the first line of the answer.
fn read_status_line(
    stream: &mut TcpStream,
    deadline: Instant,
    addr: SocketAddr,
) -> Result<String, StatusLineError> {
    let mut answer = Vec::new();
    let mut chunk = [0; 256];
    while !answer.windows(2).any(|pair| pair == b"\r\n") {
        if answer.len() > MAX_STATUS_LINE {
            return Err(StatusLineError::NotHttp);
        }
        let left = remaining(deadline, addr).map_err(|_| StatusLineError::Late)?;
        stream
            .set_read_timeout(Some(left))
            .map_err(StatusLineError::Io)?;
        match stream.read(&mut chunk).map_err(StatusLineError::Io)? {
            0 => {
                let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "closed");
                return Err(StatusLineError::Io(closed));
            }
            read => answer.extend_from_slice(&chunk[..read]),
        }
    }
    let line = answer
        .split(|&byte| byte == b'\r')
        .next()
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`).
fn status_of(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    let status = parts.next()?;
    if !version.starts_with("HTTP/1.") || status.len() != 3 {
        return None;
    }
    status.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_host_port_and_path() {
        let url = ReadyUrl::parse("http://127.0.0.1:6001/ready").unwrap();
        assert_eq!(url, ReadyUrl::for_server("127.0.0.1", 6001));
        assert_eq!(url.to_string(), "http://127.0.0.1:6001/ready");
        let v6 = ReadyUrl::parse("http://[::1]:6001/ready").unwrap();
        assert_eq!(v6, ReadyUrl::for_server("::1", 6001));
        assert_eq!(v6.to_string(), "http://[::1]:6001/ready");
        let bare = ReadyUrl::parse("http://relay.internal").unwrap();
        assert_eq!(bare.to_string(), "http://relay.internal:80/");
    }

    #[test]
    fn other_urls_are_refused_naming_the_form() {
        for text in [
            "https://127.0.0.1:6001/ready",
            "127.0.0.1:6001",
            "http://:6001/ready",
            "http://127.0.0.1:port/ready",
            "http://127.0.0.1:70000/ready",
            "http://::1:6001/ready",
            "http://[::1/ready",
            "http://user@host/ready",
        ] {
            let error = ReadyUrl::parse(text).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("--url {text:?} is not http://HOST[:PORT][/PATH]")
            );
        }
    }

    #[test]
    fn an_unspecified_host_is_asked_on_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let deadline = Instant::now() + TIMEOUT;
        let (_, addr) = connect(&ReadyUrl::for_server("0.0.0.0", port), deadline).unwrap();
        assert_eq!(addr, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }

    #[test]
    fn only_an_http_status_line_gives_a_status() {
        assert_eq!(status_of("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_of("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH_9.2"), None);
        assert_eq!(status_of("HTTP/1.1 20 OK"), None);
        assert_eq!(status_of("+PONG"), None);
    }
}

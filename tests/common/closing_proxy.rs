//! A TCP proxy in front of a [`TestServer`](super::TestServer) that answers HTTP the way Soketi
//! and Sockudo do: every response chunked and with `Connection: close`, the connection closed
//! after it. WebSocket upgrades pass through untouched, so a load-tool scenario can run against
//! it whole and show that its HTTP client copes with a server that never keeps a connection.
//!
//! Each plain request is forwarded alone, on a new connection to the real server, and only
//! `Content-Length` framing is understood (Relay sends nothing else); everything is bounded by
//! the size limits below, and the proxy stops when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Longest request or response head read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request or response body forwarded.
const MAX_BODY: usize = 1024 * 1024;

/// A running proxy; it stops (and drops every connection) when dropped.
pub struct ClosingProxy {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    _runtime: Runtime,
}

impl ClosingProxy {
    /// Listens on a free loopback port, forwarding to the server on `upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream_port, counted.clone()));
            }
        });
        ClosingProxy {
            port,
            requests,
            _runtime: runtime,
        }
    }

    /// Plain HTTP requests answered so far (WebSocket upgrades not counted).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// One client connection: a WebSocket piped through, or one request answered and closed.
async fn serve(mut client: TcpStream, upstream_port: u16, requests: Arc<AtomicUsize>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))
        .await
        .expect("connect to the server behind the proxy");
    if header(&head, "upgrade").is_some_and(|value| value.eq_ignore_ascii_case("websocket")) {
        upstream
            .write_all(&head)
            .await
            .expect("forward the upgrade");
        upstream
            .write_all(&rest)
            .await
            .expect("forward the upgrade");
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    let body = read_body(&mut client, &head, rest).await;
    upstream.write_all(&head).await.expect("forward the head");
    upstream.write_all(&body).await.expect("forward the body");
    let (answer_head, answer_rest) = read_head(&mut upstream)
        .await
        .expect("the server answers the forwarded request");
    let answer_body = read_body(&mut upstream, &answer_head, answer_rest).await;
    let answer = chunked_and_closing(&answer_head, &answer_body);
    for part in answer {
        // One write per part, so the chunks may well arrive in separate reads.
        if client.write_all(&part).await.is_err() {
            return;
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let _ = client.shutdown().await;
}

/// Reads up to the end of a message head; returns the head (with its blank line) and any bytes
/// read past it. `None` when the peer closes first or the head is too long.
async fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    while buffer.len() < MAX_HEAD {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Some((buffer, rest));
        }
    }
    None
}

/// Reads the `Content-Length` body that follows `head`, `rest` being its first bytes.
async fn read_body(stream: &mut TcpStream, head: &[u8], mut rest: Vec<u8>) -> Vec<u8> {
    assert!(
        header(head, "transfer-encoding").is_none(),
        "the closing proxy forwards Content-Length bodies only"
    );
    let length: usize = header(head, "content-length")
        .map_or(0, |value| value.parse().expect("a numeric Content-Length"));
    assert!(length <= MAX_BODY, "a body of {length} bytes");
    assert!(
        rest.len() <= length,
        "bytes past the body: one request at a time"
    );
    let start = rest.len();
    rest.resize(length, 0);
    stream
        .read_exact(&mut rest[start..])
        .await
        .expect("the whole body");
    rest
}

/// The value of header `name` (case-insensitive) in `head`.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The answer rewritten: its status line and headers, less its framing and connection
/// headers, then `Transfer-Encoding: chunked` and `Connection: close`, and the body in two
/// chunks (one when it is shorter than two bytes) and the last, empty, chunk.
fn chunked_and_closing(head: &[u8], body: &[u8]) -> Vec<Vec<u8>> {
    let text = std::str::from_utf8(head).expect("a UTF-8 response head");
    let mut lines = text.split("\r\n").filter(|line| !line.is_empty());
    let mut new_head = lines.next().expect("a status line").to_owned();
    new_head.push_str("\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim();
        let dropped = [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
        ];
        if !dropped.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            new_head.push_str(line);
            new_head.push_str("\r\n");
        }
    }
    new_head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    let mut parts = vec![new_head.into_bytes()];
    let (first, second) = body.split_at(body.len() / 2);
    for piece in [first, second] {
        if !piece.is_empty() {
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(piece);
            chunk.extend_from_slice(b"\r\n");
            parts.push(chunk);
        }
    }
    parts.push(b"0\r\n\r\n".to_vec());
    parts
}

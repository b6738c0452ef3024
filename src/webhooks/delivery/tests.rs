//! Delivery against real sockets: signing, retries, closed and reused connections, TLS, and
//! the new-connection limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::protocol::ChannelName;

/// Longest a test waits for the receiver thread or a delivery.
const WAIT: Duration = Duration::from_secs(10);

/// Reads one request from `reader`: its head (without the blank line) and body; `None`
/// when the connection ends first.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let (mut head, mut length) = (String::new(), 0);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8(body).ok()?))
}

/// A one-request receiver answering `status`; sends the request's head and body. The
/// thread is left to end with the test process, so no wait on it is unbounded.
fn answer_once(status: &'static str) -> (u16, std_mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (send, requests) = std_mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let (head, body) = read_request(&mut reader).unwrap();
        let response =
            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        reader.get_mut().write_all(response.as_bytes()).unwrap();
        let _ = send.send(head + "\r\n" + &body);
    });
    (port, requests)
}

/// A receiver that serves every connection on a thread of its own with `serve`.
fn receiver(
    serve: fn(BufReader<TcpStream>, &std_mpsc::Sender<u32>),
) -> (u16, std_mpsc::Receiver<u32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (send, seen) = std_mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(stream) = stream else { return };
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let send = send.clone();
            std::thread::spawn(move || serve(BufReader::new(stream), &send));
        }
    });
    (port, seen)
}

/// A delivery to `scheme://127.0.0.1:port/h`.
fn delivery_to(scheme: &str, port: u16, retry_for: u64) -> Delivery {
    let text = format!(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.webhooks]]\nurl = \"{scheme}://127.0.0.1:{port}/h\"\nretry_for = {retry_for}\ntimeout = 5\n"
    );
    let config = Config::from_toml(&text, Path::new("test.toml")).unwrap();
    let app = Arc::new(App::from_config(&config.apps[0]));
    let endpoint = Arc::new(Endpoint::from_config(&config.apps[0].webhooks[0]));
    Delivery::new(app, endpoint, Arc::new(WebhookStats::default()), 1000)
}

fn batch_on(channel: &str) -> WebhookBatch {
    let mut batcher = super::super::Batcher::new(Duration::ZERO, 1);
    let channel = ChannelName::parse(channel, 164).unwrap();
    batcher
        .push(Arc::from(r#"{"name":"x"}"#), channel, Instant::now())
        .unwrap()
}

/// Runs `delivery` over `batches` until all are delivered or given up; its counters.
async fn deliver(delivery: Delivery, batches: Vec<WebhookBatch>) -> Arc<WebhookStats> {
    let stats = delivery.stats.clone();
    let (queue, taken) = mpsc::channel(batches.len().max(1));
    for batch in batches {
        queue.try_send(batch).unwrap();
    }
    drop(queue);
    tokio::time::timeout(WAIT, delivery.run(taken))
        .await
        .expect("the delivery finished");
    stats
}

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[tokio::test]
async fn an_accepted_batch_is_signed_and_counted_as_delivered() {
    let (port, receiver) = answer_once("204 No Content");
    let stats = deliver(delivery_to("http", port, 0), vec![batch_on("c")]).await;
    let request = receiver.recv_timeout(WAIT).unwrap();
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("post /h http/1.1"), "{head}");
    assert!(
        head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
    assert!(head.contains("x-pusher-key: k\r\n"), "{head}");
    assert!(head.contains("x-relay-webhook-id: "), "{head}");
    let signature = crate::protocol::signature::sign(b"s", body.as_bytes());
    assert!(
        head.contains(&format!("x-pusher-signature: {signature}")),
        "{head}"
    );
    assert!(body.ends_with(r#","events":[{"name":"x"}]}"#), "{body}");
    assert_eq!(count(&stats.delivered), 1);
    assert_eq!(count(&stats.failed_attempts), 0);
}

#[tokio::test]
async fn a_refused_batch_past_its_retry_time_is_dropped_and_counted() {
    let (port, receiver) = answer_once("503 Service Unavailable");
    let stats = deliver(delivery_to("http", port, 0), vec![batch_on("c")]).await;
    receiver.recv_timeout(WAIT).unwrap();
    assert_eq!(count(&stats.failed_attempts), 1);
    assert_eq!(count(&stats.dropped_after_retries), 1);
    assert_eq!(count(&stats.delivered), 0);
}

#[tokio::test]
async fn https_receivers_are_reached_over_tls() {
    // A plain-TCP listener that reads the first bytes: a TLS ClientHello starts with the
    // handshake record type 0x16, which proves a TLS client is wired in.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (send, first_byte) = std_mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        let _ = send.send(byte[0]);
    });
    let stats = deliver(delivery_to("https", port, 0), vec![batch_on("c")]).await;
    assert_eq!(first_byte.recv_timeout(WAIT).unwrap(), 0x16);
    assert_eq!(count(&stats.failed_attempts), 1);
}

#[tokio::test]
async fn an_https_host_tls_cannot_verify_is_never_sent_in_plain_text() {
    // `127.1` is a valid URL host but no name or address rustls verifies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = format!(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.webhooks]]\nurl = \"https://127.1:{port}/h\"\nretry_for = 0\n"
    );
    let config = Config::from_toml(&text, Path::new("test.toml")).unwrap();
    let app = Arc::new(App::from_config(&config.apps[0]));
    let endpoint = Arc::new(Endpoint::from_config(&config.apps[0].webhooks[0]));
    let delivery = Delivery::new(app, endpoint, Arc::new(WebhookStats::default()), 10);
    let stats = deliver(delivery, vec![batch_on("c")]).await;
    assert_eq!(count(&stats.failed_attempts), 1);
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "no connection was made: {accepted:?}"
    );
}

#[tokio::test]
async fn an_unreachable_receiver_counts_as_a_failed_attempt() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stats = deliver(delivery_to("http", port, 0), vec![batch_on("c")]).await;
    assert_eq!(count(&stats.failed_attempts), 1);
    assert_eq!(count(&stats.dropped_after_retries), 1);
}

/// Answers one request keeping the connection alive, then closes it as soon as the next
/// request has arrived on it, unanswered: the race a keep-alive client must survive.
fn answer_then_close_on_the_next(mut reader: BufReader<TcpStream>, seen: &std_mpsc::Sender<u32>) {
    if read_request(&mut reader).is_none() {
        return;
    }
    let _ = seen.send(1);
    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
        return;
    }
    if read_request(&mut reader).is_some() {
        let _ = seen.send(0);
    }
}

#[tokio::test]
async fn a_request_on_a_reused_connection_the_receiver_closed_is_sent_again_at_no_cost() {
    let (port, seen) = receiver(answer_then_close_on_the_next);
    // One channel: each batch waits for the one before, so each reuses its connection.
    let batches = (0..20).map(|_| batch_on("c")).collect();
    let stats = deliver(delivery_to("http", port, 300), batches).await;
    assert_eq!(count(&stats.delivered), 20);
    assert_eq!(
        count(&stats.failed_attempts),
        0,
        "no failed attempt, no backoff"
    );
    let answered: u32 = seen.try_iter().sum();
    assert_eq!(answered, 20);
}

/// Reads a request and closes the connection without an answer.
fn hang_up(mut reader: BufReader<TcpStream>, seen: &std_mpsc::Sender<u32>) {
    if read_request(&mut reader).is_some() {
        let _ = seen.send(1);
    }
}

#[tokio::test]
async fn a_fresh_connection_closed_without_an_answer_is_a_real_failure() {
    let (port, seen) = receiver(hang_up);
    let stats = deliver(delivery_to("http", port, 0), vec![batch_on("c")]).await;
    assert_eq!(count(&stats.failed_attempts), 1);
    assert_eq!(count(&stats.dropped_after_retries), 1);
    assert_eq!(seen.try_iter().sum::<u32>(), 1, "sent once, not again");
}

/// Answers with `Connection: close` (`1`) or as HTTP/1.0 (`0`) but keeps its end open,
/// and reports any second request on the connection as `2`.
fn answer_closing(mut reader: BufReader<TcpStream>, seen: &std_mpsc::Sender<u32>, http10: bool) {
    if read_request(&mut reader).is_none() {
        return;
    }
    let answer = if http10 {
        "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"
    } else {
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    };
    // Counted before the answer goes out, so the count is in when the delivery ends.
    let _ = seen.send(1);
    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
        return;
    }
    // The client must hang up rather than send another request (bounded by the timeout).
    if read_request(&mut reader).is_some() {
        let _ = seen.send(2);
    }
}

#[tokio::test]
async fn a_receiver_that_closes_gets_one_request_per_connection() {
    fn close_header(reader: BufReader<TcpStream>, seen: &std_mpsc::Sender<u32>) {
        answer_closing(reader, seen, false);
    }
    fn http10(reader: BufReader<TcpStream>, seen: &std_mpsc::Sender<u32>) {
        answer_closing(reader, seen, true);
    }
    for serve in [close_header as fn(_, &_), http10] {
        let (port, seen) = receiver(serve);
        let batches = (0..10).map(|_| batch_on("c")).collect();
        let stats = deliver(delivery_to("http", port, 300), batches).await;
        assert_eq!(count(&stats.delivered), 10);
        assert_eq!(count(&stats.failed_attempts), 0);
        let per_connection: Vec<u32> = seen.try_iter().collect();
        assert_eq!(per_connection, vec![1; 10], "never a second request on one");
    }
}

/// Connections the slow receiver below holds unanswered, now and at most.
static UNANSWERED: AtomicU64 = AtomicU64::new(0);
static MOST_UNANSWERED: AtomicU64 = AtomicU64::new(0);

/// Takes 30 ms over each request (its work), then answers as HTTP/1.0 and closes.
fn slow_http10(mut reader: BufReader<TcpStream>, seen: &std_mpsc::Sender<u32>) {
    let now = UNANSWERED.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_UNANSWERED.fetch_max(now, Ordering::SeqCst);
    let request = read_request(&mut reader);
    std::thread::sleep(Duration::from_millis(30));
    UNANSWERED.fetch_sub(1, Ordering::SeqCst);
    if request.is_some() {
        // Counted before the answer goes out, so the count is in when the delivery ends.
        let _ = seen.send(1);
        let answer = "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        let _ = reader.get_mut().write_all(answer.as_bytes());
    }
}

#[tokio::test]
async fn no_more_new_connections_wait_unanswered_than_a_small_listen_backlog_holds() {
    let (port, seen) = receiver(slow_http10);
    // Twelve channels: up to eight requests may be in flight, but each needs a new
    // connection, and at most four of those wait for their answer at once.
    let batches = (0..12).map(|n| batch_on(&format!("c{n}"))).collect();
    let stats = deliver(delivery_to("http", port, 300), batches).await;
    assert_eq!(count(&stats.delivered), 12);
    assert_eq!(seen.try_iter().sum::<u32>(), 12);
    let most = MOST_UNANSWERED.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} unanswered at once");
}

//! A local webhook receiver: a minimal HTTP/1.1 server (keep-alive, `Content-Length` bodies)
//! that records every request and answers as told, so tests can check what Relay sends,
//! when, how many requests at once, and how it retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{APP_KEY, APP_SECRET, TIMEOUT, sign};

/// A config whose app has `app_lines` and one `[[apps.webhooks]]` per entry of `webhooks`
/// (its URL, then extra lines).
pub fn config(app_lines: &str, webhooks: &[(&str, &str)]) -> String {
    let mut text = format!("{}{app_lines}\n", super::default_config());
    for (url, lines) in webhooks {
        text.push_str(&format!("[[apps.webhooks]]\nurl = \"{url}\"\n{lines}\n"));
    }
    text
}

/// An endpoint's lines for occupancy events only.
pub const OCCUPANCY: &str = r#"events = ["channel_occupied", "channel_vacated"]"#;

pub fn occupied(channel: &str) -> Value {
    json!({"name": "channel_occupied", "channel": channel})
}

pub fn vacated(channel: &str) -> Value {
    json!({"name": "channel_vacated", "channel": channel})
}

pub async fn unsubscribe(client: &mut super::Client, channel: &str) {
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        .await;
    client.assert_nothing_pending().await;
}

/// Stops `server` (SIGTERM), waits for its exit and returns its `webhook totals` log line.
pub fn totals_at_shutdown(server: &mut super::TestServer) -> String {
    server.terminate();
    assert!(server.wait_for_exit(TIMEOUT), "the server did not exit");
    let log = server.log();
    log.lines()
        .find(|line| line.contains("webhook totals"))
        .unwrap_or_else(|| panic!("no totals logged: {log}"))
        .to_owned()
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// 500 to every request.
    AlwaysFail,
    /// 500 to the first request and every other one after it: with one request in flight at
    /// a time, each batch fails once and its retry succeeds.
    FailEveryOther,
    /// Reads requests but never answers.
    Never,
    /// 200 as HTTP/1.0, then closes the connection (Python's `http.server`, many CGI and PHP
    /// front ends).
    Http10,
    /// 200 as HTTP/1.1 without `Connection: close`, then closes the connection anyway.
    HangUpAfterEach,
    /// 200 after a random delay of up to this many milliseconds.
    RandomDelay(u64),
    /// 503 while [`WebhookReceiver::set_down`] says so, else 200.
    Switchable,
}

/// What the connections of one receiver share.
#[derive(Default)]
struct Shared {
    seen: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    down: AtomicBool,
}

/// One request the receiver got.
#[derive(Debug)]
pub struct Received {
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The body's `events`.
    pub fn events(&self) -> Vec<Value> {
        self.json()["events"]
            .as_array()
            .expect("events array")
            .clone()
    }

    /// The only event of a one-event body.
    pub fn event(&self) -> Value {
        let events = self.events();
        assert_eq!(events.len(), 1, "expected one event: {}", self.body);
        events[0].clone()
    }

    /// Asserts the Pusher headers (key, exact content type, the body's HMAC) and Relay's id.
    pub fn assert_signed(&self) {
        let id = &self.headers["x-relay-webhook-id"];
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "webhook id {id}"
        );
        assert_eq!(self.headers["content-type"], "application/json");
        assert_eq!(self.headers["x-pusher-key"], APP_KEY);
        assert_eq!(
            self.headers["x-pusher-signature"],
            sign(APP_SECRET, &self.body),
            "signature of {}",
            self.body
        );
        let time_ms = self.json()["time_ms"].as_u64().expect("time_ms");
        let now_ms = super::http::now() * 1000;
        assert!(time_ms.abs_diff(now_ms) < 60_000, "time_ms {time_ms}");
    }
}

/// A running receiver; stops with the test's runtime.
pub struct WebhookReceiver {
    pub port: u16,
    requests: mpsc::UnboundedReceiver<Received>,
    shared: Arc<Shared>,
}

impl WebhookReceiver {
    /// Starts a receiver that answers 200.
    pub async fn start() -> Self {
        Self::answering(Answer::FailFirst(0)).await
    }

    /// Starts a receiver that answers as `answer` says.
    pub async fn answering(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (sender, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let for_connections = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(
                    stream,
                    answer,
                    for_connections.clone(),
                    sender.clone(),
                ));
            }
        });
        WebhookReceiver {
            port,
            requests,
            shared,
        }
    }

    /// With [`Answer::Switchable`]: whether to answer 503 from now on.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// The most requests it has had in hand at once.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks", self.port)
    }

    /// The next request (bounded wait).
    pub async fn next(&mut self) -> Received {
        self.next_within(TIMEOUT)
            .await
            .expect("no webhook within the timeout")
    }

    /// The next request, if one arrives within `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Received> {
        tokio::time::timeout(limit, self.requests.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next request, asserting that it is signed and carries exactly `event`.
    pub async fn expect_event(&mut self, event: Value) -> Received {
        let received = self.next().await;
        received.assert_signed();
        assert_eq!(received.event(), event, "body {}", received.body);
        received
    }

    /// Asserts that nothing arrives within `limit`.
    pub async fn expect_nothing_within(&mut self, limit: Duration) {
        if let Some(received) = self.next_within(limit).await {
            panic!("unexpected webhook: {}", received.body);
        }
    }
}

async fn serve(
    stream: TcpStream,
    answer: Answer,
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<Received>,
) {
    let mut stream = BufReader::new(stream);
    while let Some(received) = read_request(&mut stream).await {
        let number = shared.seen.fetch_add(1, Ordering::SeqCst);
        let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        // The answer is decided before the test hears of the request, so a test that reacts
        // to a request (e.g. `set_down(false)`) changes only the answers to later ones.
        let status = match answer {
            Answer::FailFirst(n) if number >= n => Some("200 OK"),
            Answer::FailEveryOther if number % 2 == 1 => Some("200 OK"),
            Answer::FailFirst(_) | Answer::AlwaysFail | Answer::FailEveryOther => {
                Some("500 Internal Server Error")
            }
            Answer::Switchable if shared.down.load(Ordering::SeqCst) => {
                Some("503 Service Unavailable")
            }
            Answer::Http10
            | Answer::HangUpAfterEach
            | Answer::Switchable
            | Answer::RandomDelay(_) => Some("200 OK"),
            Answer::Never => None,
        };
        let _ = requests.send(received);
        let Some(status) = status else {
            // Hold the connection open, answering nothing, until the client gives up.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            return;
        };
        if let Answer::RandomDelay(most) = answer {
            let delay = rand::random_range(0..=most);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let version = if matches!(answer, Answer::Http10) {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        let response = format!("{version} {status}\r\ncontent-length: 2\r\n\r\nok");
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let written = stream.get_mut().write_all(response.as_bytes()).await;
        if written.is_err() || matches!(answer, Answer::Http10 | Answer::HangUpAfterEach) {
            return;
        }
    }
}

/// Reads one request; `None` when the connection ends.
async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    if line.is_empty() {
        return None;
    }
    assert!(line.starts_with("POST "), "webhooks are POSTs: {line}");
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("header line");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .expect("content-length")
        .parse()
        .expect("numeric length");
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(Received {
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
        at: Instant::now(),
    })
}

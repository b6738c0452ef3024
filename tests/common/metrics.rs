//! Scraping a test server's `[metrics]` listener.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The text of `GET /metrics` (and its content type).
pub async fn scrape(port: u16) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics listener");
    let request = "GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(super::TIMEOUT, stream.read_to_string(&mut answer))
        .await
        .expect("the scrape timed out")
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (body.to_owned(), content_type)
}

/// The value of the sample `series` (name and labels as exposed), if it is there.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

pub fn app_series(name: &str, app_id: &str) -> String {
    format!("{name}{{app_id=\"{app_id}\"}}")
}

/// Scrapes until `series` has `value` (what the server does after answering, such as a
/// connection's end, may land a moment later), at most [`super::TIMEOUT`].
pub async fn until(port: u16, series: &str, value: f64) -> String {
    let deadline = Instant::now() + super::TIMEOUT;
    loop {
        let (text, _) = scrape(port).await;
        if sample(&text, series) == Some(value) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

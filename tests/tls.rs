//! `[server.tls]`: wss:// and https:// on the same port with a self-signed certificate made
//! by rcgen; plain HTTP refused there; a certificate replaced on disk served to the next
//! client without a restart; a broken replacement logged and the old one kept.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{now, signed_path};
use common::{APP_ID, APP_SECRET, TestServer, default_config};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a change on disk may take to be served: the files are looked at every 2 s, and a
/// key and certificate written apart may be seen in two looks.
const RELOAD_LIMIT: Duration = Duration::from_secs(15);

/// A new self-signed certificate for `localhost`: its PEM, its key's PEM and its DER.
fn certificate() -> (String, String, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        made.cert.der().clone(),
    )
}

fn tls_config() -> String {
    default_config().replacen(
        "[[apps]]",
        "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n\n[[apps]]",
        1,
    )
}

fn connector(trusted: &[&CertificateDer<'static>]) -> TlsConnector {
    connector_with(trusted, None)
}

/// A connector trusting `trusted`, presenting `client` (a certificate and its key's PEM).
fn connector_with(
    trusted: &[&CertificateDer<'static>],
    client: Option<&(CertificateDer<'static>, String)>,
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in trusted {
        roots.add((*certificate).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((certificate, key)) => {
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder
                .with_client_auth_cert(vec![certificate.clone()], key)
                .unwrap()
        }
    };
    TlsConnector::from(Arc::new(config))
}

/// A CA that issues client certificates.
struct ClientCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl ClientCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        ClientCa {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A client certificate for `name` and its key's PEM.
    fn issue(&self, name: &str) -> (CertificateDer<'static>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.der().clone(), key.serialize_pem())
    }
}

async fn connect(port: u16, connector: &TlsConnector) -> TlsStream<TcpStream> {
    try_connect(port, connector)
        .await
        .expect("the TLS handshake failed")
}

async fn try_connect(port: u16, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(common::TIMEOUT, connector.connect(name, tcp))
        .await
        .expect("the TLS handshake timed out")
}

/// One HTTP/1.1 request over TLS; the whole answer.
async fn https(
    port: u16,
    connector: &TlsConnector,
    method: &str,
    target: &str,
    body: &str,
) -> String {
    let mut stream = connect(port, connector).await;
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("the HTTPS answer timed out");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_and_the_api_are_served_over_tls_on_one_port() {
    let (cert, key, der) = certificate();
    let server = TestServer::start_with_files(
        &tls_config(),
        &[("tls/cert.pem", &cert), ("tls/key.pem", &key)],
    );
    let connector = connector(&[&der]);

    // wss://: a Pusher connection, subscribed, receiving an event triggered over https://.
    let stream = connect(server.port, &connector).await;
    let url = format!(
        "wss://localhost:{}/app/app-key?protocol=7&client=js&version=8.4.0",
        server.port
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let established = next_json(&mut ws).await;
    assert_eq!(established["event"], "pusher:connection_established");
    let subscribe = r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#;
    ws.send(Message::text(subscribe)).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let body = r#"{"name":"greeting","channels":["news"],"data":"{\"over\":\"tls\"}"}"#;
    let path = format!("/apps/{APP_ID}/events");
    let target = signed_path("POST", &path, &[], body, APP_SECRET, now());
    let answer = https(server.port, &connector, "POST", &target, body).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let event = next_json(&mut ws).await;
    assert_eq!(event["event"], "greeting");
    assert_eq!(event["data"], r#"{"over":"tls"}"#);
    let ready = https(server.port, &connector, "GET", "/ready", "").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    plain
        .write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "plain HTTP was served on the TLS port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_to_the_next_client() {
    let (cert, key, old) = certificate();
    let server = TestServer::start_with_files(
        &tls_config(),
        &[("tls/cert.pem", &cert), ("tls/key.pem", &key)],
    );
    let dir = server.config_path().parent().unwrap().join("tls");
    let (new_cert, new_key, new) = certificate();
    let both = connector(&[&old, &new]);
    let presented =
        |stream: &TlsStream<TcpStream>| stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented(&connect(server.port, &both).await), old);
    // A connection open before the renewal stays up across it.
    let mut open = connect(server.port, &both).await;

    // A broken replacement is refused: the old certificate is still served.
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    wait_for_log(&server, "TLS certificate not reloaded").await;
    assert_eq!(presented(&connect(server.port, &both).await), old);
    assert!(!server.log().contains(&key), "the key reached the log");

    std::fs::write(dir.join("key.pem"), &new_key).unwrap();
    std::fs::write(dir.join("cert.pem"), &new_cert).unwrap();
    let deadline = Instant::now() + RELOAD_LIMIT;
    while presented(&connect(server.port, &both).await) != new {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, open.read_to_end(&mut answer)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_stops_reading_is_closed_with_4100_at_the_byte_bound() {
    let (cert, key, der) = certificate();
    let config = tls_config().replace("[server]\n", "[server]\noutbound_queue_bytes = 65536\n")
        + "max_event_size = 20000\n";
    let server = TestServer::start_with_env_and_files(
        &config,
        &[("RUST_LOG", "info,relay::connections=debug")],
        &[("tls/cert.pem", &cert), ("tls/key.pem", &key)],
    );
    let connector = connector(&[&der]);
    // A small receive buffer, so that the kernel holds little of what the client never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(([127, 0, 0, 1], server.port).into())
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let url = format!("wss://localhost:{}/app/app-key?protocol=7", server.port);
    let (mut stalled, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    next_json(&mut stalled).await;
    let subscribe = r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#;
    stalled.send(Message::text(subscribe)).await.unwrap();
    next_json(&mut stalled).await;

    // 10 KB events until the server gives the client up (at most 400, 4 MB), never read.
    let closed = |log: &str| {
        log.lines()
            .any(|line| line.contains("connection closed") && line.contains("code=4100"))
    };
    let body = serde_json::json!({"name": "big", "channels": ["news"], "data": "x".repeat(10_000)})
        .to_string();
    let path = format!("/apps/{APP_ID}/events");
    let mut sent = 0;
    while !closed(&server.log()) {
        assert!(sent < 400, "never closed as behind:\n{}", server.log());
        let target = signed_path("POST", &path, &[], &body, APP_SECRET, now());
        let answer = https(server.port, &connector, "POST", &target, &body).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        sent += 1;
    }
}

#[test]
fn a_missing_or_unmatched_key_is_refused_at_start() {
    let (cert, _, _) = certificate();
    let (_, other_key, _) = certificate();
    let dir = tempfile::tempdir().unwrap();
    common::write_files(
        dir.path(),
        &[("tls/cert.pem", &cert), ("tls/key.pem", &other_key)],
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, tls_config()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(&config)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("key.pem"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_certificate_listener_feeds_the_apps_mtls_rules() {
    let (cert, key, server_der) = certificate();
    let ca = ClientCa::new();
    let registered = ca.issue("registered");
    let unregistered = ca.issue("unregistered");
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&registered.0));
    let config = default_config().replacen(
        "[[apps]]",
        "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\nclient_ca = \"tls/ca.pem\"\nclient_port = 0\n\n[[apps]]",
        1,
    ) + &format!(
        "[apps.security]\nmtls_required = true\nmtls_fingerprints = [\"sha256:{fingerprint}\"]\napply_to_websocket = true\n"
    );
    let server = TestServer::start_with_files(
        &config,
        &[
            ("tls/cert.pem", &cert),
            ("tls/key.pem", &key),
            ("tls/ca.pem", &ca.pem),
        ],
    );
    let port = server.client_certificates_port();
    let path = format!("/apps/{APP_ID}/channels");
    let read = || signed_path("GET", &path, &[], "", APP_SECRET, now());

    // The registered certificate: the API answers, and a WebSocket is admitted.
    let with_registered = connector_with(&[&server_der], Some(&registered));
    let answer = https(port, &with_registered, "GET", &read(), "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let stream = connect(port, &with_registered).await;
    let url = format!("wss://localhost:{port}/app/app-key?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["event"],
        "pusher:connection_established"
    );

    // Another certificate of the same CA is not registered.
    let with_other = connector_with(&[&server_der], Some(&unregistered));
    let answer = https(port, &with_other, "GET", &read(), "").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("Client certificate not registered"),
        "{answer}"
    );

    // Without a certificate the listener refuses the handshake (in TLS 1.3 the client may
    // only learn it when it reads).
    let without = connector(&[&server_der]);
    if let Ok(mut stream) = try_connect(port, &without).await {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            read()
        );
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }

    // The main port asks for no certificate, so the app's mtls_required refuses there.
    let answer = https(server.port, &without, "GET", &read(), "").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("Client certificate required"), "{answer}");
}

async fn wait_for_log(server: &TestServer, text: &str) {
    let deadline = Instant::now() + RELOAD_LIMIT;
    while !server.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "{text:?} never logged:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(common::TIMEOUT, ws.next())
            .await
            .expect("no message in time")
            .expect("the connection ended")
            .expect("a WebSocket error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

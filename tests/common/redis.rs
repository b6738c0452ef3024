//! A private redis-server for multi-node tests: each [`RedisServer`] is its own process on a
//! free loopback port with its own temp dir and no persistence, so tests never share data
//! and never meet a system-wide Redis. It can be stopped and restarted on the same port to
//! test losing Redis. [`RedisServer::command`] speaks raw RESP over a std `TcpStream`, so
//! tests can look at keys without a Redis client crate.
//!
//! The binary is `$RELAY_REDIS_SERVER` (scripts/test sets it, installing the package if
//! needed), else `redis-server` on PATH.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use super::TIMEOUT;

/// What redis-server prints once it listens.
const READY_LINE: &str = "Ready to accept connections";

/// A running redis-server of one test, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server on a free loopback port and waits (bounded) until it listens.
    pub fn start() -> Self {
        let binary = std::env::var_os("RELAY_REDIS_SERVER")
            .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
        let dir = tempfile::tempdir().expect("temp dir");
        // Another process may take the free port before redis-server binds it: try again.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match spawn(&binary, &dir, port) {
                Ok(child) => {
                    return RedisServer {
                        child: Some(child),
                        port,
                        binary,
                        dir,
                    };
                }
                Err(output) => failures.push(output),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n---\n"));
    }

    /// The port it listens on (the same across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL, as a crash would) and waits for it: its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port, and waits (bounded) until it listens.
    pub fn restart(&mut self) {
        self.stop();
        match spawn(&self.binary, &self.dir, self.port) {
            Ok(child) => self.child = Some(child),
            Err(output) => panic!("redis-server did not restart on {}:\n{output}", self.port),
        }
    }

    /// Whether it answers `PING` with `PONG` now.
    pub fn ping(&self) -> bool {
        self.try_command(&["PING"])
            .is_ok_and(|reply| reply == "PONG")
    }

    /// Sends one command and returns its reply as redis-cli prints it: a status or bulk
    /// string as is, an integer in decimal, `(nil)`, `(error) MESSAGE`, and an array's
    /// elements one per line. Panics if Redis cannot be reached.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|error| panic!("redis {args:?} on port {}: {error}", self.port))
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request += &format!("${}\r\n{arg}\r\n", arg.len());
        }
        stream.write_all(request.as_bytes())?;
        read_reply(&mut BufReader::new(stream))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free right now: bound once to get it, then let go.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Starts redis-server on `port` with `dir` as its working dir and waits for its ready line;
/// on failure, what it printed.
fn spawn(binary: &Path, dir: &tempfile::TempDir, port: u16) -> Result<Child, String> {
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}): scripts/test installs redis-server and sets \
                 RELAY_REDIS_SERVER; or put redis-server on PATH (Debian: apt-get install \
                 redis-server)",
                binary.display()
            )
        });
    let stdout = child.stdout.take().expect("stdout");
    let (lines, printed) = mpsc::channel();
    // Reads to the end, so redis-server never blocks on a full pipe while a test runs.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let mut output = String::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match printed.recv_timeout(left) {
            Ok(line) if line.contains(READY_LINE) => return Ok(child),
            Ok(line) => output += &format!("{line}\n"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{output}(not ready within {TIMEOUT:?})"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait for redis-server");
                return Err(format!("{output}(exited: {status})"));
            }
        }
    }
}

/// Reads one RESP2 reply, rendered as [`RedisServer::command`] says.
fn read_reply(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, line.to_owned());
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Ok(format!("(error) {rest}")),
        "$" if rest == "-1" => Ok("(nil)".to_owned()),
        "$" => {
            let len: usize = rest.parse().map_err(|_| invalid())?;
            let mut bulk = vec![0; len + 2];
            reader.read_exact(&mut bulk)?;
            bulk.truncate(len);
            String::from_utf8(bulk).map_err(|_| invalid())
        }
        "*" if rest == "-1" => Ok("(nil)".to_owned()),
        "*" => {
            let count: usize = rest.parse().map_err(|_| invalid())?;
            let items = (0..count)
                .map(|_| read_reply(reader))
                .collect::<std::io::Result<Vec<_>>>()?;
            Ok(items.join("\n"))
        }
        _ => Err(invalid()),
    }
}

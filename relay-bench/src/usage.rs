//! The server process's CPU time (utime + stime of `/proc/PID/stat`) and RSS
//! (`/proc/PID/statm`), sampled around each measured phase.

use std::time::Duration;

use crate::error::BenchError;

/// The process being measured.
#[derive(Debug, Clone, Copy)]
pub struct ServerProcess {
    pid: u32,
}

/// One sample of a process's resource use.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system CPU time so far, all threads (including exited ones).
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
}

impl ServerProcess {
    /// The process with `pid`.
    pub fn new(pid: u32) -> Self {
        ServerProcess { pid }
    }

    /// Reads the current CPU time and RSS.
    pub fn sample(&self) -> Result<Usage, BenchError> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid))?;
        let ticks = cpu_ticks(&stat)
            .ok_or_else(|| BenchError::Protocol(format!("unreadable /proc/{}/stat", self.pid)))?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| BenchError::Protocol(format!("unreadable /proc/{}/statm", self.pid)))?;
        Ok(Usage {
            cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
            rss_bytes: pages * page_size(),
        })
    }
}

/// utime + stime, in clock ticks. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come state (field 3) … utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Resource use between two samples.
#[derive(Debug, Clone, Copy)]
pub struct UsageDelta {
    /// CPU time spent in between.
    pub cpu: Duration,
    /// RSS at the end.
    pub rss_bytes: u64,
    /// RSS growth (negative when memory was returned).
    pub rss_growth: i64,
}

impl Usage {
    /// What was used from `self` to `later`.
    fn until(&self, later: &Usage) -> UsageDelta {
        UsageDelta {
            cpu: later.cpu.saturating_sub(self.cpu),
            rss_bytes: later.rss_bytes,
            rss_growth: later.rss_bytes as i64 - self.rss_bytes as i64,
        }
    }
}

/// Measures the server's resource use from the moment it was started; reads nothing when no
/// server PID was given.
#[derive(Debug)]
pub struct Meter {
    server: Option<ServerProcess>,
    start: Option<Usage>,
}

impl Meter {
    /// Takes the starting sample.
    pub fn start(server: Option<ServerProcess>) -> Result<Self, BenchError> {
        let start = server.map(|s| s.sample()).transpose()?;
        Ok(Meter { server, start })
    }

    /// What the server has used since the start.
    pub fn read(&self) -> Result<Option<UsageDelta>, BenchError> {
        let (Some(server), Some(start)) = (self.server, self.start) else {
            return Ok(None);
        };
        Ok(Some(start.until(&server.sample()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fields_after_a_name_with_spaces() {
        let stat = "42 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn samples_this_process() {
        let usage = ServerProcess::new(std::process::id()).sample().unwrap();
        assert!(usage.rss_bytes > 0);
    }
}

//! A scenario's result: named figures printed as a table or as one JSON object, and the
//! latency percentiles that most scenarios report.

use std::time::Duration;

use serde_json::{Value, json};

use crate::usage::UsageDelta;

/// The figures one scenario measured, in the order they were added.
#[derive(Debug)]
pub struct Report {
    scenario: &'static str,
    figures: Vec<(String, Value)>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Report {
            scenario,
            figures: Vec::new(),
        }
    }

    /// Adds a figure; the name carries its unit (`_ms`, `_per_sec`, `_us`, …).
    pub fn add(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.figures.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a figure rounded to two decimals.
    pub fn add_f64(&mut self, name: &str, value: f64) -> &mut Self {
        self.add(name, (value * 100.0).round() / 100.0)
    }

    /// Adds `latency_{p50,p90,p99,max}_ms` (prefixed).
    pub fn add_latencies(&mut self, prefix: &str, latencies: &Latencies) -> &mut Self {
        for (label, value) in latencies.summary() {
            self.add_f64(&format!("{prefix}{label}_ms"), value);
        }
        self
    }

    /// Adds the server's CPU time (total and per `unit`) and RSS, when a PID was given.
    pub fn add_server_usage(
        &mut self,
        usage: Option<UsageDelta>,
        per: &str,
        count: usize,
    ) -> &mut Self {
        self.add_process_usage("server", usage, per, count)
    }

    /// The same figures for any measured process, named `{process}_cpu_ms`,
    /// `{process}_cpu_us_per_{per}` and `{process}_rss_mib`.
    pub fn add_process_usage(
        &mut self,
        process: &str,
        usage: Option<UsageDelta>,
        per: &str,
        count: usize,
    ) -> &mut Self {
        let Some(usage) = usage else {
            return self;
        };
        let cpu = usage.cpu.as_secs_f64();
        self.add_f64(&format!("{process}_cpu_ms"), cpu * 1000.0);
        if count > 0 {
            self.add_f64(
                &format!("{process}_cpu_us_per_{per}"),
                cpu * 1e6 / count as f64,
            );
        }
        self.add_f64(
            &format!("{process}_rss_mib"),
            usage.rss_bytes as f64 / (1024.0 * 1024.0),
        );
        self
    }

    /// Prints the report: a table, or one JSON object on one line.
    pub fn print(&self, as_json: bool) {
        if as_json {
            // Written by hand so the figures keep their order (serde_json's map sorts keys).
            let mut line = format!("{{\"scenario\":{}", json!(self.scenario));
            for (name, value) in &self.figures {
                line.push_str(&format!(",{}:{value}", json!(name)));
            }
            line.push('}');
            println!("{line}");
            return;
        }
        println!("{}", self.scenario);
        let width = self
            .figures
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, value) in &self.figures {
            println!("  {name:<width$}  {value}");
        }
    }
}

/// Latencies collected during a scenario, in microseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    micros: Vec<u64>,
}

impl Latencies {
    /// Room for `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Self {
        Latencies {
            micros: Vec::with_capacity(capacity),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency given in microseconds.
    pub fn record_micros(&mut self, micros: u64) {
        self.micros.push(micros);
    }

    /// Merges another set of samples.
    pub fn extend(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The samples, in microseconds, in the order recorded (for other modules' tests).
    #[cfg(test)]
    pub fn as_micros(&self) -> &[u64] {
        &self.micros
    }

    /// `(label, milliseconds)` for p50, p90, p99 and max; zeros when empty.
    fn summary(&self) -> [(&'static str, f64); 4] {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let at = |quantile: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1] as f64 / 1000.0
        };
        [
            ("p50", at(0.50)),
            ("p90", at(0.90)),
            ("p99", at(0.99)),
            ("max", at(1.0)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut latencies = Latencies::default();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary[0], ("p50", 50.0));
        assert_eq!(summary[1], ("p90", 90.0));
        assert_eq!(summary[2], ("p99", 99.0));
        assert_eq!(summary[3], ("max", 100.0));
    }
}

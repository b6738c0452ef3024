//! The process's log: lines to stderr as text or JSON (`log_format`), filtered by `log_level`
//! (default `info`) unless `RUST_LOG` is set, which wins; coloured only on a terminal. Every
//! line is redacted before it is written ([`redaction`], through [`writer`]).
//!
//! What is logged where: connections opening and closing (app, socket id, close code) and
//! each failed authentication (app, socket id or address, what failed) at `debug`, under the
//! `relay::connections` and `relay::authentication` targets, so `log_level =
//! "info,relay::connections=debug"` follows every connection; at `info` they would let any
//! client write lines at the rate it connects or fails. Security events (the activity log's,
//! target `relay::security`) are written once per app, kind, address and window at `info` or
//! `warn`, so a flood of failures is one line.
//!
//! Some targets inside actix-http log a client's protocol violations at ERROR, one line per
//! offending connection (`Unfinished fragment Ping` from the WebSocket codec, `stream error:
//! message head is too large` from the HTTP/1 dispatcher): any client could flood the log for
//! free. Relay answers those clients itself (a close code or an HTTP status), so these targets
//! are silenced whatever the filter says, unless it names `actix_http`.

pub mod redaction;
mod writer;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The target of connection open and close lines.
pub const CONNECTIONS: &str = "relay::connections";

/// The target of authentication failure lines.
pub const AUTH: &str = "relay::authentication";

/// actix-http targets that log what a client did wrong, at levels an operator alerts on.
const CLIENT_TRIGGERED_TARGETS: [&str; 3] = [
    "actix_http::ws::codec",
    "actix_http::h1::dispatcher",
    "actix_http::h1::decoder",
];

/// The filter directives for `rust_log` (the `RUST_LOG` value, if set), else `log_level`.
pub fn filter_directives(rust_log: Option<&str>, log_level: &str) -> String {
    let base = [rust_log, Some(log_level)]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|value| !value.is_empty())
        .unwrap_or("info");
    if base.contains("actix_http") {
        return base.to_owned();
    }
    let silenced = CLIENT_TRIGGERED_TARGETS.map(|target| format!("{target}=off"));
    format!("{base},{}", silenced.join(","))
}

/// Installs the global subscriber, writing `format` at `log_level` (unless `RUST_LOG` says
/// otherwise). A `RUST_LOG` that does not parse falls back to `log_level`, after saying so.
pub fn init(format: LogFormat, log_level: &str) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, invalid) =
        match EnvFilter::try_new(filter_directives(rust_log.as_deref(), log_level)) {
            Ok(filter) => (filter, None),
            Err(error) => (
                EnvFilter::try_new(filter_directives(None, log_level))
                    .unwrap_or_else(|_| EnvFilter::new(filter_directives(None, "info"))),
                Some(error),
            ),
        };
    // Colour codes only for a terminal (not log files or journals), unless NO_COLOR is set.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer::RedactingStderr);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
    if let Some(error) = invalid {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; logging at log_level");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_triggered_targets_are_silenced_at_every_level() {
        for rust_log in [None, Some(""), Some("debug"), Some("relay=trace,info")] {
            let directives = filter_directives(rust_log, "info");
            for target in CLIENT_TRIGGERED_TARGETS {
                assert!(
                    directives.contains(&format!("{target}=off")),
                    "{directives}"
                );
            }
            assert!(EnvFilter::try_new(&directives).is_ok(), "{directives}");
        }
        assert!(filter_directives(Some("debug"), "info").starts_with("debug,"));
    }

    #[test]
    fn rust_log_wins_over_log_level_when_set() {
        assert!(filter_directives(None, "warn").starts_with("warn,"));
        assert!(filter_directives(Some(" "), "warn").starts_with("warn,"));
        assert!(filter_directives(Some("trace"), "warn").starts_with("trace,"));
        assert!(filter_directives(None, "").starts_with("info,"));
    }

    #[test]
    fn an_operator_who_names_actix_http_gets_it() {
        assert_eq!(
            filter_directives(Some("info,actix_http=debug"), "info"),
            "info,actix_http=debug"
        );
    }
}

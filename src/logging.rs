//! The process's log: `RUST_LOG` (default `info`) to stderr, coloured only on a terminal.
//!
//! Some targets inside actix-http log a client's protocol violations at ERROR, one line per
//! offending connection (`Unfinished fragment Ping` from the WebSocket codec, `stream error:
//! message head is too large` from the HTTP/1 dispatcher): any client could flood the log for
//! free. Relay answers those clients itself (a close code or an HTTP status), so these targets
//! are silenced whatever `RUST_LOG` says, unless the operator names `actix_http` in it.

use tracing_subscriber::EnvFilter;

/// actix-http targets that log what a client did wrong, at levels an operator alerts on.
const CLIENT_TRIGGERED_TARGETS: [&str; 3] = [
    "actix_http::ws::codec",
    "actix_http::h1::dispatcher",
    "actix_http::h1::decoder",
];

/// The filter directives for `rust_log` (the `RUST_LOG` value, if set).
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let base = rust_log
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or("info");
    if base.contains("actix_http") {
        return base.to_owned();
    }
    let silenced = CLIENT_TRIGGERED_TARGETS.map(|target| format!("{target}=off"));
    format!("{base},{}", silenced.join(","))
}

/// Installs the global subscriber. A `RUST_LOG` that does not parse falls back to `info`
/// (with the same silenced targets), after saying so.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, invalid) = match EnvFilter::try_new(filter_directives(rust_log.as_deref())) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new(filter_directives(None)), Some(error)),
    };
    // Colour codes only for a terminal (not log files or journals), unless NO_COLOR is set.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    if let Some(error) = invalid {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_triggered_targets_are_silenced_at_every_level() {
        for rust_log in [None, Some(""), Some("debug"), Some("relay=trace,info")] {
            let directives = filter_directives(rust_log);
            for target in CLIENT_TRIGGERED_TARGETS {
                assert!(
                    directives.contains(&format!("{target}=off")),
                    "{directives}"
                );
            }
            assert!(EnvFilter::try_new(&directives).is_ok(), "{directives}");
        }
        assert!(filter_directives(Some("debug")).starts_with("debug,"));
    }

    #[test]
    fn an_operator_who_names_actix_http_gets_it() {
        assert_eq!(
            filter_directives(Some("info,actix_http=debug")),
            "info,actix_http=debug"
        );
    }
}

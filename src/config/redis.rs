//! `[redis]`: the cluster's shared backend. Absent, Relay is a single node in memory.
//!
//! The URL may carry a password (`redis://:${REDIS_PASSWORD}@host:6379`), so it is never
//! written to a log or an error; [`RedisConfig::display_address`] gives what a log may say.

use serde::Deserialize;

use super::ConfigString;

/// `[redis]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host[:port][/db]`.
    pub url: ConfigString,
    /// Prepended to every key and pub/sub channel, so several clusters can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: ConfigString,
    /// Seconds between a node's heartbeats.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: u64,
    /// Seconds after a node's last heartbeat by which it is taken for dead and its
    /// connections are removed from the cluster's state.
    #[serde(default = "default_node_timeout")]
    pub node_timeout: u64,
}

fn default_prefix() -> ConfigString {
    ConfigString::from("relay")
}

fn default_heartbeat_interval() -> u64 {
    2
}

fn default_node_timeout() -> u64 {
    10
}

/// Longest `heartbeat_interval` and `node_timeout`: a node silent this long is long gone.
const MAX_NODE_TIMEOUT: u64 = 3600;

impl RedisConfig {
    /// The URL's password, if it has one.
    pub fn password(&self) -> Option<&str> {
        let url = self.url.as_str();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (user_info, _) = rest.rsplit_once('@')?;
        let password = user_info
            .split_once(':')
            .map_or(user_info, |(_, password)| password);
        (!password.is_empty()).then_some(password)
    }

    /// The host and port of the URL, without its password, for logs.
    pub fn display_address(&self) -> String {
        let url = self.url.as_str();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        host.split('/').next().unwrap_or_default().to_owned()
    }

    /// One line per problem, named as in the file.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let url = self.url.as_str();
        if url.starts_with("rediss://") {
            problems.push(
                "redis.url: rediss:// (TLS) is not supported by this build; use redis:// on a \
                 private network"
                    .to_owned(),
            );
        } else if !url.starts_with("redis://") || self.display_address().is_empty() {
            // The URL itself is not repeated: it may hold a password.
            problems.push("redis.url must look like redis://[:password@]host[:port][/db]".into());
        }
        let prefix = self.prefix.as_str();
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            problems
                .push("redis.prefix must be 1 to 64 letters, digits, '-', '_' or '.'".to_owned());
        }
        if !(1..=MAX_NODE_TIMEOUT).contains(&self.heartbeat_interval) {
            problems.push(format!(
                "redis.heartbeat_interval must be between 1 and {MAX_NODE_TIMEOUT} seconds"
            ));
        }
        // A node is dead after node_timeout minus one interval of silence: at least two
        // missed beats, so one late beat is never taken for a death.
        if self.node_timeout < 3 * self.heartbeat_interval || self.node_timeout > MAX_NODE_TIMEOUT {
            problems.push(format!(
                "redis.node_timeout must be at least three times redis.heartbeat_interval and at \
                 most {MAX_NODE_TIMEOUT} seconds"
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(text: &str) -> RedisConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_the_address_without_its_password() {
        let config = redis("url = \"redis://:hunter2@cache.internal:6380/2\"");
        assert_eq!(config.prefix.as_str(), "relay");
        assert_eq!((config.heartbeat_interval, config.node_timeout), (2, 10));
        assert_eq!(config.display_address(), "cache.internal:6380");
        assert_eq!(config.password(), Some("hunter2"));
        assert!(config.problems().is_empty());
        assert_eq!(redis("url = \"redis://127.0.0.1\"").password(), None);
        let with_user = redis("url = \"redis://relay:s3cret@[::1]:6379\"");
        assert_eq!(with_user.password(), Some("s3cret"));
        assert_eq!(
            redis("url = \"redis://127.0.0.1\"").display_address(),
            "127.0.0.1"
        );
    }

    #[test]
    fn bad_values_are_named_and_the_url_never_repeated() {
        let found = redis(
            "url = \"http://user:hunter2@x\"\nprefix = \"a b\"\nheartbeat_interval = 0\n\
             node_timeout = 5000",
        )
        .problems();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found.iter().all(|line| !line.contains("hunter2")),
            "{found:?}"
        );
        let tls = redis("url = \"rediss://x\"").problems();
        assert!(tls[0].contains("not supported"), "{tls:?}");
        let short = redis("url = \"redis://x\"\nheartbeat_interval = 5\nnode_timeout = 14");
        assert_eq!(short.problems().len(), 1);
    }
}

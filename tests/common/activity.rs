//! Reading a running server's activity log from its state store, and waiting on it: the
//! store is where the sync writes every 2 s, so a test can await an event instead of sleeping.

use std::time::{Duration, Instant};

use relay::activity::{EventKind, EventQuery, StoredEvent};
use relay::config::Config;
use relay::store::Store;

use super::http::signed_read_from;
use super::{APP_ID, TestServer};

/// The server's state store, as its configuration names it: the SQLite file beside it
/// (opening it makes the file if the server has not yet), or its Redis.
pub fn store_of(server: &TestServer) -> std::sync::Arc<dyn Store> {
    let config = Config::load(&server.config_path()).expect("the server's configuration");
    relay::store::open(&config).expect("the server's state store")
}

/// The default app's stored events of `kind`, newest first.
pub fn stored(server: &TestServer, kind: EventKind) -> Vec<StoredEvent> {
    let config = Config::load(&server.config_path()).expect("the server's configuration");
    let Some(store) = relay::store::open_existing(&config).expect("the server's state store")
    else {
        return Vec::new();
    };
    let query = EventQuery {
        kind: Some(kind),
        ..EventQuery::newest(APP_ID, 100)
    };
    store.events(&query).unwrap()
}

/// Waits (boundedly) until the store holds an event of `kind` of the default app.
pub async fn until_stored(server: &TestServer, kind: EventKind) -> Vec<StoredEvent> {
    let start = Instant::now();
    loop {
        let events = stored(server, kind);
        if !events.is_empty() {
            return events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {kind:?} stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a sync that started after this call has written (so every decision of the
/// sync running now, a lockdown's included, is taken): an auth failure from 127.0.0.9,
/// recorded now, can only be stored by a later sync.
pub async fn after_the_next_sync(server: &TestServer) {
    let refused = signed_read_from(server, "127.0.0.9", "not-the-secret").await;
    assert_eq!(refused.status, 401);
    let marker = "127.0.0.9".parse().ok();
    let start = Instant::now();
    while !stored(server, EventKind::AuthFailure)
        .iter()
        .any(|event| event.entry.address == marker)
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no later sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

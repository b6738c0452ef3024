//! `connections_per_ip`: WebSocket connections open at once from one client address (IPv6: its
//! /64). A connection takes a place when it is admitted and gives it back when it ends (the
//! [`AddressSlot`] it holds is dropped), so the count is exact whatever way a connection ends.
//! The map holds only addresses with an open connection, so it is bounded by the connections
//! the server holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::limits::{ClientKey, LimitScope, Limited};

/// The open connections of one app, per address.
#[derive(Debug)]
pub struct OpenConnections {
    most: u32,
    open: Arc<Mutex<HashMap<ClientKey, u32>>>,
}

/// One connection's place in its address's count.
#[derive(Debug)]
pub struct AddressSlot {
    key: ClientKey,
    open: Arc<Mutex<HashMap<ClientKey, u32>>>,
}

impl OpenConnections {
    /// At most `most` connections at once per address.
    pub fn new(most: u32) -> Self {
        OpenConnections {
            most,
            open: Arc::default(),
        }
    }

    /// At most `most` at once per address, counting the connections `self` counts (a reload
    /// that changed the app's limits: its open connections are still open).
    pub fn sharing(&self, most: u32) -> Self {
        OpenConnections {
            most,
            open: self.open.clone(),
        }
    }

    /// The most connections per address.
    pub fn most(&self) -> u32 {
        self.most
    }

    /// A place for one more connection from `address`, or the refusal (try again in a second:
    /// a place frees when any of that address's connections ends).
    pub fn try_open(&self, address: IpAddr) -> Result<AddressSlot, Limited> {
        let key = ClientKey::of(address);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.most {
            return Err(Limited {
                scope: LimitScope::OpenConnections,
                quota: self.most,
                retry_after: 1,
            });
        }
        *count += 1;
        Ok(AddressSlot {
            key,
            open: self.open.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_address_and_given_back() {
        let limit = OpenConnections::new(2);
        let from = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = limit.try_open(from("192.0.2.1")).unwrap();
        let _second = limit.try_open(from("192.0.2.1")).unwrap();
        let refused = limit.try_open(from("192.0.2.1")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "too many connections (address): 2 open at once"
        );
        assert!(limit.try_open(from("192.0.2.2")).is_ok(), "another address");
        drop(first);
        let _third = limit.try_open(from("192.0.2.1")).unwrap();
        let _v6 = limit.try_open(from("2001:db8::1")).unwrap();
        let _same_64 = limit.try_open(from("2001:db8::2")).unwrap();
        assert!(limit.try_open(from("2001:db8::3")).is_err(), "one /64");
    }

    #[test]
    fn the_map_forgets_addresses_without_connections() {
        let limit = OpenConnections::new(1);
        let slot = limit.try_open("192.0.2.9".parse().unwrap()).unwrap();
        assert_eq!(limit.open.lock().unwrap().len(), 1);
        drop(slot);
        assert!(limit.open.lock().unwrap().is_empty());
    }
}

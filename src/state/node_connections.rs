//! This node's ceiling of open WebSocket connections (`server.max_connections`), all apps
//! together. An app's own `max_connections` is its quota across the cluster and is the
//! adapter's to count; this one protects the process (memory, file descriptors) and is
//! node-local by nature, so it is one atomic counter here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The open connections of this node, against its ceiling.
#[derive(Debug)]
pub struct NodeConnections {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One open connection's place under the ceiling; dropping it frees the place.
#[derive(Debug)]
pub struct NodeSlot(Arc<AtomicUsize>);

impl Drop for NodeSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl NodeConnections {
    /// A ceiling of `max` connections (`None`: none).
    pub fn new(max: Option<usize>) -> Self {
        NodeConnections {
            open: Arc::default(),
            max: max.unwrap_or(usize::MAX),
        }
    }

    /// A place for one more connection, unless the ceiling is reached.
    pub fn try_open(&self) -> Option<NodeSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(NodeSlot(self.open.clone()))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_holds_and_a_dropped_slot_frees_its_place() {
        let node = NodeConnections::new(Some(2));
        let (first, _second) = (node.try_open().unwrap(), node.try_open().unwrap());
        assert!(node.try_open().is_none());
        drop(first);
        assert_eq!(node.open(), 1);
        assert!(node.try_open().is_some());
        assert!(NodeConnections::new(None).try_open().is_some());
    }
}

//! Typed handles: which node, which connection. Each prints the same way
//! in every log line and reply.

use std::fmt;

/// A node's identity: the first 8 bytes of its Ed25519 public key, so the same in every
/// run with the same key. Printed as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One connection of a node, peer or client. Never reused within a run, so an output
/// about a connection that has since closed can never reach its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    /// Counts up from 1 over the node's life: the part that makes the id unique.
    pub(crate) serial: u64,
    /// Where the connection lives in the node's slab, for O(1) lookup.
    pub(crate) slot: usize,
}

impl ConnId {
    /// Names node-level deadlines in the timer table; no connection has serial 0.
    pub(crate) const NODE: ConnId = ConnId {
        serial: 0,
        slot: usize::MAX,
    };
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.serial)
    }
}

//! p2pchat: a peer-to-peer group chat daemon.
//!
//! Nodes are linked by hand into any graph, cycles included, over links encrypted and
//! authenticated by the nodes' keys, and a chat line written to any node reaches every
//! node once, by flooding with duplicate suppression. Local users
//! and scripts attach through a Unix control socket and speak plain text lines.
//!
//! The crate is layered, and each layer only looks down:
//!
//! - [`wire`]: bytes. Peer frames and messages, control lines, text rules. Knows nothing
//!   of connections or time.
//! - [`proto`]: the sans-IO core. A [`proto::Node`] takes events with the time and
//!   says what to do; every protocol decision, limit and timer lives there, and so
//!   does each link's secure channel (Noise XX, node keys), fed bytes and seeds.
//! - [`driver`]: the only code that knows mio, sockets and the clock: one thread, one
//!   `mio::Poll`, one slab of sockets, feeding the node and carrying out its outputs
//!   (host names are resolved on a helper thread that touches no socket).
//! - [`cli`], [`config`], [`daemon`], [`keyfile`]: the command line, the settings and
//!   their defaults, detaching into the background, and the key files.
//!
//! docs/PROTOCOL.md describes the bytes on the wire; docs/ARCHITECTURE.md the code.

#![deny(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]
pub mod cli;
pub mod config;
pub mod daemon;
pub mod driver;
pub mod keyfile;

pub mod proto;
pub mod sim;
pub mod wire;

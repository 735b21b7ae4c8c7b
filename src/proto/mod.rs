//! The sans-IO protocol core: every decision p2pchat makes, and nothing that touches the
//! outside world.
//!
//! A [`Node`] is fed events (`handle_*`, each with the time) and polled for what to do
//! ([`Output`], `poll_timeout`). It never opens a socket, reads a clock, spawns a thread
//! or draws a random number: the driver, a simulator or a test supplies all of that, so
//! the same code runs everywhere. It may use `wire`, `config`, `slab` and `log`.

pub mod author;
pub mod book;
mod cause;
mod conn;
pub mod ids;
pub mod logs;
pub mod members;
pub mod nicks;
pub mod node;
pub mod rate;
pub mod secure;
pub mod timers;

pub use ids::{ConnId, NodeId};
pub use node::{Accepted, Node, Output};

#[cfg(test)]
mod tests;

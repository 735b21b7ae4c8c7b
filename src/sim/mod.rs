//! A deterministic network simulator: many [`crate::proto::Node`]s on a virtual clock,
//! driven through exactly the public API the mio driver uses.
//!
//! - [`rng`]: the seeded PRNG and the trace hash; the only randomness.
//! - [`graph`]: graph families and connected components.
//! - [`net`]: the network: links with latency, jitter, chunking and windows, cuts,
//!   crashes and restarts, local clients; invariants after every step.
//! - [`scenario`]: seeded scenarios and the end-of-run check that every line reached
//!   every client of its component exactly once, with the figures of the run.
//!
//! Tests, benches and `p2pchat-sim` use it; the daemon never does. docs/SIMULATION.md
//! has the figures.

pub mod graph;
pub mod net;
pub mod rng;
pub mod scenario;

#[cfg(test)]
mod tests;

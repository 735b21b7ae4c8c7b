//! The bench's time limits, and waiting under them: for a condition, for a thread.

use std::thread;
use std::time::{Duration, Instant};

use crate::error::Result;

/// A reader stops after this long without a byte, a writer after this long without
/// writing one: the run then reports what it got.
pub const STALL: Duration = Duration::from_secs(10);
/// A run's readers and writers stop this long after its clock starts, whatever they
/// got, so that a daemon that trickles cannot stretch the bench.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long a set-up step (start, link, handshake, reply) may take before the bench
/// gives up: far more than any needs, even on a busy two-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// Between two looks at a condition that is awaited.
pub const POLL: Duration = Duration::from_millis(10);

/// What a probe of an awaited condition saw.
pub enum Probe<T> {
    Done(T),
    /// Not yet; what it saw instead.
    NotYet(String),
}

/// Probes until the condition holds, for at most [`PATIENCE`]; an `Err` from the probe
/// ends the wait at once.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<Probe<T>>) -> Result<T> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe()? {
            Probe::Done(value) => return Ok(value),
            Probe::NotYet(seen) if Instant::now() >= deadline => {
                return Err(format!(
                    "gave up after {PATIENCE:?} waiting until {what}; last seen: {seen}"
                ))
            }
            Probe::NotYet(_) => thread::sleep(POLL),
        }
    }
}

/// Waits for a thread of this bench; a panic in it becomes an error.
pub fn join<T>(handle: thread::JoinHandle<T>, what: &str) -> Result<T> {
    handle.join().map_err(|_| format!("{what} panicked"))
}

//! The bench's time limits, and waiting under them: for a condition, for a thread,
//! for the next tick of a steady pace.

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

/// Calls `step` with 0, 1, ... `count - 1`, step `k` at `start + k * tick`, until
/// `deadline`; stops at the first error. Ticks are fixed in advance, so a late step does
/// not push back the ones after it: the pace stays the one asked for.
pub fn paced(
    start: Instant,
    tick: Duration,
    count: u64,
    deadline: Instant,
    mut step: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    for k in 0..count {
        let at = start + tick * u32::try_from(k).expect("a bench paces fewer than 2^32 steps");
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the run's limit of {RUN_LIMIT:?} passed at line {k}"
            ));
        }
        step(k)?;
    }
    Ok(())
}

//! End-to-end benchmark of real `p2pchat` daemons on 127.0.0.1.
//!
//! Run it with `cargo bench --bench e2e`: cargo builds the daemon with the bench profile
//! (release) first. Every run starts fresh daemons (`--listen 127.0.0.1:0`, control
//! socket and log file in a temporary directory, `--no-discovery -q`), prints its
//! figure, and kills them. At the end come the median and min–max spread of every
//! figure, a markdown table for BENCHMARKS.md and the facts of the machine.
//!
//! What it measures, in the order it runs:
//!
//! - **Raw-relay ceiling**: five processes in a line that only copy bytes from one socket
//!   to the next (256 KiB reads, `write_all`) carry N lines of 64 bytes of text in the
//!   batch frames a node sends them in when its client writes faster than it reads: full
//!   signed batches of about 800 lines (60 KiB) each. Lines per second: what the
//!   loopback and five copies cost before any protocol work. The relays are this binary
//!   run again in a hidden mode (`__raw-relay DOWNSTREAM`).
//! - **W1 throughput**: five daemons in a line A-B-C-D-E. A client of A writes N lines
//!   of 64 bytes of text as fast as A takes them; a client of E checks that every line
//!   arrives exactly once. Lines delivered per second, from the first write to the last
//!   line read, and the fraction delivered. W1 runs alternate with raw-relay runs, and
//!   each W1 run is also given as a fraction of the raw run just before it, so that the
//!   ratio is taken under the same machine conditions.
//! - **W2 latency**: the same line of five, one line per millisecond for 5 s, each
//!   carrying its send time; one-way latency at E: p50, p99 and max.
//! - **W3 mesh**: six daemons fully meshed (15 links); 20 lines from one of them, one at
//!   a time, which settle a broadcast tree and are not counted, then 10,000 more;
//!   once a client of every other node has them all, the `duplicates` of every node's
//!   `/status`, summed, per delivered line.
//! - **W4 memory**: one daemon's RSS when idle, then with 1,000, 5,000 and 10,000 idle
//!   peer links (TCP connections of this process that complete the handshake); KiB per
//!   link.
//! - **W5 load**: one daemon holding 1,000 such peer links, all read by this process,
//!   and 100 control clients. For 5 s, 20 of the clients write 50 lines/s each and 10
//!   of the links send 100 lines/s each, as authors of their own (each line a batch of
//!   its own, signed with the link's identity key): 2,000 lines/s.
//!   Every line must reach every client but its writer and every link but its sender
//!   exactly once. Lines and copies delivered per second, the fraction delivered, the
//!   daemon's CPU while the lines flow, and the round trip of a probe client's `/nick`
//!   every 5 ms meanwhile (p50, p99, max): a bound, seen from outside, on how long one
//!   turn of the event loop took.
//! - **W6 flood RSS**: one daemon that a peer link floods with new signed lines (full
//!   batches of an author of its own, signed as fast as it can) as fast as it takes them
//!   for 10 s, while a client and another peer link read nothing; the daemon's RSS,
//!   sampled every 100 ms, before the flood, at its highest and at the end, and the lines
//!   per second the node took.
//! - **W7 logs memory**: one daemon with the default bounds sent the lines of 10,000
//!   authors, ten each (a full backlog, 10,000 authors known), then of 10,000 more: its
//!   RSS after each, and what it holds by `/status`.
//!
//! Environment: `P2PCHAT_BENCH_N`, lines of W1 and of the raw relay (default
//! 1,000,000); `P2PCHAT_BENCH_RUNS`, runs of every workload (default 5);
//! `P2PCHAT_BENCH_ONLY`, a comma-separated list of the workloads to run, such as `W1,W2`
//! (W1 brings the raw relay along; default all); `P2PCHAT_BENCH_BROADCAST`, the
//! daemons' `--broadcast` (default `flood`); `P2PCHAT_BENCH_LOW_LATENCY=1` holds
//! /dev/cpu_dma_latency at 0 for the whole run (root only), the PM QoS request of
//! tuned's latency-performance profile: idle cores then wake in microseconds, which on
//! a virtual machine is most of W2's latency. Arguments, such as the `--bench` cargo
//! passes, are ignored.
//!
//! Every wait has a deadline and every child is killed when its run ends, on a panic
//! too. A reader gives up after 10 s without a byte and every run after 30 s, so a run
//! that loses lines reports the loss instead of hanging: what each reader got and why
//! it stopped, the events its node sent it, and every daemon's `messages` counter (where
//! the lines stopped) and last log warnings.

mod control_reader;
mod daemon;
mod error;
mod lines;
mod link_reader;
mod network;
mod peer_links;
mod raw_relay;
mod report;
mod streams;
mod tally;
mod w1_throughput;
mod w2_latency;
mod w3_mesh;
mod w4_memory;
mod w5_load;
mod w6_flood;
mod w7_logs;
mod wait;

use std::env;
use std::fmt;
use std::process::ExitCode;

use error::Result;
use report::Report;

/// Lines of W1 and of the raw relay when `P2PCHAT_BENCH_N` is not set.
const DEFAULT_LINES: u64 = 1_000_000;
/// Runs of every workload when `P2PCHAT_BENCH_RUNS` is not set.
const DEFAULT_RUNS: u64 = 5;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [mode, downstream] if mode == raw_relay::MODE => raw_relay::serve(downstream),
        _ => run_benchmarks(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("e2e: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run_benchmarks() -> Result<()> {
    let settings = Settings::from_env()?;
    println!(
        "p2pchat end-to-end bench: N = {} lines, {} runs per workload",
        settings.lines, settings.runs
    );
    // Held open until the end: the kernel honours the request while the file is open.
    let _low_latency = if env::var_os("P2PCHAT_BENCH_LOW_LATENCY").is_some() {
        println!("holding /dev/cpu_dma_latency at 0");
        Some(hold_cpu_wakeup_latency_at_zero()?)
    } else {
        None
    };
    let mut report = Report::default();
    if settings.selects("W1") {
        w1_throughput::throughput_runs(&settings, &mut report)?;
    }
    let workloads: [(&str, Workload); 6] = [
        ("W2", w2_latency::latency_run),
        ("W3", w3_mesh::mesh_run),
        ("W4", w4_memory::memory_run),
        ("W5", w5_load::load_run),
        ("W6", w6_flood::flood_run),
        ("W7", w7_logs::logs_run),
    ];
    for (name, workload) in workloads {
        if settings.selects(name) {
            for run in 1..=settings.runs {
                workload(&Progress::new(name, run, settings.runs), &mut report)?;
            }
        }
    }
    report.print();
    report::print_machine();
    Ok(())
}

/// One run of a workload that runs on its own (all but W1, which alternates with the
/// raw relay).
type Workload = fn(&Progress, &mut Report) -> Result<()>;

/// What the environment asks for.
struct Settings {
    /// Lines of W1 and of the raw relay.
    lines: u64,
    runs: u64,
    /// `P2PCHAT_BENCH_ONLY`: the workloads to run (W1 includes the raw relay), or all.
    only: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        Ok(Settings {
            lines: positive_from_env("P2PCHAT_BENCH_N", DEFAULT_LINES)?,
            runs: positive_from_env("P2PCHAT_BENCH_RUNS", DEFAULT_RUNS)?,
            only: env::var("P2PCHAT_BENCH_ONLY").ok(),
        })
    }

    fn selects(&self, workload: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|w| w.trim() == workload))
    }
}

/// The whole number in variable `name`, or `default` when it is not set.
fn positive_from_env(name: &str, default: u64) -> Result<u64> {
    let Ok(value) = env::var(name) else {
        return Ok(default);
    };
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name}={value:?}: expected a whole number above 0")),
    }
}

/// Which run of which workload is going on, for the lines it prints.
struct Progress {
    workload: &'static str,
    run: u64,
    runs: u64,
}

impl Progress {
    fn new(workload: &'static str, run: u64, runs: u64) -> Progress {
        Progress {
            workload,
            run,
            runs,
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} run {}/{}", self.workload, self.run, self.runs)
    }
}

/// Asks the kernel to keep idle cores in states they leave at once, for as long as the
/// returned file stays open.
fn hold_cpu_wakeup_latency_at_zero() -> Result<std::fs::File> {
    use std::io::Write;
    let path = "/dev/cpu_dma_latency";
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|err| format!("cannot open {path}: {err}"))?;
    file.write_all(&0i32.to_ne_bytes())
        .map_err(|err| format!("cannot write {path}: {err}"))?;
    Ok(file)
}

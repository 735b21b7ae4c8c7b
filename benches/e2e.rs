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
//!   to the next (256 KiB reads, `write_all`) carry N length-prefixed frames, each the
//!   size of a p2pchat chat frame with 64 bytes of text. Frames per second: what the
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
//! - **W3 mesh**: six daemons fully meshed (15 links); 10,000 lines from one of them;
//!   once a client of every other node has them all, the `duplicates` of every node's
//!   `/status`, summed, per delivered line.
//! - **W4 memory**: one daemon's RSS when idle, then with 1,000 and 10,000 idle peer
//!   links (TCP connections of this process that complete the handshake); KiB per link.
//!
//! Environment: `P2PCHAT_BENCH_N`, lines of W1 and frames of the raw relay (default
//! 1,000,000); `P2PCHAT_BENCH_RUNS`, runs of every workload (default 5);
//! `P2PCHAT_BENCH_ONLY`, a comma-separated list of the workloads to run, such as `W1,W2`
//! (W1 brings the raw relay along; default all). Arguments, such
//! as the `--bench` cargo passes, are ignored.
//!
//! Every wait has a deadline and every child is killed when its run ends, on a panic
//! too. A reader gives up after 10 s without a byte and every run after 30 s, so a run
//! that loses lines reports the loss instead of hanging: what each reader got and why
//! it stopped, the events its node sent it, and every daemon's `messages` counter (where
//! the lines stopped) and last log warnings.

use std::collections::BTreeMap;
use std::env;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use p2pchat::wire::frame::{Decoder, HEADER_LEN};
use p2pchat::wire::peer::{Chat, Hello, MAX_BODY_LEN};
use tempfile::TempDir;

/// The daemon under test, built by cargo with the bench profile.
const BIN: &str = env!("CARGO_BIN_EXE_p2pchat");

/// The first argument that turns this binary into one raw relay.
const RAW_RELAY_MODE: &str = "__raw-relay";

/// Lines of W1 and frames of the raw relay when `P2PCHAT_BENCH_N` is not set.
const DEFAULT_LINES: u64 = 1_000_000;
/// Runs of every workload when `P2PCHAT_BENCH_RUNS` is not set.
const DEFAULT_RUNS: u64 = 5;

/// Bytes of text in every chat line the bench writes.
const TEXT_LEN: usize = 64;
/// Each line's text starts with its index in this many decimal digits.
const INDEX_DIGITS: usize = 12;
/// Digits of the send time (ns) in a W2 line, after the index and a space.
const SENT_DIGITS: usize = 20;
/// What fills a line's text up to [`TEXT_LEN`] after its numbers.
const FILLER: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// Daemons in the line of W1 and W2, and relays in the raw chain.
const LINE_LEN: usize = 5;
/// Daemons of the W3 mesh.
const MESH_SIZE: usize = 6;
/// Lines written into the W3 mesh.
const MESH_LINES: u64 = 10_000;
/// Lines of W2, one per [`LATENCY_TICK`].
const LATENCY_LINES: u64 = 5_000;
const LATENCY_TICK: Duration = Duration::from_millis(1);
/// W4 connections opened before their hellos are read back (which shows the node has
/// accepted them): half the daemon's listen backlog of 128, so that no connection
/// attempt is dropped and retried a second later.
const CONNECT_BATCH: usize = 64;
/// Node ids of W4's fake peers: this prefix ("benc"), then the link's number.
const FAKE_PEER_ID_BASE: u64 = 0x6265_6e63_0000_0000;

/// A reader stops after this long without a byte, a writer after this long without
/// writing one: the run then reports what it got.
const STALL: Duration = Duration::from_secs(10);
/// A run's readers and writers stop this long after its clock starts, whatever they
/// got, so that a daemon that trickles cannot stretch the bench.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long a set-up step (start, link, handshake, reply) may take before the bench
/// gives up: far more than any needs, even on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a daemon may take to answer `/status` when a loss is being explained: a
/// stuck daemon must not hold up the bench for long.
const DIAGNOSIS_PATIENCE: Duration = Duration::from_secs(2);
/// Between two looks at a condition that is awaited.
const POLL: Duration = Duration::from_millis(10);
/// Counters are settled when two reads this far apart agree.
const SETTLE: Duration = Duration::from_millis(100);
/// Bytes per read, for the bench's readers and the raw relays alike.
const CHUNK: usize = 256 * 1024;
/// Bytes per write of a payload; the run's limit is checked between writes.
const WRITE_PIECE: usize = 1024 * 1024;
/// Log warnings shown per daemon when a run is incomplete.
const WARNINGS_SHOWN: usize = 5;
/// Event lines (`*`, `!`) a control reader keeps, the most recent ones.
const EVENTS_KEPT: usize = 20;

/// Errors are messages that say what failed: which node, which port, which step.
type Result<T, E = String> = std::result::Result<T, E>;

/// Adds what was being done to an error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| format!("{}: {err}", what()))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [mode, downstream] if mode == RAW_RELAY_MODE => serve_raw_relay(downstream),
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
    let mut report = Report::default();
    if settings.selects("W1") {
        throughput_runs(&settings, &mut report)?;
    }
    let workloads: [(&str, Workload); 3] =
        [("W2", latency_run), ("W3", mesh_run), ("W4", memory_run)];
    for (name, workload) in workloads {
        if settings.selects(name) {
            for run in 1..=settings.runs {
                workload(&Progress::new(name, run, settings.runs), &mut report)?;
            }
        }
    }
    report.print();
    print_machine();
    Ok(())
}

/// One run of a workload that runs on its own (all but W1, which alternates with the
/// raw relay).
type Workload = fn(&Progress, &mut Report) -> Result<()>;

/// What the environment asks for.
struct Settings {
    /// Lines of W1 and frames of the raw relay.
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

// ---------------------------------------------------------------------------------------
// Raw relay and W1: throughput, alternating
// ---------------------------------------------------------------------------------------

/// Raw relay, then W1, `runs` times, each W1 figure also as a fraction of the raw one.
fn throughput_runs(settings: &Settings, report: &mut Report) -> Result<()> {
    let frames = frame_payload(settings.lines);
    let lines = line_payload(settings.lines);
    for run in 1..=settings.runs {
        let progress = Progress::new("raw", run, settings.runs);
        let raw = raw_relay_run(&progress, &frames, settings.lines, report)?;
        let progress = Progress::new("W1", run, settings.runs);
        let w1 = line_throughput_run(&progress, &lines, settings.lines, report)?;
        if raw > 0.0 {
            let ratio = w1 / raw;
            println!("  W1 / raw ceiling: {ratio:.3}");
            report.record(W1_RATIO, ratio);
        }
    }
    Ok(())
}

/// One raw-relay run; returns its frames per second.
fn raw_relay_run(
    progress: &Progress,
    payload: &[u8],
    frames: u64,
    report: &mut Report,
) -> Result<f64> {
    let sink = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context(|| "cannot listen on 127.0.0.1:0 for the raw chain's end".to_owned())?;
    let sink_addr = sink
        .local_addr()
        .context(|| "the raw sink's address".to_owned())?;
    let mut chain = RelayChain::start(sink_addr)?;
    let arriving = accept_within(&sink, PATIENCE)
        .context(|| format!("the last raw relay never connected to {sink_addr}"))?;
    let mut writer = connect_tcp(chain.entry())?;
    chain.wait_until_relaying()?;

    let started = Instant::now();
    let deadline = started + RUN_LIMIT;
    let counter = thread::spawn(move || count_frames(arriving, frames, deadline));
    let written = write_by(&mut writer, payload, deadline, || !counter.is_finished());
    // Ends the chain: each relay ends its downstream once its upstream has ended.
    let _ = writer.shutdown(Shutdown::Write);
    let count = join(counter, "the raw chain's frame counter")?;

    let rate = per_second(count.frames, started, count.last_at);
    println!(
        "{progress}: {rate:.0} frames/s ({}/{frames} frames in {:.2} s)",
        count.frames,
        seconds(started, count.last_at)
    );
    if count.frames < frames {
        println!("  incomplete: the reader stopped: {}", count.end);
        if let Err(why) = written {
            println!("  the writer stopped: {why}");
        }
    }
    report.record(RAW_RATE, rate);
    Ok(rate)
}

/// One W1 run; returns its delivered lines per second.
fn line_throughput_run(
    progress: &Progress,
    payload: &[u8],
    lines: u64,
    report: &mut Report,
) -> Result<f64> {
    let network = Network::line(LINE_LEN)?;
    let (first, last) = (network.first(), network.last());
    let reader = ControlReader::attach(last)?;
    let mut writer = first.writer()?;

    let started = Instant::now();
    let deadline = started + RUN_LIMIT;
    let reading = spawn_tally(reader, lines, deadline);
    let written = write_by(&mut writer, payload, deadline, || !reading.is_finished());
    let reading = join(reading, &format!("the reader at {last}"))?;

    let tally = &reading.tally;
    let rate = per_second(tally.distinct, started, tally.last_new);
    println!(
        "{progress}: {rate:.0} msgs/s, {} delivered in {:.2} s",
        tally.describe(),
        seconds(started, tally.last_new)
    );
    if !tally.is_complete() {
        println!("  incomplete:");
        reading.print_loss(last);
        print_writer_end(first, &written);
        network.print_diagnosis();
    }
    report.record(W1_RATE, rate);
    report.record(W1_DELIVERED, tally.fraction());
    Ok(rate)
}

/// N lines for a client to write: each an indexed text of [`TEXT_LEN`] bytes and a LF.
fn line_payload(lines: u64) -> Vec<u8> {
    let mut payload = String::with_capacity(to_usize(lines) * (TEXT_LEN + 1));
    for index in 0..lines {
        push_indexed_text(&mut payload, index);
        payload.push('\n');
    }
    payload.into_bytes()
}

/// N chat frames as node `n0` would send the lines of [`line_payload`] to its peers.
fn frame_payload(frames: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut text = String::with_capacity(TEXT_LEN);
    for seq in 0..frames {
        text.clear();
        push_indexed_text(&mut text, seq);
        Chat {
            origin: 1,
            seq,
            hops: 64,
            nick: "n0",
            text: &text,
        }
        .encode(&mut payload);
    }
    payload
}

/// Appends the text of line `index`: the index in [`INDEX_DIGITS`] digits, then filler
/// up to [`TEXT_LEN`] bytes.
fn push_indexed_text(out: &mut String, index: u64) {
    let start = out.len();
    write!(out, "{index:0width$}", width = INDEX_DIGITS).expect("a String takes any text");
    out.push_str(&FILLER[..TEXT_LEN - (out.len() - start)]);
}

/// The index at the start of a line's text.
fn line_index(text: &[u8]) -> Option<u64> {
    parse_decimal(text.get(..INDEX_DIGITS)?)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Which of the expected line indices arrived, and how often.
struct Tally {
    /// Copies seen of each index, saturating.
    seen: Vec<u8>,
    /// Indices seen at least once.
    distinct: u64,
    /// Copies beyond the first.
    duplicates: u64,
    /// Chat lines without a valid index.
    foreign: u64,
    /// When the last new index arrived.
    last_new: Option<Instant>,
}

impl Tally {
    fn new(expected: u64) -> Tally {
        Tally {
            seen: vec![0; to_usize(expected)],
            distinct: 0,
            duplicates: 0,
            foreign: 0,
            last_new: None,
        }
    }

    /// Counts one chat line read at `at`; says whether it was the first copy of its index.
    fn record(&mut self, text: &[u8], at: Instant) -> bool {
        let slot = line_index(text)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.seen.get_mut(index));
        let Some(copies) = slot else {
            self.foreign += 1;
            return false;
        };
        *copies = copies.saturating_add(1);
        if *copies > 1 {
            self.duplicates += 1;
            return false;
        }
        self.distinct += 1;
        self.last_new = Some(at);
        true
    }

    fn expected(&self) -> u64 {
        self.seen.len() as u64
    }

    fn is_complete(&self) -> bool {
        self.distinct == self.expected()
    }

    fn fraction(&self) -> f64 {
        self.distinct as f64 / self.expected() as f64
    }

    /// `delivered/expected (percent)`, and any copies or strangers.
    fn describe(&self) -> String {
        let mut text = format!(
            "{}/{} ({:.2} %)",
            self.distinct,
            self.expected(),
            100.0 * self.fraction()
        );
        if self.duplicates > 0 {
            write!(text, ", {} duplicate copies", self.duplicates)
                .expect("a String takes any text");
        }
        if self.foreign > 0 {
            write!(text, ", {} lines without a valid index", self.foreign)
                .expect("a String takes any text");
        }
        text
    }
}

/// What a reader of indexed lines got, and why it stopped.
struct Reading {
    tally: Tally,
    end: ReadEnd,
    /// The last event and error lines its node sent it.
    events: Vec<String>,
}

impl Reading {
    /// Says what arrived, why the reader stopped and what its node told it.
    fn print_loss(&self, node: &Daemon) {
        println!(
            "  {node}: {} delivered; its reader stopped: {}",
            self.tally.describe(),
            self.end
        );
        for event in &self.events {
            println!("  {node} told its reader: {event}");
        }
    }
}

/// Tallies the indexed lines of `reader` in a thread of its own, until all `expected`
/// arrived, the node closes the connection, it stalls, or `deadline` passes.
fn spawn_tally(
    mut reader: ControlReader,
    expected: u64,
    deadline: Instant,
) -> thread::JoinHandle<Reading> {
    thread::spawn(move || {
        let mut tally = Tally::new(expected);
        let end = reader.read_chat(deadline, |text, at| {
            tally.record(text, at);
            tally.is_complete()
        });
        Reading {
            tally,
            end,
            events: reader.events,
        }
    })
}

fn print_writer_end(node: &Daemon, written: &Result<()>) {
    if let Err(why) = written {
        println!("  the writer at {node} stopped: {why}");
    }
}

// ---------------------------------------------------------------------------------------
// W2: latency
// ---------------------------------------------------------------------------------------

fn latency_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let network = Network::line(LINE_LEN)?;
    let (first, last) = (network.first(), network.last());
    let mut reader = ControlReader::attach(last)?;
    let mut writer = first.writer()?;
    let epoch = Instant::now();
    let deadline = epoch + RUN_LIMIT;

    let reading = thread::spawn(move || {
        let mut tally = Tally::new(LATENCY_LINES);
        let mut latencies = Vec::with_capacity(to_usize(LATENCY_LINES));
        let end = reader.read_chat(deadline, |text, at| {
            if tally.record(text, at) {
                if let Some(sent) = sent_nanos(text) {
                    latencies.push(nanos_since(epoch, at).saturating_sub(sent));
                }
            }
            tally.is_complete()
        });
        let reading = Reading {
            tally,
            end,
            events: reader.events,
        };
        (reading, latencies)
    });
    let written = write_paced(&mut writer, epoch, deadline);
    let (reading, mut latencies) = join(reading, &format!("the reader at {last}"))?;
    let tally = &reading.tally;

    latencies.sort_unstable();
    match Percentiles::of(&latencies) {
        Some(p) => {
            println!(
                "{progress}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {} delivered",
                p.p50,
                p.p99,
                p.max,
                tally.describe()
            );
            report.record(W2_P50, p.p50);
            report.record(W2_P99, p.p99);
            report.record(W2_MAX, p.max);
        }
        None => println!("{progress}: no line delivered"),
    }
    report.record(W2_DELIVERED, tally.fraction());
    if !tally.is_complete() {
        println!("  incomplete:");
        reading.print_loss(last);
        print_writer_end(first, &written);
        network.print_diagnosis();
    }
    Ok(())
}

/// Writes [`LATENCY_LINES`] lines, one per [`LATENCY_TICK`] after the start, each with
/// its send time in ns since `epoch`, until `deadline`. Ticks are fixed in advance, so
/// a late write does not push back the ones after it.
fn write_paced(writer: &mut UnixStream, epoch: Instant, deadline: Instant) -> Result<()> {
    let start = Instant::now();
    let mut line = String::with_capacity(TEXT_LEN + 1);
    for seq in 0..LATENCY_LINES {
        let tick = start + LATENCY_TICK * u32::try_from(seq).expect("a few thousand ticks");
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the run's limit of {RUN_LIMIT:?} passed at line {seq}"
            ));
        }
        line.clear();
        push_timed_text(&mut line, seq, nanos_since(epoch, Instant::now()));
        line.push('\n');
        writer
            .write_all(line.as_bytes())
            .map_err(|err| describe_write_error(&err))?;
    }
    Ok(())
}

/// Appends the text of W2 line `seq`: the index, a space, the send time, filler.
fn push_timed_text(out: &mut String, seq: u64, sent_nanos: u64) {
    let start = out.len();
    write!(
        out,
        "{seq:0index$} {sent_nanos:0sent$}",
        index = INDEX_DIGITS,
        sent = SENT_DIGITS
    )
    .expect("a String takes any text");
    out.push_str(&FILLER[..TEXT_LEN - (out.len() - start)]);
}

/// The send time in a W2 line's text.
fn sent_nanos(text: &[u8]) -> Option<u64> {
    parse_decimal(text.get(INDEX_DIGITS + 1..INDEX_DIGITS + 1 + SENT_DIGITS)?)
}

fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.duration_since(epoch).as_nanos()).expect("a bench lasts less than 584 years")
}

/// Latency percentiles in µs.
struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of latencies in ns, sorted; `None` when there are none.
    fn of(sorted_nanos: &[u64]) -> Option<Percentiles> {
        let max = *sorted_nanos.last()?;
        let rank = |p: f64| {
            let rank = (p * sorted_nanos.len() as f64).ceil() as usize;
            sorted_nanos[rank.clamp(1, sorted_nanos.len()) - 1]
        };
        let micros = |nanos: u64| nanos as f64 / 1_000.0;
        Some(Percentiles {
            p50: micros(rank(0.50)),
            p99: micros(rank(0.99)),
            max: micros(max),
        })
    }
}

// ---------------------------------------------------------------------------------------
// W3: mesh
// ---------------------------------------------------------------------------------------

fn mesh_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let network = Network::mesh(MESH_SIZE)?;
    let (source, others) = network.nodes.split_first().expect("a mesh has nodes");
    let readers = others
        .iter()
        .map(ControlReader::attach)
        .collect::<Result<Vec<_>>>()?;
    let mut writer = source.writer()?;
    let payload = line_payload(MESH_LINES);

    let deadline = Instant::now() + RUN_LIMIT;
    let readings: Vec<_> = readers
        .into_iter()
        .map(|reader| spawn_tally(reader, MESH_LINES, deadline))
        .collect();
    let written = write_by(&mut writer, &payload, deadline, || {
        readings.iter().any(|reading| !reading.is_finished())
    });
    let readings = others
        .iter()
        .zip(readings)
        .map(|(node, reading)| join(reading, &format!("the reader at {node}")))
        .collect::<Result<Vec<_>>>()?;
    let duplicates = network.settled_sum("duplicates")?;

    let delivered: u64 = readings.iter().map(|reading| reading.tally.distinct).sum();
    let expected = MESH_LINES * others.len() as u64;
    let per_line = if delivered > 0 {
        duplicates as f64 / delivered as f64
    } else {
        0.0
    };
    println!(
        "{progress}: {per_line:.3} duplicates per delivered line \
         ({duplicates} duplicates, {delivered}/{expected} delivered)"
    );
    if delivered < expected {
        println!("  incomplete:");
        for (node, reading) in others.iter().zip(&readings) {
            if !reading.tally.is_complete() {
                reading.print_loss(node);
            }
        }
        print_writer_end(source, &written);
        network.print_diagnosis();
    }
    report.record(W3_DUPLICATES, per_line);
    report.record(W3_DELIVERED, delivered as f64 / expected as f64);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// W4: memory
// ---------------------------------------------------------------------------------------

fn memory_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let node = Daemon::start(0)?;
    let idle = node.rss_kib()?;
    let mut summary = format!("{progress}: idle RSS {idle} KiB");
    report.record(W4_IDLE, idle as f64);
    let mut links = Vec::new();
    for step in &LINK_STEPS {
        open_peer_links(&node, &mut links, step.links)?;
        node.wait_for_peers(step.links)?;
        let rss = node.rss_kib()?;
        let per_link = rss.saturating_sub(idle) as f64 / step.links as f64;
        write!(
            summary,
            "; {} links: {rss} KiB, {per_link:.2} KiB/link",
            step.links
        )
        .expect("a String takes any text");
        report.record(step.rss, rss as f64);
        report.record(step.per_link, per_link);
    }
    println!("{summary}");
    Ok(())
}

/// Opens peer links to `node` until `links` holds `target`, in batches: connect and send
/// a hello, then read each hello back.
fn open_peer_links(node: &Daemon, links: &mut Vec<TcpStream>, target: usize) -> Result<()> {
    while links.len() < target {
        let batch = CONNECT_BATCH.min(target - links.len());
        let mut fresh = Vec::with_capacity(batch);
        for number in links.len()..links.len() + batch {
            fresh.push(open_peer_link(node, number)?);
        }
        for (number, stream) in (links.len()..).zip(&mut fresh) {
            read_hello(stream).context(|| format!("fake peer #{number} of {node}"))?;
        }
        links.append(&mut fresh);
    }
    Ok(())
}

/// A TCP connection to `node` that has sent the hello of fake peer `number`.
fn open_peer_link(node: &Daemon, number: usize) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&node.addr(), PATIENCE)
        .context(|| format!("fake peer #{number}: cannot connect to {node}"))?;
    let mut hello = Vec::new();
    Hello {
        node_id: FAKE_PEER_ID_BASE + number as u64,
        listen_port: 0,
        link_id: 1,
        nick: &format!("r{number}"),
    }
    .encode(&mut hello);
    stream
        .write_all(&hello)
        .context(|| format!("fake peer #{number}: cannot send a hello to {node}"))?;
    Ok(stream)
}

/// Reads and drops one frame, which must be a hello.
fn read_hello(stream: &mut TcpStream) -> Result<()> {
    const KIND_HELLO: u8 = 1;
    stream
        .set_read_timeout(Some(PATIENCE))
        .context(|| "cannot set a read timeout".to_owned())?;
    let mut header = [0; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .context(|| "no hello header".to_owned())?;
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > MAX_BODY_LEN {
        return Err(format!("a frame of {len} bytes instead of a hello"));
    }
    let mut body = vec![0; len];
    stream
        .read_exact(&mut body)
        .context(|| "no complete hello".to_owned())?;
    if body[0] != KIND_HELLO {
        return Err(format!("a frame of kind {} instead of a hello", body[0]));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Daemons and networks of them
// ---------------------------------------------------------------------------------------

/// A child process, killed and reaped when dropped: on a panic too.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        // Already gone when it exited by itself; nothing else to do.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `p2pchat` daemon with its control socket and log in a temporary directory.
struct Daemon {
    /// `nK`, also its nick.
    name: String,
    port: u16,
    process: Guarded,
    dir: TempDir,
}

impl Daemon {
    const SOCKET: &'static str = "p2pchat.sock";
    const LOG: &'static str = "p2pchat.log";
    const STDERR: &'static str = "stderr";

    /// Starts daemon `nINDEX`; returns once it answers `/status` on its control socket.
    fn start(index: usize) -> Result<Daemon> {
        let name = format!("n{index}");
        let dir = tempfile::tempdir()
            .context(|| format!("node {name}: cannot create a temporary directory"))?;
        let stderr = File::create(dir.path().join(Self::STDERR))
            .context(|| format!("node {name}: cannot create a file for its stderr"))?;
        let child = Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-discovery",
                "-q",
                "--nick",
                &name,
            ])
            .arg("--socket")
            .arg(dir.path().join(Self::SOCKET))
            .arg("--log-file")
            .arg(dir.path().join(Self::LOG))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context(|| format!("node {name}: cannot start {BIN}"))?;
        let mut daemon = Daemon {
            name,
            port: 0,
            process: Guarded(child),
            dir,
        };
        daemon.wait_for_control_socket()?;
        daemon.port = daemon.listen_port()?;
        Ok(daemon)
    }

    fn wait_for_control_socket(&mut self) -> Result<()> {
        let (label, socket) = (self.to_string(), self.socket());
        let stderr = self.dir.path().join(Self::STDERR);
        let process = &mut self.process.0;
        wait_for(&format!("{label} accepts control connections"), || {
            let exited = process.try_wait();
            if let Some(status) = exited.context(|| format!("{label}: cannot poll the process"))? {
                return Err(format!(
                    "{label} exited during start-up ({status}); stderr: {}",
                    fs::read_to_string(&stderr).unwrap_or_default().trim_end()
                ));
            }
            Ok(match UnixStream::connect(&socket) {
                Ok(_) => Probe::Done(()),
                Err(err) => Probe::NotYet(err.to_string()),
            })
        })
    }

    /// The port of `listen` in `/status`.
    fn listen_port(&self) -> Result<u16> {
        let status = self.status()?;
        let listen = status
            .get("listen")
            .ok_or_else(|| format!("{self}: no `listen` in /status {status:?}"))?;
        let addr: SocketAddr = listen
            .parse()
            .context(|| format!("{self}: `listen {listen}` in /status"))?;
        Ok(addr.port())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join(Self::SOCKET)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// A new connection to the control socket.
    fn control(&self) -> Result<UnixStream> {
        UnixStream::connect(self.socket()).context(|| {
            format!(
                "{self}: cannot connect to its control socket {}",
                self.socket().display()
            )
        })
    }

    /// A control connection to write lines on; a write that takes nothing for
    /// [`STALL`] fails.
    fn writer(&self) -> Result<UnixStream> {
        let stream = self.control()?;
        stream
            .set_write_timeout(Some(STALL))
            .context(|| format!("{self}: cannot set a write timeout"))?;
        Ok(stream)
    }

    /// Sends `command` and `/quit` on a connection of its own; returns the reply lines.
    /// Each read of the reply may wait `patience`.
    fn request(&self, command: &str, patience: Duration) -> Result<Vec<String>> {
        let mut stream = self.control()?;
        stream
            .set_read_timeout(Some(patience))
            .context(|| format!("{self}: cannot set a read timeout"))?;
        stream
            .write_all(format!("{command}\n/quit\n").as_bytes())
            .context(|| format!("{self}: cannot send {command}"))?;
        let mut reply = String::new();
        if let Err(err) = stream.read_to_string(&mut reply) {
            return Err(match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    format!("{self}: no complete reply to {command} within {patience:?}")
                }
                _ => format!("{self}: cannot read the reply to {command}: {err}"),
            });
        }
        let lines: Vec<String> = reply.lines().map(str::to_owned).collect();
        match lines.iter().find(|line| line.starts_with('!')) {
            Some(error) => Err(format!("{self}: {command} failed: {error}")),
            None => Ok(lines),
        }
    }

    /// `/status` as key → value.
    fn status(&self) -> Result<BTreeMap<String, String>> {
        self.status_within(PATIENCE)
    }

    /// `/status` as key → value, each read of the reply waiting at most `patience`.
    fn status_within(&self, patience: Duration) -> Result<BTreeMap<String, String>> {
        let lines = self.request("/status", patience)?;
        Ok(lines
            .iter()
            .filter_map(|line| line.strip_prefix("* ")?.split_once(' '))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect())
    }

    /// A number from `/status`.
    fn counter(&self, key: &str) -> Result<u64> {
        let status = self.status()?;
        let value = status
            .get(key)
            .ok_or_else(|| format!("{self}: no `{key}` in /status {status:?}"))?;
        value
            .parse()
            .context(|| format!("{self}: `{key} {value}` in /status"))
    }

    /// Asks this node to dial `other`.
    fn dial(&self, other: &Daemon) -> Result<()> {
        self.request(&format!("/connect {}", other.addr()), PATIENCE)?;
        Ok(())
    }

    /// Waits until `/status` shows `peers` = `expected`.
    fn wait_for_peers(&self, expected: usize) -> Result<()> {
        wait_for(&format!("{self} has {expected} peers"), || {
            let peers = self.counter("peers")?;
            Ok(if peers == expected as u64 {
                Probe::Done(())
            } else {
                Probe::NotYet(format!("{peers} peers"))
            })
        })
    }

    /// Resident memory, from VmRSS in /proc/PID/status.
    fn rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.process.0.id());
        let status = fs::read_to_string(&path).context(|| format!("{self}: cannot read {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .ok_or_else(|| format!("{self}: no `VmRSS: N kB` line in {path}"))
    }

    /// The last warnings and errors of the log.
    fn last_warnings(&self) -> Vec<String> {
        let log = fs::read_to_string(self.dir.path().join(Self::LOG)).unwrap_or_default();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("[WARN]") || line.contains("[ERROR]"))
            .collect();
        let shown = warnings.len().saturating_sub(WARNINGS_SHOWN);
        warnings[shown..]
            .iter()
            .map(|&line| line.to_owned())
            .collect()
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 0 {
            write!(f, "node {}", self.name)
        } else {
            write!(f, "node {} (127.0.0.1:{})", self.name, self.port)
        }
    }
}

/// Daemons linked into a graph, every link up.
struct Network {
    nodes: Vec<Daemon>,
}

impl Network {
    /// `count` nodes in a line: each dials the one before it.
    fn line(count: usize) -> Result<Network> {
        let links: Vec<(usize, usize)> = (1..count).map(|i| (i, i - 1)).collect();
        Network::linked(count, &links)
    }

    /// `count` nodes, each linked to every other: each dials every one before it.
    fn mesh(count: usize) -> Result<Network> {
        let links: Vec<(usize, usize)> = (1..count)
            .flat_map(|i| (0..i).map(move |j| (i, j)))
            .collect();
        Network::linked(count, &links)
    }

    /// Starts `count` nodes, makes each `(dialler, target)` link, and waits until every
    /// node has as many peers as it has links.
    fn linked(count: usize, links: &[(usize, usize)]) -> Result<Network> {
        let nodes = (0..count).map(Daemon::start).collect::<Result<Vec<_>>>()?;
        for &(dialler, target) in links {
            nodes[dialler].dial(&nodes[target])?;
        }
        for (index, node) in nodes.iter().enumerate() {
            let degree = links
                .iter()
                .filter(|&&(a, b)| a == index || b == index)
                .count();
            node.wait_for_peers(degree)?;
        }
        Ok(Network { nodes })
    }

    fn first(&self) -> &Daemon {
        self.nodes.first().expect("a network has nodes")
    }

    fn last(&self) -> &Daemon {
        self.nodes.last().expect("a network has nodes")
    }

    /// The sum of a `/status` counter over every node, once two reads [`SETTLE`] apart
    /// agree (copies still in flight are counted when they land).
    fn settled_sum(&self, key: &str) -> Result<u64> {
        let sum = || -> Result<u64> { self.nodes.iter().map(|node| node.counter(key)).sum() };
        let mut last = sum()?;
        wait_for(&format!("the sum of `{key}` settles"), || {
            thread::sleep(SETTLE);
            let now = sum()?;
            let seen = last;
            last = now;
            Ok(if now == seen {
                Probe::Done(now)
            } else {
                Probe::NotYet(format!("{seen}, then {now}"))
            })
        })
    }

    /// Where the lines stopped (every node's `messages` and `duplicates`) and every
    /// node's last log warnings, to explain a loss.
    fn print_diagnosis(&self) {
        for node in &self.nodes {
            match node.status_within(DIAGNOSIS_PATIENCE) {
                Ok(status) => {
                    let counter = |key: &str| status.get(key).map_or("?", String::as_str);
                    println!(
                        "  {node}: messages {}, duplicates {}",
                        counter("messages"),
                        counter("duplicates")
                    );
                }
                Err(err) => println!("  {err}"),
            }
            let warnings = node.last_warnings();
            if warnings.is_empty() {
                println!("  {node}: no warning in its log");
            }
            for warning in warnings {
                println!("  {node} log: {warning}");
            }
        }
    }
}

/// What a probe of an awaited condition saw.
enum Probe<T> {
    Done(T),
    /// Not yet; what it saw instead.
    NotYet(String),
}

/// Probes until the condition holds, for at most [`PATIENCE`]; an `Err` from the probe
/// ends the wait at once.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<Probe<T>>) -> Result<T> {
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

// ---------------------------------------------------------------------------------------
// Control readers
// ---------------------------------------------------------------------------------------

/// Why a reader stopped.
#[derive(Debug)]
enum ReadEnd {
    /// It had everything it expected.
    Complete,
    /// [`STALL`] passed without a byte.
    Stalled,
    /// The run's limit passed.
    OutOfTime,
    /// The other end closed the connection.
    Closed,
    Failed(String),
}

impl fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadEnd::Complete => f.write_str("it had everything"),
            ReadEnd::Stalled => write!(f, "nothing arrived for {STALL:?}"),
            ReadEnd::OutOfTime => write!(f, "the run's limit of {RUN_LIMIT:?} passed"),
            ReadEnd::Closed => f.write_str("the connection was closed"),
            ReadEnd::Failed(err) => write!(f, "read failed: {err}"),
        }
    }
}

/// How long the next read may wait: up to [`STALL`], never past `deadline`; `None`
/// once the deadline has passed.
fn read_patience(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| left.min(STALL))
}

/// Why a read that could wait `patience` failed with `err`; `None` to read on (it was
/// interrupted, or the deadline cut its wait short and the next [`read_patience`] says
/// so).
fn read_failure(err: &io::Error, patience: Duration) -> Option<ReadEnd> {
    match err.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut if patience < STALL => None,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Some(ReadEnd::Stalled),
        io::ErrorKind::ConnectionReset => Some(ReadEnd::Closed),
        _ => Some(ReadEnd::Failed(err.to_string())),
    }
}

/// A client attached to a daemon's control socket, reading the lines it is sent.
struct ControlReader {
    node: String,
    stream: UnixStream,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// When the bytes in `buf` were read.
    read_at: Instant,
    /// The most recent event and error lines, to explain a loss.
    events: Vec<String>,
}

impl ControlReader {
    /// Connects to `node` and waits until the node has answered it once: from then on,
    /// every chat line reaches it.
    fn attach(node: &Daemon) -> Result<ControlReader> {
        let mut stream = node.control()?;
        stream
            .write_all(b"/peers\n")
            .context(|| format!("{node}: cannot send /peers"))?;
        let mut reader = ControlReader {
            node: node.to_string(),
            stream,
            buf: vec![0; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            read_at: Instant::now(),
            events: Vec::new(),
        };
        reader.wait_for_peers_reply()?;
        Ok(reader)
    }

    /// Reads up to the `* N peers` line that ends a `/peers` reply.
    fn wait_for_peers_reply(&mut self) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Some(line) = self.next_line() {
                let line = &self.buf[line];
                if line.starts_with(b"* ") && line.ends_with(b" peers") {
                    return Ok(());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{}: no reply to /peers within {PATIENCE:?}",
                    self.node
                ));
            }
            match self.fill(left) {
                Ok(0) => return Err(format!("{}: closed the control connection", self.node)),
                Ok(_) => {}
                Err(err) => return Err(format!("{}: no reply to /peers: {err}", self.node)),
            }
        }
    }

    /// Passes the text of every chat line to `on_chat`, with the time it was read, until
    /// `on_chat` says it has everything, the connection ends, [`STALL`] passes without a
    /// byte or `deadline` passes. Event and error lines are kept in `events`.
    fn read_chat(
        &mut self,
        deadline: Instant,
        mut on_chat: impl FnMut(&[u8], Instant) -> bool,
    ) -> ReadEnd {
        loop {
            let read_at = self.read_at;
            while let Some(line) = self.next_line() {
                let line = &self.buf[line];
                match chat_text(line) {
                    Some(text) => {
                        if on_chat(text, read_at) {
                            return ReadEnd::Complete;
                        }
                    }
                    None => {
                        let event = String::from_utf8_lossy(line).into_owned();
                        if self.events.len() == EVENTS_KEPT {
                            self.events.remove(0);
                        }
                        self.events.push(event);
                    }
                }
            }
            let Some(patience) = read_patience(deadline) else {
                return ReadEnd::OutOfTime;
            };
            match self.fill(patience) {
                Ok(0) => return ReadEnd::Closed,
                Ok(_) => {}
                Err(err) => {
                    if let Some(end) = read_failure(&err, patience) {
                        return end;
                    }
                }
            }
        }
    }

    /// Where the next complete line is in `buf`, without its LF; it counts as read.
    fn next_line(&mut self) -> Option<Range<usize>> {
        let unread = &self.buf[self.start..self.end];
        let len = unread.iter().position(|&b| b == b'\n')?;
        let line = self.start..self.start + len;
        self.start += len + 1;
        Some(line)
    }

    /// Moves the unread bytes to the front and reads more, waiting at most `patience`.
    fn fill(&mut self, patience: Duration) -> io::Result<usize> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            return Err(io::Error::other(format!(
                "a line longer than {CHUNK} bytes"
            )));
        }
        self.stream.set_read_timeout(Some(patience))?;
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        self.read_at = Instant::now();
        Ok(n)
    }
}

/// The text of a `<NICK> TEXT` line; `None` for any other line.
fn chat_text(line: &[u8]) -> Option<&[u8]> {
    if !line.starts_with(b"<") {
        return None;
    }
    let nick_end = line.iter().position(|&b| b == b'>')?;
    line.get(nick_end + 2..)
}

// ---------------------------------------------------------------------------------------
// The raw relay chain
// ---------------------------------------------------------------------------------------

/// What one relay prints once it has accepted its upstream connection.
const RELAYING: &str = "relaying";

/// The hidden mode: listens on 127.0.0.1:0, connects to `downstream`, prints its port,
/// accepts one upstream connection, prints [`RELAYING`], then copies every byte from
/// upstream to downstream until upstream ends or stalls.
fn serve_raw_relay(downstream: &str) -> Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context(|| "raw relay: cannot listen on 127.0.0.1:0".to_owned())?;
    let port = listener
        .local_addr()
        .context(|| "raw relay: the listening address".to_owned())?
        .port();
    let target: SocketAddr = downstream
        .parse()
        .context(|| format!("raw relay {port}: downstream {downstream:?}"))?;
    let mut down = TcpStream::connect_timeout(&target, PATIENCE)
        .context(|| format!("raw relay {port}: cannot connect to {target}"))?;
    println!("{port}");
    let mut up = accept_within(&listener, PATIENCE)
        .context(|| format!("raw relay {port}: no upstream connection"))?;
    println!("{RELAYING}");
    relay_bytes(&mut up, &mut down).context(|| format!("raw relay {port} to {target}"))
}

/// Copies `up` to `down` in [`CHUNK`] reads until `up` ends, then ends `down`.
fn relay_bytes(up: &mut TcpStream, down: &mut TcpStream) -> io::Result<()> {
    up.set_read_timeout(Some(STALL))?;
    down.set_write_timeout(Some(STALL))?;
    up.set_nodelay(true)?;
    down.set_nodelay(true)?;
    let mut chunk = vec![0; CHUNK];
    loop {
        match up.read(&mut chunk) {
            Ok(0) => return down.shutdown(Shutdown::Write),
            Ok(n) => down.write_all(&chunk[..n])?,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// One raw relay process, between the port it prints and its downstream.
struct Relay {
    port: u16,
    stdout: BufReader<ChildStdout>,
    _process: Guarded,
}

impl Relay {
    /// Starts relay `position` (1 is the entry), which connects to `downstream` before
    /// printing its port; returns once it has.
    fn start(position: usize, downstream: SocketAddr) -> Result<Relay> {
        let exe =
            env::current_exe().context(|| "cannot find this bench's executable".to_owned())?;
        let mut child = Command::new(&exe)
            .args([RAW_RELAY_MODE, &downstream.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context(|| format!("raw relay {position}: cannot start {}", exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut relay = Relay {
            port: 0,
            stdout: BufReader::new(stdout),
            _process: Guarded(child),
        };
        let line = relay.next_line(position)?;
        relay.port = line
            .parse()
            .context(|| format!("raw relay {position}: printed {line:?} instead of its port"))?;
        Ok(relay)
    }

    /// The next line the relay prints. It prints or exits within [`PATIENCE`]: every
    /// step before a line has that deadline.
    fn next_line(&mut self, position: usize) -> Result<String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context(|| format!("raw relay {position}: cannot read its output"))?;
        if line.is_empty() {
            return Err(format!(
                "raw relay {position} exited early (see its error above)"
            ));
        }
        Ok(line.trim_end().to_owned())
    }
}

/// [`LINE_LEN`] relays in a line, the last one connected to a sink.
struct RelayChain {
    /// The entry first.
    relays: Vec<Relay>,
}

impl RelayChain {
    /// Starts the relays from the last one (connected to `sink`) to the entry.
    fn start(sink: SocketAddr) -> Result<RelayChain> {
        let mut relays = Vec::with_capacity(LINE_LEN);
        let mut downstream = sink;
        for position in (1..=LINE_LEN).rev() {
            let relay = Relay::start(position, downstream)?;
            downstream = SocketAddr::from((Ipv4Addr::LOCALHOST, relay.port));
            relays.push(relay);
        }
        relays.reverse();
        Ok(RelayChain { relays })
    }

    fn entry(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.relays[0].port))
    }

    /// Waits until the entry relay has accepted the bench's connection, so that the
    /// clock starts with every relay copying.
    fn wait_until_relaying(&mut self) -> Result<()> {
        let line = self.relays[0].next_line(1)?;
        if line == RELAYING {
            Ok(())
        } else {
            Err(format!(
                "raw relay 1: printed {line:?} instead of {RELAYING:?}"
            ))
        }
    }
}

/// Frames that came out of the raw chain.
struct FrameCount {
    frames: u64,
    last_at: Option<Instant>,
    end: ReadEnd,
}

/// Counts whole frames on `stream` until `expected` arrived, it ends, it stalls or
/// `deadline` passes.
fn count_frames(mut stream: TcpStream, expected: u64, deadline: Instant) -> FrameCount {
    let mut count = FrameCount {
        frames: 0,
        last_at: None,
        end: ReadEnd::Complete,
    };
    count.end = count.read_from(&mut stream, expected, deadline);
    count
}

impl FrameCount {
    /// Counts the frames of `stream` into `self`; returns why it stopped.
    fn read_from(&mut self, stream: &mut TcpStream, expected: u64, deadline: Instant) -> ReadEnd {
        let mut decoder = Decoder::new(MAX_BODY_LEN);
        let mut chunk = vec![0; CHUNK];
        while self.frames < expected {
            let Some(patience) = read_patience(deadline) else {
                return ReadEnd::OutOfTime;
            };
            if let Err(err) = stream.set_read_timeout(Some(patience)) {
                return ReadEnd::Failed(format!("cannot set a read timeout: {err}"));
            }
            let mut input = match stream.read(&mut chunk) {
                Ok(0) => return ReadEnd::Closed,
                Ok(n) => &chunk[..n],
                Err(err) => match read_failure(&err, patience) {
                    Some(end) => return end,
                    None => continue,
                },
            };
            let before = self.frames;
            loop {
                match decoder.next(&mut input) {
                    Ok(Some(_)) => self.frames += 1,
                    Ok(None) => break,
                    Err(err) => return ReadEnd::Failed(format!("bad framing: {err}")),
                }
            }
            if self.frames > before {
                self.last_at = Some(Instant::now());
            }
        }
        ReadEnd::Complete
    }
}

// ---------------------------------------------------------------------------------------
// Sockets, threads and time
// ---------------------------------------------------------------------------------------

fn connect_tcp(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE)
        .context(|| format!("cannot connect to {addr}"))?;
    stream
        .set_write_timeout(Some(STALL))
        .context(|| format!("{addr}: cannot set a write timeout"))?;
    stream
        .set_nodelay(true)
        .context(|| format!("{addr}: cannot set TCP_NODELAY"))?;
    Ok(stream)
}

/// Accepts one connection, waiting at most `patience`.
fn accept_within(listener: &TcpListener, patience: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + patience;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nothing connected within {patience:?}"),
                    ));
                }
                thread::sleep(POLL);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// Writes `payload` in pieces of [`WRITE_PIECE`] bytes while `reading` (the run's
/// readers have not all finished); says why it stopped early: the readers finished, no
/// byte was taken for [`STALL`], the connection failed, or `deadline` passed.
fn write_by(
    stream: &mut impl Write,
    payload: &[u8],
    deadline: Instant,
    reading: impl Fn() -> bool,
) -> Result<()> {
    let mut written = 0;
    for piece in payload.chunks(WRITE_PIECE) {
        let stopped = if Instant::now() >= deadline {
            format!("the run's limit of {RUN_LIMIT:?} passed")
        } else if !reading() {
            "its readers had stopped".to_owned()
        } else {
            match stream.write_all(piece) {
                Ok(()) => {
                    written += piece.len();
                    continue;
                }
                Err(err) => describe_write_error(&err),
            }
        };
        return Err(format!(
            "{stopped}, after {written} of {} bytes",
            payload.len()
        ));
    }
    Ok(())
}

fn describe_write_error(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("it took no byte for {STALL:?}")
        }
        _ => err.to_string(),
    }
}

/// Waits for a thread of this bench; a panic in it becomes an error.
fn join<T>(handle: thread::JoinHandle<T>, what: &str) -> Result<T> {
    handle.join().map_err(|_| format!("{what} panicked"))
}

/// `count` per second from `started` to `ended`; 0 when nothing ended.
fn per_second(count: u64, started: Instant, ended: Option<Instant>) -> f64 {
    let secs = seconds(started, ended);
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

fn seconds(started: Instant, ended: Option<Instant>) -> f64 {
    ended.map_or(0.0, |ended| ended.duration_since(started).as_secs_f64())
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("counts fit in memory")
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

/// A figure every run of a workload produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Metric {
    name: &'static str,
    unit: &'static str,
    decimals: usize,
}

const fn metric(name: &'static str, unit: &'static str, decimals: usize) -> Metric {
    Metric {
        name,
        unit,
        decimals,
    }
}

const RAW_RATE: Metric = metric("raw-relay ceiling", "frames/s", 0);
const W1_RATE: Metric = metric("W1 throughput of delivered lines", "msgs/s", 0);
const W1_DELIVERED: Metric = metric("W1 delivered", "fraction of N", 4);
const W1_RATIO: Metric = metric("W1 / raw-relay ceiling", "ratio", 3);
const W2_P50: Metric = metric("W2 latency p50", "µs", 0);
const W2_P99: Metric = metric("W2 latency p99", "µs", 0);
const W2_MAX: Metric = metric("W2 latency max", "µs", 0);
const W2_DELIVERED: Metric = metric("W2 delivered", "fraction", 4);
const W3_DUPLICATES: Metric = metric("W3 duplicates per delivered line", "copies", 3);
const W3_DELIVERED: Metric = metric("W3 delivered", "fraction", 4);
const W4_IDLE: Metric = metric("W4 idle RSS", "KiB", 0);

/// A number of peer links W4 measures at, and the figures it gives there.
struct LinkStep {
    /// Peer links in total, counting those of the steps before.
    links: usize,
    rss: Metric,
    per_link: Metric,
}

/// The steps of W4, in order.
const LINK_STEPS: [LinkStep; 2] = [
    LinkStep {
        links: 1_000,
        rss: metric("W4 RSS, 1,000 links", "KiB", 0),
        per_link: metric("W4 per link, 1,000 links", "KiB/link", 2),
    },
    LinkStep {
        links: 10_000,
        rss: metric("W4 RSS, 10,000 links", "KiB", 0),
        per_link: metric("W4 per link, 10,000 links", "KiB/link", 2),
    },
];

/// Every run's figures, by metric, in the order they were first recorded.
#[derive(Default)]
struct Report {
    series: Vec<(Metric, Vec<f64>)>,
}

impl Report {
    fn record(&mut self, metric: Metric, value: f64) {
        match self.series.iter_mut().find(|(m, _)| *m == metric) {
            Some((_, values)) => values.push(value),
            None => self.series.push((metric, vec![value])),
        }
    }

    /// Every run's figure with the median and spread, then the markdown table.
    fn print(&self) {
        println!("\n## Results\n");
        for (metric, values) in &self.series {
            let d = metric.decimals;
            let runs: Vec<String> = values.iter().map(|v| format!("{v:.d$}")).collect();
            let s = Summary::of(values);
            println!(
                "{} ({}): runs {}; median {:.d$}, min–max {:.d$}–{:.d$}",
                metric.name,
                metric.unit,
                runs.join(", "),
                s.median,
                s.min,
                s.max
            );
        }
        println!("\n| workload | median | spread (min–max) | runs |");
        println!("| --- | ---: | ---: | ---: |");
        for (metric, values) in &self.series {
            let d = metric.decimals;
            let s = Summary::of(values);
            println!(
                "| {} ({}) | {:.d$} | {:.d$}–{:.d$} | {} |",
                metric.name,
                metric.unit,
                s.median,
                s.min,
                s.max,
                values.len()
            );
        }
    }
}

struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

impl Summary {
    /// The summary of at least one value.
    fn of(values: &[f64]) -> Summary {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        Summary {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// The machine facts that go with the table.
fn print_machine() {
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = fs::read_to_string("/proc/version").unwrap_or_else(|_| "unknown".to_owned());
    println!("\nMachine: nproc {nproc}; CPU {cpu}");
    println!("Kernel: {}", kernel.trim_end());
    println!("Daemon: {}", daemon_version());
}

/// What `p2pchat --version` prints.
fn daemon_version() -> String {
    match Command::new(BIN)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => format!("unknown (`{BIN} --version` exited with {})", out.status),
        Err(err) => format!("unknown (cannot run {BIN}: {err})"),
    }
}

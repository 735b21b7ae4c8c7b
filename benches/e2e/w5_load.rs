//! W5 load: one daemon holding 1,000 peer links and 100 control clients while lines flow
//! in from 20 of the clients and 10 of the links at a steady pace. Every line must reach
//! every client but its writer and every link but its sender exactly once; meanwhile a
//! probe client times the node's answers to a command, which bounds from outside how long
//! one turn of its event loop took.

use std::io::Write;
use std::net::TcpStream;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::control_reader::ControlReader;
use crate::daemon::Daemon;
use crate::error::{Context, Result};
use crate::lines::{push_indexed_text, FakeAuthor, TEXT_LEN};
use crate::link_reader::LinkReaders;
use crate::peer_links::{
    fake_peer_identity, fake_peer_nick, open_peer_links, write_until, PeerLink,
};
use crate::report::{metric, nanos_since, per_second, Metric, Percentiles, Report};
use crate::streams::describe_write_error;
use crate::tally::{spawn_tally, Reading, Tally};
use crate::wait::{join, paced, RUN_LIMIT, STALL};
use crate::Progress;

/// Peer links of the node, all read by this process.
const PEER_LINKS: usize = 1_000;
/// Control clients of the node, all read by this process (the probe comes on top).
const CLIENTS: usize = 100;
/// The first clients write lines too.
const CLIENT_WRITERS: usize = 20;
/// The first peer links send chat lines too, each as an author of its own.
const PEER_WRITERS: usize = 10;
/// Lines per second from each writing client and each writing link: 2,000 in all, a
/// load the node carries while it shares two cores with the bench's 1,100 readers. At
/// five times that the readers fall behind, the node holds every client back while
/// their backlog drains, and the probe would time that rather than the loop's turns.
const CLIENT_RATE: u64 = 50;
const PEER_RATE: u64 = 100;
/// How long the lines flow.
const WRITE_SECS: u64 = 5;
const CLIENT_LINES: u64 = CLIENT_RATE * WRITE_SECS;
const PEER_LINES: u64 = PEER_RATE * WRITE_SECS;
/// Lines in all: the clients' first, then the links'.
const LINES: u64 = CLIENT_WRITERS as u64 * CLIENT_LINES + PEER_WRITERS as u64 * PEER_LINES;
/// How long the probe measures the node with every link and client attached, before
/// the lines flow: the floor of a round trip, to read the loaded figures against.
const IDLE_PROBING: Duration = Duration::from_secs(1);
/// A probe this slow is explained in the run's output.
const SLOW_PROBE: Duration = Duration::from_millis(100);
/// Between the starts of two probes. Far longer than a probe takes on an idle node, so
/// the probe itself hardly loads the loop it measures.
pub const PROBE_TICK: Duration = Duration::from_millis(5);

const W5_LINES: Metric = metric("W5 lines delivered to all", "lines/s", 0);
const W5_DELIVERIES: Metric = metric("W5 copies delivered", "copies/s", 0);
const W5_DELIVERED: Metric = metric("W5 delivered", "fraction", 4);
const W5_DUPLICATES: Metric = metric("W5 duplicate copies, echoes included", "copies", 0);
const W5_CPU: Metric = metric("W5 daemon on a CPU while lines flow", "% of the time", 0);
const W5_CPU_WAIT: Metric = metric("W5 daemon waiting for a CPU", "% of the time", 0);
const W5_PROBE_IDLE: Metric = metric("W5 probe RTT p50 before the lines flow", "µs", 0);
const W5_PROBE_P50: Metric = metric("W5 probe RTT p50", "µs", 0);
const W5_PROBE_P99: Metric = metric("W5 probe RTT p99", "µs", 0);
const W5_PROBE_MAX: Metric = metric("W5 probe RTT max", "µs", 0);

/// The lines client `i` writes.
fn client_lines(i: usize) -> Range<u64> {
    let start = i as u64 * CLIENT_LINES;
    start..start + CLIENT_LINES
}

/// The lines peer link `j` sends.
fn peer_lines(j: usize) -> Range<u64> {
    let start = CLIENT_WRITERS as u64 * CLIENT_LINES + j as u64 * PEER_LINES;
    start..start + PEER_LINES
}

/// What reader `i` of `writers` must get: every line but the ones it writes itself.
fn tally_for(i: usize, writers: usize, own: fn(usize) -> Range<u64>) -> Tally {
    if i < writers {
        Tally::excluding(LINES, own(i))
    } else {
        Tally::new(LINES)
    }
}

pub fn load_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let node = Daemon::start(0)?;
    let mut links = Vec::with_capacity(PEER_LINKS);
    open_peer_links(&node, &mut links, PEER_LINKS)?;
    node.wait_for_peers(PEER_LINKS)?;
    let clients = (0..CLIENTS)
        .map(|_| ControlReader::attach(&node))
        .collect::<Result<Vec<_>>>()?;
    let mut probe = ControlReader::attach(&node)?;
    let mut probe_writer = probe.writer()?;
    let client_writers = clients[..CLIENT_WRITERS]
        .iter()
        .map(ControlReader::writer)
        .collect::<Result<Vec<_>>>()?;
    let peer_writers = links[..PEER_WRITERS]
        .iter_mut()
        .enumerate()
        .map(|(j, link)| {
            // The link reader makes the link non-blocking and a clone shares the flag:
            // set before cloning, it never changes under the writer's feet.
            link.stream.set_nonblocking(true)?;
            let stream = link.stream.try_clone()?;
            Ok((stream, seal_peer_lines(link, j)))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .context(|| format!("{node}: cannot clone a peer link to write on"))?;

    let idle_until = Instant::now() + IDLE_PROBING;
    let mut idle = probe_while(
        &mut probe,
        &mut probe_writer,
        idle_until + RUN_LIMIT,
        || Instant::now() < idle_until,
    );
    if let Some(why) = idle.stopped {
        return Err(format!(
            "{node}: the probe failed before the lines flowed: {why}"
        ));
    }
    idle.rtts.sort_unstable();

    let epoch = Instant::now();
    let deadline = epoch + RUN_LIMIT;
    let client_readings: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, reader)| {
            spawn_tally(reader, tally_for(i, CLIENT_WRITERS, client_lines), deadline)
        })
        .collect();
    let link_readers = LinkReaders::start(
        links
            .into_iter()
            .enumerate()
            .map(|(j, link)| (link, tally_for(j, PEER_WRITERS, peer_lines)))
            .collect(),
        deadline,
    );
    let cpu_before = node.cpu_use()?;
    let flow_start = Instant::now();
    let writers = start_writers(client_writers, peer_writers, epoch, deadline);
    let mut loaded = probe_while(&mut probe, &mut probe_writer, deadline, || {
        writers.iter().any(|(_, writer)| !writer.is_finished())
    });
    let cpu_after = node.cpu_use()?;
    let flowed = flow_start.elapsed().as_secs_f64();
    let share = |during: Duration| 100.0 * during.as_secs_f64() / flowed;
    let cpu = (
        share(cpu_after.running - cpu_before.running),
        share(cpu_after.waiting - cpu_before.waiting),
    );
    let mut written = Vec::new();
    for (who, writer) in writers {
        if let Err(why) = join(writer, &who)? {
            written.push(format!("{who} stopped: {why}"));
        }
    }
    let client_readings = client_readings
        .into_iter()
        .map(|reading| join(reading, &format!("a client reader of {node}")))
        .collect::<Result<Vec<_>>>()?;
    let link_readings = link_readers.join()?;

    report_delivery(
        progress,
        &client_readings,
        &link_readings,
        epoch,
        cpu,
        report,
    );
    loaded.rtts.sort_unstable();
    report_probe(&idle.rtts, &loaded.rtts, report);
    for slow in idle.slow.iter().chain(&loaded.slow) {
        println!("  slow: {slow}");
    }
    if let Some(why) = loaded.stopped {
        println!("  the probe stopped early: {why}");
    }
    let exact = |readings: &[Reading]| readings.iter().all(|r| r.tally.is_exact());
    if !exact(&client_readings) || !exact(&link_readings) || !written.is_empty() {
        explain(&node, &client_readings, &link_readings, &written);
    }
    Ok(())
}

/// Prints and records what the readers got: lines and copies per second from the first
/// line written to the last first copy read, the fraction delivered, and `cpu`, the
/// percentages of the time the lines flowed that the daemon spent on a CPU and waiting
/// for one. They tell what the probe's round trips are made of: when the two add up to
/// 100 % the loop was never idle, a probe waits for the turn in progress, and a turn
/// lasts longer than the work in it by the time the bench's own threads held the CPUs.
fn report_delivery(
    progress: &Progress,
    clients: &[Reading],
    links: &[Reading],
    epoch: Instant,
    cpu: (f64, f64),
    report: &mut Report,
) {
    let all = || clients.iter().chain(links);
    let delivered: u64 = all().map(|reading| reading.tally.distinct).sum();
    let expected: u64 = all().map(|reading| reading.tally.expected()).sum();
    let duplicates: u64 = all().map(|reading| reading.tally.duplicates()).sum();
    let finished = all().filter_map(|reading| reading.tally.last_new).max();
    let lines_rate = per_second(LINES, epoch, finished);
    let copies_rate = per_second(delivered, epoch, finished);
    println!(
        "{progress}: {lines_rate:.0} lines/s to all ({copies_rate:.0} copies/s), \
         {delivered}/{expected} copies delivered, {duplicates} duplicates, \
         offered {} lines/s; while they flowed the daemon was on a CPU {:.0} % of the \
         time and waiting for one {:.0} %",
        CLIENT_WRITERS as u64 * CLIENT_RATE + PEER_WRITERS as u64 * PEER_RATE,
        cpu.0,
        cpu.1
    );
    report.record(W5_DELIVERED, delivered as f64 / expected as f64);
    report.record(W5_DUPLICATES, duplicates as f64);
    // A rate is only a rate of delivery when everything was delivered.
    if delivered == expected {
        report.record(W5_LINES, lines_rate);
        report.record(W5_DELIVERIES, copies_rate);
    }
    report.record(W5_CPU, cpu.0);
    report.record(W5_CPU_WAIT, cpu.1);
}

/// Prints and records the percentiles of the probe's round trips, sorted, in ns: `idle`
/// before the lines flowed, `loaded` while they did.
fn report_probe(idle: &[u64], loaded: &[u64], report: &mut Report) {
    if let Some(p) = Percentiles::of(idle) {
        report.record(W5_PROBE_IDLE, p.p50);
        println!(
            "  probe before the lines flowed: {} round trips, p50 {:.0} µs, max {:.0} µs",
            idle.len(),
            p.p50,
            p.max
        );
    }
    let Some(p) = Percentiles::of(loaded) else {
        println!("  probe: no round trip while the lines flowed");
        return;
    };
    println!(
        "  probe while the lines flowed: {} round trips, p50 {:.0} µs, p99 {:.0} µs, \
         max {:.0} µs",
        loaded.len(),
        p.p50,
        p.p99,
        p.max
    );
    report.record(W5_PROBE_P50, p.p50);
    report.record(W5_PROBE_P99, p.p99);
    report.record(W5_PROBE_MAX, p.max);
}

/// A writer of lines, named for the messages about it.
type Writer = (String, JoinHandle<Result<()>>);

/// Starts every writer, each at its own pace; their first lines are spread over the
/// first client tick, so that the writers do not all wake at once.
fn start_writers(
    clients: Vec<UnixStream>,
    links: Vec<(TcpStream, Vec<Vec<u8>>)>,
    epoch: Instant,
    deadline: Instant,
) -> Vec<Writer> {
    let count = (clients.len() + links.len()) as u32;
    let client_tick = tick(CLIENT_RATE);
    let start = |n: usize| epoch + client_tick * n as u32 / count;
    let mut writers = Vec::new();
    for (i, stream) in clients.into_iter().enumerate() {
        let first = start(i);
        let thread = thread::spawn(move || write_client_lines(stream, i, first, deadline));
        writers.push((format!("writing client #{i}"), thread));
    }
    for (j, (stream, sealed)) in links.into_iter().enumerate() {
        let first = start(CLIENT_WRITERS + j);
        let thread = thread::spawn(move || send_peer_lines(stream, &sealed, first, deadline));
        writers.push((format!("writing fake peer #{j}"), thread));
    }
    writers
}

/// The time between two lines at `rate` lines per second.
fn tick(rate: u64) -> Duration {
    Duration::from_secs(1) / u32::try_from(rate).expect("a rate of a few lines per second")
}

/// Client `i` writes its lines at [`CLIENT_RATE`].
fn write_client_lines(
    mut stream: UnixStream,
    i: usize,
    start: Instant,
    deadline: Instant,
) -> Result<()> {
    let lines = client_lines(i);
    let mut line = String::with_capacity(TEXT_LEN + 1);
    paced(start, tick(CLIENT_RATE), CLIENT_LINES, deadline, |k| {
        line.clear();
        push_indexed_text(&mut line, lines.start + k);
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(|err| describe_write_error(&err))
    })
}

/// The lines fake peer `j` sends as an author of its own, signed with its identity key:
/// each written alone, so each a batch of one line (as a node signs a line its client
/// wrote alone), sealed as a transport message of its own (as a node sends a frame that
/// is alone in its queue). They are signed and sealed before the lines flow: the link's
/// channel then goes to the thread that reads the link, and the writer only writes the
/// messages in order, which is all the channel's sending half asks of them.
fn seal_peer_lines(link: &mut PeerLink, j: usize) -> Vec<Vec<u8>> {
    let lines = peer_lines(j);
    let mut author = FakeAuthor::new(&fake_peer_identity(j), &fake_peer_nick(j));
    let mut frame = Vec::new();
    lines
        .map(|index| {
            frame.clear();
            author.burst(&mut frame, index..index + 1);
            let mut sealed = Vec::new();
            link.channel.seal(&frame, &mut sealed);
            sealed
        })
        .collect()
}

/// Fake peer `j` sends its sealed lines at [`PEER_RATE`].
fn send_peer_lines(
    mut stream: TcpStream,
    sealed: &[Vec<u8>],
    start: Instant,
    deadline: Instant,
) -> Result<()> {
    paced(start, tick(PEER_RATE), PEER_LINES, deadline, |seq| {
        let message = &sealed[seq as usize];
        let written = write_until(&mut stream, message, Instant::now() + STALL)
            .map_err(|err| err.to_string())?;
        if written < message.len() {
            return Err(format!("the node took no byte for {STALL:?}"));
        }
        Ok(())
    })
}

/// What the probe saw.
pub struct Probing {
    /// Round trips, in ns.
    pub rtts: Vec<u64>,
    /// What happened during each round trip over [`SLOW_PROBE`].
    pub slow: Vec<String>,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
}

/// Sends `/nick probeK` every [`PROBE_TICK`] while `running`, waiting for each reply
/// `* nick probeK` before the next. `/nick` is as cheap as a command gets, and its reply
/// is one line that names this very request, so no reply can be taken for another's.
pub fn probe_while(
    probe: &mut ControlReader,
    writer: &mut UnixStream,
    deadline: Instant,
    running: impl Fn() -> bool,
) -> Probing {
    let mut probing = Probing {
        rtts: Vec::new(),
        slow: Vec::new(),
        stopped: None,
    };
    let mut next = Instant::now();
    for k in 0u64.. {
        if !running() {
            break;
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        next += PROBE_TICK;
        let reply = format!("* nick probe{k}");
        let sent = Instant::now();
        if let Err(err) = writer.write_all(format!("/nick probe{k}\n").as_bytes()) {
            probing.stopped = Some(describe_write_error(&err));
            break;
        }
        // The probe is a client too and gets every chat line: whether lines reached it
        // while it waited tells a loop that turned without reading clients (they are
        // held back while a connection drains a backlog) from one that did not turn.
        let (mut lines, mut last_read, mut silence) = (0u64, sent, Duration::ZERO);
        let mut answered = None;
        let end = probe.read_lines(deadline, |line, at| {
            silence = silence.max(at.saturating_duration_since(last_read));
            last_read = at;
            let matched = line == reply.as_bytes();
            if matched {
                answered = Some(at);
            } else {
                lines += 1;
            }
            matched
        });
        let Some(at) = answered else {
            probing.stopped = Some(format!("no reply to probe {k}: {end}"));
            break;
        };
        let rtt = at.duration_since(sent);
        probing.rtts.push(nanos_since(sent, at));
        if rtt >= SLOW_PROBE {
            probing.slow.push(format!(
                "probe {k} took {rtt:?}; meanwhile {lines} other lines reached it, and \
                 the longest time without a byte was {silence:?}"
            ));
        }
    }
    probing
}

/// Readers shown per kind when lines went missing or came twice.
const SHOWN: usize = 5;

/// Explains a run in which some reader did not get every line exactly once.
fn explain(node: &Daemon, clients: &[Reading], links: &[Reading], written: &[String]) {
    println!("  not every line arrived exactly once:");
    let inexact = |readings: &[Reading]| -> Vec<usize> {
        (0..readings.len())
            .filter(|&i| !readings[i].tally.is_exact())
            .collect()
    };
    let (bad_clients, bad_links) = (inexact(clients), inexact(links));
    println!(
        "  {} of {CLIENTS} clients and {} of {PEER_LINKS} peer links are short or got copies",
        bad_clients.len(),
        bad_links.len()
    );
    for &i in bad_clients.iter().take(SHOWN) {
        clients[i].print(&format!("client #{i} of {node}"));
    }
    for &j in bad_links.iter().take(SHOWN) {
        links[j].print(&format!("fake peer #{j} of {node}"));
    }
    for why in written {
        println!("  {why}");
    }
    node.print_diagnosis();
}

//! W6 flood RSS: one daemon that a hostile peer floods with new signed lines as fast as
//! it can, while a client and another peer link take nothing of what the node sends them;
//! the daemon's RSS, sampled every 100 ms, and its peak (VmHWM) show whether its
//! per-connection bounds (a peer is cut past 16 MiB queued, a client past 4 MiB) keep
//! memory flat.

use std::thread;
use std::time::{Duration, Instant};

use crate::control_reader::ControlReader;
use crate::daemon::Daemon;
use crate::error::{Context, Result};
use p2pchat::proto::secure::MAX_PLAINTEXT_LEN;

use crate::lines::FakeAuthor;
use crate::peer_links::{
    fake_peer_identity, fake_peer_nick, open_peer_links, write_until, PeerLink,
};
use crate::report::{metric, Metric, Report};
use crate::wait::{join, paced};
use crate::Progress;

/// How long the flood lasts.
const FLOOD_TIME: Duration = Duration::from_secs(10);
/// Between two readings of the daemon's RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Lines signed per write of the flood, as one burst: five full batches and a part,
/// about 310 KiB, more than a loopback socket takes at once, so the flooder always has
/// bytes waiting for the node.
const FLOOD_BURST: u64 = 4096;
/// Samples shown per line of the run's summary: one a second.
const SAMPLES_SHOWN_EVERY: usize = 10;
/// The flooding peer is link 0, the one that never reads link 1.
const FLOODER: usize = 0;
const LINKS: usize = 2;

const W6_START: Metric = metric("W6 RSS before the flood", "KiB", 0);
const W6_MAX: Metric = metric("W6 RSS max of the samples", "KiB", 0);
const W6_PEAK: Metric = metric("W6 peak RSS (VmHWM)", "KiB", 0);
const W6_END: Metric = metric("W6 RSS at the end of the flood", "KiB", 0);
const W6_RATE: Metric = metric("W6 flood taken by the node", "lines/s", 0);

pub fn flood_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let node = Daemon::start(0)?;
    let mut links = Vec::with_capacity(LINKS);
    open_peer_links(&node, &mut links, LINKS)?;
    node.wait_for_peers(LINKS)?;
    // Attached, then never read again: the node queues every line for it until it cuts
    // the client. The link that never reads is held the same way.
    let _deaf_client = ControlReader::attach(&node)?;
    let _deaf_peer = links.pop().expect("two links");
    let flooder = links.pop().expect("two links");
    flooder
        .stream
        .set_nonblocking(true)
        .context(|| format!("{node}: cannot make the flooding link non-blocking"))?;

    let before = node.rss_kib()?;
    let started = Instant::now();
    let flood_end = started + FLOOD_TIME;
    let flooding = thread::spawn(move || flood(flooder, flood_end));
    let mut samples = vec![before];
    let samples_due = (FLOOD_TIME.as_millis() / SAMPLE_EVERY.as_millis()) as u64;
    // The last sample is due as the flood ends; the deadline leaves it time to be taken.
    let sampled = paced(
        started + SAMPLE_EVERY,
        SAMPLE_EVERY,
        samples_due,
        flood_end + SAMPLE_EVERY,
        |_| {
            samples.push(node.rss_kib()?);
            Ok(())
        },
    );
    let flooded = join(flooding, "the flooding peer")?;
    let end = node.rss_kib()?;
    samples.push(end);
    sampled?;
    let Flooded { lines, making } = flooded?;
    let max = samples.iter().copied().max().expect("samples were taken");
    let peak = node.peak_rss_kib()?;
    let rate = lines as f64 / FLOOD_TIME.as_secs_f64();
    let status = node.status_within(Duration::from_secs(2))?;
    let field = |key: &str| status.get(key).map_or("?", String::as_str).to_owned();
    println!(
        "{progress}: RSS {before} KiB before, max {max} KiB of {} samples, peak {peak} KiB, \
         {end} KiB at the end; {rate:.0} lines/s taken; then peers {}, clients {} (this \
         request's included), messages {}",
        samples.len(),
        field("peers"),
        field("clients"),
        field("messages")
    );
    let by_second: Vec<String> = samples
        .iter()
        .step_by(SAMPLES_SHOWN_EVERY)
        .map(u64::to_string)
        .collect();
    println!("  RSS each second (KiB): {}", by_second.join(", "));
    println!(
        "  the flooder spent {:.1} s of the {FLOOD_TIME:?} signing and sealing: the rest it \
         waited for the node",
        making.as_secs_f64()
    );
    for warning in node.last_warnings() {
        println!("  {node} log: {warning}");
    }
    report.record(W6_START, before as f64);
    report.record(W6_MAX, max as f64);
    report.record(W6_PEAK, peak as f64);
    report.record(W6_END, end as f64);
    report.record(W6_RATE, rate);
    Ok(())
}

/// Sends new signed lines on `link` as fast as the node takes them until `until`;
/// returns how many lines were in the transport messages the node could open. The
/// flooder is an author of its own that writes [`FLOOD_BURST`] lines at a time and signs
/// them as a node signs a burst, in full batches: every line is new, so the node must
/// verify every batch and forward it to everyone but the flooder. The batches are
/// sealed as a node seals a full queue: as many whole frames per transport message as
/// fit, which for full batches is one.
fn flood(mut link: PeerLink, until: Instant) -> Result<Flooded> {
    let mut author = FakeAuthor::new(&fake_peer_identity(FLOODER), &fake_peer_nick(FLOODER));
    let (mut plain, mut wire) = (Vec::new(), Vec::new());
    // Where each transport message of the burst ends, and the lines sent up to it.
    let mut ends: Vec<(usize, u64)> = Vec::new();
    let mut sent = 0;
    let mut making = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        wire.clear();
        ends.clear();
        plain.clear();
        let mut upto = sent;
        author.burst_each(sent..sent + FLOOD_BURST, |frame, lines| {
            if !plain.is_empty() && plain.len() + frame.len() > MAX_PLAINTEXT_LEN {
                link.channel.seal(&plain, &mut wire);
                ends.push((wire.len(), upto));
                plain.clear();
            }
            plain.extend_from_slice(frame);
            upto += lines;
        });
        link.channel.seal(&plain, &mut wire);
        ends.push((wire.len(), upto));
        making += started.elapsed();
        let written = write_until(&mut link.stream, &wire, until)
            .context(|| "the flooding peer's link".to_owned())?;
        if written < wire.len() {
            // Only whole transport messages open.
            let whole = ends.iter().take_while(|&&(end, _)| end <= written).last();
            let lines = whole.map_or(sent, |&(_, upto)| upto);
            return Ok(Flooded { lines, making });
        }
        sent = upto;
    }
    Ok(Flooded {
        lines: sent,
        making,
    })
}

/// What the flooder did.
struct Flooded {
    /// Lines in the transport messages the node could open.
    lines: u64,
    /// The time it took to sign and seal them: the time the node did not wait for it.
    making: Duration,
}

//! W4 memory: one daemon's RSS when idle and with thousands of idle peer links, opened
//! by fake peers of this process that complete the handshake (the secure channel's and
//! the hellos inside it). While the first 1,000 links come up, a probe client times the
//! node's answer to `/nick` every few milliseconds, as in W5: the round trip bounds, seen
//! from outside, how long a turn of the node's loop took while it ran handshakes.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crate::control_reader::ControlReader;
use crate::daemon::Daemon;
use crate::error::Result;
use crate::peer_links::open_peer_links;
use crate::report::{metric, Metric, Percentiles, Report};
use crate::w5_load::probe_while;
use crate::wait::{join, RUN_LIMIT};
use crate::Progress;

const W4_IDLE: Metric = metric("W4 idle RSS", "KiB", 0);
const W4_PROBE_P50: Metric = metric("W4 probe RTT p50 while 1,000 links come up", "µs", 0);
const W4_PROBE_P99: Metric = metric("W4 probe RTT p99 while 1,000 links come up", "µs", 0);
const W4_PROBE_MAX: Metric = metric("W4 probe RTT max while 1,000 links come up", "µs", 0);
const W4_OPEN_RATE: Metric = metric("W4 links brought up, first 1,000", "links/s", 0);

/// A number of peer links W4 measures at, and the figures it gives there.
struct LinkStep {
    /// Peer links in total, counting those of the steps before.
    links: usize,
    rss: Metric,
    per_link: Metric,
}

/// The steps of W4, in order.
const LINK_STEPS: [LinkStep; 3] = [
    LinkStep {
        links: 1_000,
        rss: metric("W4 RSS, 1,000 links", "KiB", 0),
        per_link: metric("W4 per link, 1,000 links", "KiB/link", 2),
    },
    LinkStep {
        links: 5_000,
        rss: metric("W4 RSS, 5,000 links", "KiB", 0),
        per_link: metric("W4 per link, 5,000 links", "KiB/link", 2),
    },
    LinkStep {
        links: 10_000,
        rss: metric("W4 RSS, 10,000 links", "KiB", 0),
        per_link: metric("W4 per link, 10,000 links", "KiB/link", 2),
    },
];

pub fn memory_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let node = Daemon::start(0)?;
    let idle = node.rss_kib()?;
    let mut summary = format!("{progress}: idle RSS {idle} KiB");
    report.record(W4_IDLE, idle as f64);
    let mut links = Vec::new();
    for (i, step) in LINK_STEPS.iter().enumerate() {
        // The probe runs during the first step only; it is a client of the node, gone
        // again (and its reply lines with it) before the RSS is read.
        let probe = if i == 0 {
            Some(Probe::start(&node)?)
        } else {
            None
        };
        let started = std::time::Instant::now();
        open_peer_links(&node, &mut links, step.links)?;
        node.wait_for_peers(step.links)?;
        let took = started.elapsed();
        if let Some(probe) = probe {
            let rtts = probe.stop()?;
            let rate = step.links as f64 / took.as_secs_f64();
            report.record(W4_OPEN_RATE, rate);
            match Percentiles::of(&rtts) {
                Some(p) => {
                    write!(
                        summary,
                        "; {} links up in {took:.2?} ({rate:.0}/s), probe meanwhile: {} round \
                         trips, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                        step.links,
                        rtts.len(),
                        p.p50,
                        p.p99,
                        p.max
                    )
                    .expect("a String takes any text");
                    report.record(W4_PROBE_P50, p.p50);
                    report.record(W4_PROBE_P99, p.p99);
                    report.record(W4_PROBE_MAX, p.max);
                }
                None => summary.push_str("; no probe round trip while the links came up"),
            }
        }
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

/// A probe client timing `/nick` on a thread of its own until stopped.
struct Probe {
    running: Arc<AtomicBool>,
    thread: thread::JoinHandle<Result<Vec<u64>>>,
}

impl Probe {
    fn start(node: &Daemon) -> Result<Probe> {
        let mut reader = ControlReader::attach(node)?;
        let mut writer = reader.writer()?;
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let thread = thread::spawn(move || {
            let deadline = std::time::Instant::now() + RUN_LIMIT;
            let mut probing = probe_while(&mut reader, &mut writer, deadline, || {
                flag.load(Ordering::Relaxed)
            });
            for slow in &probing.slow {
                println!("  slow: {slow}");
            }
            if let Some(why) = probing.stopped {
                return Err(format!("the probe stopped early: {why}"));
            }
            probing.rtts.sort_unstable();
            Ok(probing.rtts)
        });
        Ok(Probe { running, thread })
    }

    /// Stops the probe; its round trips, sorted, in ns.
    fn stop(self) -> Result<Vec<u64>> {
        self.running.store(false, Ordering::Relaxed);
        join(self.thread, "the W4 probe")?
    }
}

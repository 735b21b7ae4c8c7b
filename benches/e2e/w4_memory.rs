//! W4 memory: one daemon's RSS when idle and with thousands of idle peer links, opened
//! by fake peers of this process that complete the handshake.

use std::fmt::Write as _;

use crate::daemon::Daemon;
use crate::error::Result;
use crate::peer_links::open_peer_links;
use crate::report::{metric, Metric, Report};
use crate::Progress;

const W4_IDLE: Metric = metric("W4 idle RSS", "KiB", 0);

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

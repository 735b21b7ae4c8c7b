//! W7 logs memory: one daemon with its default bounds (16,384 author runs, a backlog of
//! 100,000 lines or 64 MiB) that a peer link sends the lines of 10,000 authors, ten
//! each: a full backlog and 10,000 authors known. Then as many again from 10,000 more
//! authors, past both bounds. The daemon's RSS after each, and what `/status` says it
//! holds: memory stays bounded by the options, however many authors write.

use std::io::Write;

use crate::daemon::Daemon;
use crate::error::{Context, Result};
use crate::lines::FakeAuthor;
use crate::peer_links::{fake_peer_identity, open_peer_links, PeerLink};
use crate::report::{metric, Metric, Report};
use crate::wait::{wait_for, Probe};
use crate::Progress;

/// Authors per step, and the lines each writes (one batch).
const AUTHORS: usize = 10_000;
const LINES_EACH: u64 = 10;
/// Fake peer numbers of the authors start here: the link itself is number 0.
const FIRST_AUTHOR: usize = 1;

const W7_IDLE: Metric = metric("W7 RSS before any line", "KiB", 0);
const W7_FULL: Metric = metric("W7 RSS, 10,000 authors and a full backlog", "KiB", 0);
const W7_PAST: Metric = metric("W7 RSS, 20,000 authors written, past both bounds", "KiB", 0);
const W7_PER_LINE: Metric = metric("W7 RSS growth per line kept", "bytes/line", 0);

pub fn logs_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let node = Daemon::start(0)?;
    let mut links = Vec::new();
    open_peer_links(&node, &mut links, 1)?;
    node.wait_for_peers(1)?;
    let mut link = links.pop().expect("one link");
    let idle = node.rss_kib()?;
    let mut holds = Vec::new();
    for step in 0..2 {
        let authors = FIRST_AUTHOR + step * AUTHORS..FIRST_AUTHOR + (step + 1) * AUTHORS;
        send_authors(&mut link, authors)?;
        let total = (step as u64 + 1) * AUTHORS as u64 * LINES_EACH;
        wait_for(&format!("{node} has taken {total} lines"), || {
            let taken = node.counter("messages")?;
            Ok(if taken >= total {
                Probe::Done(())
            } else {
                Probe::NotYet(format!("{taken} lines"))
            })
        })?;
        let rss = node.rss_kib()?;
        let field = |key| node.counter(key);
        holds.push((
            rss,
            field("authors")?,
            field("backlog-lines")?,
            field("backlog-bytes")?,
        ));
    }
    let [(full, full_authors, full_lines, full_bytes), (past, past_authors, past_lines, past_bytes)] =
        holds[..]
    else {
        unreachable!("two steps");
    };
    let per_line = (full - idle) as f64 * 1024.0 / full_lines.max(1) as f64;
    println!(
        "{progress}: RSS {idle} KiB idle; {full} KiB holding {full_authors} author runs and \
         {full_lines} lines ({full_bytes} bytes) of backlog; {past} KiB after 20,000 \
         authors, holding {past_authors} runs and {past_lines} lines ({past_bytes} bytes)"
    );
    report.record(W7_IDLE, idle as f64);
    report.record(W7_FULL, full as f64);
    report.record(W7_PAST, past as f64);
    report.record(W7_PER_LINE, per_line);
    Ok(())
}

/// Sends one batch of [`LINES_EACH`] lines from each of `authors` (fake peer numbers,
/// each an author with a key of its own), sealed as a node seals a full queue.
fn send_authors(link: &mut PeerLink, authors: std::ops::Range<usize>) -> Result<()> {
    let mut plain = Vec::new();
    let mut wire = Vec::new();
    for number in authors {
        let mut author = FakeAuthor::new(&fake_peer_identity(number), &format!("a{number}"));
        author.burst(&mut plain, 0..LINES_EACH);
        if plain.len() > 32 * 1024 {
            link.channel.seal(&plain, &mut wire);
            plain.clear();
        }
    }
    if !plain.is_empty() {
        link.channel.seal(&plain, &mut wire);
    }
    link.stream
        .write_all(&wire)
        .context(|| "the link sending the authors' lines".to_owned())
}

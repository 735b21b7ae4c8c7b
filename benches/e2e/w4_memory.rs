//! W4 memory: one daemon's RSS when idle and with thousands of idle peer links, opened
//! by fake peers of this process that complete the handshake.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;

use p2pchat::wire::frame::HEADER_LEN;
use p2pchat::wire::peer::{Hello, MAX_BODY_LEN};

use crate::daemon::Daemon;
use crate::error::{Context, Result};
use crate::report::{metric, Metric, Report};
use crate::wait::PATIENCE;
use crate::Progress;

/// W4 connections opened before their hellos are read back (which shows the node has
/// accepted them): half the daemon's listen backlog of 128, so that no connection
/// attempt is dropped and retried a second later.
const CONNECT_BATCH: usize = 64;
/// Node ids of W4's fake peers: this prefix ("benc"), then the link's number.
const FAKE_PEER_ID_BASE: u64 = 0x6265_6e63_0000_0000;

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

//! W1 throughput through a line of five daemons, alternating with the raw-relay
//! ceiling through a chain of five relays, and W1 as a fraction of that ceiling.

use std::net::{Ipv4Addr, Shutdown, TcpListener};
use std::thread;
use std::time::Instant;

use crate::control_reader::ControlReader;
use crate::error::{Context, Result};
use crate::lines::{batch_payload, line_payload};
use crate::network::{Network, LINE_LEN};
use crate::raw_relay::{LineCount, RelayChain};
use crate::report::{metric, per_second, seconds, Metric, Report};
use crate::streams::{accept_within, connect_tcp, write_by};
use crate::tally::{explain_loss, spawn_tally, Tally};
use crate::wait::{join, PATIENCE, RUN_LIMIT};
use crate::{Progress, Settings};

const RAW_RATE: Metric = metric("raw-relay ceiling", "lines/s", 0);
const W1_RATE: Metric = metric("W1 throughput of delivered lines", "msgs/s", 0);
const W1_DELIVERED: Metric = metric("W1 delivered", "fraction of N", 4);
const W1_RATIO: Metric = metric("W1 / raw-relay ceiling", "ratio", 3);

/// Raw relay, then W1, `runs` times, each W1 figure also as a fraction of the raw one.
pub fn throughput_runs(settings: &Settings, report: &mut Report) -> Result<()> {
    let (batches, frames) = batch_payload(settings.lines);
    let lines = line_payload(settings.lines);
    for run in 1..=settings.runs {
        let progress = Progress::new("raw", run, settings.runs);
        let raw = raw_relay_run(&progress, &batches, frames, settings.lines, report)?;
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

/// One raw-relay run of `lines` lines in `frames` batch frames; returns its lines per
/// second.
fn raw_relay_run(
    progress: &Progress,
    payload: &[u8],
    frames: u64,
    lines: u64,
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
    let counter = thread::spawn(move || LineCount::read(arriving, lines, deadline));
    let written = write_by(&mut writer, payload, deadline, || !counter.is_finished());
    // Ends the chain: each relay ends its downstream once its upstream has ended.
    let _ = writer.shutdown(Shutdown::Write);
    let count = join(counter, "the raw chain's line counter")?;

    let rate = per_second(count.lines, started, count.last_at);
    println!(
        "{progress}: {rate:.0} lines/s ({}/{lines} lines in {}/{frames} batch frames in \
         {:.2} s)",
        count.lines,
        count.frames,
        seconds(started, count.last_at)
    );
    if count.lines < lines {
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
    let reading = spawn_tally(reader, Tally::new(lines), deadline);
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
        explain_loss([(last, &reading)], first, &written, &network);
    }
    report.record(W1_RATE, rate);
    report.record(W1_DELIVERED, tally.fraction());
    Ok(rate)
}

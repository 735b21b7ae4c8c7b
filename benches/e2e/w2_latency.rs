//! W2 latency: one line per millisecond through a line of five daemons, each carrying
//! its send time; one-way latency percentiles at the far end.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::control_reader::ControlReader;
use crate::error::Result;
use crate::lines::{push_timed_text, sent_nanos, to_usize, TEXT_LEN};
use crate::network::{Network, LINE_LEN};
use crate::report::{metric, nanos_since, Metric, Percentiles, Report};
use crate::streams::describe_write_error;
use crate::tally::{explain_loss, read_tally, Tally};
use crate::wait::{join, paced, RUN_LIMIT};
use crate::Progress;

/// Lines of W2, one per [`LATENCY_TICK`].
const LATENCY_LINES: u64 = 5_000;
const LATENCY_TICK: Duration = Duration::from_millis(1);

const W2_P50: Metric = metric("W2 latency p50", "µs", 0);
const W2_P99: Metric = metric("W2 latency p99", "µs", 0);
const W2_MAX: Metric = metric("W2 latency max", "µs", 0);
const W2_DELIVERED: Metric = metric("W2 delivered", "fraction", 4);

pub fn latency_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let network = Network::line(LINE_LEN)?;
    let (first, last) = (network.first(), network.last());
    let reader = ControlReader::attach(last)?;
    let mut writer = first.writer()?;
    let epoch = Instant::now();
    let deadline = epoch + RUN_LIMIT;

    let reading = thread::spawn(move || {
        let mut latencies = Vec::with_capacity(to_usize(LATENCY_LINES));
        let reading = read_tally(reader, Tally::new(LATENCY_LINES), deadline, |text, at| {
            if let Some(sent) = sent_nanos(text) {
                latencies.push(nanos_since(epoch, at).saturating_sub(sent));
            }
        });
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
        explain_loss([(last, &reading)], first, &written, &network);
    }
    Ok(())
}

/// Writes [`LATENCY_LINES`] lines, one per [`LATENCY_TICK`] after the start, each with
/// its send time in ns since `epoch`, until `deadline`.
fn write_paced(writer: &mut UnixStream, epoch: Instant, deadline: Instant) -> Result<()> {
    let mut line = String::with_capacity(TEXT_LEN + 1);
    paced(
        Instant::now(),
        LATENCY_TICK,
        LATENCY_LINES,
        deadline,
        |seq| {
            line.clear();
            push_timed_text(&mut line, seq, nanos_since(epoch, Instant::now()));
            line.push('\n');
            writer
                .write_all(line.as_bytes())
                .map_err(|err| describe_write_error(&err))
        },
    )
}

//! W3 mesh: six daemons fully meshed, lines from one of them, and how many duplicate
//! copies the mesh carries per delivered line, once the sender is settled: a few lines
//! written one at a time first, which give a broadcast tree its shape, are not counted.

use std::io::Write;
use std::time::Instant;

use crate::control_reader::ControlReader;
use crate::error::{Context, Result};
use crate::lines::line_payload;
use crate::network::Network;
use crate::report::{metric, Metric, Report};
use crate::streams::write_by;
use crate::tally::{explain_loss, spawn_tally, Tally};
use crate::wait::{join, wait_for, Probe, RUN_LIMIT};
use crate::Progress;

/// Daemons of the W3 mesh.
const MESH_SIZE: usize = 6;
/// Lines written into the W3 mesh.
const MESH_LINES: u64 = 10_000;
/// Lines written one at a time before, each awaited at every node.
const WARM_UP_LINES: u64 = 20;

const W3_DUPLICATES: Metric = metric("W3 duplicates per delivered line", "copies", 3);
const W3_DELIVERED: Metric = metric("W3 delivered", "fraction", 4);

pub fn mesh_run(progress: &Progress, report: &mut Report) -> Result<()> {
    let network = Network::mesh(MESH_SIZE)?;
    let (source, others) = network.nodes.split_first().expect("a mesh has nodes");
    warm_up(&network)?;
    let warm_up_duplicates = network.settled_sum("duplicates")?;
    let readers = others
        .iter()
        .map(ControlReader::attach)
        .collect::<Result<Vec<_>>>()?;
    let mut writer = source.writer()?;
    let payload = line_payload(MESH_LINES);

    let deadline = Instant::now() + RUN_LIMIT;
    let readings: Vec<_> = readers
        .into_iter()
        .map(|reader| spawn_tally(reader, Tally::new(MESH_LINES), deadline))
        .collect();
    let written = write_by(&mut writer, &payload, deadline, || {
        readings.iter().any(|reading| !reading.is_finished())
    });
    let readings = others
        .iter()
        .zip(readings)
        .map(|(node, reading)| join(reading, &format!("the reader at {node}")))
        .collect::<Result<Vec<_>>>()?;
    let duplicates = network.settled_sum("duplicates")? - warm_up_duplicates;

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
        explain_loss(others.iter().zip(&readings), source, &written, &network);
    }
    report.record(W3_DUPLICATES, per_line);
    report.record(W3_DELIVERED, delivered as f64 / expected as f64);
    Ok(())
}

/// Writes [`WARM_UP_LINES`] from the first node, each once every node has the one
/// before, before the readers attach.
fn warm_up(network: &Network) -> Result<()> {
    let source = network.first();
    let mut writer = source.writer()?;
    for seq in 1..=WARM_UP_LINES {
        writer
            .write_all(format!("warm-up {seq}\n").as_bytes())
            .context(|| format!("{source}: cannot write warm-up line {seq}"))?;
        wait_for(&format!("every node has {seq} warm-up lines"), || {
            let messages = (network.nodes.iter())
                .map(|node| node.counter("messages"))
                .collect::<Result<Vec<u64>>>()?;
            Ok(if messages.iter().all(|&m| m >= seq) {
                Probe::Done(())
            } else {
                Probe::NotYet(format!("messages {messages:?}"))
            })
        })?;
    }
    Ok(())
}

//! The figures the runs record (rates, percentiles), their medians and spreads, the
//! markdown table for BENCHMARKS.md, and the facts of the machine they were taken on.

use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use crate::daemon::BIN;

/// A figure every run of a workload produces.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    name: &'static str,
    unit: &'static str,
    decimals: usize,
}

pub const fn metric(name: &'static str, unit: &'static str, decimals: usize) -> Metric {
    Metric {
        name,
        unit,
        decimals,
    }
}

/// Every run's figures, by metric, in the order they were first recorded.
#[derive(Default)]
pub struct Report {
    series: Vec<(Metric, Vec<f64>)>,
}

impl Report {
    pub fn record(&mut self, metric: Metric, value: f64) {
        match self.series.iter_mut().find(|(m, _)| *m == metric) {
            Some((_, values)) => values.push(value),
            None => self.series.push((metric, vec![value])),
        }
    }

    /// Every run's figure with the median and spread, then the markdown table.
    pub fn print(&self) {
        let summaries: Vec<(&Metric, &[f64], Summary)> = self
            .series
            .iter()
            .map(|(metric, values)| (metric, values.as_slice(), Summary::of(values)))
            .collect();
        println!("\n## Results\n");
        for (metric, values, s) in &summaries {
            let d = metric.decimals;
            let runs: Vec<String> = values.iter().map(|v| format!("{v:.d$}")).collect();
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
        for (metric, values, s) in &summaries {
            let d = metric.decimals;
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

/// The median and range of a metric's runs.
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

/// Percentiles of durations, in µs.
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of durations in ns, sorted; `None` when there are none.
    pub fn of(sorted_nanos: &[u64]) -> Option<Percentiles> {
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

/// Nanoseconds from `epoch` to `at`.
pub fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.duration_since(epoch).as_nanos()).expect("a bench lasts less than 584 years")
}

/// `count` per second from `started` to `ended`; 0 when nothing ended.
pub fn per_second(count: u64, started: Instant, ended: Option<Instant>) -> f64 {
    let secs = seconds(started, ended);
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Seconds from `started` to `ended`; 0 when nothing ended.
pub fn seconds(started: Instant, ended: Option<Instant>) -> f64 {
    ended.map_or(0.0, |ended| ended.duration_since(started).as_secs_f64())
}

/// The machine facts that go with the table.
pub fn print_machine() {
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

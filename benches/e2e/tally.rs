//! Counting the indexed lines a control reader gets: which arrived, how often, why the
//! reader stopped, and how a run that lost lines is explained.

use std::fmt::Write as _;
use std::thread;
use std::time::Instant;

use crate::control_reader::ControlReader;
use crate::daemon::Daemon;
use crate::error::Result;
use crate::lines::{line_index, to_usize};
use crate::network::Network;
use crate::streams::ReadEnd;

/// Which of the expected line indices arrived, and how often.
pub struct Tally {
    /// Copies seen of each index, saturating.
    seen: Vec<u8>,
    /// Indices seen at least once.
    pub distinct: u64,
    /// Copies beyond the first.
    duplicates: u64,
    /// Chat lines without a valid index.
    foreign: u64,
    /// When the last new index arrived.
    pub last_new: Option<Instant>,
}

impl Tally {
    fn new(expected: u64) -> Tally {
        Tally {
            seen: vec![0; to_usize(expected)],
            distinct: 0,
            duplicates: 0,
            foreign: 0,
            last_new: None,
        }
    }

    /// Counts one chat line read at `at`; says whether it was the first copy of its index.
    fn record(&mut self, text: &[u8], at: Instant) -> bool {
        let slot = line_index(text)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.seen.get_mut(index));
        let Some(copies) = slot else {
            self.foreign += 1;
            return false;
        };
        *copies = copies.saturating_add(1);
        if *copies > 1 {
            self.duplicates += 1;
            return false;
        }
        self.distinct += 1;
        self.last_new = Some(at);
        true
    }

    fn expected(&self) -> u64 {
        self.seen.len() as u64
    }

    pub fn is_complete(&self) -> bool {
        self.distinct == self.expected()
    }

    pub fn fraction(&self) -> f64 {
        self.distinct as f64 / self.expected() as f64
    }

    /// `delivered/expected (percent)`, and any copies or strangers.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}/{} ({:.2} %)",
            self.distinct,
            self.expected(),
            100.0 * self.fraction()
        );
        if self.duplicates > 0 {
            write!(text, ", {} duplicate copies", self.duplicates)
                .expect("a String takes any text");
        }
        if self.foreign > 0 {
            write!(text, ", {} lines without a valid index", self.foreign)
                .expect("a String takes any text");
        }
        text
    }
}

/// What a reader of indexed lines got, and why it stopped.
pub struct Reading {
    pub tally: Tally,
    end: ReadEnd,
    /// The last event and error lines its node sent it.
    events: Vec<String>,
}

impl Reading {
    /// Says what arrived at `node`, why its reader stopped and what the node told it.
    fn print(&self, node: &Daemon) {
        println!(
            "  {node}: {} delivered; its reader stopped: {}",
            self.tally.describe(),
            self.end
        );
        for event in &self.events {
            println!("  {node} told its reader: {event}");
        }
    }
}

/// Tallies the indexed lines of `reader` until all `expected` arrived, the node closes
/// the connection, it stalls, or `deadline` passes. `on_first_copy` sees the text of
/// each line the first time its index arrives, and when it was read.
pub fn read_tally(
    mut reader: ControlReader,
    expected: u64,
    deadline: Instant,
    mut on_first_copy: impl FnMut(&[u8], Instant),
) -> Reading {
    let mut tally = Tally::new(expected);
    let end = reader.read_chat(deadline, |text, at| {
        if tally.record(text, at) {
            on_first_copy(text, at);
        }
        tally.is_complete()
    });
    Reading {
        tally,
        end,
        events: reader.into_events(),
    }
}

/// [`read_tally`] in a thread of its own.
pub fn spawn_tally(
    reader: ControlReader,
    expected: u64,
    deadline: Instant,
) -> thread::JoinHandle<Reading> {
    thread::spawn(move || read_tally(reader, expected, deadline, |_, _| {}))
}

/// Explains a run that lost lines: what each reader that missed some got, why the
/// writer at `writer` stopped early (if it did), and where the lines stopped in
/// `network`.
pub fn explain_loss<'a>(
    readings: impl IntoIterator<Item = (&'a Daemon, &'a Reading)>,
    writer: &Daemon,
    written: &Result<()>,
    network: &Network,
) {
    println!("  incomplete:");
    for (node, reading) in readings {
        if !reading.tally.is_complete() {
            reading.print(node);
        }
    }
    if let Err(why) = written {
        println!("  the writer at {writer} stopped: {why}");
    }
    network.print_diagnosis();
}

//! Counting the indexed lines a reader gets (a control client, or a fake peer): which
//! arrived, how often, why the reader stopped, and how a run that lost lines is explained.

use std::fmt::{self, Write as _};
use std::ops::Range;
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
    /// Copies seen of each index, saturating. A reader's own lines start at one copy.
    seen: Vec<u8>,
    /// Indices seen at least once, not counting the reader's own.
    pub distinct: u64,
    /// The reader's own lines, which it must not be sent.
    own: u64,
    /// Copies beyond the first.
    duplicates: u64,
    /// Chat lines without a valid index.
    foreign: u64,
    /// When the last new index arrived.
    pub last_new: Option<Instant>,
}

impl Tally {
    /// Expects lines `0..expected`.
    pub fn new(expected: u64) -> Tally {
        Tally {
            seen: vec![0; to_usize(expected)],
            distinct: 0,
            own: 0,
            duplicates: 0,
            foreign: 0,
            last_new: None,
        }
    }

    /// Expects lines `0..lines` but `own`, the lines the reader wrote itself: they count
    /// as seen once already, so an echo of one counts as a duplicate copy.
    pub fn excluding(lines: u64, own: Range<u64>) -> Tally {
        let mut tally = Tally::new(lines);
        tally.seen[to_usize(own.start)..to_usize(own.end)].fill(1);
        tally.own = own.end - own.start;
        tally
    }

    /// Counts one chat line read at `at`; says whether it was the first copy of its index.
    pub fn record(&mut self, text: &[u8], at: Instant) -> bool {
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

    /// Lines it should get.
    pub fn expected(&self) -> u64 {
        self.seen.len() as u64 - self.own
    }

    pub fn is_complete(&self) -> bool {
        self.distinct == self.expected()
    }

    /// Every line it should get arrived exactly once, and nothing else.
    pub fn is_exact(&self) -> bool {
        self.is_complete() && self.duplicates == 0 && self.foreign == 0
    }

    /// Copies beyond the first, echoes of its own lines included.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
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
    /// What a reader got, why it stopped, and the last event and error lines it was sent.
    pub fn new(tally: Tally, end: ReadEnd, events: Vec<String>) -> Reading {
        Reading { tally, end, events }
    }

    /// Says what arrived at `reader`, why it stopped and what its node told it.
    pub fn print(&self, reader: &dyn fmt::Display) {
        println!(
            "  {reader}: {} delivered; its reader stopped: {}",
            self.tally.describe(),
            self.end
        );
        for event in &self.events {
            println!("  {reader} was told: {event}");
        }
    }
}

/// Tallies the indexed lines of `reader` into `tally` until all it expects arrived, the
/// node closes the connection, it stalls, or `deadline` passes. `on_first_copy` sees the
/// text of each line the first time its index arrives, and when it was read.
pub fn read_tally(
    mut reader: ControlReader,
    mut tally: Tally,
    deadline: Instant,
    mut on_first_copy: impl FnMut(&[u8], Instant),
) -> Reading {
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
    tally: Tally,
    deadline: Instant,
) -> thread::JoinHandle<Reading> {
    thread::spawn(move || read_tally(reader, tally, deadline, |_, _| {}))
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

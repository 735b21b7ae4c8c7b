//! Daemons linked into a line or a mesh, a counter summed over all of them, and what
//! every node says when lines went missing.

use std::thread;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::error::Result;
use crate::wait::{wait_for, Probe};

/// Daemons in the line of W1 and W2, and relays in the raw chain.
pub const LINE_LEN: usize = 5;

/// Counters are settled when two reads this far apart agree.
const SETTLE: Duration = Duration::from_millis(100);

/// Daemons linked into a graph, every link up.
pub struct Network {
    pub nodes: Vec<Daemon>,
}

impl Network {
    /// `count` nodes in a line: each dials the one before it.
    pub fn line(count: usize) -> Result<Network> {
        let links: Vec<(usize, usize)> = (1..count).map(|i| (i, i - 1)).collect();
        Network::linked(count, &links)
    }

    /// `count` nodes, each linked to every other: each dials every one before it.
    pub fn mesh(count: usize) -> Result<Network> {
        let links: Vec<(usize, usize)> = (1..count)
            .flat_map(|i| (0..i).map(move |j| (i, j)))
            .collect();
        Network::linked(count, &links)
    }

    /// Starts `count` nodes, makes each `(dialler, target)` link, and waits until every
    /// node has as many peers as it has links.
    fn linked(count: usize, links: &[(usize, usize)]) -> Result<Network> {
        let nodes = (0..count).map(Daemon::start).collect::<Result<Vec<_>>>()?;
        for &(dialler, target) in links {
            nodes[dialler].dial(&nodes[target])?;
        }
        for (index, node) in nodes.iter().enumerate() {
            let degree = links
                .iter()
                .filter(|&&(a, b)| a == index || b == index)
                .count();
            node.wait_for_peers(degree)?;
        }
        Ok(Network { nodes })
    }

    pub fn first(&self) -> &Daemon {
        self.nodes.first().expect("a network has nodes")
    }

    pub fn last(&self) -> &Daemon {
        self.nodes.last().expect("a network has nodes")
    }

    /// The sum of a `/status` counter over every node, once two reads [`SETTLE`] apart
    /// agree (copies still in flight are counted when they land).
    pub fn settled_sum(&self, key: &str) -> Result<u64> {
        let sum = || -> Result<u64> { self.nodes.iter().map(|node| node.counter(key)).sum() };
        let mut last = sum()?;
        wait_for(&format!("the sum of `{key}` settles"), || {
            thread::sleep(SETTLE);
            let now = sum()?;
            let seen = last;
            last = now;
            Ok(if now == seen {
                Probe::Done(now)
            } else {
                Probe::NotYet(format!("{seen}, then {now}"))
            })
        })
    }

    /// Where the lines stopped (every node's `messages` and `duplicates`) and every
    /// node's last log warnings, to explain a loss.
    pub fn print_diagnosis(&self) {
        for node in &self.nodes {
            node.print_diagnosis();
        }
    }
}

//! The graphs nodes are linked into: random near-regular, small-world, ring and line,
//! and the connected components a run's delivery is judged against.
//!
//! A graph is plain adjacency lists over node indices; it knows nothing of nodes.

use std::fmt;
use std::str::FromStr;

use super::rng::Rng;

/// A family of graphs, each built from a node count and the run's PRNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Every node wants 6 to 8 links, paired at random (configuration model); the few
    /// self-loops and repeated pairs are dropped, so a node may end a link or two short.
    Random,
    /// Watts-Strogatz: a ring where each node links its 3 nearest on each side, each
    /// link rewired to a random node with probability 0.1.
    SmallWorld,
    /// A ring: degree 2, diameter n/2.
    Ring,
    /// A line: the worst diameter, and any cut splits it.
    Line,
}

impl FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "random" => Ok(Family::Random),
            "small-world" => Ok(Family::SmallWorld),
            "ring" => Ok(Family::Ring),
            "line" => Ok(Family::Line),
            _ => Err(format!(
                "unknown graph family {s:?} (random, small-world, ring, line)"
            )),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Random => "random",
            Family::SmallWorld => "small-world",
            Family::Ring => "ring",
            Family::Line => "line",
        })
    }
}

/// An undirected simple graph on nodes `0..n`.
#[derive(Debug, Clone)]
pub struct Graph {
    adj: Vec<Vec<u32>>,
}

impl Graph {
    pub fn build(family: Family, n: usize, rng: &mut Rng) -> Self {
        let mut g = Graph {
            adj: vec![Vec::new(); n],
        };
        let n32 = n as u32;
        match family {
            Family::Random => {
                let degrees: Vec<usize> = (0..n).map(|_| rng.between(6, 8) as usize).collect();
                return Graph::with_degrees(&degrees, rng);
            }
            Family::SmallWorld => {
                for v in 0..n32 {
                    for k in 1..=3 {
                        let near = (v + k) % n32;
                        let to = if rng.chance(0.1) {
                            rng.below(n as u64) as u32
                        } else {
                            near
                        };
                        g.add(v, to);
                    }
                }
            }
            Family::Ring | Family::Line => {
                for v in 1..n32 {
                    g.add(v - 1, v);
                }
                if family == Family::Ring && n > 2 {
                    g.add(n32 - 1, 0);
                }
            }
        }
        for list in &mut g.adj {
            list.sort_unstable();
        }
        g
    }

    /// Adds the link `a`-`b` unless it is a loop or already there.
    fn add(&mut self, a: u32, b: u32) {
        if a != b && !self.adj[a as usize].contains(&b) {
            self.adj[a as usize].push(b);
            self.adj[b as usize].push(a);
        }
    }

    /// The graph with these adjacency lists; each link must be listed at both ends.
    /// A random graph in which node `v` wants `degrees[v]` links, paired at random
    /// (configuration model); self-loops and repeated pairs are dropped.
    pub fn with_degrees(degrees: &[usize], rng: &mut Rng) -> Self {
        let mut g = Graph {
            adj: vec![Vec::new(); degrees.len()],
        };
        let mut stubs: Vec<u32> = (0..degrees.len() as u32)
            .flat_map(|v| std::iter::repeat_n(v, degrees[v as usize]))
            .collect();
        rng.shuffle(&mut stubs);
        for pair in stubs.chunks_exact(2) {
            g.add(pair[0], pair[1]);
        }
        g
    }

    pub fn from_adj(adj: Vec<Vec<u32>>) -> Self {
        Graph { adj }
    }

    pub fn len(&self) -> usize {
        self.adj.len()
    }

    /// Hops from `from` to every node over the links `keep` allows, by breadth-first
    /// search; `None` for a node it cannot reach.
    pub fn distances(&self, from: u32, keep: impl Fn(u32, u32) -> bool) -> Vec<Option<u32>> {
        let mut dist = vec![None; self.len()];
        dist[from as usize] = Some(0);
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            let d = dist[v as usize].expect("queued nodes have a distance");
            for &w in self.neighbours(v) {
                if dist[w as usize].is_none() && keep(v, w) {
                    dist[w as usize] = Some(d + 1);
                    queue.push_back(w);
                }
            }
        }
        dist
    }

    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    pub fn neighbours(&self, v: u32) -> &[u32] {
        &self.adj[v as usize]
    }

    /// Each link once, as (smaller, larger).
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.adj.iter().enumerate().flat_map(|(a, list)| {
            list.iter()
                .filter(move |&&b| (a as u32) < b)
                .map(move |&b| (a as u32, b))
        })
    }

    /// A component label per node, over the nodes `up` says are running and the links
    /// `keep` allows; a node that is down gets `None`.
    pub fn components(
        &self,
        up: impl Fn(u32) -> bool,
        keep: impl Fn(u32, u32) -> bool,
    ) -> Vec<Option<u32>> {
        let mut label = vec![None; self.len()];
        let mut stack = Vec::new();
        for start in 0..self.len() as u32 {
            if label[start as usize].is_some() || !up(start) {
                continue;
            }
            label[start as usize] = Some(start);
            stack.push(start);
            while let Some(v) = stack.pop() {
                for &w in self.neighbours(v) {
                    if label[w as usize].is_none() && up(w) && keep(v, w) {
                        label[w as usize] = Some(start);
                        stack.push(w);
                    }
                }
            }
        }
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_graphs_have_degree_six_to_eight_bar_a_few() {
        let g = Graph::build(Family::Random, 2000, &mut Rng::new(3));
        let short = (0..2000).filter(|&v| g.neighbours(v).len() < 6).count();
        assert!(short < 40, "{short} nodes short of 6 links");
        assert!((0..2000).all(|v| g.neighbours(v).len() <= 8));
    }

    #[test]
    fn a_ring_is_one_component_and_a_cut_line_two() {
        let ring = Graph::build(Family::Ring, 10, &mut Rng::new(0));
        assert_eq!(ring.edges().count(), 10);
        let line = Graph::build(Family::Line, 10, &mut Rng::new(0));
        let parts = line.components(|_| true, |a, b| (a < 5) == (b < 5));
        assert_eq!(parts[..5], [Some(0); 5]);
        assert_eq!(parts[5..], [Some(5); 5]);
        let down = line.components(|v| v != 3, |_, _| true);
        assert_eq!((down[2], down[3], down[4]), (Some(0), None, Some(4)));
    }
}

//! Faults on real links. The contract says a line reaches every node still linked to its
//! origin exactly once; these tests hold it to faults that only real sockets show.
//!
//! - A partition. Four nodes, each in a network namespace of its own, on two sites whose
//!   switches are joined by one cable. While the cable is cut, each site goes on
//!   chatting inside and nothing crosses; once it is mended, the nodes link up again by
//!   themselves (the redial of addresses given by hand), catch each other up, so that
//!   what each site wrote in the cut reaches the other late, exactly once and in its
//!   authors' order, and a line from either site reaches every node exactly once.
//! - A crash. A node SIGKILLed while a client streams lines through it costs the nodes
//!   still linked to the writer no line, gives them none twice, and none out of order.
//!
//! The partition needs root and `ip` (iproute2) to make namespaces, veth pairs and
//! bridges. Where it cannot make a namespace it says so on stderr and passes, unless
//! `CI` is set: CI runs as root, so there the same failure fails the test. The crash
//! runs on 127.0.0.1 and needs nothing.

use std::env;
use std::panic;
use std::process::{self, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::util::{wait_for, wait_for_within, wait_until, Client, Node};

/// Each site's bridge in the switch namespace, and the ends of the cable between them.
const BRIDGE_A: &str = "site-a";
const BRIDGE_B: &str = "site-b";
const CABLE_A: &str = "cable-a";
const CABLE_B: &str = "cable-b";

/// Every node has a namespace, and so a port space, of its own.
const PORT: u16 = 7654;

/// Runs `ip ARGS`; the error names the command and what `ip` said.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run `ip` (iproute2): {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One of the two sites the cable joins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    A,
    B,
}

/// Two sites' switches in a namespace of their own, one bridge per site joined to the
/// other by a veth pair (the cable), and a namespace per host plugged into its site's
/// bridge. Every namespace it made is deleted when it is dropped, on a panic too, which
/// takes the veth pairs and bridges in them along. The names carry the test process's
/// pid and the test's tag, so parallel runs never clash; the addresses exist only
/// inside these namespaces.
struct Lab {
    prefix: String,
    switch: String,
    made: Vec<String>,
}

impl Lab {
    /// The switch with its cable plugged in; `None`, after saying why on stderr, where
    /// no namespace can be made and `CI` is not set.
    fn new(test: &str) -> Option<Lab> {
        let mut lab = Lab {
            prefix: format!("p2pchat-it-{}-{test}", process::id()),
            switch: String::new(),
            made: Vec::new(),
        };
        match lab.namespace("switch") {
            Ok(ns) => lab.switch = ns,
            Err(why) if env::var_os("CI").is_some() => {
                panic!("CI is set, so network namespaces must work here: {why}")
            }
            Err(why) => {
                eprintln!(
                    "SKIPPED the {test} test of tests/it/netns.rs: cannot create a network \
                     namespace ({why}); it needs root and iproute2 (`ip`)"
                );
                return None;
            }
        }
        for bridge in [BRIDGE_A, BRIDGE_B] {
            lab.switch_ip(&["link", "add", bridge, "type", "bridge"]);
            lab.switch_ip(&["link", "set", bridge, "up"]);
        }
        lab.switch_ip(&[
            "link", "add", CABLE_A, "type", "veth", "peer", "name", CABLE_B,
        ]);
        for (end, bridge) in [(CABLE_A, BRIDGE_A), (CABLE_B, BRIDGE_B)] {
            lab.switch_ip(&["link", "set", end, "master", bridge, "up"]);
        }
        Some(lab)
    }

    /// Makes the namespace `PREFIX-name` and remembers it for the clean-up.
    fn namespace(&mut self, name: &str) -> Result<String, String> {
        let ns = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &ns])?;
        self.made.push(ns.clone());
        Ok(ns)
    }

    /// Runs `ip ARGS` in the namespace `ns`; once the first namespace is made, nothing
    /// here may fail.
    fn ip_in(ns: &str, args: &[&str]) {
        ip(&[&["-n", ns], args].concat()).unwrap_or_else(|why| panic!("{why}"));
    }

    fn switch_ip(&self, args: &[&str]) {
        Lab::ip_in(&self.switch, args);
    }

    /// A host's namespace, plugged into `site`'s bridge by a veth pair, with `addr`/24
    /// on its end of it.
    fn host(&mut self, name: &str, site: Site, addr: &str) -> String {
        let ns = self.namespace(name).unwrap_or_else(|why| panic!("{why}"));
        let bridge = match site {
            Site::A => BRIDGE_A,
            Site::B => BRIDGE_B,
        };
        self.switch_ip(&[
            "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        self.switch_ip(&["link", "set", name, "master", bridge, "up"]);
        Lab::ip_in(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        Lab::ip_in(&ns, &["link", "set", "eth0", "up"]);
        Lab::ip_in(&ns, &["link", "set", "lo", "up"]);
        ns
    }

    /// Unplugs the cable from site A's bridge: the sites can no longer reach each other
    /// (no frame crosses, and neither end is told: TCP just hears nothing).
    fn cut(&self) {
        self.switch_ip(&["link", "set", CABLE_A, "down"]);
    }

    fn mend(&self) {
        self.switch_ip(&["link", "set", CABLE_A, "up"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            if let Err(why) = ip(&["netns", "del", ns]) {
                eprintln!("cannot clean up after the test: {why}");
            }
        }
    }
}

/// The partition test's nodes (the nick is the name) in the order they start, each
/// with its site and the nodes it dials, by index. Each dials only nodes started before
/// it, so that no dial of the set-up fails and backs off; b1 and a2 dial across the
/// cable, so that after the cut each site has a lost link of its own to redial.
const HOSTS: [(&str, Site, &[usize]); 4] = [
    ("a1", Site::A, &[]),
    ("b1", Site::B, &[0]),
    ("b2", Site::B, &[1]),
    ("a2", Site::A, &[0, 2]),
];

/// The links across the cable, as (dialler, dialled).
const ACROSS: [(usize, usize); 2] = [(1, 0), (3, 2)];

/// Each node's peers in the ring a1 - b1 - b2 - a2 - a1: a link inside each site and
/// two across the cable.
const RING: [&[usize]; 4] = [&[1, 3], &[0, 2], &[1, 3], &[0, 2]];

/// What is left of the ring while the cable is cut: each node's partner on its site.
const SPLIT: [&[usize]; 4] = [&[3], &[2], &[1], &[0]];

/// Copies of a line dropped as duplicates in a ring, all links up: the two that run
/// round it from the origin both reach the node opposite, and one of them goes on to the
/// next node, which has the line already from the other way.
const RING_DUPLICATES: u64 = 2;

/// Linking a handful of nodes on a local bridge takes well under a second; noticing the
/// cut takes the peer timeout (3 s) plus at most a ping interval (1 s).
const PATIENCE_LINK: Duration = Duration::from_secs(10);

/// A lost link is dialled again after 0.5 to 1 s; into the cut, the dial's SYNs go
/// unanswered until its 10 s connect timeout.
const PATIENCE_FAILED_DIAL: Duration = Duration::from_secs(25);

/// After the mend, each lost link across the cable waits for its redial. After one
/// failed dial the backoff is 1 to 2 s (2 s, jittered down by up to half; it doubles
/// with each failure, up to 60 s); a dial still connecting at the mend gets through
/// with its next SYN, at most 4 s later. Twenty seconds leave room for a loaded
/// machine, and for a second failed dial should the mend come late.
const PATIENCE_RELINK: Duration = Duration::from_secs(20);

/// Waits until each `nodes[i]` lists exactly the peers `links[i]`, by node id.
fn wait_for_links(what: &str, patience: Duration, nodes: &[Node], links: &[&[usize]]) {
    wait_for_within(patience, what, || {
        for (node, want) in nodes.iter().zip(links) {
            let mut want: Vec<&str> = want.iter().map(|&i| nodes[i].id()).collect();
            let peers = node.peers();
            let mut have: Vec<&str> = peers.iter().map(|p| p.id.as_str()).collect();
            want.sort_unstable();
            have.sort_unstable();
            if have != want {
                return Err(format!("node {} has {peers:?}", node.id()));
            }
        }
        Ok(())
    });
}

/// What a node writes before lines that were written a while before they reach it.
const LATE: &str = "* late lines follow, written while out of reach of this node";

/// Lines each node writes while the cable is cut.
const CUT_LINES: usize = 3;

/// The chat lines among `lines`, and the notices that introduce late ones (any other
/// reply or event starts with `*`).
fn chat(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.starts_with('<') || l == LATE)
        .collect()
}

/// Node `name`'s `i`th line written while the cable is cut, as its clients show it.
fn cut_line(name: &str, i: usize) -> String {
    format!("<{name}> {name} while cut off {i}")
}

/// Waits until every node's `/status` shows `messages` distinct lines, none held back.
fn wait_for_messages(what: &str, nodes: &[Node], messages: u64) {
    wait_for(what, || {
        for node in nodes {
            let status = node.status();
            if status["messages"] != messages.to_string() || status["held"] != "0" {
                return Err(format!("node {} has {status:?}", node.id()));
            }
        }
        Ok(())
    });
}

#[test]
fn sites_cut_apart_chat_on_inside_and_relink_by_themselves_once_the_cable_is_mended() {
    let Some(mut lab) = Lab::new("partition") else {
        return;
    };
    let mut nodes: Vec<Node> = Vec::new();
    for (i, &(name, site, dials)) in HOSTS.iter().enumerate() {
        let addr = format!("10.77.0.{}", 11 + i);
        let ns = lab.host(name, site, &addr);
        let listen = format!("{addr}:{PORT}");
        let targets: Vec<String> = dials.iter().map(|&j| nodes[j].addr().to_string()).collect();
        // A ping after a second of quiet and a peer dropped after three of silence, so
        // that the cut is noticed within seconds.
        let mut args = vec!["--nick", name, "--listen", &listen];
        args.extend(["--ping-interval", "1", "--peer-timeout", "3"]);
        for target in &targets {
            args.extend(["--connect", target.as_str()]);
        }
        nodes.push(Node::start_in_namespace(&ns, &args));
    }
    wait_for_links("the ring is linked", PATIENCE_LINK, &nodes, &RING);
    let mut clients: Vec<Client> = nodes.iter().map(Node::client).collect();
    // Every chat line and late notice each client was shown, in order.
    let mut seen: Vec<Vec<String>> = vec![Vec::new(); HOSTS.len()];
    // What each node wrote, in order.
    let mut wrote: Vec<Vec<String>> = vec![Vec::new(); HOSTS.len()];

    // Once every copy of the first lines has been counted as a duplicate, every copy
    // has arrived and been judged: one delivered to a client by mistake would be
    // queued for it before the marker.
    for from in [0, 1] {
        let name = HOSTS[from].0;
        clients[from].send(&format!("{name} before the cut"));
        wrote[from].push(format!("<{name}> {name} before the cut"));
    }
    let duplicates = || nodes.iter().map(|n| n.counter("duplicates")).sum::<u64>();
    let want = 2 * RING_DUPLICATES;
    wait_for(
        "every copy of the two lines is judged",
        || match duplicates() {
            have if have >= want => Ok(have),
            have => Err(format!("{have} duplicates, want {want}")),
        },
    );
    assert_eq!(duplicates(), want, "no more copies than the ring makes");

    lab.cut();
    let cut = Instant::now();
    wait_for_links(
        "each node has dropped its peer across the cable",
        PATIENCE_LINK,
        &nodes,
        &SPLIT,
    );
    eprintln!("the cut was noticed within {:?}", cut.elapsed());
    for i in 1..=CUT_LINES {
        for (from, client) in clients.iter_mut().enumerate() {
            let name = HOSTS[from].0;
            client.send(&format!("{name} while cut off {i}"));
            wrote[from].push(cut_line(name, i));
        }
    }
    // Each site's lines reach the other node of the site, and nothing crosses.
    for (i, client) in clients.iter_mut().enumerate() {
        let partner = SPLIT[i][0];
        let last = cut_line(HOSTS[partner].0, CUT_LINES);
        seen[i].extend(chat(client.expect_line(&last)));
        seen[i].push(last);
        let across: Vec<&String> = (seen[i].iter())
            .filter(|l| {
                l.contains(" while cut off ") && !l.starts_with(&format!("<{}> ", HOSTS[partner].0))
            })
            .collect();
        assert!(
            across.is_empty(),
            "lines crossed the cut to {}: {across:?}",
            HOSTS[i].0
        );
    }
    // The cable stays out until a redial from each site has failed in the cut, so that
    // the relink below is the backoff's doing, not a first redial that found the cable
    // back already. (The failed dial takes its 10 s connect timeout, so the lines
    // written in the cut are older than 5 s by the mend: late, when they cross.)
    wait_for_within(
        PATIENCE_FAILED_DIAL,
        "a dial across the cable from each site fails",
        || {
            for (from, to) in ACROSS {
                let failed = format!("peer {} dropped before the handshake", nodes[to].addr());
                if !nodes[from].log().contains(&failed) {
                    return Err(format!("{} has not logged {failed:?}", HOSTS[from].0));
                }
            }
            Ok(())
        },
    );

    lab.mend();
    let mended = Instant::now();
    wait_for_links("the ring is linked again", PATIENCE_RELINK, &nodes, &RING);
    eprintln!(
        "the cable was out for {:?}; the ring was linked again {:?} after the mend",
        mended - cut,
        mended.elapsed()
    );
    // The two sites catch each other up: every node holds every line.
    let before = 2 + (HOSTS.len() * CUT_LINES) as u64;
    wait_for_messages("every node has every line written so far", &nodes, before);
    eprintln!("caught up {:?} after the mend", mended.elapsed());

    for from in [0, 1] {
        let name = HOSTS[from].0;
        clients[from].send(&format!("{name} after the mend"));
        wrote[from].push(format!("<{name}> {name} after the mend"));
    }
    wait_for_messages(
        "every node has the lines after the mend",
        &nodes,
        before + 2,
    );
    nodes[3].client().send("marker");

    for (i, client) in clients.iter_mut().enumerate() {
        seen[i].extend(chat(client.expect_line("<a2> marker")));
        let name = HOSTS[i].0;
        // Every other node's lines, each once, in the order its node wrote them.
        let mut got: Vec<&String> = seen[i].iter().filter(|l| *l != LATE).collect();
        let mut want: Vec<&String> = (0..HOSTS.len())
            .filter(|&from| from != i)
            .flat_map(|from| &wrote[from])
            .collect();
        for (from, lines) in wrote.iter().enumerate().filter(|&(from, _)| from != i) {
            let prefix = format!("<{}> ", HOSTS[from].0);
            let of_from: Vec<&String> = got
                .iter()
                .copied()
                .filter(|l| l.starts_with(&prefix))
                .collect();
            let lines: Vec<&String> = lines.iter().collect();
            assert_eq!(
                of_from, lines,
                "{}'s lines on {name}, in order",
                HOSTS[from].0
            );
        }
        got.sort();
        want.sort();
        assert_eq!(got, want, "chat lines on {name}");
        // The other site's lines from the cut came late, after word that they are.
        let other_site = |l: &str| {
            (0..HOSTS.len()).any(|from| {
                HOSTS[from].1 != HOSTS[i].1
                    && (1..=CUT_LINES).any(|n| l == cut_line(HOSTS[from].0, n))
            })
        };
        let mut introduced = false;
        for line in &seen[i] {
            if line == LATE {
                introduced = true;
            } else if other_site(line) {
                assert!(
                    introduced,
                    "{line:?} reached {name} with no late notice: {:#?}",
                    seen[i]
                );
            } else {
                introduced = false;
            }
        }
    }
}

/// A client's stream of the lines `<a> N` from one node, read on a thread of its own so
/// that no queue fills while the test waits for something else.
struct Reader {
    /// The highest N seen so far.
    seen: Arc<AtomicU64>,
    thread: JoinHandle<Vec<u64>>,
}

impl Reader {
    /// Reads `client` until the line `<a> end`, keeping each N in the order it came.
    fn start(mut client: Client) -> Reader {
        let seen = Arc::new(AtomicU64::new(0));
        let shared = Arc::clone(&seen);
        let thread = thread::spawn(move || {
            let mut numbers = Vec::new();
            loop {
                let line = client.next_line();
                let Some(text) = line.strip_prefix("<a> ") else {
                    continue; // a peer event
                };
                if text == "end" {
                    return numbers;
                }
                let n: u64 = text
                    .parse()
                    .unwrap_or_else(|_| panic!("not a numbered line: {line:?}"));
                shared.fetch_max(n, Ordering::Relaxed);
                numbers.push(n);
            }
        });
        Reader { seen, thread }
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Asserts that the stream held each of the lines 1 to `written` exactly once, in
    /// the order they were written (a node shows an author's lines in its order).
    fn expect_each_once_in_order(self, who: &str, written: u64) {
        let numbers = self
            .thread
            .join()
            .unwrap_or_else(|payload| panic::resume_unwind(payload));
        let mut times = vec![0_u32; written as usize + 1];
        for &n in &numbers {
            assert!(
                (1..=written).contains(&n),
                "{who} got line {n} of {written}"
            );
            times[n as usize] += 1;
        }
        let missing: Vec<u64> = (1..=written).filter(|&n| times[n as usize] == 0).collect();
        let repeated: Vec<u64> = (1..=written).filter(|&n| times[n as usize] > 1).collect();
        assert!(
            missing.is_empty() && repeated.is_empty(),
            "{who}, of {written} lines: {} missing (first {:?}), {} more than once (first {:?})",
            missing.len(),
            &missing[..missing.len().min(10)],
            repeated.len(),
            &repeated[..repeated.len().min(10)],
        );
        let disorder = numbers.windows(2).find(|w| w[0] > w[1]);
        assert!(disorder.is_none(), "{who} got {disorder:?} in this order");
    }
}

/// Lines the writer may be ahead of c's client. Without a bound, the socket buffers
/// between them would let it run tens of thousands of lines ahead, and the kill would
/// fall on lines long written rather than in the middle of the traffic c is reading.
const IN_FLIGHT: u64 = 2_000;

/// Lines that must go by before the kill (so that b is carrying traffic) and after it
/// (so that lines written after b died are checked too).
const LINES_AROUND_KILL: u64 = 1_000;

#[test]
fn a_node_killed_mid_stream_costs_the_nodes_still_linked_no_line() {
    // A ring a - b - c - d - a: with b gone, a - d - c still links the writer's node to
    // every survivor, so each line has a path to each of them. (In a line a - b - c,
    // killing b would cut c off, and no topology can promise c the lines then.)
    let mut nodes: Vec<Node> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|nick| Node::start(&["--nick", nick]))
        .collect();
    for i in 0..4 {
        nodes[i].link(&nodes[(i + 1) % 4]);
    }
    // The survivors' clients: another one on the writer's node, and one on c and d.
    let readers: Vec<(&str, Reader)> = [("a's other client", 0), ("c", 2), ("d", 3)]
        .into_iter()
        .map(|(who, i)| (who, Reader::start(nodes[i].client())))
        .collect();
    let on_c = &readers[1].1;

    // The writer streams as fast as the lines get through, until told to stop: the
    // kill falls in the middle of the traffic whenever it comes.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        let on_c = Arc::clone(&on_c.seen);
        let mut client = nodes[0].client();
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                wait_until("c's client keeps up with the writer", || {
                    on_c.load(Ordering::Relaxed) + IN_FLIGHT >= n
                });
                client.send(&n.to_string());
                written.store(n, Ordering::Relaxed);
            }
            client.send("end");
            n
        })
    };

    wait_until("c has had lines through the ring", || {
        on_c.seen() >= LINES_AROUND_KILL
    });
    nodes[1].kill();
    // Every line past this one was written after b died, so it can only have come
    // round the other way.
    let written_by_kill = written.load(Ordering::Relaxed);
    wait_until("c has had lines written after b died", || {
        on_c.seen() >= written_by_kill + LINES_AROUND_KILL
    });
    stop.store(true, Ordering::Relaxed);
    let total = writer
        .join()
        .unwrap_or_else(|payload| panic::resume_unwind(payload));
    eprintln!("{total} lines, b killed after line {written_by_kill}");

    for (who, reader) in readers {
        reader.expect_each_once_in_order(who, total);
    }
    // And the survivors are linked as the claim assumes: a - d - c, no more, no less.
    let ids: Vec<&str> = nodes.iter().map(Node::id).collect();
    nodes[0].wait_for_peers(&[ids[3]]);
    nodes[2].wait_for_peers(&[ids[3]]);
    nodes[3].wait_for_peers(&[ids[0], ids[2]]);
}

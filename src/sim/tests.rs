//! Scenario runs with exact delivery checks, several seeds each. Sizes are kept modest
//! so that the debug-built suite stays fast; `p2pchat-sim` runs 10,000 and 100,000.

use std::time::Duration;

use super::graph::Family;
use super::net::NetConfig;
use super::scenario::{run, seeds, Kind, Report, Spec};
use crate::config::Broadcast;

const SEEDS: &[u64] = &[1, 2, 3];

fn spec(kind: Kind, family: Family, nodes: usize, lines: u32, seed: u64) -> Spec {
    Spec {
        kind,
        family,
        nodes,
        lines,
        seed,
        net: NetConfig::default(),
    }
}

/// Runs `kind` for every seed (or the one in P2PCHAT_SIM_SEED); a failure names its seed.
fn each_seed(kind: Kind, family: Family, nodes: usize, lines: u32) -> Vec<Report> {
    each_of_seeds(SEEDS, kind, family, nodes, lines)
}

fn each_of_seeds(
    defaults: &[u64],
    kind: Kind,
    family: Family,
    nodes: usize,
    lines: u32,
) -> Vec<Report> {
    each_of_seeds_with(Broadcast::Flood, defaults, kind, family, nodes, lines)
}

/// [`each_of_seeds`] with every node passing lines on as `broadcast` says.
fn each_of_seeds_with(
    broadcast: Broadcast,
    defaults: &[u64],
    kind: Kind,
    family: Family,
    nodes: usize,
    lines: u32,
) -> Vec<Report> {
    seeds(defaults)
        .expect("a valid seed in the environment")
        .into_iter()
        .map(|seed| {
            // Printed for a failing test (libtest shows the output of failures only):
            // an invariant panic inside the run names no seed by itself.
            eprintln!("sim seed {seed}: replay with P2PCHAT_SIM_SEED={seed}");
            let mut spec = spec(kind, family, nodes, lines, seed);
            spec.net.broadcast = broadcast;
            run(&spec).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(&spec(Kind::Crash, Family::Random, 60, 9, 7)).expect("run");
    let b = run(&spec(Kind::Crash, Family::Random, 60, 9, 7)).expect("run");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!((a.events, a.deliveries), (b.events, b.deliveries));
    let c = run(&spec(Kind::Crash, Family::Random, 60, 9, 8)).expect("run");
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn steady_chatter_reaches_every_client_once() {
    // 60 nodes: even the line's diameter stays within the hop limit (64), past which a
    // line stops by design.
    for family in [
        Family::Random,
        Family::SmallWorld,
        Family::Ring,
        Family::Line,
    ] {
        for r in each_seed(Kind::Steady, family, 60, 20) {
            assert_eq!(r.deliveries, 20 * 59, "{family}: {r}");
        }
    }
}

#[test]
fn a_line_crosses_a_line_graph_end_to_end_with_no_copy_to_spare() {
    for r in each_seed(Kind::Burst, Family::Line, 50, 5) {
        assert_eq!(r.deliveries, 5 * 49, "{r}");
        assert_eq!(r.suppressed_per_delivery, 0.0, "a line has no cycle: {r}");
    }
}

#[test]
fn links_replaced_while_lines_flow_lose_no_line_and_deliver_none_twice() {
    // Crossed dials and redials of up links throughout a wave, ends of stream and bytes
    // overtaking each other across links; the run's own checks demand every line at
    // every client exactly once, and one link per pair at the end. The sim binary runs
    // a thousand seeds and more (docs/SIMULATION.md).
    // On a line every link is the only path, so a line lost on a link given up is lost
    // for good; on a random graph the rule meets more crossings.
    let seeds: Vec<u64> = (1..=150).collect();
    for r in each_of_seeds(&seeds, Kind::Relink, Family::Line, 10, 100) {
        assert_eq!(r.deliveries, 100 * 9, "{r}");
    }
    for r in each_of_seeds(&seeds[..50], Kind::Relink, Family::Random, 12, 30) {
        assert_eq!(r.deliveries, 30 * 11, "{r}");
    }
}

#[test]
fn a_burst_from_one_origin_arrives_whole() {
    for r in each_seed(Kind::Burst, Family::Random, 200, 50) {
        assert_eq!(r.deliveries, 50 * 199, "{r}");
        // Degree 6-8 with one copy per link: about degree - 2 extra copies per delivery.
        assert!((3.0..7.0).contains(&r.suppressed_per_delivery), "{r}");
    }
}

#[test]
fn lines_written_during_a_cut_reach_the_other_half_after_the_heal() {
    // A ring cut in two leaves two lines of 50, a random graph's halves may fall apart
    // further: either way every line of the cut reaches every node once it heals,
    // exactly once and in its author's order (the run checks both).
    for family in [Family::Ring, Family::Random] {
        for r in each_seed(Kind::Partition, family, 100, 9) {
            assert_eq!(r.deliveries, 9 * 99, "{family}: {r}");
        }
    }
}

#[test]
fn a_tenth_of_the_nodes_crash_and_restart() {
    for r in each_seed(Kind::Crash, Family::Random, 100, 9) {
        // 10 nodes down in the middle wave: they catch up on its lines as history, and
        // show none of them.
        assert_eq!(r.deliveries, 3 * 99 + 3 * 89 + 3 * 99, "{r}");
    }
}

#[test]
fn a_forger_is_cut_off_and_the_ids_it_spent_still_carry_the_victims_lines() {
    // The run checks that every neighbour of the forger counted a forgery, that no
    // client showed one, and that the victim's next line, whose ids the forger spent,
    // reached every node but the forger.
    for family in [Family::Random, Family::Ring] {
        for r in each_seed(Kind::Hostile, family, 60, 10) {
            assert_eq!(r.lines, 11, "{family}: {r}");
        }
    }
}

#[test]
fn cuts_crashes_and_restarts_in_the_middle_of_the_traffic_lose_no_line() {
    // Bytes and ends of stream overtake each other across links, links are redialled
    // and pinged, lines are written all through; a cut heals and a tenth of the nodes
    // crash and restart while they are. The sim binary runs thousands of seeds.
    let seeds: Vec<u64> = (1..=100).collect();
    for r in each_of_seeds(&seeds, Kind::Churn, Family::Random, 16, 40) {
        assert!(r.deliveries > 0, "{r}");
    }
    for r in each_of_seeds(&seeds[..50], Kind::Churn, Family::Line, 10, 40) {
        assert!(r.deliveries > 0, "{r}");
    }
}

#[test]
fn broadcast_trees_lose_no_line_to_relinks_cuts_crashes_forgers_or_slow_links() {
    // The same runs and checks as with flooding: every line at every client of its
    // component exactly once, in its author's order. Links pruned from the tree and
    // grafted back, redials, ends of stream overtaking bytes, crashes and a forger
    // all through the traffic.
    let tree = Broadcast::Tree;
    let seeds: Vec<u64> = (1..=100).collect();
    for r in each_of_seeds_with(tree, &seeds, Kind::Churn, Family::Random, 16, 40) {
        assert!(r.deliveries > 0, "{r}");
    }
    for r in each_of_seeds_with(tree, &seeds, Kind::Relink, Family::Random, 12, 30) {
        assert_eq!(r.deliveries, 30 * 11, "{r}");
    }
    for kind in [
        Kind::Steady,
        Kind::Crash,
        Kind::Repair,
        Kind::Partition,
        Kind::Hostile,
        Kind::SlowLink,
    ] {
        for r in each_of_seeds_with(tree, SEEDS, kind, Family::Random, 100, 9) {
            assert!(r.deliveries > 0, "{kind:?}: {r}");
        }
    }
}

#[test]
fn a_settled_tree_sends_about_one_copy_per_delivery() {
    // 200 nodes of degree 6-8, 50 lines from one origin: the first floods and prunes,
    // the rest go along the tree.
    for r in each_of_seeds_with(
        Broadcast::Tree,
        SEEDS,
        Kind::Sender,
        Family::Random,
        200,
        50,
    ) {
        assert_eq!(r.deliveries, 50 * 199, "{r}");
        assert!(r.suppressed_per_delivery < 0.2, "{r}");
    }
}

#[test]
fn random_authors_share_one_tree_at_under_one_and_a_half_copies_per_delivery() {
    // 200 nodes, 50 lines from random nodes within a second, after a first such wave
    // settled the tree: prunes on both sides of a loop must not cut it.
    for r in each_of_seeds_with(
        Broadcast::Tree,
        SEEDS,
        Kind::Steady,
        Family::Random,
        200,
        50,
    ) {
        assert_eq!(r.deliveries, 50 * 199, "{r}");
        assert!(r.suppressed_per_delivery < 0.5, "{r}");
    }
}

#[test]
fn a_tree_repairs_itself_within_two_seconds_of_a_tenth_of_the_nodes_crashing() {
    // 20 of 200 nodes crash at once while a settled sender writes a line every 100 ms.
    for r in each_of_seeds_with(
        Broadcast::Tree,
        SEEDS,
        Kind::Repair,
        Family::Random,
        200,
        30,
    ) {
        assert!(
            r.deliveries >= 30 * 179,
            "every running node has every line: {r}"
        );
        let within = r.repaired_within.expect("the repair scenario times it");
        assert!(
            (Duration::from_millis(1)..=Duration::from_secs(2)).contains(&within),
            "crashes on the tree cost grafts, and they end soon: {r}"
        );
    }
}

#[test]
fn a_thousand_nodes_cut_in_two_crash_and_forge() {
    for kind in [Kind::Partition, Kind::Crash, Kind::Hostile, Kind::Churn] {
        let r = run(&spec(kind, Family::Random, 1000, 9, 3)).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.deliveries >= 6 * 899, "{kind:?}: {r}");
    }
}

#[test]
fn a_slow_link_fills_queues_and_loses_nothing() {
    for r in each_seed(Kind::SlowLink, Family::Random, 50, 400) {
        assert_eq!(r.deliveries, 400 * 49, "{r}");
        assert!(
            r.max_peer_queue >= 4 * 1024,
            "the pause mark was passed: {r}"
        );
    }
}

#[test]
fn ten_thousand_nodes_on_a_random_graph() {
    let r =
        run(&spec(Kind::Steady, Family::Random, 10_000, 3, 11)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.deliveries, 3 * 9_999, "{r}");
}

#[test]
fn a_mesh_grows_from_one_bootstrap_address_each_and_heals_after_crashes() {
    // 1,000 nodes, discovery on: each started knowing one earlier node. The run itself
    // checks after every quiet spell that the links form one component with every
    // degree in min(target, live - 1)..=max_peers; here, the figures it recorded.
    let n = 1000u64;
    let live = n - n / 5;
    for r in each_seed(Kind::Mesh, Family::Random, n as usize, 9) {
        assert_eq!(
            r.deliveries,
            3 * (n - 1) + 3 * (live - 1) + 3 * (n - 1),
            "{r}"
        );
        let phases: Vec<_> = r.mesh.iter().map(|m| (m.phase, m.live as u64)).collect();
        assert_eq!(
            phases,
            [
                ("first links", n),
                ("after the crashes", live),
                ("after the restarts", n)
            ],
            "{r}"
        );
        for m in &r.mesh {
            // Every node has its target of 6 links, and dials fewer the more others
            // dialled it: the mean stays within one and a half times the target.
            // Walks swap links into the first neighbourhoods for random ones: without
            // them the diameter was 15 where a random graph's is 5, and early nodes,
            // dialled by many, had up to 64 links.
            assert!(m.min_degree >= 6, "{r}");
            assert!(m.max_degree <= 32, "{r}");
            assert!((6.0..=9.0).contains(&m.mean_degree), "{r}");
            assert!(m.diameter * 10 <= m.random_diameter * 13, "{r}");
            assert!(m.mean_distance <= m.random_mean_distance * 1.1, "{r}");
        }
    }
}

#[test]
fn a_peer_that_lies_about_addresses_fills_a_sixteenth_of_its_peers_books_at_most() {
    // 300 nodes grown as in the mesh scenario; a member tells its peers 4,096 addresses
    // where nobody listens, then a fifth of the others crash. Without the share, its
    // peers learned 980 to 998 of them and up to 754 of 924 dials after the crashes went
    // to them.
    for r in each_seed(Kind::Eclipse, Family::Random, 300, 9) {
        let eclipse = r.eclipse.as_ref().expect("the eclipse scenario tells");
        // Its share holds the real addresses it told before, too, and a full book makes
        // room for a lie by forgetting another: a book may not grow at all. What the
        // lies cost shows in the dials, which without the share went mostly to them.
        assert!(eclipse.most_learned <= 128 / 16, "{r}");
        assert!(eclipse.dials > 0, "{r}");
        assert!(eclipse.dials_to_lies * 10 <= eclipse.dials, "{r}");
    }
}

#[test]
fn the_same_seed_gives_the_same_mesh() {
    let a = run(&spec(Kind::Mesh, Family::Random, 80, 6, 5)).expect("run");
    let b = run(&spec(Kind::Mesh, Family::Random, 80, 6, 5)).expect("run");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!((a.events, a.deliveries), (b.events, b.deliveries));
}

#[test]
fn announcements_stay_within_their_budget_and_a_new_member_is_listed_at_once() {
    for report in each_of_seeds(&[1], Kind::Members, Family::Random, 20, 0) {
        let members = report
            .members
            .expect("the members scenario measures membership");
        // 20 members announcing every 30 s at the most: well under the 2 KiB/s budget.
        assert!(
            members.bytes_per_node_per_sec > 0.0 && members.bytes_per_node_per_sec < 2048.0,
            "{members}"
        );
        assert!(
            members.listed_within < std::time::Duration::from_secs(1),
            "{members}"
        );
    }
}

//! Lines that a node was out of reach of when they were written: a node that restarts
//! is caught up by its peers (its `/history` holds what it missed, its clients are not
//! shown it as news), lines written on either side of it meanwhile reach the other side
//! once it is back, exactly once, in their author's order, introduced as late; and a
//! gap in an author's lines is waited for a second, then told of.

use std::thread;
use std::time::{Duration, Instant};

use crate::util::{arg, temp_dir, wait_for, Node, SecurePeer, PATIENCE};

/// What a node writes before lines that were written a while before they reach it.
const LATE: &str = "* late lines follow, written while out of reach of this node";

/// Lines shown this long after their author wrote them are late (a caught-up line is
/// introduced as late only then).
const LATE_AFTER: Duration = Duration::from_secs(5);

/// The chat lines and the late notices among `lines`, in order: what a client was
/// shown of the chat, without events and replies.
fn chat_and_late(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with('<') || *l == LATE)
        .cloned()
        .collect()
}

/// Waits until `node`'s `/status` shows `messages` distinct lines and none held back.
fn wait_for_messages(node: &Node, name: &str, messages: u64) {
    wait_for(&format!("{name} has seen {messages} lines"), || {
        let status = node.status();
        if status["messages"] == messages.to_string() && status["held"] == "0" {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    });
}

/// a - b - c in a line; b stops (SIGTERM) while a and c go on writing, and comes back
/// with its key file, well after those lines were written.
#[test]
fn a_restarted_node_is_caught_up_and_carries_the_lines_written_meanwhile_across_late_once() {
    let keys = temp_dir();
    let key = keys.path().join("key");
    let b_args = ["--nick", "b", "--key", arg(&key)];
    let a = Node::start(&["--nick", "a"]);
    let c = Node::start(&["--nick", "c"]);
    let mut b = Node::start(&b_args);
    let b_id = b.id().to_owned();
    b.link(&a);
    b.link(&c);
    // On a and c, a client that writes and one that reads throughout.
    let (mut on_a, mut on_c) = (a.client(), c.client());
    let (mut write_a, mut write_c) = (a.client(), c.client());

    write_a.send("a before");
    on_a.expect_next("<a> a before");
    on_c.expect_next("<a> a before");
    write_c.send("c before");
    on_c.expect_next("<c> c before");
    on_a.expect_next("<c> c before");
    b.client().send("b before");
    on_a.expect_next("<b> b before");
    on_c.expect_next("<b> b before");

    b.signal("TERM");
    assert!(b.wait_exit().success(), "b stops cleanly");
    a.wait_for_peers(&[]);
    c.wait_for_peers(&[]);
    let down = |side: &str, i: u32| format!("{side} while b is down {i}");
    for i in 1..=3 {
        write_a.send(&down("a", i));
        on_a.expect_line(&format!("<a> {}", down("a", i)));
        write_c.send(&down("c", i));
        on_c.expect_line(&format!("<c> {}", down("c", i)));
    }
    // The clock is the protocol here: the lines must be older than LATE_AFTER when
    // they reach the other side, so b stays down that long after the last of them.
    let written = Instant::now();
    thread::sleep((LATE_AFTER + Duration::from_secs(1)).saturating_sub(written.elapsed()));

    let b = Node::start(&b_args);
    assert_eq!(b.id(), b_id, "the same key, the same node");
    let mut on_b = b.client();
    b.link(&a);
    b.link(&c);

    // Every line is everywhere: the three before, and the six written meanwhile.
    for (node, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        wait_for_messages(node, name, 9);
    }
    let history: Vec<String> = b.history(None).into_iter().map(|h| h.line).collect();
    let mut want: Vec<String> = ["<a> a before", "<c> c before", "<b> b before"]
        .map(str::to_owned)
        .to_vec();
    for side in ["a", "c"] {
        want.extend((1..=3).map(|i| format!("<{side}> {}", down(side, i))));
    }
    let (mut have_sorted, mut want_sorted) = (history.clone(), want.clone());
    have_sorted.sort();
    want_sorted.sort();
    assert_eq!(
        have_sorted, want_sorted,
        "b's /history holds every line: {history:#?}"
    );
    for side in ["a", "b", "c"] {
        let prefix = format!("<{side}> ");
        let of_side = |lines: &[String]| -> Vec<String> {
            (lines.iter())
                .filter(|l| l.starts_with(&prefix))
                .cloned()
                .collect()
        };
        assert_eq!(
            of_side(&history),
            of_side(&want),
            "{side}'s lines in its order in b's /history"
        );
    }

    // A live line after the catch-up: each client has been shown all it will be by then.
    write_a.send("marker");
    let on_b_seen = on_b.expect_line("<a> marker");
    assert!(
        chat_and_late(&on_b_seen).is_empty(),
        "b's client was shown what b missed as news: {on_b_seen:#?}"
    );
    for (client, other) in [(&mut on_c, "a"), (&mut on_a, "c")] {
        let seen = chat_and_late(&client.expect_line("<a> marker"));
        let mut want = vec![LATE.to_owned()];
        want.extend((1..=3).map(|i| format!("<{other}> {}", down(other, i))));
        assert_eq!(
            seen, want,
            "{other}'s lines while b was down, late, once, in order"
        );
    }
    assert_eq!(on_b.peers().len(), 2, "b is linked to a and c");
}

/// A peer sends an author's lines 0 and 2: line 2 waits a second for line 1, the node
/// asks its peers for it meanwhile, then shows line 2 after word of the gap; line 1,
/// once it comes, is shown too.
#[test]
fn a_gap_in_an_authors_lines_is_asked_for_then_told_of_after_a_second() {
    const ORDER_WAIT: Duration = Duration::from_secs(1);
    let node = Node::start(&["--nick", "target"]);
    let mut on_node = node.client();
    let mut peer = SecurePeer::connect(&node);
    peer.hello("mallory");
    on_node.read_until("the peer's up event", |l| l.starts_with("* peer up "));
    let records: Vec<Vec<u8>> = ["zero", "one", "two"]
        .iter()
        .map(|text| peer.sign(&[("mallory", text)]))
        .collect();
    peer.send_record(&records[0]);
    on_node.expect_next("<mallory> zero");
    let sent = Instant::now();
    peer.send_record(&records[2]);

    // The question: a summary that is not a whole one, naming the run from line 1.
    let id = u64::from_str_radix(&peer.id(), 16).expect("16 hex digits");
    let asked = wait_for("the node asks for the gap", || {
        let (complete, entries) = peer.next_have();
        match &entries[..] {
            [entry] if !complete && entry.author == id => Ok(entry.next()),
            _ => Err(format!("complete: {complete}, {entries:?}")),
        }
    });
    assert_eq!(asked, 1, "asked from the first line it lacks");

    let gap = format!("* 1 lines of mallory ({}) are missing", peer.id());
    on_node.expect_next(&gap);
    let waited = sent.elapsed();
    assert!(
        waited >= ORDER_WAIT - Duration::from_millis(50) && waited < ORDER_WAIT + PATIENCE,
        "told of the gap after {waited:?}"
    );
    on_node.expect_next("<mallory> two");
    let status = node.status();
    assert_eq!(
        (status["missing"].as_str(), status["held"].as_str()),
        ("1", "0"),
        "{status:?}"
    );

    // The line that filled the gap too late is shown all the same, and once.
    peer.send_record(&records[1]);
    peer.send_record(&records[1]);
    on_node.expect_next("<mallory> one");
    wait_for("the copy is judged", || match node.counter("duplicates") {
        1 => Ok(()),
        n => Err(format!("{n} duplicates")),
    });
    node.client().send("marker");
    on_node.expect_next("<target> marker");
    assert_eq!(node.counter("messages"), 4);
}

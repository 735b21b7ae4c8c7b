//! Who is here: every node lists every member of the mesh in `/who`, a clean stop is
//! told as a leave, and a partition that takes many members away at once is told as
//! one line, as is their return.

use crate::util::{wait_for, Client, Node};

/// The shortest announcement period the tests run with: a member silent for three of
/// them (and the time to cross the mesh) is out of reach.
const INTERVAL: &[&str] = &["--announce-interval", "1"];

/// The ids `/who` lists on `node`.
fn members(node: &Node) -> Vec<String> {
    let mut client = node.client();
    client.send("/who");
    let lines = client.read_until("the end of /who", |l| l.ends_with(" members"));
    let mut ids: Vec<String> = (lines.iter())
        .filter_map(|l| l.strip_prefix("* member "))
        .map(|l| l.split(' ').next().expect("an id").to_owned())
        .collect();
    let count = lines.last().expect("a count");
    assert_eq!(*count, format!("* {} members", ids.len()), "{lines:?}");
    ids.sort();
    ids
}

fn wait_for_members(node: &Node, expected: &[&Node]) {
    let mut want: Vec<String> = expected.iter().map(|n| n.id().to_owned()).collect();
    want.sort();
    wait_for_ids(node, &want);
}

fn wait_for_ids(node: &Node, want: &[String]) {
    wait_for(&format!("node {} lists {want:?}", node.id()), || {
        let listed = members(node);
        (listed == want).then_some(()).ok_or(format!("{listed:?}"))
    });
}

#[test]
fn every_node_lists_every_member_and_a_clean_stop_is_a_leave() {
    let a = Node::start(&[&["-n", "anna"], INTERVAL].concat());
    let b = Node::start(&[&["-n", "ben"], INTERVAL].concat());
    let mut c = Node::start(&[&["-n", "cleo"], INTERVAL].concat());
    a.link(&b);
    b.link(&c);
    for node in [&a, &b, &c] {
        wait_for_members(node, &[&a, &b, &c]);
    }
    let mut watcher: Client = a.client();
    watcher.send("/who");
    let lines = watcher.read_until("/who", |l| l.ends_with(" members"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("* member {} cleo ", c.id()))),
        "{lines:?}"
    );
    c.signal("TERM");
    c.wait_exit();
    watcher.expect_line(&format!("* leave {} cleo", c.id()));
    wait_for_members(&a, &[&a, &b]);
}

#[test]
fn a_partition_is_one_line_going_and_one_line_coming_back() {
    let a = Node::start(&[&["-n", "anna"], INTERVAL].concat());
    let hub_dir = crate::util::temp_dir();
    let hub_key = hub_dir.path().join("hub.key");
    let hub_args = [&["-n", "hub", "-k", crate::util::arg(&hub_key)], INTERVAL].concat();
    let mut hub = Node::start(&hub_args);
    let far: Vec<Node> = (0..4)
        .map(|i| Node::start(&[&["-n", &format!("far{i}")], INTERVAL].concat()))
        .collect();
    for node in &far {
        hub.link(node);
    }
    a.link(&hub);
    let all = |hub: &Node| -> Vec<String> {
        let mut ids: Vec<String> = [&a, hub]
            .into_iter()
            .chain(&far)
            .map(|n| n.id().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let everyone = all(&hub);
    wait_for_ids(&a, &everyone);
    let mut watcher = a.client();
    // The hub crashes: five members go out of reach of `a` together.
    hub.kill();
    let seen = watcher.expect_line("* 5 members out of reach");
    assert!(
        !seen.iter().any(|l| l.starts_with("* unreachable ")),
        "one line, not one a member: {seen:?}"
    );
    wait_for_members(&a, &[&a]);
    // It comes back with its key and its links: they are all back at once.
    let hub = Node::start(&hub_args);
    for node in &far {
        hub.link(node);
    }
    let far_side: Vec<String> = everyone
        .iter()
        .filter(|&id| id != a.id())
        .cloned()
        .collect();
    wait_for_ids(&hub, &far_side);
    a.link(&hub);
    watcher.expect_line("* 5 members joined");
    assert_eq!(all(&hub), everyone, "the same key is the same member");
    wait_for_ids(&a, &everyone);
}

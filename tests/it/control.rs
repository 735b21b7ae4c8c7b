//! The control protocol of one node, as a user at `nc -U` or a script sees it.

use crate::util::{wait_for, Node, SecurePeer};

#[test]
fn help_lists_every_command() {
    let a = Node::start(&[]);
    let mut client = a.client();
    client.send("/help");
    client.send("/peers");
    let mut lines = client.read_until("the end of /help", |l| l == "* 0 peers");
    lines.pop();
    assert!(lines.len() > 1, "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with("* ")), "{lines:#?}");
    for command in [
        "//", "/nick", "/connect", "/peers", "/status", "/help", "/quit",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(command)),
            "/help does not mention {command}: {lines:#?}"
        );
    }
}

#[test]
fn nick_names_the_lines_this_client_sends_from_then_on() {
    let a = Node::start(&["--nick", "a"]);
    let b = Node::start(&["--nick", "b"]);
    a.link(&b);
    let (mut one, mut two, mut remote) = (a.client(), a.client(), b.client());

    one.send("before");
    two.expect_next("<a> before");
    remote.expect_next("<a> before");

    one.send("/nick zed");
    one.expect_next("* nick zed");
    one.send("after");
    two.expect_next("<zed> after");
    remote.expect_next("<zed> after");

    // The nick belongs to the client that chose it.
    two.send("still the node's nick");
    one.expect_next("<a> still the node's nick");
    assert_eq!(one.status()["nick"], "zed");
    assert_eq!(two.status()["nick"], "a");
}

#[test]
fn invalid_nicks_are_refused_and_the_nick_is_kept() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    let too_long = "n".repeat(33);
    for bad in ["a<b", "a>b", "bell\u{7}", too_long.as_str(), "a b", ""] {
        one.send(&format!("/nick {bad}"));
        let reply = one.next_line();
        assert!(reply.starts_with("! "), "/nick {bad:?} got {reply:?}");
    }
    one.send("unchanged");
    two.expect_next("<a> unchanged");

    let longest = "n".repeat(32);
    one.send(&format!("/nick {longest}"));
    one.expect_next(&format!("* nick {longest}"));
    one.send("longest nick");
    two.expect_next(&format!("<{longest}> longest nick"));
}

#[test]
fn an_unknown_command_is_an_error_and_is_not_sent() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    for line in ["/frob", "/frob with words", "/"] {
        one.send(line);
        let reply = one.next_line();
        assert!(reply.starts_with("! "), "{line:?} got {reply:?}");
    }
    one.send("/frob");
    let reply = one.next_line();
    assert!(
        reply.contains("/frob"),
        "the error names the command: {reply:?}"
    );
    one.send("marker");
    two.expect_next("<a> marker");
}

#[test]
fn a_double_slash_sends_a_line_starting_with_a_slash() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    one.send("//etc/passwd is a path");
    two.expect_next("<a> /etc/passwd is a path");
    one.send("//quit");
    two.expect_next("<a> /quit");
    one.send("still attached");
    two.expect_next("<a> still attached");
}

#[test]
fn a_line_over_the_limit_is_an_error_and_the_client_stays_usable() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());

    let longest = "x".repeat(4096);
    one.send(&longest);
    two.expect_next(&format!("<a> {longest}"));

    one.send(&"y".repeat(4097));
    let reply = one.next_line();
    assert!(reply.starts_with("! "), "{reply:?}");
    one.send(&"z".repeat(100_000));
    let reply = one.next_line();
    assert!(reply.starts_with("! "), "{reply:?}");

    // Nothing of either line went out, and the client is still served.
    one.send("after the long lines");
    two.expect_next("<a> after the long lines");
    one.send("/peers");
    one.expect_next("* 0 peers");
    assert_eq!(a.counter("messages"), 2);
}

#[test]
fn invalid_utf8_is_an_error_and_the_client_stays_usable() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    for bytes in [&b"caf\xe9\n"[..], b"\xff\xfe\n", b"/nick \xc3\n"] {
        one.send_raw(bytes);
        let reply = one.next_line();
        assert!(reply.starts_with("! "), "{bytes:?} got {reply:?}");
    }
    one.send("café, properly");
    two.expect_next("<a> café, properly");
}

#[test]
fn crlf_line_endings_work_and_only_the_cr_before_the_lf_is_dropped() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    one.send_raw(b"hello\r\n");
    two.expect_next("<a> hello");
    one.send_raw(b"/nick crlf\r\n");
    one.expect_next("* nick crlf");
    // The CR does not count towards the limit.
    let longest = "x".repeat(4096);
    one.send_raw(format!("{longest}\r\n").as_bytes());
    two.expect_next(&format!("<crlf> {longest}"));
    // Any other CR is text, and a control character at that.
    one.send_raw(b"a\rb\r\n");
    two.expect_next("<crlf> a\u{FFFD}b");
}

#[test]
fn quit_closes_only_that_connection_and_the_node_keeps_running() {
    let a = Node::start(&["--nick", "a"]);
    let (mut leaving, mut staying) = (a.client(), a.client());
    leaving.send("/quit");
    leaving.expect_eof();

    wait_for("the node counts one client", || {
        let status = staying.status();
        if status["clients"] == "1" {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    });
    let mut late = a.client();
    late.send("after the quit");
    staying.expect_next("<a> after the quit");
}

#[test]
fn status_reports_the_node_facts_and_counters() {
    let a = Node::start(&["--nick", "a"]);
    let b = Node::start(&["--nick", "b"]);
    let mut one = a.client();

    let status = wait_for("the start-up clients are gone", || {
        let status = one.status();
        if status.get("clients").map(String::as_str) == Some("1") {
            Ok(status)
        } else {
            Err(format!("{status:?}"))
        }
    });
    let id = &status["id"];
    assert!(
        !id.is_empty() && !id.contains(' '),
        "the id is one token: {id:?}"
    );
    let listen: std::net::SocketAddr = status["listen"].parse().expect("listen is an address");
    assert_eq!(listen.ip().to_string(), "127.0.0.1");
    assert_ne!(listen.port(), 0, "the bound port, not the asked-for 0");
    assert_eq!(status["peers"], "0");
    assert_eq!(status["messages"], "0");
    assert_eq!(status["duplicates"], "0");
    // The signed logs' counters and bounds, at their start and defaults.
    for (key, value) in [
        ("forged", "0"),
        ("missing", "0"),
        ("refused", "0"),
        ("held", "0"),
        ("authors", "1"),
        ("max-authors", "16384"),
        ("backlog-lines", "0"),
        ("backlog-bytes", "0"),
        ("backlog-max-lines", "100000"),
        ("backlog-max-bytes", "67108864"),
        ("backlog-max-age", "86400"),
    ] {
        assert_eq!(
            status.get(key).map(String::as_str),
            Some(value),
            "{key} in {status:?}"
        );
    }
    assert!(
        !status.contains_key("dedup-capacity"),
        "no dedup memory to size any more: {status:?}"
    );

    let mut two = a.client();
    one.send("first");
    one.send("second");
    two.expect_next("<a> first");
    two.expect_next("<a> second");
    b.link(&a);
    let mut on_b = b.client();
    on_b.send("third");
    two.expect_line("<b> third");

    wait_for("the counters settle", || {
        let status = one.status();
        let want = [
            ("id", id.as_str()),
            ("listen", &listen.to_string()),
            ("peers", "1"),
            ("clients", "2"),
            ("messages", "3"),
            ("duplicates", "0"),
            ("authors", "2"),
            ("backlog-lines", "3"),
        ];
        if want.iter().all(|(key, value)| status[*key] == *value) {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    });
}

#[test]
fn control_characters_from_a_peer_are_replaced_before_reaching_a_client() {
    let a = Node::start(&["--nick", "a"]);
    let mut client = a.client();
    let mut evil = SecurePeer::connect(&a);
    evil.hello("evil");
    let up = client.next_line();
    assert_eq!(
        up,
        format!("* peer up {} in {} evil", evil.addr(), evil.id())
    );

    let text = "red\u{1b}[31m bell\u{7} cr\r lf\n tab\t del\u{7f} csi\u{9b}2J";
    evil.chat("evil", text);
    let line = client.next_raw_line();
    let (last, before) = line.split_last().expect("a line");
    assert_eq!(*last, b'\n');
    assert!(
        before.iter().all(|&b| b >= 0x20 && b != 0x7f),
        "control bytes reached the client: {line:?}"
    );
    assert_eq!(
        String::from_utf8(line).expect("UTF-8"),
        "<evil> red\u{FFFD}[31m bell\u{FFFD} cr\u{FFFD} lf\u{FFFD} tab\u{FFFD} del\u{FFFD} \
         csi\u{FFFD}2J\n"
    );
}

#[test]
fn control_characters_from_a_client_of_another_node_are_replaced() {
    let a = Node::start(&["--nick", "a"]);
    let b = Node::start(&["--nick", "b"]);
    a.link(&b);
    let (mut on_a, mut on_b, mut beside) = (a.client(), b.client(), b.client());
    on_b.send("a\u{1b}b\u{7}c");
    assert_eq!(on_a.next_raw_line(), "<b> a\u{FFFD}b\u{FFFD}c\n".as_bytes());
    assert_eq!(
        beside.next_raw_line(),
        "<b> a\u{FFFD}b\u{FFFD}c\n".as_bytes()
    );
}

#[test]
fn lines_from_a_client_that_closed_its_writing_half_are_delivered() {
    let a = Node::start(&["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    one.send_raw(b"one\ntwo\nlast, without a newline");
    one.shutdown_write();
    two.expect_next("<a> one");
    two.expect_next("<a> two");
    two.expect_next("<a> last, without a newline");
    one.expect_eof();
}

/// Regression: `printf '/peers\n/quit\n' | nc -U SOCKET` printed nothing, because
/// `/quit` closed the socket before the queued reply was written.
#[test]
fn replies_to_lines_before_quit_are_written_before_the_close() {
    let a = Node::start(&[]);
    let mut client = a.client();
    client.send_raw(b"/peers\n/quit\n");
    client.expect_next("* 0 peers");
    client.expect_eof();
}

/// Regression: `echo /status | socat - UNIX-CONNECT:SOCKET` printed nothing, because the
/// end of the input closed the connection with the replies still queued for it.
#[test]
fn replies_reach_a_client_that_closed_its_writing_half() {
    let a = Node::start(&[]);
    let mut client = a.client();
    client.send("/peers");
    client.shutdown_write();
    client.expect_next("* 0 peers");
    client.expect_eof();
}

/// `--max-authors` and the `--backlog-*` options show in `/status`, and the backlog
/// bound is the bound of `/history`: the oldest lines go first.
#[test]
fn the_backlog_options_bound_what_the_node_keeps_and_status_shows_them() {
    let a = Node::start(&[
        "--nick",
        "a",
        "--max-authors",
        "5",
        "--backlog-lines",
        "3",
        "--backlog-mib",
        "2",
        "--backlog-hours",
        "3",
    ]);
    let (mut one, mut two) = (a.client(), a.client());
    for i in 1..=5 {
        one.send(&format!("line {i}"));
        two.expect_next(&format!("<a> line {i}"));
    }
    let status = a.status();
    for (key, value) in [
        ("max-authors", "5"),
        ("backlog-max-lines", "3"),
        ("backlog-max-bytes", "2097152"),
        ("backlog-max-age", "10800"),
        ("backlog-lines", "3"),
        ("messages", "5"),
    ] {
        assert_eq!(status[key], value, "{key} in {status:?}");
    }
    let history: Vec<String> = a.history(None).into_iter().map(|h| h.line).collect();
    assert_eq!(history, ["<a> line 3", "<a> line 4", "<a> line 5"]);
}

//! The process as a service manager or a shell sees it: detaching, the pidfile, stop
//! signals, exit statuses and where errors go.

use std::fs;
use std::net::TcpListener;

use crate::util::{
    arg, foreground_and_daemon, refused_starts, run, temp_dir, wait_until, Client, Node, Process,
};

#[test]
fn daemon_returns_once_its_socket_answers_and_sigterm_stops_it_cleanly() {
    let dir = temp_dir();
    let socket = dir.path().join("bg.sock");
    let pidfile = dir.path().join("bg.pid");
    let log = dir.path().join("bg.log");
    let exit = run(&[
        "--daemon",
        "--listen",
        "127.0.0.1:0",
        "--nick",
        "bg",
        "--socket",
        arg(&socket),
        "--pidfile",
        arg(&pidfile),
        "--log-file",
        arg(&log),
    ]);
    // Whatever fails below, the daemon does not outlive the test.
    let daemon = pidfile.exists().then(|| Process::from_pidfile(&pidfile));
    assert_eq!(exit.status.code(), Some(0), "{exit:?}");
    assert_eq!((exit.stdout.as_str(), exit.stderr.as_str()), ("", ""));

    // Ready means ready: the first attempt to connect succeeds and is answered.
    let mut client = Client::connect(&socket);
    let status = client.status();
    assert_eq!(status["nick"], "bg");
    let daemon = daemon.expect("the pidfile exists once the parent has returned");
    assert!(daemon.is_alive(), "pid {} from the pidfile", daemon.0);
    assert_ne!(daemon.0, exit.pid, "the daemon is a process of its own");
    assert!(
        !fs::read_to_string(&log).expect("the log file").is_empty(),
        "the daemon logs to its log file"
    );

    daemon.signal("TERM");
    client.expect_eof();
    wait_until("the daemon has exited", || !daemon.is_alive());
    assert!(!socket.exists(), "the control socket file is removed");
    assert!(!pidfile.exists(), "the pidfile is removed");
}

/// A foreground node with a peer, a client and a pidfile receives `signal`.
fn stops_cleanly_on(signal: &str) {
    let dir = temp_dir();
    let pidfile = dir.path().join("p2pchat.pid");
    let mut a = Node::start_in(dir, &["--nick", "a", "--pidfile", arg(&pidfile)]);
    let b = Node::start(&["--nick", "b"]);
    b.link(&a);
    let (mut on_a, mut on_b) = (a.client(), b.client());
    assert_eq!(
        fs::read_to_string(&pidfile).expect("the pidfile"),
        format!("{}\n", a.pid())
    );
    let (a_addr, a_id, socket) = (a.addr(), a.id().to_owned(), a.socket());

    a.signal(signal);
    let status = a.wait_exit();
    assert_eq!(status.code(), Some(0), "SIG{signal} ends with {status}");
    assert!(!socket.exists(), "the control socket file is removed");
    assert!(!pidfile.exists(), "the pidfile is removed");
    on_a.expect_eof();
    let down = on_b.next_line();
    let prefix = format!("* peer down {a_addr} out {a_id} a: ");
    assert!(
        down.starts_with(&prefix),
        "{down:?} should start with {prefix:?}"
    );
    assert_eq!(b.peers_count(), 0);
}

#[test]
fn a_foreground_node_stops_cleanly_on_sigterm() {
    stops_cleanly_on("TERM");
}

#[test]
fn a_foreground_node_stops_cleanly_on_sigint() {
    stops_cleanly_on("INT");
}

#[test]
fn usage_errors_exit_2_naming_the_problem() {
    let dir = temp_dir();
    let socket = dir.path().join("p2pchat.sock");
    let cases: [(&[&str], &str); 10] = [
        (&["--bogus"], "bogus"),
        (&["--nick", "a b"], "--nick"),
        (&["--nick", "<a>"], "--nick"),
        (&["--listen", "x"], "--listen"),
        (&["--connect", "nocolon"], "--connect"),
        (&["--listen", "127.0.0.1:0", "--no-listen"], "--no-listen"),
        (&["stray"], "stray"),
        // Gone with the signed logs: per-author ranges need no capacity.
        (&["--dedup-capacity", "5"], "dedup-capacity"),
        (&["--max-authors", "x"], "--max-authors"),
        (&["--backlog-lines", "-1"], "--backlog-lines"),
    ];
    for (args, named) in cases {
        let mut all = vec!["--socket", arg(&socket)];
        all.extend_from_slice(args);
        let exit = run(&all);
        assert_eq!(exit.status.code(), Some(2), "{args:?}: {exit:?}");
        assert!(
            exit.stderr.starts_with("p2pchat: ") && exit.stderr.contains(named),
            "{args:?} should name {named:?}: {exit:?}"
        );
        assert_eq!(exit.stdout, "", "{args:?}");
        assert!(!socket.exists(), "{args:?} created the control socket");
    }
}

#[test]
fn help_and_version_print_on_stdout_and_exit_0() {
    for flag in ["--help", "-h"] {
        let exit = run(&[flag]);
        assert_eq!(exit.status.code(), Some(0), "{exit:?}");
        assert_eq!(exit.stderr, "");
        assert!(exit.stdout.contains("Usage: p2pchat"), "{}", exit.stdout);
        for option in [
            "--listen",
            "--no-listen",
            "--connect",
            "--socket",
            "--nick",
            "--daemon",
            "--pidfile",
            "--log-file",
            "--verbose",
            "--quiet",
            "--help",
            "--version",
        ] {
            assert!(exit.stdout.contains(option), "{flag} misses {option}");
        }
    }
    for flag in ["--version", "-V"] {
        let exit = run(&[flag]);
        assert_eq!(exit.status.code(), Some(0), "{exit:?}");
        assert_eq!(exit.stderr, "");
        assert_eq!(
            exit.stdout,
            format!("p2pchat {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn a_port_already_taken_exits_1_with_the_error_on_the_terminal() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("a bound address").to_string();
    let dir = temp_dir();
    let socket = dir.path().join("p2pchat.sock");
    let pidfile = dir.path().join("p2pchat.pid");
    for (args, exit) in refused_starts(&addr, &socket, &pidfile) {
        let prefix = format!("p2pchat: cannot listen on {addr}: ");
        assert!(
            exit.stderr.starts_with(&prefix) && exit.stderr.contains("in use"),
            "{args:?}: {exit:?}"
        );
        assert_eq!(exit.stdout, "");
        assert!(!socket.exists(), "{args:?} left a control socket file");
        assert!(!pidfile.exists(), "{args:?} left a pidfile");
    }
}

#[test]
fn a_start_up_failure_after_binding_exits_1_with_the_error_on_the_terminal() {
    let dir = temp_dir();
    let socket = dir.path().join("p2pchat.sock");
    let pidfile = dir.path().join("no such directory").join("p2pchat.pid");
    for args in foreground_and_daemon(&[
        "--listen",
        "127.0.0.1:0",
        "--socket",
        arg(&socket),
        "--pidfile",
        arg(&pidfile),
    ]) {
        let exit = run(&args);
        assert_eq!(exit.status.code(), Some(1), "{args:?}: {exit:?}");
        let prefix = format!("p2pchat: cannot write pidfile {}: ", pidfile.display());
        assert!(exit.stderr.starts_with(&prefix), "{args:?}: {exit:?}");
        if args.contains(&"--daemon") {
            // The detached process removes it as it exits, after telling the parent.
            wait_until("the failed daemon removed its socket file", || {
                !socket.exists()
            });
        } else {
            assert!(!socket.exists(), "the control socket file is removed");
        }
    }
}

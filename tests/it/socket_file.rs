//! The control socket's file: what a new daemon does with what it finds at its path.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};

use crate::util::{arg, refused_starts, run, temp_dir, Node, SOCKET};

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = temp_dir();
    let path = dir.path().join(SOCKET);
    // What a crashed daemon leaves: the file, with nobody listening.
    drop(UnixListener::bind(&path).expect("cannot bind a socket"));
    assert!(path.exists());
    assert!(UnixStream::connect(&path).is_err(), "nobody listens");

    let a = Node::start_in(dir, &["--nick", "a"]);
    let (mut one, mut two) = (a.client(), a.client());
    one.send("on the new socket");
    two.expect_next("<a> on the new socket");
}

#[test]
fn a_socket_served_by_a_live_daemon_makes_a_second_one_refuse_to_start() {
    let a = Node::start(&["--nick", "a"]);
    let mut on_a = a.client();
    let socket = a.socket();
    let dir = temp_dir();
    let pidfile = dir.path().join("second.pid");
    for (args, exit) in refused_starts("127.0.0.1:0", &socket, &pidfile) {
        assert!(
            exit.stderr.starts_with("p2pchat: ") && exit.stderr.contains(arg(&socket)),
            "{args}: the error names the path: {exit:?}"
        );
        assert!(socket.exists(), "the live daemon's socket file is kept");
    }
    let mut other = a.client();
    other.send("still served");
    on_a.expect_next("<a> still served");
}

fn socket_mode(node: &Node) -> u32 {
    let meta = fs::metadata(node.socket()).expect("the control socket file");
    assert!(meta.file_type().is_socket());
    meta.permissions().mode() & 0o777
}

#[test]
fn the_control_socket_has_mode_0660() {
    assert_eq!(socket_mode(&Node::start(&[])), 0o660);
}

#[test]
fn socket_mode_sets_who_may_attach() {
    for (asked, mode) in [("0600", 0o600), ("666", 0o666)] {
        let node = Node::start(&["--socket-mode", asked]);
        assert_eq!(socket_mode(&node), mode, "--socket-mode {asked}");
        // Attaching waits for the node's first answer.
        node.client();
    }
}

#[test]
fn a_path_that_is_another_kind_of_file_is_refused_and_left_intact() {
    let dir = temp_dir();
    let path = dir.path().join(SOCKET);
    fs::write(&path, "precious data\n").expect("cannot write a file");
    let exit = run(&["--listen", "127.0.0.1:0", "--socket", arg(&path)]);
    assert_eq!(exit.status.code(), Some(1), "{exit:?}");
    assert!(
        exit.stderr.starts_with("p2pchat: ") && exit.stderr.contains(arg(&path)),
        "the error names the path: {exit:?}"
    );
    assert_eq!(
        fs::read_to_string(&path).expect("the file is still there"),
        "precious data\n"
    );

    let directory = dir.path().join("a directory");
    fs::create_dir(&directory).expect("cannot create a directory");
    let exit = run(&["--listen", "127.0.0.1:0", "--socket", arg(&directory)]);
    assert_eq!(exit.status.code(), Some(1), "{exit:?}");
    assert!(directory.is_dir(), "the directory is still there");
}

#[test]
fn a_socket_path_in_a_missing_directory_is_an_error_naming_it() {
    let dir = temp_dir();
    let path = dir.path().join("missing").join(SOCKET);
    let exit = run(&["--listen", "127.0.0.1:0", "--socket", arg(&path)]);
    assert_eq!(exit.status.code(), Some(1), "{exit:?}");
    assert!(
        exit.stderr.starts_with("p2pchat: ") && exit.stderr.contains(arg(&path)),
        "the error names the path: {exit:?}"
    );
}

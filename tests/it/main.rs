//! Integration tests of `p2pchat`, against the real binary.
//!
//! Every test starts its own daemons as child processes and talks to them only through
//! their sockets, as a user, a script or another node would: the control socket with
//! `std::os::unix::net::UnixStream`, the peer port with `std::net::TcpStream`. Each node
//! listens on a free port of 127.0.0.1 (port 0; the real one is read from `/status`), or
//! on an address of a network namespace the test made, and keeps its control socket and
//! log in a temporary directory of its own, so the tests are
//! independent and run in parallel. Nothing sleeps to let something happen: every wait
//! polls an observable condition against a deadline and fails showing what it saw.
//!
//! The contract under test is ../shared/INTERFACE.md.

/// Lines a node was out of reach of when they were written: a node restarted with its
/// key file is caught up by its peers (`/history` holds what it missed, its clients
/// are not shown it as news), and lines written on either side of it meanwhile cross
/// it once it is back, exactly once, in their author's order, after one `*` line saying
/// they are late; a gap in an author's lines is asked for, waited for a second, told of.
mod catchup;
/// Chat across a graph of nodes: every line reaches every client of every other node
/// exactly once through cycles (duplicates counted in `/status`), no echo to its sender,
/// `/connect` (host names too) and `--connect`, `/peers` lines, `peer up` / `peer down`
/// events, failed dials, duplicate and crossed links, links to oneself, the hop limit,
/// and `/history` for a client that attaches later.
mod chat;
/// The control protocol of one node: `/help`, `/nick` and the nick rule, unknown
/// commands, `//text`, the line length limit, invalid UTF-8, CRLF, `/quit`, `/status`
/// keys (the signed logs' counters and bounds among them), `--max-authors` and the
/// `--backlog-*` bounds, control characters replaced before they reach a client, and
/// clients that close their writing half.
mod control;
/// The process: `--daemon` returns only once the socket answers, the pidfile, SIGTERM
/// and SIGINT stop cleanly, `--help` / `--version`, usage errors (exit 2), and bind or
/// start-up failures reported on the terminal (exit 1), with and without `--daemon`.
mod daemon;
/// Hostile or broken peers on the TCP port: raw bytes that are not the protocol
/// (garbage, bad magic, another version, a version 1 hello, a handshake message that
/// is not Noise, a truncated handshake, a slow loris) and a peer with a key of its own
/// that breaks the rules inside the secure channel (an over-long length prefix, an
/// empty frame, an invalid nick, an unknown message kind, lines before hello, truncated
/// frames, a flood over `--max-rate`): each connection is closed with its address and
/// cause in the log, and the node goes on chatting with its real peer.
mod hostile;
/// The IRC front end: sic, irssi (in tmux) and weechat-headless on one node chat with a
/// control client on another (history on joining, the nick list, lines both ways,
/// members joining and leaving), and raw connections meet registration, `CAP`,
/// `ISUPPORT`, `@time` playback, the error numerics, the listener's password, and nicks
/// taken and dropped on another node as JOIN and QUIT; a client program that is not
/// installed skips its test unless `CI` is set.
mod irc;
/// Who is here: `/who` on every node lists every member of the mesh, a clean stop is a
/// `* leave` line, and a partition that takes several members away, or brings them
/// back, is one line.
mod members;
/// Faults on real links: two sites, each node in a network namespace of its own, cut
/// apart by unplugging their cable (each site chats on inside, nothing crosses while it
/// is out, the nodes relink by themselves once it is back and what each site wrote
/// meanwhile reaches the other late, once, in order; skipped without root or iproute2
/// unless `CI` is set), and a node SIGKILLed mid-stream costing the nodes still linked
/// no line and no order.
mod netns;
/// The secure channel between real nodes: a tapping relay reads neither lines nor
/// nicks, a flipped byte costs the link (which comes back) and no line, nodes with
/// another network key or none never link, key files (made private, refused when
/// others may read them, the same id across restarts), ids that cannot be claimed
/// without the key, one key in two processes, silent connections against the
/// handshake slots, and signed lines: a batch whose signature does not hold (altered,
/// or naming another node's key) costs its sender the link, is counted and reaches no
/// client; a nick another key holds shows as `NICK#XXXX`.
mod security;
/// The control socket's file: a stale one is replaced, one that a live daemon serves is
/// left alone (the second daemon refuses to start), the mode is 0660, and a path that is
/// some other file is refused and kept intact.
mod socket_file;
/// The shared harness: `Node`, `Client`, `RawPeer`, `SecurePeer`, `Proxy`, `run`,
/// `Process`, `wait_for`.
mod util;

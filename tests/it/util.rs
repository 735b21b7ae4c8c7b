//! The harness every module shares: real `p2pchat` processes and the sockets a user, a
//! script or another node would open on them.
//!
//! - [`Node`]: a daemon in the foreground, in its own temporary directory (control socket,
//!   log file, stderr), listening on a free port of 127.0.0.1; killed when dropped.
//! - [`Client`]: a control connection that reads lines against a deadline.
//! - [`RawPeer`]: a TCP connection to a node's peer port, driven byte by byte (for
//!   bytes that are not the protocol: strangers, garbage, silence).
//! - [`SecurePeer`]: a peer of the test's own making, with an identity key of its own:
//!   it runs the real secure channel, then sends and reads frames through it, and
//!   signs the lines it sends with its key ([`LineAuthor`]) as a node would.
//! - [`Proxy`]: a TCP relay between two nodes that records (and may alter) the bytes.
//! - [`run`]: a command line that must exit, with its status and output.
//! - [`wait_for`] / [`wait_until`]: poll an observable condition until a deadline. Tests
//!   never sleep to let something happen; they wait for it to show.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use p2pchat::config::Secret;
use p2pchat::proto::author::Author;
use p2pchat::proto::secure::{node_id_of, public_key, Channel, Credentials, Proven};
use p2pchat::wire::lines::{Batch, HaveEntry, KEY_LEN};
use p2pchat::wire::peer::{Hello, Message};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tempfile::TempDir;

/// How long any awaited condition may take before the test fails: far more than any
/// step needs, even on a loaded two-core machine running the suite in parallel.
pub const PATIENCE: Duration = Duration::from_secs(10);

const BIN: &str = env!("CARGO_BIN_EXE_p2pchat");

/// File names inside a node's directory.
pub const SOCKET: &str = "p2pchat.sock";
const LOG: &str = "p2pchat.log";
const STDERR: &str = "stderr";
/// The node's identity key, unless the test gives `--key`: one each, or every node
/// would share the default one and refuse the others as itself.
pub const KEY: &str = "key";

/// Polls `probe` until it returns `Ok`, for at most [`PATIENCE`]; on timeout the test
/// fails showing `what` it waited for and the last `Err` the probe described.
pub fn wait_for<T>(what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
    wait_for_within(PATIENCE, what, probe)
}

/// [`wait_for`] with a deadline of its own.
pub fn wait_for_within<T>(
    patience: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("gave up after {patience:?} waiting until {what}; last seen: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Polls `condition` until it holds, for at most [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(what, || {
        if condition() {
            Ok(())
        } else {
            Err("the condition is false".to_owned())
        }
    })
}

/// A fresh temporary directory, removed on drop.
pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// A path as a command-line argument; temporary paths are always UTF-8.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A port of 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a free port");
    listener.local_addr().expect("a bound address").port()
}

/// A read that ran into its timeout (or a signal) and may simply be tried again.
fn is_read_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The same command line twice: in the foreground, then with `--daemon`.
pub fn foreground_and_daemon<'a>(args: &[&'a str]) -> [Vec<&'a str>; 2] {
    let foreground = args.to_vec();
    let mut daemon = foreground.clone();
    daemon.push("--daemon");
    [foreground, daemon]
}

/// Runs a node that must refuse to start, in the foreground and then as a daemon, with
/// `--pidfile` so that one that started after all is found and stopped. Asserts exit
/// status 1 and returns each command line, for messages, with how it exited.
pub fn refused_starts(listen: &str, socket: &Path, pidfile: &Path) -> Vec<(String, Exit)> {
    let args = [
        "--listen",
        listen,
        "--socket",
        arg(socket),
        "--pidfile",
        arg(pidfile),
    ];
    foreground_and_daemon(&args)
        .into_iter()
        .map(|args| {
            let exit = run(&args);
            let _started = pidfile.exists().then(|| Process::from_pidfile(pidfile));
            assert_eq!(exit.status.code(), Some(1), "{args:?}: {exit:?}");
            (format!("{args:?}"), exit)
        })
        .collect()
}

/// Sends signal `name` (`TERM`, `INT`, `KILL`) to `pid` with kill(1).
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// A running `p2pchat` in the foreground; killed and reaped when dropped.
pub struct Node {
    child: Child,
    dir: TempDir,
    id: String,
    listen: Option<SocketAddr>,
}

impl Node {
    /// Starts a node in a fresh temporary directory; see [`Node::start_in`].
    pub fn start(args: &[&str]) -> Node {
        Node::start_in(temp_dir(), args)
    }

    /// Starts a node with its control socket (`p2pchat.sock`) and log file in `dir`,
    /// listening on a free port of 127.0.0.1 unless `args` choose `--listen` or
    /// `--no-listen`, with `--no-discovery` so that the test's links are all there is.
    /// Returns once the control socket answers `/status`.
    pub fn start_in(dir: TempDir, args: &[&str]) -> Node {
        Node::spawn(dir, &[], args, false)
    }

    /// Starts a node that dials the addresses it learns from its peers.
    pub fn start_discovering(args: &[&str]) -> Node {
        Node::spawn(temp_dir(), &[], args, true)
    }

    /// Starts a node as [`Node::start`] does, inside the network namespace `ns` (with
    /// `ip netns exec`, which becomes the node's process). Its control socket is a
    /// file, which the test reaches from its own namespace.
    pub fn start_in_namespace(ns: &str, args: &[&str]) -> Node {
        Node::spawn(temp_dir(), &["ip", "netns", "exec", ns], args, false)
    }

    /// Runs the binary through `launcher` (a program and its arguments), if any.
    fn spawn(dir: TempDir, launcher: &[&str], args: &[&str], discovery: bool) -> Node {
        let mut command = match launcher {
            [] => Command::new(BIN),
            [program, launcher_args @ ..] => {
                let mut command = Command::new(program);
                command.args(launcher_args).arg(BIN);
                command
            }
        };
        if !discovery {
            command.arg("--no-discovery");
        }
        if !args
            .iter()
            .any(|a| matches!(*a, "-l" | "--listen" | "--no-listen"))
        {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        if !args.iter().any(|a| matches!(*a, "-k" | "--key")) {
            command.arg("--key").arg(dir.path().join(KEY));
        }
        let stderr = File::create(dir.path().join(STDERR)).expect("cannot create a stderr file");
        command
            .arg("--socket")
            .arg(dir.path().join(SOCKET))
            .arg("--log-file")
            .arg(dir.path().join(LOG))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().expect("cannot start p2pchat");
        let mut node = Node {
            child,
            dir,
            id: String::new(),
            listen: None,
        };
        let socket = node.socket();
        wait_for("the control socket accepts connections", || {
            if let Some(status) = node.child.try_wait().expect("cannot poll the child") {
                let stderr = fs::read_to_string(node.dir.path().join(STDERR)).unwrap_or_default();
                panic!("p2pchat {args:?} exited during start-up ({status}); stderr: {stderr}");
            }
            UnixStream::connect(&socket)
                .map(drop)
                .map_err(|err| err.to_string())
        });
        let status = node.status();
        node.id = status["id"].clone();
        node.listen = status["listen"].parse().ok();
        node
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join(SOCKET)
    }

    /// The node id, as `/status` writes it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The node's public key, from `/status`'s `key` (64 hex digits).
    pub fn key(&self) -> [u8; KEY_LEN] {
        let hex = self.status()["key"].clone();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        bytes
            .try_into()
            .unwrap_or_else(|_| panic!("`key` is not 64 hex digits: {hex:?}"))
    }

    /// The address peers reach this node on, from `/status`'s `listen`.
    pub fn addr(&self) -> SocketAddr {
        self.listen.expect("this node does not listen")
    }

    /// The address IRC clients reach this node on, from `/status`'s `irc`.
    pub fn irc_addr(&self) -> SocketAddr {
        let irc = self.status()["irc"].clone();
        irc.parse()
            .unwrap_or_else(|_| panic!("`irc` is not an address: {irc:?}; was --irc given?"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the node has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join(LOG)).unwrap_or_default()
    }

    /// Waits until a line of the log satisfies `matches`, and returns it.
    pub fn wait_for_log(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        wait_for(&format!("the log shows {what}"), || {
            let log = self.log();
            log.lines()
                .find(|line| matches(line))
                .map(str::to_owned)
                .ok_or(log)
        })
    }

    /// A new control client, attached: the node has answered it once, so every line
    /// and event from now on reaches it.
    pub fn client(&self) -> Client {
        let mut client = Client::connect(&self.socket());
        client.peers();
        client
    }

    /// `/status` as key → value, asked on a connection of its own.
    pub fn status(&self) -> BTreeMap<String, String> {
        Client::connect(&self.socket()).status()
    }

    /// `/history`, or `/history N`, asked on a connection of its own.
    pub fn history(&self, n: Option<usize>) -> Vec<History> {
        Client::connect(&self.socket()).history(n)
    }

    /// A counter from `/status`.
    pub fn counter(&self, key: &str) -> u64 {
        let status = self.status();
        status[key]
            .parse()
            .unwrap_or_else(|_| panic!("`{key}` is not a number in {status:?}"))
    }

    /// `/peers`, asked on a connection of its own.
    pub fn peers(&self) -> Vec<Peer> {
        Client::connect(&self.socket()).peers()
    }

    pub fn peers_count(&self) -> usize {
        self.peers().len()
    }

    /// Waits until `/peers` lists exactly the nodes with these ids, and returns the list.
    pub fn wait_for_peers(&self, ids: &[&str]) -> Vec<Peer> {
        let mut want: Vec<&str> = ids.to_vec();
        want.sort_unstable();
        wait_for(
            &format!("node {} lists exactly peers {want:?}", self.id),
            || {
                let peers = self.peers();
                let mut have: Vec<&str> = peers.iter().map(|p| p.id.as_str()).collect();
                have.sort_unstable();
                let exactly = have == want;
                if exactly {
                    Ok(peers)
                } else {
                    Err(format!("{peers:?}"))
                }
            },
        )
    }

    /// Dials `other` with `/connect` and waits until both list each other as peers.
    pub fn link(&self, other: &Node) {
        let mut client = Client::connect(&self.socket());
        client.send(&format!("/connect {}", other.addr()));
        wait_for(
            &format!("nodes {} and {} list each other", self.id, other.id),
            || {
                let (mine, theirs) = (self.peers(), other.peers());
                if mine.iter().any(|p| p.id == other.id) && theirs.iter().any(|p| p.id == self.id) {
                    Ok(())
                } else {
                    Err(format!("{mine:?} and {theirs:?}"))
                }
            },
        );
    }

    /// Sends signal `name` to the node.
    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    /// Kills the node at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().expect("cannot kill p2pchat");
        self.child.wait().expect("cannot reap p2pchat");
    }

    /// Waits for the node to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_for("p2pchat exits", || {
            self.child
                .try_wait()
                .expect("cannot poll the child")
                .ok_or_else(|| "still running".to_owned())
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Already gone when a test stopped it; that is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of `/peers`: `* peer ADDR DIRECTION ID NICK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub direction: String,
    pub id: String,
    pub nick: String,
    /// Whole seconds since the link came up.
    pub age: u64,
}

/// `N` from the line `* N peers` that ends a `/peers` reply.
fn peers_count_line(line: &str) -> Option<usize> {
    line.strip_prefix("* ")?
        .strip_suffix(" peers")?
        .parse()
        .ok()
}

/// A `* peer ADDR DIRECTION ID NICK AGEs` line, not a `* peer up` or `* peer down` event.
fn peer_line(line: &str) -> Option<Peer> {
    let fields: Vec<&str> = line.split(' ').collect();
    let ["*", "peer", addr, direction, id, nick, age] = fields[..] else {
        return None;
    };
    if addr == "up" || addr == "down" {
        return None;
    }
    let age = age
        .strip_suffix('s')
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("AGE is not whole seconds like 12s in {line:?}"));
    Some(Peer {
        age,
        addr: addr
            .parse()
            .unwrap_or_else(|_| panic!("ADDR is not a socket address in {line:?}")),
        direction: direction.to_owned(),
        id: id.to_owned(),
        nick: nick.to_owned(),
    })
}

/// One line of a `/history` reply: `* history TIME <NICK> TEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The author's clock, as written: RFC 3339 UTC to the second.
    pub time: String,
    /// The line as a client is shown it live: `<NICK> TEXT`.
    pub line: String,
}

impl History {
    /// [`History::time`] in seconds since the Unix epoch; fails the test unless it is
    /// written `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn unix_secs(&self) -> u64 {
        unix_secs(&self.time).unwrap_or_else(|| {
            panic!("TIME is not RFC 3339 UTC like 2026-12-01T21:31:43Z: {self:?}")
        })
    }
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SSZ`, read independently of the
/// crate's own formatter (days from a civil date, Howard Hinnant's algorithm).
fn unix_secs(time: &str) -> Option<u64> {
    let b = time.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let num = |from: usize, to: usize| time[from..to].parse::<u64>().ok();
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + min * 60 + sec)
}

/// `N` from the line `* N lines` that ends a `/history` reply (not `* N lines of ...`).
fn lines_count_line(line: &str) -> Option<usize> {
    line.strip_prefix("* ")?
        .strip_suffix(" lines")?
        .parse()
        .ok()
}

/// What the next read of a client brought.
enum Next {
    Line(Vec<u8>),
    Eof,
    Timeout,
}

/// The socket under a [`Client`]: the control socket, or the IRC listener's port.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(stream) => stream.set_read_timeout(timeout),
            Stream::Tcp(stream) => stream.set_read_timeout(timeout),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(stream) => stream.shutdown(how),
            Stream::Tcp(stream) => stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.read(buf),
            Stream::Tcp(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.write(buf),
            Stream::Tcp(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection to a node's control socket, or to its IRC listener (whose lines are
/// read the same way, CR and all).
pub struct Client {
    stream: Stream,
    /// Bytes read but not yet returned as lines.
    buf: Vec<u8>,
}

impl Client {
    /// Connects, without waiting for the node to take notice; see [`Node::client`].
    pub fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", socket.display()));
        Client::over(Stream::Unix(stream))
    }

    /// Connects to a node's IRC listener (see [`Node::irc_addr`]); nothing is sent.
    pub fn connect_irc(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|err| panic!("cannot connect to the IRC listener {addr}: {err}"));
        Client::over(Stream::Tcp(stream))
    }

    fn over(stream: Stream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `line` and a LF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Writes `bytes` as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("cannot write to the control socket");
    }

    /// Closes the writing half: the node sees the end of the input.
    pub fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("cannot shut down the writing half");
    }

    fn next(&mut self, deadline: Instant) -> Next {
        let mut chunk = [0; 8192];
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                return Next::Line(self.buf.drain(..=end).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("cannot set a read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Next::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Next::Eof,
                Err(err) if is_read_timeout(&err) => {}
                Err(err) => panic!("cannot read the control socket: {err}"),
            }
        }
    }

    /// The next line as it came, LF included (an IRC line's CR taken out).
    fn line_by(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        match self.next(deadline) {
            Next::Line(mut line) if matches!(self.stream, Stream::Tcp(_)) => {
                let cr = line.len().saturating_sub(2);
                assert!(
                    line.get(cr) == Some(&b'\r'),
                    "an IRC line must end with CR LF: {:?}",
                    String::from_utf8_lossy(&line)
                );
                line.remove(cr);
                Ok(line)
            }
            Next::Line(line) => Ok(line),
            Next::Eof => Err(format!(
                "the node closed the connection (unterminated rest: {:?})",
                String::from_utf8_lossy(&self.buf)
            )),
            Next::Timeout => Err(format!("no complete line within {PATIENCE:?}")),
        }
    }

    /// The next line's bytes, LF included, news of members joining and leaving
    /// skipped (the tests of membership read it with [`Client::read_until`]); fails
    /// after [`PATIENCE`] or at the end.
    pub fn next_raw_line(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let line =
                (self.line_by(deadline)).unwrap_or_else(|why| panic!("expected a line: {why}"));
            if !is_member_news(&line) {
                return line;
            }
        }
    }

    /// The next line without its LF.
    pub fn next_line(&mut self) -> String {
        text(self.next_raw_line())
    }

    /// Asserts that the next line is exactly `expected`.
    pub fn expect_next(&mut self, expected: &str) {
        assert_eq!(self.next_line(), expected);
    }

    /// Reads lines until one satisfies `done`; returns them all, that one last. Fails
    /// after [`PATIENCE`] or at the end of the stream, showing the lines seen.
    pub fn read_until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            match self.line_by(deadline) {
                Ok(line) => {
                    let line = text(line);
                    let stop = done(&line);
                    seen.push(line);
                    if stop {
                        return seen;
                    }
                }
                Err(why) => panic!("{why} while waiting for {what}; lines seen: {seen:#?}"),
            }
        }
    }

    /// Reads until the line `expected`; returns the lines before it.
    pub fn expect_line(&mut self, expected: &str) -> Vec<String> {
        let mut seen = self.read_until(&format!("{expected:?}"), |line| line == expected);
        seen.pop();
        seen
    }

    /// Asserts that the node closes the connection with no further line.
    pub fn expect_eof(&mut self) {
        match self.next(Instant::now() + PATIENCE) {
            Next::Eof => assert!(
                self.buf.is_empty(),
                "unterminated bytes before the end: {:?}",
                self.buf
            ),
            Next::Line(line) => panic!(
                "expected the node to close the connection, got {:?}",
                String::from_utf8_lossy(&line)
            ),
            Next::Timeout => panic!("the node kept the connection open for {PATIENCE:?}"),
        }
    }

    /// Sends `/peers` and parses the reply, checking that its count matches its lines.
    pub fn peers(&mut self) -> Vec<Peer> {
        self.send("/peers");
        let lines = self.read_until("the `* N peers` line", |l| peers_count_line(l).is_some());
        let count = lines
            .last()
            .and_then(|l| peers_count_line(l))
            .expect("read until it");
        let peers: Vec<Peer> = lines.iter().filter_map(|l| peer_line(l)).collect();
        assert_eq!(
            peers.len(),
            count,
            "the count line must count the peer lines before it: {lines:#?}"
        );
        peers
    }

    /// Sends `/history` (or `/history N`) and returns its lines, oldest first, checking
    /// that the count line counts them. Other lines that come meanwhile (live lines,
    /// events) are passed over.
    pub fn history(&mut self, n: Option<usize>) -> Vec<History> {
        match n {
            Some(n) => self.send(&format!("/history {n}")),
            None => self.send("/history"),
        }
        let lines = self.read_until("the `* N lines` line", |l| lines_count_line(l).is_some());
        let count = lines
            .last()
            .and_then(|l| lines_count_line(l))
            .expect("read until it");
        let history: Vec<History> = lines
            .iter()
            .filter_map(|l| {
                let (time, line) = l.strip_prefix("* history ")?.split_once(' ')?;
                Some(History {
                    time: time.to_owned(),
                    line: line.to_owned(),
                })
            })
            .collect();
        assert_eq!(
            history.len(),
            count,
            "the count line must count the history lines before it: {lines:#?}"
        );
        history
    }

    /// Sends `/status` and returns its `* KEY VALUE` lines as a map. A `/peers` sent
    /// right after it marks where the reply ends.
    pub fn status(&mut self) -> BTreeMap<String, String> {
        self.send("/status");
        self.send("/peers");
        let lines = self.read_until("the end of the /status reply", |l| {
            peers_count_line(l).is_some()
        });
        lines
            .iter()
            .filter(|l| !l.starts_with("* peer ") && peers_count_line(l).is_none())
            .filter_map(|l| l.strip_prefix("* ")?.split_once(' '))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }
}

/// A line from a node without its LF; everything a node writes must be UTF-8.
fn text(mut line: Vec<u8>) -> String {
    line.pop();
    String::from_utf8(line)
        .unwrap_or_else(|err| panic!("the node wrote a line that is not UTF-8: {err:?}"))
}

/// Reads (and drops) whatever comes on `stream` until the other end closes it; fails
/// if it is still open after `patience`.
fn expect_closed_within(stream: &mut TcpStream, patience: Duration) {
    let deadline = Instant::now() + patience;
    let mut chunk = [0; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the node kept the connection from {:?} open for {patience:?}",
            stream.local_addr()
        );
        stream
            .set_read_timeout(Some(left))
            .expect("cannot set a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return
            }
            Err(err) if is_read_timeout(&err) => {}
            Err(err) => panic!("cannot read from the node: {err}"),
        }
    }
}

/// A TCP connection to a node's peer port, speaking whatever the test writes.
pub struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    pub fn connect(node: &Node) -> RawPeer {
        RawPeer::connect_to(node.addr())
    }

    pub fn connect_to(addr: SocketAddr) -> RawPeer {
        let stream = TcpStream::connect(addr).expect("cannot connect to the peer port");
        RawPeer::from_stream(stream)
    }

    /// A connection from `from`, a loopback address of the test's choice (std connects
    /// only from the address the kernel picks).
    pub fn connect_from(from: IpAddr, to: SocketAddr) -> RawPeer {
        let domain = socket2::Domain::for_address(to);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)
            .expect("cannot make a socket");
        socket
            .bind(&SocketAddr::new(from, 0).into())
            .unwrap_or_else(|err| panic!("cannot bind a socket to {from}: {err}"));
        socket
            .connect(&to.into())
            .unwrap_or_else(|err| panic!("cannot connect from {from} to {to}: {err}"));
        RawPeer::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> RawPeer {
        stream.set_nodelay(true).expect("cannot set TCP_NODELAY");
        RawPeer { stream }
    }

    /// This end's address: how the node names this peer in events and logs.
    pub fn addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("a connected socket")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("cannot write to the node");
    }

    /// Reads exactly `n` bytes, failing after [`PATIENCE`] or at the end of the stream.
    pub fn read_exactly(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.stream
            .set_read_timeout(Some(PATIENCE))
            .expect("cannot set a read timeout");
        self.stream
            .read_exact(&mut bytes)
            .unwrap_or_else(|err| panic!("expected {n} bytes from the node: {err}"));
        bytes
    }

    /// Whether the node has closed the connection: a read that would block says no.
    pub fn is_open(&mut self) -> bool {
        self.stream
            .set_nonblocking(true)
            .expect("cannot make a socket non-blocking");
        let mut byte = [0];
        let open = match self.stream.read(&mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(err) => err.kind() == io::ErrorKind::WouldBlock,
        };
        self.stream
            .set_nonblocking(false)
            .expect("cannot make a socket blocking");
        open
    }

    /// Closes both directions.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads (and drops) whatever the node sends until it closes the connection;
    /// fails if it is still open after `patience`.
    pub fn expect_closed_within(&mut self, patience: Duration) {
        expect_closed_within(&mut self.stream, patience);
    }

    pub fn expect_closed(&mut self) {
        self.expect_closed_within(PATIENCE);
    }
}

/// The run every [`SecurePeer`]'s hello and batches name (any value will do: a node
/// tells runs of one key apart by it).
pub const PEER_EPOCH: u64 = 0x7e57;

/// A fresh 32-byte key (identity or network) from the kernel's randomness.
pub fn fresh_key() -> Secret {
    let mut key = [0; 32];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .expect("cannot read /dev/urandom");
    Secret(key)
}

/// Writes `key` to `path` as a key file holds it (64 hex digits and a newline), with
/// file mode `mode`.
pub fn write_key_file(path: &Path, key: &Secret, mode: u32) {
    let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(path, format!("{hex}\n")).expect("cannot write a key file");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("cannot chmod a key file");
}

/// The permission bits of a file.
pub fn mode_of(path: &Path) -> u32 {
    let meta =
        fs::metadata(path).unwrap_or_else(|err| panic!("cannot stat {}: {err}", path.display()));
    meta.permissions().mode() & 0o7777
}

/// The node id of an identity key, as `/status` and `/peers` write it.
pub fn id_of(identity: &Secret) -> String {
    node_id_of(&public_key(identity)).to_string()
}

/// A complete hello frame (the plaintext of the channel), as a node dialling with link
/// id 1 sends it.
pub fn hello_frame(nick: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Hello {
        epoch: PEER_EPOCH,
        listen_port: 0,
        link_id: 1,
        refusing: false,
        nick,
    }
    .encode(&mut out);
    out
}

/// Hops a [`SecurePeer`]'s batches may still cross: a few, as a node's own would have.
pub const PEER_HOPS: u8 = 8;

/// The time on the Unix clock in milliseconds: what an author stamps its lines with.
pub fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit 64 bits")
}

/// An author of signed lines, as a node is one for its clients' lines: a key, a run
/// and the number of its next line. Each record it makes is one batch, signed by its
/// key, naming it, with the lines numbered on from the last record's.
pub struct LineAuthor {
    author: Author,
}

impl LineAuthor {
    /// The run [`PEER_EPOCH`] of `identity`, from its first line on.
    pub fn new(identity: &Secret) -> LineAuthor {
        LineAuthor::at(identity, PEER_EPOCH, 0)
    }

    /// The run `epoch` of `identity`, from line `next_seq` on.
    pub fn at(identity: &Secret, epoch: u64, next_seq: u64) -> LineAuthor {
        LineAuthor {
            author: Author::at(identity, epoch, next_seq),
        }
    }

    /// One signed record of `lines` (nick, text), written now.
    pub fn record(&mut self, lines: &[(&str, &str)]) -> Vec<u8> {
        let time = now_ms();
        for (nick, text) in lines {
            let sealed = self.author.write(time, nick, text);
            assert!(sealed.is_none(), "the lines of one record fit one batch");
        }
        self.author
            .seal()
            .expect("a record holds at least one line")
    }
}

/// A complete batch frame carrying `record`, live (not a catch-up), a few hops left.
pub fn lines_frame(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Batch::encode(&mut out, PEER_HOPS, false, record);
    out
}

/// A complete batch frame of one line, signed by `author`.
pub fn chat_frame(author: &mut LineAuthor, nick: &str, text: &str) -> Vec<u8> {
    lines_frame(&author.record(&[(nick, text)]))
}

/// Offset of the text of the first line in a record a [`LineAuthor`] made with a first
/// line of nick `nick`: the signed part's key, epoch, first line and count, then the line's
/// time, nick length, nick and text length.
pub fn first_text_at(nick: &str) -> usize {
    KEY_LEN + 8 + 8 + 2 + 8 + 1 + nick.len() + 2
}

/// How a [`SecurePeer`] sets up its channel; [`SecurePeer::setup`] makes one.
pub struct PeerSetup {
    identity: Secret,
    trickle: bool,
}

impl PeerSetup {
    /// Proves this identity key instead of a fresh one.
    pub fn identity(mut self, key: Secret) -> Self {
        self.identity = key;
        self
    }

    /// Writes every byte in a write of its own, the handshake included.
    pub fn trickling(mut self) -> Self {
        self.trickle = true;
        self
    }

    /// Dials `addr` and runs the handshake to its end; `Err` says how it failed.
    pub fn connect(self, addr: SocketAddr) -> Result<SecurePeer, String> {
        let stream = TcpStream::connect(addr).map_err(|err| format!("cannot connect: {err}"))?;
        stream.set_nodelay(true).expect("cannot set TCP_NODELAY");
        let mut rng = ChaCha20Rng::from_seed(fresh_key().0);
        let creds = Credentials::new(&self.identity, None, &mut rng);
        let mut wire = Vec::new();
        let channel = Channel::new(&creds, true, &mut rng, &mut wire);
        let mut peer = SecurePeer {
            stream,
            author: LineAuthor::new(&self.identity),
            creds,
            channel,
            node: None,
            plain: Vec::new(),
            trickle: self.trickle,
        };
        peer.write(&wire);
        let deadline = Instant::now() + PATIENCE;
        while peer.node.is_none() {
            match peer.read_some(deadline) {
                Ok(()) => {}
                Err(why) => return Err(format!("{why} during the handshake")),
            }
        }
        Ok(peer)
    }
}

/// A peer of the test's own making with an identity key of its own: it runs the real
/// handshake on a node's peer port (proving its key, checking the node's), then seals
/// the frames the test writes and opens the ones the node sends. The lines it sends are
/// signed by its key, in its run [`PEER_EPOCH`], numbered from 0 on each connection: a
/// second connection with the same key sends lines the node has seen, unless the test
/// sends records of its own making ([`SecurePeer::send_record`]).
pub struct SecurePeer {
    stream: TcpStream,
    author: LineAuthor,
    creds: Credentials,
    channel: Channel,
    /// The node, once its handshake proved it.
    node: Option<Proven>,
    /// Plaintext opened but not yet returned as frames.
    plain: Vec<u8>,
    trickle: bool,
}

impl SecurePeer {
    /// A peer with a fresh identity key, its handshake with `node` done.
    pub fn connect(node: &Node) -> SecurePeer {
        SecurePeer::setup()
            .connect(node.addr())
            .unwrap_or_else(|why| panic!("a secure peer cannot link to {}: {why}", node.addr()))
    }

    /// A fresh identity key, no network key, whole writes.
    pub fn setup() -> PeerSetup {
        PeerSetup {
            identity: fresh_key(),
            trickle: false,
        }
    }

    /// This peer's node id, derived from its key as the node derives it.
    pub fn id(&self) -> String {
        self.creds.id().to_string()
    }

    /// The id the node proved in the handshake.
    pub fn node_id(&self) -> String {
        self.node.expect("the handshake is done").id.to_string()
    }

    /// This end's address: how the node names this peer in events and logs.
    pub fn addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("a connected socket")
    }

    /// Seals `plain` (frames, or any bytes) into the channel and writes it.
    pub fn send(&mut self, plain: &[u8]) {
        assert!(
            self.channel.is_open(),
            "the channel is open after the handshake"
        );
        let mut wire = Vec::new();
        self.channel.seal(plain, &mut wire);
        self.write(&wire);
    }

    /// Says hello as `nick`.
    pub fn hello(&mut self, nick: &str) {
        self.send(&hello_frame(nick));
    }

    /// Sends a chat line of its own: a batch of one line, signed by this peer's key.
    pub fn chat(&mut self, nick: &str, text: &str) {
        let frame = chat_frame(&mut self.author, nick, text);
        self.send(&frame);
    }

    /// A record of `lines` (nick, text) signed by this peer's key, numbered on from
    /// the lines it has signed so far; not sent.
    pub fn sign(&mut self, lines: &[(&str, &str)]) -> Vec<u8> {
        self.author.record(lines)
    }

    /// Sends `record`, whatever its bytes, as a live batch.
    pub fn send_record(&mut self, record: &[u8]) {
        self.send(&lines_frame(record));
    }

    /// The next frame body the node sends, but for summaries (which a node sends when
    /// the link comes up and every 30 s); fails after [`PATIENCE`] or at the end.
    pub fn next_frame(&mut self) -> Vec<u8> {
        loop {
            let body = self.next_body();
            if !matches!(Message::parse(&body), Ok(Message::Have(_))) {
                return body;
            }
        }
    }

    /// The next summary message the node sends, other frames passed over: whether it
    /// ends a whole summary, and its entries.
    pub fn next_have(&mut self) -> (bool, Vec<HaveEntry>) {
        loop {
            let body = self.next_body();
            if let Ok(Message::Have(have)) = Message::parse(&body) {
                return (have.complete, have.iter().collect());
            }
        }
    }

    /// The next frame body the node sends, whatever it is.
    fn next_body(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(len) = self.plain.get(..4) {
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
                if self.plain.len() >= 4 + len {
                    return self.plain.drain(..4 + len).skip(4).collect();
                }
            }
            if let Err(why) = self.read_some(deadline) {
                panic!("expected a frame from the node: {why}");
            }
        }
    }

    /// Reads (and drops) whatever the node sends until it closes the connection.
    pub fn expect_closed(&mut self) {
        expect_closed_within(&mut self.stream, PATIENCE);
    }

    /// Closes both directions.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn write(&mut self, wire: &[u8]) {
        let pieces = if self.trickle { 1 } else { wire.len().max(1) };
        for piece in wire.chunks(pieces) {
            self.stream
                .write_all(piece)
                .expect("cannot write to the node");
        }
    }

    /// Reads once and runs the bytes through the channel, answering handshake messages.
    fn read_some(&mut self, deadline: Instant) -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("nothing within {PATIENCE:?}"));
        }
        self.stream
            .set_read_timeout(Some(left))
            .expect("cannot set a read timeout");
        let mut chunk = [0; 16384];
        let n = match self.stream.read(&mut chunk) {
            Ok(0) => return Err("the node closed the connection".to_owned()),
            Ok(n) => n,
            Err(err) if is_read_timeout(&err) => return Ok(()),
            Err(err) => return Err(format!("the connection failed: {err}")),
        };
        let mut wire = Vec::new();
        let proven = self
            .channel
            .recv(&self.creds, &chunk[..n], &mut wire, &mut self.plain)
            .map_err(|err| format!("the channel failed here: {err}"))?;
        self.write(&wire);
        if proven.is_some() {
            self.node = proven;
        }
        Ok(())
    }
}

/// Which way bytes cross a [`Proxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From the node that dialled the proxy to the one behind it.
    Out,
    /// Back from the node behind the proxy.
    Back,
}

/// Sees every Noise message crossing a [`Proxy`] before it is passed on (its 2-byte
/// length is not part of it), with its way and its index in that way of its connection
/// (0 is the first message after the preamble), and may change its bytes.
pub type Tamper = Box<dyn FnMut(Way, usize, &mut [u8]) + Send>;

/// A TCP relay on a free port of 127.0.0.1 to one node's peer port: every connection
/// to it is relayed both ways, Noise message by Noise message, and every byte that
/// crosses is recorded. It stops accepting when dropped; the connections it relays end
/// with their nodes.
pub struct Proxy {
    addr: SocketAddr,
    recorded: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// A tap: passes everything on as it is.
    pub fn tap(target: SocketAddr) -> Proxy {
        Proxy::tampering(target, Box::new(|_, _, _| {}))
    }

    /// A relay that lets `tamper` change the messages on their way.
    pub fn tampering(target: SocketAddr, tamper: Tamper) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a free port");
        let addr = listener.local_addr().expect("a bound address");
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tamper = Arc::new(Mutex::new(tamper));
        let acceptor = {
            let (recorded, stop) = (recorded.clone(), stop.clone());
            thread::spawn(move || {
                for dialler in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(dialler) = dialler else { continue };
                    let Ok(behind) = TcpStream::connect(target) else {
                        continue;
                    };
                    for (from, to, way) in [
                        (&dialler, &behind, Way::Out),
                        (&behind, &dialler, Way::Back),
                    ] {
                        let from = from.try_clone().expect("cannot clone a socket");
                        let to = to.try_clone().expect("cannot clone a socket");
                        let (recorded, tamper) = (recorded.clone(), tamper.clone());
                        thread::spawn(move || relay(from, to, way, &recorded, &tamper));
                    }
                }
            })
        };
        Proxy {
            addr,
            recorded,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Where nodes dial to reach the node behind the proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every byte relayed so far, both ways, over all connections.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().expect("a relay panicked").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Passes one way of a connection on: the preamble, then Noise messages, each through
/// `tamper`; the end of the stream (or an error) is passed on as a shutdown.
fn relay(
    mut from: TcpStream,
    mut to: TcpStream,
    way: Way,
    recorded: &Mutex<Vec<u8>>,
    tamper: &Mutex<Tamper>,
) {
    let mut pass = |bytes: &[u8]| {
        recorded
            .lock()
            .expect("a relay panicked")
            .extend_from_slice(bytes);
        to.write_all(bytes).is_ok()
    };
    let mut preamble = [0; 8];
    if from.read_exact(&mut preamble).is_ok() && pass(&preamble) {
        for index in 0.. {
            let mut message = vec![0; 2];
            if from.read_exact(&mut message).is_err() {
                break;
            }
            let len = usize::from(u16::from_be_bytes([message[0], message[1]]));
            message.resize(2 + len, 0);
            if from.read_exact(&mut message[2..]).is_err() {
                break;
            }
            (tamper.lock().expect("a relay panicked"))(way, index, &mut message[2..]);
            if !pass(&message) {
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Read);
    let _ = to.shutdown(Shutdown::Write);
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// How a command line ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    /// The pid the command ran as.
    pub pid: u32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `p2pchat args` to its end (failing the test if it runs for [`PATIENCE`]). A
/// node it starts without `--key` reads a key made for it in a temporary directory:
/// not the default one of whoever runs the tests (`/var/lib/p2pchat` for root), and
/// one that exists, so that making it logs nothing before the error under test.
pub fn run(args: &[&str]) -> Exit {
    let state = temp_dir();
    let key = state.path().join(KEY);
    write_key_file(&key, &fresh_key(), 0o600);
    let key_args = if args.iter().any(|a| matches!(*a, "-k" | "--key")) {
        vec![]
    } else {
        vec!["--key", arg(&key)]
    };
    let mut stdout = tempfile::tempfile().expect("cannot create a temporary file");
    let mut stderr = tempfile::tempfile().expect("cannot create a temporary file");
    let child = Command::new(BIN)
        .args(key_args)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().expect("cannot clone a file handle"))
        .stderr(stderr.try_clone().expect("cannot clone a file handle"))
        .spawn()
        .expect("cannot start p2pchat");
    let mut child = Reaped(child);
    let pid = child.0.id();
    let status = wait_for(&format!("p2pchat {args:?} exits"), || {
        child
            .0
            .try_wait()
            .expect("cannot poll the child")
            .ok_or_else(|| "still running".to_owned())
    });
    let read = |file: &mut File| {
        let mut text = String::new();
        file.rewind().expect("cannot rewind a temporary file");
        file.read_to_string(&mut text).expect("the output is UTF-8");
        text
    };
    Exit {
        status,
        pid,
        stdout: read(&mut stdout),
        stderr: read(&mut stderr),
    }
}

/// A child that is killed and reaped if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that is not our child, such as a detached daemon; killed when dropped.
pub struct Process(pub u32);

impl Process {
    /// The process whose pid the pidfile at `path` holds.
    pub fn from_pidfile(path: &Path) -> Process {
        let text = fs::read_to_string(path)
            .unwrap_or_else(|err| panic!("cannot read the pidfile {}: {err}", path.display()));
        let pid = text
            .trim_end()
            .parse()
            .unwrap_or_else(|_| panic!("the pidfile holds {text:?}, not a pid"));
        Process(pid)
    }

    /// Whether the process exists and has not exited (a zombie counts as gone: the
    /// daemon is not our child, so reaping it is someone else's business).
    pub fn is_alive(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/stat", self.0)).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
        })
    }

    pub fn signal(&self, name: &str) {
        send_signal(self.0, name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_alive() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.0.to_string())
                .status();
        }
    }
}

/// Whether `line` tells of members joining or leaving the mesh, which any node tells
/// its clients whenever it happens.
fn is_member_news(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    ["* join ", "* leave ", "* unreachable "]
        .iter()
        .any(|p| line.starts_with(p))
        || (line.starts_with("* ")
            && ["members joined", "members left", "members out of reach"]
                .iter()
                .any(|s| line.ends_with(s)))
}

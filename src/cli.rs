//! The command line: flags in, a validated [`Config`] out. The only place that knows
//! flag names; everything after it sees settled values.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use getopts::Options;
use log::LevelFilter;

use crate::config::{
    Config, IrcConfig, Keepalive, MaxRate, NodeConfig, Secret, DEFAULT_IRC_CHANNEL, DEFAULT_LISTEN,
    DEFAULT_PEER_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_SOCKET_MODE, MAX_MAX_AUTHORS,
    MAX_MAX_MEMBERS,
};
use crate::wire::{control, text};

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run a node.
    Run(Box<Config>),
    /// Print this (help or version) and exit 0.
    Print(String),
    /// Write a fresh network key to this file and exit 0.
    NewNetworkKey(PathBuf),
}

/// A command line that cannot be run: exit status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The parts of the environment that defaults come from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub user: Option<String>,
    pub runtime_dir: Option<PathBuf>,
    pub state_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub uid: u32,
}

impl Env {
    /// This process's environment.
    pub fn current() -> Env {
        Env {
            user: std::env::var("USER").ok(),
            runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            state_home: std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            home: std::env::var_os("HOME").map(PathBuf::from),
            uid: crate::daemon::uid(),
        }
    }

    /// `/var/lib/p2pchat/key` for root, else in `$XDG_STATE_HOME`, else in
    /// `~/.local/state`.
    fn default_key(&self) -> Result<PathBuf, UsageError> {
        let nonempty = |dir: &Option<PathBuf>| dir.clone().filter(|d| d.is_absolute());
        if self.uid == 0 {
            Ok(PathBuf::from("/var/lib/p2pchat/key"))
        } else if let Some(state) = nonempty(&self.state_home) {
            Ok(state.join("p2pchat/key"))
        } else if let Some(home) = nonempty(&self.home) {
            Ok(home.join(".local/state/p2pchat/key"))
        } else {
            Err(UsageError(
                "no place for the node's key: give --key FILE, or set HOME or XDG_STATE_HOME"
                    .into(),
            ))
        }
    }

    /// `/run/p2pchat.sock` for root, else in `$XDG_RUNTIME_DIR`, else in /tmp by uid.
    fn default_socket(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/run/p2pchat.sock");
        }
        match &self.runtime_dir {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("p2pchat.sock"),
            _ => PathBuf::from(format!("/tmp/p2pchat-{}.sock", self.uid)),
        }
    }

    /// `$USER` if it is a valid nick, else `anon`.
    fn default_nick(&self) -> String {
        self.user
            .as_deref()
            .filter(|user| text::check_nick(user).is_ok())
            .unwrap_or("anon")
            .to_owned()
    }
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt("l", "listen", "TCP address for incoming peers; port 0 picks a free port (default 0.0.0.0:7654)", "ADDR")
        .optflag("", "no-listen", "accept no incoming peers (dial out only)")
        .optmulti("c", "connect", "peer to dial at start, host:port; repeatable", "ADDR")
        .optflag("", "no-discovery", "dial only addresses given by hand (--connect, /connect)")
        .optopt("", "ping-interval", "ping a link that has been quiet this long (default 15; a third of --peer-timeout if only that is given)", "SECS")
        .optopt("", "peer-timeout", "drop a peer silent this long (default 45)", "SECS")
        .optopt("s", "socket", "control socket (default /run/p2pchat.sock as root, else $XDG_RUNTIME_DIR/p2pchat.sock, else /tmp/p2pchat-UID.sock)", "PATH")
        .optopt("", "socket-mode", "permission bits of the control socket, in octal (default 0660)", "MODE")
        .optopt("n", "nick", "nick for lines sent through this node (default $USER, else anon)", "NAME")
        .optopt("k", "key", "the node's identity key, created (mode 0600) when missing (default /var/lib/p2pchat/key as root, else $XDG_STATE_HOME/p2pchat/key, else ~/.local/state/p2pchat/key)", "FILE")
        .optopt("", "network-key", "link only with nodes that have this shared secret (64 hex digits)", "FILE")
        .optopt("", "new-network-key", "write a fresh random network key to FILE (mode 0600) and exit", "FILE")
        .optflag("d", "daemon", "detach into the background once both sockets are bound")
        .optopt("", "pidfile", "write the daemon's pid to PATH; removed on a clean stop", "PATH")
        .optopt("", "log-file", "log to PATH instead of stderr", "PATH")
        .optopt("", "target-peers", "links to dial from learned addresses while there are fewer (default 6)", "N")
        .optopt("", "max-peers", "peer connections at the most (default 64)", "N")
        .optopt("", "max-clients", "control clients at the most (default 64)", "N")
        .optopt("", "max-authors", "author runs tracked at the most; the quietest is forgotten past it (default 16384)", "N")
        .optopt("", "irc", "also serve IRC clients on this TCP address, e.g. 127.0.0.1:6667 (default off)", "ADDR")
        .optopt("", "irc-channel", "the IRC channel that is the whole mesh (default #p2pchat)", "NAME")
        .optopt("", "irc-password-file", "IRC clients must give the first line of FILE with PASS; needed for an --irc address that is not on loopback", "FILE")
        .optopt("", "max-members", "members of the mesh listed at the most; the quietest is forgotten past it (default 131072)", "N")
        .optopt("", "broadcast", "how lines spread: tree (in full along a broadcast tree, as ids over the other links; the default) or flood (in full over every link)", "tree|flood")
        .optopt("", "announce-interval", "shortest period between this node's announcements of itself; it grows with the mesh (default 30)", "SECS")
        .optopt("", "backlog-lines", "signed lines kept for catch-up and /history (default 100000)", "N")
        .optopt("", "backlog-mib", "MiB of signed lines kept at the most (default 64)", "N")
        .optopt("", "backlog-hours", "hours a signed line is kept at the most (default 24)", "N")
        .optopt("", "hop-limit", "links a chat line may cross, 1 to 255 (default 64)", "N")
        .optopt("", "max-rate", "chat lines a second relayed from each other node at the most; more are dropped (default off)", "N")
        .optopt("", "max-burst", "lines from one node let through at once under --max-rate (default twice --max-rate)", "N")
        .optflagmulti("v", "verbose", "log more (repeatable)")
        .optflagmulti("q", "quiet", "log less (repeatable)")
        .optflag("h", "help", "print this help and exit")
        .optflag("V", "version", "print the version and exit");
    opts
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>, env: &Env) -> Result<Parsed, UsageError> {
    let opts = options();
    let m = opts
        .parse(args)
        .map_err(|err| UsageError(err.to_string()))?;
    if m.opt_present("help") {
        let brief = "Usage: p2pchat [OPTIONS]\n\n\
                     A peer-to-peer group chat daemon. Attach with `nc -U SOCKET` and type /help.";
        return Ok(Parsed::Print(opts.usage(brief)));
    }
    if m.opt_present("version") {
        return Ok(Parsed::Print(format!(
            "p2pchat {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    if let Some(extra) = m.free.first() {
        return Err(UsageError(format!("unexpected argument '{extra}'")));
    }
    if let Some(path) = m.opt_str("new-network-key") {
        return Ok(Parsed::NewNetworkKey(absolute(Path::new(&path))?));
    }

    let listen = match (m.opt_str("listen"), m.opt_present("no-listen")) {
        (Some(_), true) => {
            return Err(UsageError(
                "--listen and --no-listen exclude each other".into(),
            ))
        }
        (_, true) => None,
        (addr, false) => Some(host_port(
            "--listen",
            addr.unwrap_or(DEFAULT_LISTEN.into()),
        )?),
    };
    let irc_listen = m
        .opt_str("irc")
        .map(|a| host_port("--irc", a))
        .transpose()?;
    let irc_password_file = m
        .opt_str("irc-password-file")
        .map(|p| absolute(Path::new(&p)))
        .transpose()?;
    if let Some(addr) = &irc_listen {
        let loopback = addr
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
            || addr.starts_with("localhost:");
        if !loopback && irc_password_file.is_none() {
            return Err(UsageError(format!(
                "--irc {addr} is not on loopback: give --irc-password-file too, or anyone who reaches the port speaks as this node"
            )));
        }
    }
    let irc_channel = m
        .opt_str("irc-channel")
        .unwrap_or(DEFAULT_IRC_CHANNEL.into());
    if !crate::wire::irc::check_channel(&irc_channel) {
        return Err(UsageError(format!(
            "--irc-channel {irc_channel}: expected # and up to 49 letters, digits, - or _"
        )));
    }
    let connect = m
        .opt_strs("connect")
        .into_iter()
        .map(|addr| host_port("--connect", addr))
        .collect::<Result<Vec<_>, _>>()?;
    let nick = match m.opt_str("nick") {
        Some(nick) => {
            text::check_nick(&nick).map_err(|err| UsageError(format!("--nick {nick:?}: {err}")))?;
            nick
        }
        None => env.default_nick(),
    };
    let socket = m
        .opt_str("socket")
        .map_or_else(|| env.default_socket(), PathBuf::from);

    let key_file = match m.opt_str("key") {
        Some(path) => PathBuf::from(path),
        None => env.default_key()?,
    };
    // The shell reads the keys; until then the core's are placeholders.
    let mut node = NodeConfig::new(Secret([0; 32]), 0, nick);
    node.connect = connect;
    node.discovery = !m.opt_present("no-discovery");
    if let Some(n) = number(&m, "target-peers", 0, 1_000)? {
        node.target_peers = n;
    }
    if let Some(n) = number(&m, "max-peers", 1, 1_000_000)? {
        node.limits.max_peers = n;
    }
    if let Some(n) = number(&m, "max-clients", 1, 1_000_000)? {
        node.limits.max_clients = n;
    }
    if let Some(n) = number(&m, "max-authors", 2, MAX_MAX_AUTHORS)? {
        node.max_authors = n;
    }
    if let Some(n) = number(&m, "max-members", 2, MAX_MAX_MEMBERS)? {
        node.max_members = n;
    }
    if let Some(broadcast) = m.opt_str("broadcast") {
        node.broadcast = broadcast.parse().map_err(UsageError)?;
    }
    if let Some(n) = number(&m, "announce-interval", 1, 24 * 3600)? {
        node.announce_interval = Some(Duration::from_secs(n as u64));
    }
    if let Some(n) = number(&m, "backlog-lines", 0, 100_000_000)? {
        node.backlog.lines = n;
    }
    if let Some(n) = number(&m, "backlog-mib", 0, 1 << 20)? {
        node.backlog.bytes = n << 20;
    }
    if let Some(n) = number(&m, "backlog-hours", 0, 24 * 365)? {
        node.backlog.age = Duration::from_secs(n as u64 * 3600);
    }
    if let Some(n) = number(&m, "hop-limit", 1, u8::MAX as usize)? {
        node.hop_limit = u8::try_from(n).expect("checked to be at most 255");
    }

    node.limits.keepalive = Some(keepalive(&m)?);
    node.limits.max_rate = max_rate(&m)?;

    let verbosity = 3 + m.opt_count("verbose") as isize - m.opt_count("quiet") as isize;
    let log_level = match verbosity {
        ..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };

    node.irc = irc_listen.as_ref().map(|_| IrcConfig {
        channel: irc_channel,
        password: None,
        addr: None,
    });
    Ok(Parsed::Run(Box::new(Config {
        listen,
        irc_listen,
        irc_password_file,
        socket: absolute(&socket)?,
        socket_mode: socket_mode(&m)?,
        daemon: m.opt_present("daemon"),
        pidfile: m
            .opt_str("pidfile")
            .map(|p| absolute(Path::new(&p)))
            .transpose()?,
        log_file: m
            .opt_str("log-file")
            .map(|p| absolute(Path::new(&p)))
            .transpose()?,
        log_level,
        key_file: absolute(&key_file)?,
        network_key_file: m
            .opt_str("network-key")
            .map(|p| absolute(Path::new(&p)))
            .transpose()?,
        node,
    })))
}

/// `--socket-mode`: octal permission bits that leave the owner able to attach.
fn socket_mode(m: &getopts::Matches) -> Result<u32, UsageError> {
    let Some(value) = m.opt_str("socket-mode") else {
        return Ok(DEFAULT_SOCKET_MODE);
    };
    match u32::from_str_radix(&value, 8) {
        Ok(mode) if mode <= 0o777 && mode & 0o600 == 0o600 => Ok(mode),
        Ok(mode) if mode <= 0o777 => Err(UsageError(format!(
            "--socket-mode {value}: the owner must be able to read and write (0600)"
        ))),
        _ => Err(UsageError(format!(
            "--socket-mode {value:?}: expected octal permission bits such as 0660"
        ))),
    }
}

/// `--max-rate` and `--max-burst`; the burst is meaningless without the rate.
fn max_rate(m: &getopts::Matches) -> Result<Option<MaxRate>, UsageError> {
    let per_sec = number(m, "max-rate", 1, 1_000_000)?;
    let burst = number(m, "max-burst", 1, 1_000_000)?;
    match (per_sec, burst) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(UsageError("--max-burst needs --max-rate".into())),
        (Some(per_sec), burst) => {
            let per_sec = u32::try_from(per_sec).expect("checked to be at most 1000000");
            let burst = burst.map_or(per_sec * 2, |b| u32::try_from(b).expect("checked too"));
            Ok(Some(MaxRate { per_sec, burst }))
        }
    }
}

/// `--ping-interval` and `--peer-timeout`, the timeout longer than the interval.
fn keepalive(m: &getopts::Matches) -> Result<Keepalive, UsageError> {
    const MAX_SECS: usize = 24 * 60 * 60;
    let timeout = number(m, "peer-timeout", 2, MAX_SECS)?;
    let interval = number(m, "ping-interval", 1, MAX_SECS)?;
    let secs = |n: usize| Duration::from_secs(n as u64);
    let keepalive = match (interval, timeout) {
        (None, None) => Keepalive {
            ping_interval: DEFAULT_PING_INTERVAL,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
        },
        (Some(i), None) => Keepalive {
            ping_interval: secs(i),
            peer_timeout: secs(i * 3).max(DEFAULT_PEER_TIMEOUT),
        },
        (None, Some(t)) => Keepalive {
            ping_interval: secs((t / 3).max(1)),
            peer_timeout: secs(t),
        },
        (Some(i), Some(t)) => Keepalive {
            ping_interval: secs(i),
            peer_timeout: secs(t),
        },
    };
    if keepalive.peer_timeout <= keepalive.ping_interval {
        return Err(UsageError(format!(
            "--peer-timeout {} must be longer than --ping-interval {}: a live peer needs a ping to answer",
            keepalive.peer_timeout.as_secs(),
            keepalive.ping_interval.as_secs()
        )));
    }
    Ok(keepalive)
}

/// Checks the `host:port` shape; the name itself is resolved when it is used.
fn host_port(flag: &str, addr: String) -> Result<String, UsageError> {
    if control::is_host_port(&addr) {
        Ok(addr)
    } else {
        Err(UsageError(format!("{flag} {addr:?}: expected HOST:PORT")))
    }
}

fn number(
    m: &getopts::Matches,
    flag: &str,
    min: usize,
    max: usize,
) -> Result<Option<usize>, UsageError> {
    let Some(value) = m.opt_str(flag) else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(UsageError(format!(
            "--{flag} {value:?}: expected a whole number from {min} to {max}"
        ))),
    }
}

/// Paths are made absolute up front: the daemon leaves its working directory.
fn absolute(path: &Path) -> Result<PathBuf, UsageError> {
    std::path::absolute(path).map_err(|err| UsageError(format!("{}: {err}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            user: Some("ann".into()),
            runtime_dir: Some("/run/user/1000".into()),
            state_home: None,
            home: Some("/home/ann".into()),
            uid: 1000,
        }
    }

    fn run(args: &[&str]) -> Result<Config, UsageError> {
        match parse(args.iter().map(OsString::from), &env())? {
            Parsed::Run(config) => Ok(*config),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        run(args).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let config = run(&[]).unwrap();
        assert_eq!(config.listen.as_deref(), Some("0.0.0.0:7654"));
        assert_eq!(config.socket, PathBuf::from("/run/user/1000/p2pchat.sock"));
        assert_eq!(config.node.nick, "ann");
        assert!(config.node.connect.is_empty());
        assert!(!config.daemon);
        assert_eq!(config.log_level, LevelFilter::Info);
        assert!(config.node.discovery);
        assert_eq!(config.node.target_peers, 6);
        assert_eq!(
            config.key_file,
            PathBuf::from("/home/ann/.local/state/p2pchat/key")
        );
        assert_eq!(config.network_key_file, None);
    }

    #[test]
    fn default_key_by_user() {
        let root = Env { uid: 0, ..env() };
        assert_eq!(
            root.default_key(),
            Ok(PathBuf::from("/var/lib/p2pchat/key"))
        );
        let xdg = Env {
            state_home: Some("/st".into()),
            ..env()
        };
        assert_eq!(xdg.default_key(), Ok(PathBuf::from("/st/p2pchat/key")));
        let homeless = Env {
            home: None,
            ..env()
        };
        assert!(homeless.default_key().unwrap_err().0.contains("--key"));
    }

    #[test]
    fn new_network_key_is_a_command_of_its_own() {
        let parsed = parse(["--new-network-key", "/tmp/nk"].map(OsString::from), &env());
        assert!(matches!(parsed, Ok(Parsed::NewNetworkKey(p)) if p == Path::new("/tmp/nk")));
    }

    #[test]
    fn default_socket_by_user() {
        let root = Env { uid: 0, ..env() };
        assert_eq!(root.default_socket(), PathBuf::from("/run/p2pchat.sock"));
        let bare = Env {
            runtime_dir: None,
            ..env()
        };
        assert_eq!(
            bare.default_socket(),
            PathBuf::from("/tmp/p2pchat-1000.sock")
        );
    }

    #[test]
    fn default_nick_falls_back_to_anon() {
        assert_eq!(
            Env {
                user: None,
                ..env()
            }
            .default_nick(),
            "anon"
        );
        assert_eq!(
            Env {
                user: Some("a b".into()),
                ..env()
            }
            .default_nick(),
            "anon"
        );
    }

    #[test]
    fn every_option() {
        let config = run(&[
            "-l",
            "127.0.0.1:0",
            "-c",
            "a:1",
            "--connect",
            "[::1]:2",
            "-s",
            "/tmp/x.sock",
            "-n",
            "bob",
            "-d",
            "--pidfile",
            "/tmp/p.pid",
            "--log-file",
            "/tmp/l.log",
            "--max-authors",
            "10",
            "--backlog-lines",
            "5",
            "--backlog-mib",
            "2",
            "--backlog-hours",
            "1",
            "--hop-limit",
            "3",
            "-vv",
            "--no-discovery",
            "--max-peers",
            "7",
            "--max-clients",
            "8",
            "--target-peers",
            "3",
        ])
        .unwrap();
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(config.node.connect, ["a:1", "[::1]:2"]);
        assert_eq!(config.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(config.node.nick, "bob");
        assert!(config.daemon);
        assert_eq!(config.pidfile, Some(PathBuf::from("/tmp/p.pid")));
        assert_eq!(config.log_file, Some(PathBuf::from("/tmp/l.log")));
        assert_eq!(config.node.max_authors, 10);
        let backlog = config.node.backlog;
        assert_eq!((backlog.lines, backlog.bytes), (5, 2 << 20));
        assert_eq!(backlog.age, Duration::from_secs(3600));
        assert_eq!(config.node.hop_limit, 3);
        assert_eq!(config.node.limits.max_peers, 7);
        assert_eq!(config.node.limits.max_clients, 8);
        assert_eq!(config.node.target_peers, 3);
        assert!(!config.node.discovery);
        assert_eq!(config.log_level, LevelFilter::Trace);
    }

    #[test]
    fn keepalive_options() {
        let keepalive = |args: &[&str]| {
            let k = run(args).unwrap().node.limits.keepalive.unwrap();
            (k.ping_interval.as_secs(), k.peer_timeout.as_secs())
        };
        assert_eq!(keepalive(&[]), (15, 45));
        assert_eq!(
            keepalive(&["--ping-interval", "1", "--peer-timeout", "3"]),
            (1, 3)
        );
        assert_eq!(keepalive(&["--peer-timeout", "9"]), (3, 9));
        assert_eq!(keepalive(&["--peer-timeout", "2"]), (1, 2));
        assert_eq!(keepalive(&["--ping-interval", "20"]), (20, 60));
    }

    #[test]
    fn socket_mode_is_octal_and_leaves_the_owner_in() {
        let mode = |args: &[&str]| run(args).map(|c| c.socket_mode).map_err(|e| e.to_string());
        assert_eq!(mode(&[]), Ok(0o660));
        assert_eq!(mode(&["--socket-mode", "0600"]), Ok(0o600));
        assert_eq!(mode(&["--socket-mode", "666"]), Ok(0o666));
        assert_eq!(
            mode(&["--socket-mode", "0060"]),
            Err("--socket-mode 0060: the owner must be able to read and write (0600)".into())
        );
        for bad in ["0999", "rw", "01777", ""] {
            assert!(mode(&["--socket-mode", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn max_rate_options() {
        let max_rate = |args: &[&str]| {
            run(args)
                .map(|c| c.node.limits.max_rate.map(|r| (r.per_sec, r.burst)))
                .map_err(|err| err.to_string())
        };
        assert_eq!(max_rate(&[]), Ok(None));
        assert_eq!(max_rate(&["--max-rate", "10"]), Ok(Some((10, 20))));
        assert_eq!(
            max_rate(&["--max-rate", "10", "--max-burst", "3"]),
            Ok(Some((10, 3)))
        );
        assert_eq!(
            max_rate(&["--max-burst", "3"]),
            Err("--max-burst needs --max-rate".into())
        );
        assert!(max_rate(&["--max-rate", "0"]).is_err());
    }

    #[test]
    fn no_listen_and_quiet() {
        let config = run(&["--no-listen", "-qq"]).unwrap();
        assert_eq!(config.listen, None);
        assert_eq!(config.log_level, LevelFilter::Error);
    }

    #[test]
    fn relative_paths_become_absolute() {
        let config = run(&["-s", "x.sock"]).unwrap();
        assert!(config.socket.is_absolute());
        assert!(config.socket.ends_with("x.sock"));
    }

    #[test]
    fn usage_errors_name_the_flag() {
        assert!(usage_error(&["--bogus"]).contains("bogus"));
        assert!(usage_error(&["extra"]).contains("'extra'"));
        assert!(usage_error(&["-l", "1.2.3.4:1", "--no-listen"]).contains("--no-listen"));
        assert!(usage_error(&["-c", "nocolon"]).contains("--connect"));
        assert!(usage_error(&["-l", "h:99999"]).contains("--listen"));
        assert!(usage_error(&["-n", "has space"]).contains("--nick"));
        assert!(usage_error(&["--hop-limit", "0"]).contains("--hop-limit"));
        assert!(usage_error(&["--hop-limit", "256"]).contains("255"));
        assert!(usage_error(&["--max-authors", "x"]).contains("--max-authors"));
        assert!(usage_error(&["--ping-interval", "5", "--peer-timeout", "5"]).contains("longer"));
        assert!(usage_error(&["--ping-interval", "0"]).contains("--ping-interval"));
        assert!(usage_error(&["--max-authors", "18446744073709551615"]).contains("4194304"));
    }

    #[test]
    fn help_and_version_print() {
        for flag in ["-h", "--help", "-V", "--version"] {
            let parsed = parse([OsString::from(flag)], &env()).unwrap();
            assert!(matches!(parsed, Parsed::Print(text) if text.contains("p2pchat")));
        }
    }
}

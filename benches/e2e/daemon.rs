//! One `p2pchat` daemon under test: starting it, killing it, its control socket
//! (writers, requests, `/status`), its memory and its log.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{Context, Result};
use crate::streams::localhost;
use crate::wait::{wait_for, Probe, PATIENCE, STALL};

/// The daemon under test, built by cargo with the bench profile.
pub const BIN: &str = env!("CARGO_BIN_EXE_p2pchat");

/// Log warnings shown per daemon when a run is incomplete.
const WARNINGS_SHOWN: usize = 5;
/// How long a daemon may take to answer `/status` when a loss is being explained: a
/// stuck daemon must not hold up the bench for long.
const DIAGNOSIS_PATIENCE: Duration = Duration::from_secs(2);

/// A child process, killed and reaped when dropped: on a panic too.
pub struct Guarded(pub Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        // Already gone when it exited by itself; nothing else to do.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A daemon's use of the CPU so far.
#[derive(Clone, Copy)]
pub struct CpuUse {
    /// On a CPU.
    pub running: Duration,
    /// Ready to run, waiting for a CPU that others had.
    pub waiting: Duration,
}

/// A `p2pchat` daemon with its control socket and log in a temporary directory.
pub struct Daemon {
    /// `nK`, also its nick.
    name: String,
    port: u16,
    process: Guarded,
    dir: TempDir,
}

/// How the daemons pass lines on: `P2PCHAT_BENCH_BROADCAST`, `flood` by default.
fn broadcast() -> String {
    std::env::var("P2PCHAT_BENCH_BROADCAST").unwrap_or_else(|_| "flood".to_owned())
}

impl Daemon {
    const SOCKET: &'static str = "p2pchat.sock";
    const LOG: &'static str = "p2pchat.log";
    const STDERR: &'static str = "stderr";
    /// Its identity key, which it creates at start: every daemon is a node of its own.
    const KEY: &'static str = "key";

    /// Starts daemon `nINDEX`; returns once it answers `/status` on its control socket.
    pub fn start(index: usize) -> Result<Daemon> {
        let name = format!("n{index}");
        let dir = tempfile::tempdir()
            .context(|| format!("node {name}: cannot create a temporary directory"))?;
        let stderr = File::create(dir.path().join(Self::STDERR))
            .context(|| format!("node {name}: cannot create a file for its stderr"))?;
        let child = Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-discovery",
                "-q",
                "--nick",
                &name,
                // W4 holds 10,000 links on one node, far over the default limit.
                "--max-peers",
                "20000",
                // W5 attaches 100 clients and a probe, over the default limit of 64.
                "--max-clients",
                "200",
            ])
            .args(["--broadcast", &broadcast()])
            .arg("--socket")
            .arg(dir.path().join(Self::SOCKET))
            .arg("--log-file")
            .arg(dir.path().join(Self::LOG))
            .arg("--key")
            .arg(dir.path().join(Self::KEY))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context(|| format!("node {name}: cannot start {BIN}"))?;
        let mut daemon = Daemon {
            name,
            port: 0,
            process: Guarded(child),
            dir,
        };
        daemon.wait_for_control_socket()?;
        daemon.port = daemon.status_field::<SocketAddr>("listen")?.port();
        Ok(daemon)
    }

    fn wait_for_control_socket(&mut self) -> Result<()> {
        let (label, socket) = (self.to_string(), self.socket());
        let stderr = self.dir.path().join(Self::STDERR);
        let process = &mut self.process.0;
        wait_for(&format!("{label} accepts control connections"), || {
            let exited = process.try_wait();
            if let Some(status) = exited.context(|| format!("{label}: cannot poll the process"))? {
                return Err(format!(
                    "{label} exited during start-up ({status}); stderr: {}",
                    fs::read_to_string(&stderr).unwrap_or_default().trim_end()
                ));
            }
            Ok(match UnixStream::connect(&socket) {
                Ok(_) => Probe::Done(()),
                Err(err) => Probe::NotYet(err.to_string()),
            })
        })
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join(Self::SOCKET)
    }

    /// Its peer listening address.
    pub fn addr(&self) -> SocketAddr {
        localhost(self.port)
    }

    /// A new connection to the control socket.
    pub fn control(&self) -> Result<UnixStream> {
        UnixStream::connect(self.socket()).context(|| {
            format!(
                "{self}: cannot connect to its control socket {}",
                self.socket().display()
            )
        })
    }

    /// A control connection to write lines on; a write that takes nothing for
    /// [`STALL`] fails.
    pub fn writer(&self) -> Result<UnixStream> {
        let stream = self.control()?;
        stream
            .set_write_timeout(Some(STALL))
            .context(|| format!("{self}: cannot set a write timeout"))?;
        Ok(stream)
    }

    /// Sends `command` and `/quit` on a connection of its own; returns the reply lines.
    /// Each read of the reply may wait `patience`.
    fn request(&self, command: &str, patience: Duration) -> Result<Vec<String>> {
        let mut stream = self.control()?;
        stream
            .set_read_timeout(Some(patience))
            .context(|| format!("{self}: cannot set a read timeout"))?;
        stream
            .write_all(format!("{command}\n/quit\n").as_bytes())
            .context(|| format!("{self}: cannot send {command}"))?;
        let mut reply = String::new();
        if let Err(err) = stream.read_to_string(&mut reply) {
            return Err(match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    format!("{self}: no complete reply to {command} within {patience:?}")
                }
                _ => format!("{self}: cannot read the reply to {command}: {err}"),
            });
        }
        let lines: Vec<String> = reply.lines().map(str::to_owned).collect();
        match lines.iter().find(|line| line.starts_with('!')) {
            Some(error) => Err(format!("{self}: {command} failed: {error}")),
            None => Ok(lines),
        }
    }

    /// `/status` as key → value, each read of the reply waiting at most `patience`.
    pub fn status_within(&self, patience: Duration) -> Result<BTreeMap<String, String>> {
        let lines = self.request("/status", patience)?;
        Ok(lines
            .iter()
            .filter_map(|line| line.strip_prefix("* ")?.split_once(' '))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect())
    }

    /// The value of `key` in `/status`, parsed.
    fn status_field<T: FromStr>(&self, key: &str) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        let status = self.status_within(PATIENCE)?;
        let value = status
            .get(key)
            .ok_or_else(|| format!("{self}: no `{key}` in /status {status:?}"))?;
        value
            .parse()
            .context(|| format!("{self}: `{key} {value}` in /status"))
    }

    /// A number from `/status`.
    pub fn counter(&self, key: &str) -> Result<u64> {
        self.status_field(key)
    }

    /// Asks this node to dial `other`.
    pub fn dial(&self, other: &Daemon) -> Result<()> {
        self.request(&format!("/connect {}", other.addr()), PATIENCE)?;
        Ok(())
    }

    /// Waits until `/status` shows `peers` = `expected`.
    pub fn wait_for_peers(&self, expected: usize) -> Result<()> {
        wait_for(&format!("{self} has {expected} peers"), || {
            let peers = self.counter("peers")?;
            Ok(if peers == expected as u64 {
                Probe::Done(())
            } else {
                Probe::NotYet(format!("{peers} peers"))
            })
        })
    }

    /// Resident memory, from VmRSS in /proc/PID/status.
    pub fn rss_kib(&self) -> Result<u64> {
        self.memory_kib("VmRSS")
    }

    /// The most resident memory it has had since it started, from VmHWM: unlike
    /// samples of VmRSS, it misses no peak however short.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        self.memory_kib("VmHWM")
    }

    /// A `FIELD: N kB` line of /proc/PID/status.
    fn memory_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.process.0.id());
        let status = fs::read_to_string(&path).context(|| format!("{self}: cannot read {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .ok_or_else(|| format!("{self}: no `{field}: N kB` line in {path}"))
    }

    /// Where the lines stopped (its `messages` and `duplicates`) and its last log
    /// warnings, to explain a loss.
    pub fn print_diagnosis(&self) {
        match self.status_within(DIAGNOSIS_PATIENCE) {
            Ok(status) => {
                let counter = |key: &str| status.get(key).map_or("?", String::as_str);
                println!(
                    "  {self}: messages {}, duplicates {}",
                    counter("messages"),
                    counter("duplicates")
                );
            }
            Err(err) => println!("  {err}"),
        }
        let warnings = self.last_warnings();
        if warnings.is_empty() {
            println!("  {self}: no warning in its log");
        }
        for warning in warnings {
            println!("  {self} log: {warning}");
        }
    }

    /// The CPU time its main thread has had so far, and the time it waited for a CPU
    /// while ready to run, from /proc/PID/schedstat (in ns, unlike the clock ticks of
    /// /proc/PID/stat). The main thread is the event loop: a node that dials no host
    /// names starts no other thread.
    pub fn cpu_use(&self) -> Result<CpuUse> {
        let path = format!("/proc/{}/schedstat", self.process.0.id());
        let schedstat =
            fs::read_to_string(&path).context(|| format!("{self}: cannot read {path}"))?;
        let mut fields = schedstat
            .split_whitespace()
            .map(|nanos| nanos.parse().map(Duration::from_nanos));
        match (fields.next(), fields.next()) {
            (Some(Ok(running)), Some(Ok(waiting))) => Ok(CpuUse { running, waiting }),
            _ => Err(format!("{self}: no CPU times in {path}: {schedstat:?}")),
        }
    }

    /// The last warnings and errors of the log.
    pub fn last_warnings(&self) -> Vec<String> {
        let log = fs::read_to_string(self.dir.path().join(Self::LOG)).unwrap_or_default();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("[WARN]") || line.contains("[ERROR]"))
            .collect();
        let shown = warnings.len().saturating_sub(WARNINGS_SHOWN);
        warnings[shown..]
            .iter()
            .map(|&line| line.to_owned())
            .collect()
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 0 {
            write!(f, "node {}", self.name)
        } else {
            write!(f, "node {} (127.0.0.1:{})", self.name, self.port)
        }
    }
}

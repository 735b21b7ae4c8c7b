//! The raw relay: this binary run again in a hidden mode that only copies bytes from
//! one socket to the next; a chain of such processes, and counting the lines in the
//! batch frames that come out of its end.
//!
//! It carries plain 4-byte-length frames, not the secure channel that links between
//! daemons run: nothing in the chain is a daemon, and it is the ceiling of moving the
//! bytes of the shape, before any protocol work; the cost of sealing and opening is part
//! of that protocol work (W1 pays it on every link, `cargo bench --bench core` measures
//! it per message).

use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Instant;

use p2pchat::wire::frame::Decoder;
use p2pchat::wire::peer::{Message, MAX_BODY_LEN};

use crate::daemon::Guarded;
use crate::error::{Context, Result};
use crate::network::LINE_LEN;
use crate::streams::{accept_within, localhost, read_failure, read_patience, ReadEnd, CHUNK};
use crate::wait::{PATIENCE, STALL};

/// The first argument that turns this binary into one raw relay.
pub const MODE: &str = "__raw-relay";

/// What one relay prints once it has accepted its upstream connection.
const RELAYING: &str = "relaying";

/// The hidden mode: listens on 127.0.0.1:0, connects to `downstream`, prints its port,
/// accepts one upstream connection, prints [`RELAYING`], then copies every byte from
/// upstream to downstream until upstream ends or stalls.
pub fn serve(downstream: &str) -> Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context(|| "raw relay: cannot listen on 127.0.0.1:0".to_owned())?;
    let port = listener
        .local_addr()
        .context(|| "raw relay: the listening address".to_owned())?
        .port();
    let target: SocketAddr = downstream
        .parse()
        .context(|| format!("raw relay {port}: downstream {downstream:?}"))?;
    let mut down = TcpStream::connect_timeout(&target, PATIENCE)
        .context(|| format!("raw relay {port}: cannot connect to {target}"))?;
    println!("{port}");
    let mut up = accept_within(&listener, PATIENCE)
        .context(|| format!("raw relay {port}: no upstream connection"))?;
    println!("{RELAYING}");
    relay_bytes(&mut up, &mut down).context(|| format!("raw relay {port} to {target}"))
}

/// Copies `up` to `down` in [`CHUNK`] reads until `up` ends, then ends `down`.
fn relay_bytes(up: &mut TcpStream, down: &mut TcpStream) -> io::Result<()> {
    up.set_read_timeout(Some(STALL))?;
    down.set_write_timeout(Some(STALL))?;
    up.set_nodelay(true)?;
    down.set_nodelay(true)?;
    let mut chunk = vec![0; CHUNK];
    loop {
        match up.read(&mut chunk) {
            Ok(0) => return down.shutdown(Shutdown::Write),
            Ok(n) => down.write_all(&chunk[..n])?,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// One raw relay process, between the port it prints and its downstream.
struct Relay {
    port: u16,
    stdout: BufReader<ChildStdout>,
    _process: Guarded,
}

impl Relay {
    /// Starts relay `position` (1 is the entry), which connects to `downstream` before
    /// printing its port; returns once it has.
    fn start(position: usize, downstream: SocketAddr) -> Result<Relay> {
        let exe =
            env::current_exe().context(|| "cannot find this bench's executable".to_owned())?;
        let mut child = Command::new(&exe)
            .args([MODE, &downstream.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context(|| format!("raw relay {position}: cannot start {}", exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut relay = Relay {
            port: 0,
            stdout: BufReader::new(stdout),
            _process: Guarded(child),
        };
        let line = relay.next_line(position)?;
        relay.port = line
            .parse()
            .context(|| format!("raw relay {position}: printed {line:?} instead of its port"))?;
        Ok(relay)
    }

    /// The next line the relay prints. It prints or exits within [`PATIENCE`]: every
    /// step before a line has that deadline.
    fn next_line(&mut self, position: usize) -> Result<String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context(|| format!("raw relay {position}: cannot read its output"))?;
        if line.is_empty() {
            return Err(format!(
                "raw relay {position} exited early (see its error above)"
            ));
        }
        Ok(line.trim_end().to_owned())
    }
}

/// [`LINE_LEN`] relays in a line, the last one connected to a sink.
pub struct RelayChain {
    /// The entry first.
    relays: Vec<Relay>,
}

impl RelayChain {
    /// Starts the relays from the last one (connected to `sink`) to the entry.
    pub fn start(sink: SocketAddr) -> Result<RelayChain> {
        let mut relays = Vec::with_capacity(LINE_LEN);
        let mut downstream = sink;
        for position in (1..=LINE_LEN).rev() {
            let relay = Relay::start(position, downstream)?;
            downstream = localhost(relay.port);
            relays.push(relay);
        }
        relays.reverse();
        Ok(RelayChain { relays })
    }

    /// Where the bench connects to feed the chain.
    pub fn entry(&self) -> SocketAddr {
        localhost(self.relays[0].port)
    }

    /// Waits until the entry relay has accepted the bench's connection, so that the
    /// clock starts with every relay copying.
    pub fn wait_until_relaying(&mut self) -> Result<()> {
        let line = self.relays[0].next_line(1)?;
        if line == RELAYING {
            Ok(())
        } else {
            Err(format!(
                "raw relay 1: printed {line:?} instead of {RELAYING:?}"
            ))
        }
    }
}

/// Where a batch message's body holds its line count: after the kind, the envelope
/// (hops, flags) and the record's author key, epoch and first sequence number
/// (src/wire/lines.rs). The counter reads it there rather than parse the batch: the
/// chain's end must do no protocol work either. [`LineCount::read`] checks it against a
/// parse of the first frame.
const COUNT_AT: usize = 1 + 2 + 32 + 8 + 8;

/// The line count of a batch body, read in place; 0 for a body too short to hold one.
fn lines_in(body: &[u8]) -> u64 {
    body.get(COUNT_AT..COUNT_AT + 2).map_or(0, |count| {
        u64::from(u16::from_be_bytes([count[0], count[1]]))
    })
}

/// Batch frames that came out of the raw chain, and the lines they carry.
pub struct LineCount {
    pub frames: u64,
    pub lines: u64,
    pub last_at: Option<Instant>,
    pub end: ReadEnd,
}

impl LineCount {
    /// Counts whole frames and their lines on `stream` until `expected` lines arrived,
    /// it ends, it stalls or `deadline` passes.
    pub fn read(mut stream: TcpStream, expected: u64, deadline: Instant) -> LineCount {
        let mut count = LineCount {
            frames: 0,
            lines: 0,
            last_at: None,
            end: ReadEnd::Complete,
        };
        count.end = count.read_from(&mut stream, expected, deadline);
        count
    }

    /// Counts the frames of `stream` into `self`; returns why it stopped.
    fn read_from(&mut self, stream: &mut TcpStream, expected: u64, deadline: Instant) -> ReadEnd {
        let mut decoder = Decoder::new(MAX_BODY_LEN);
        let mut chunk = vec![0; CHUNK];
        while self.lines < expected {
            let Some(patience) = read_patience(deadline) else {
                return ReadEnd::OutOfTime;
            };
            if let Err(err) = stream.set_read_timeout(Some(patience)) {
                return ReadEnd::Failed(format!("cannot set a read timeout: {err}"));
            }
            let mut input = match stream.read(&mut chunk) {
                Ok(0) => return ReadEnd::Closed,
                Ok(n) => &chunk[..n],
                Err(err) => match read_failure(&err, patience) {
                    Some(end) => return end,
                    None => continue,
                },
            };
            let before = self.lines;
            loop {
                match decoder.next(&mut input) {
                    Ok(Some(body)) => {
                        if self.frames == 0 {
                            if let Err(why) = check_count_at(body) {
                                return ReadEnd::Failed(why);
                            }
                        }
                        self.frames += 1;
                        self.lines += lines_in(body);
                    }
                    Ok(None) => break,
                    Err(err) => return ReadEnd::Failed(format!("bad framing: {err}")),
                }
            }
            if self.lines > before {
                self.last_at = Some(Instant::now());
            }
        }
        ReadEnd::Complete
    }
}

/// Whether [`COUNT_AT`] is where the crate puts a batch's line count.
fn check_count_at(body: &[u8]) -> Result<(), String> {
    match Message::parse(body) {
        Ok(Message::Lines(batch)) if u64::from(batch.record.count) == lines_in(body) => Ok(()),
        Ok(Message::Lines(_)) => Err(format!(
            "a batch's line count is not at byte {COUNT_AT} of its body"
        )),
        Ok(other) => Err(format!("a {} message instead of a batch", other.kind())),
        Err(err) => Err(format!("a bad batch: {err}")),
    }
}

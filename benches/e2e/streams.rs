//! Sockets read and written under the bench's deadlines: why a reader stopped, how
//! long its next read may wait, writes that give up, and TCP on 127.0.0.1.

use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result};
use crate::wait::{PATIENCE, POLL, RUN_LIMIT, STALL};

/// Bytes per read, for the bench's readers and the raw relays alike.
pub const CHUNK: usize = 256 * 1024;
/// Bytes per write of a payload; the run's limit is checked between writes.
const WRITE_PIECE: usize = 1024 * 1024;

/// Why a reader stopped.
pub enum ReadEnd {
    /// It had everything it expected.
    Complete,
    /// [`STALL`] passed without a byte.
    Stalled,
    /// The run's limit passed.
    OutOfTime,
    /// The other end closed the connection.
    Closed,
    Failed(String),
}

impl fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadEnd::Complete => f.write_str("it had everything"),
            ReadEnd::Stalled => write!(f, "nothing arrived for {STALL:?}"),
            ReadEnd::OutOfTime => write!(f, "the run's limit of {RUN_LIMIT:?} passed"),
            ReadEnd::Closed => f.write_str("the connection was closed"),
            ReadEnd::Failed(err) => write!(f, "read failed: {err}"),
        }
    }
}

/// How long the next read may wait: up to [`STALL`], never past `deadline`; `None`
/// once the deadline has passed.
pub fn read_patience(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| left.min(STALL))
}

/// Why a read that could wait `patience` failed with `err`; `None` to read on (it was
/// interrupted, or the deadline cut its wait short and the next [`read_patience`] says
/// so).
pub fn read_failure(err: &io::Error, patience: Duration) -> Option<ReadEnd> {
    match err.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut if patience < STALL => None,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Some(ReadEnd::Stalled),
        io::ErrorKind::ConnectionReset => Some(ReadEnd::Closed),
        _ => Some(ReadEnd::Failed(err.to_string())),
    }
}

/// Writes `payload` in pieces of [`WRITE_PIECE`] bytes while `reading` (the run's
/// readers have not all finished); says why it stopped early: the readers finished, no
/// byte was taken for [`STALL`], the connection failed, or `deadline` passed.
pub fn write_by(
    stream: &mut impl Write,
    payload: &[u8],
    deadline: Instant,
    reading: impl Fn() -> bool,
) -> Result<()> {
    let mut written = 0;
    for piece in payload.chunks(WRITE_PIECE) {
        let stopped = if Instant::now() >= deadline {
            format!("the run's limit of {RUN_LIMIT:?} passed")
        } else if !reading() {
            "its readers had stopped".to_owned()
        } else {
            match stream.write_all(piece) {
                Ok(()) => {
                    written += piece.len();
                    continue;
                }
                Err(err) => describe_write_error(&err),
            }
        };
        return Err(format!(
            "{stopped}, after {written} of {} bytes",
            payload.len()
        ));
    }
    Ok(())
}

/// Why a write failed: a timeout means the other end took nothing for [`STALL`].
pub fn describe_write_error(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("it took no byte for {STALL:?}")
        }
        _ => err.to_string(),
    }
}

/// The address of `port` on 127.0.0.1.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A connection to `addr` for writing: [`STALL`] write timeout, `TCP_NODELAY`.
pub fn connect_tcp(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE)
        .context(|| format!("cannot connect to {addr}"))?;
    stream
        .set_write_timeout(Some(STALL))
        .context(|| format!("{addr}: cannot set a write timeout"))?;
    stream
        .set_nodelay(true)
        .context(|| format!("{addr}: cannot set TCP_NODELAY"))?;
    Ok(stream)
}

/// Accepts one connection, waiting at most `patience`.
pub fn accept_within(listener: &TcpListener, patience: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + patience;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nothing connected within {patience:?}"),
                    ));
                }
                thread::sleep(POLL);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

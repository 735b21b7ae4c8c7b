//! A client on a daemon's control socket that reads the lines the node sends it (chat
//! lines, keeping the node's last event and error lines, or any line), and may write on
//! the same connection.

use std::io::{self, Read, Write};
use std::mem;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::error::{Context, Result};
use crate::streams::{read_failure, read_patience, ReadEnd, CHUNK};
use crate::wait::{PATIENCE, STALL};

/// Event lines (`*`, `!`) a control reader keeps, the most recent ones.
const EVENTS_KEPT: usize = 20;

/// A client attached to a daemon's control socket, reading the lines it is sent.
pub struct ControlReader {
    node: String,
    stream: UnixStream,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// When the bytes in `buf` were read.
    read_at: Instant,
    /// The most recent event and error lines, to explain a loss.
    events: Vec<String>,
}

impl ControlReader {
    /// Connects to `node` and waits until the node has answered it once: from then on,
    /// every chat line reaches it.
    pub fn attach(node: &Daemon) -> Result<ControlReader> {
        let mut stream = node.control()?;
        stream
            .write_all(b"/peers\n")
            .context(|| format!("{node}: cannot send /peers"))?;
        let mut reader = ControlReader {
            node: node.to_string(),
            stream,
            buf: vec![0; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            read_at: Instant::now(),
            events: Vec::new(),
        };
        reader.wait_for_peers_reply()?;
        Ok(reader)
    }

    /// Reads up to the `* N peers` line that ends a `/peers` reply.
    fn wait_for_peers_reply(&mut self) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Some(line) = self.next_line() {
                let line = &self.buf[line];
                if line.starts_with(b"* ") && line.ends_with(b" peers") {
                    return Ok(());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{}: no reply to /peers within {PATIENCE:?}",
                    self.node
                ));
            }
            match self.fill(left) {
                Ok(0) => return Err(format!("{}: closed the control connection", self.node)),
                Ok(_) => {}
                Err(err) => return Err(format!("{}: no reply to /peers: {err}", self.node)),
            }
        }
    }

    /// A second handle on the connection, to write lines or commands on while this
    /// reader reads; a write that takes nothing for [`STALL`] fails.
    pub fn writer(&self) -> Result<UnixStream> {
        let stream = self
            .stream
            .try_clone()
            .context(|| format!("{}: cannot clone a control connection", self.node))?;
        stream
            .set_write_timeout(Some(STALL))
            .context(|| format!("{}: cannot set a write timeout", self.node))?;
        Ok(stream)
    }

    /// Passes the text of every chat line to `on_chat`, with the time it was read, until
    /// `on_chat` says it has everything, the connection ends, [`STALL`] passes without a
    /// byte or `deadline` passes. Event and error lines are kept for
    /// [`Self::into_events`].
    pub fn read_chat(
        &mut self,
        deadline: Instant,
        mut on_chat: impl FnMut(&[u8], Instant) -> bool,
    ) -> ReadEnd {
        // Taken out for the read: the line callback cannot borrow the reader.
        let mut events = mem::take(&mut self.events);
        let end = self.read_lines(deadline, |line, read_at| match chat_text(line) {
            Some(text) => on_chat(text, read_at),
            None => {
                if events.len() == EVENTS_KEPT {
                    events.remove(0);
                }
                events.push(String::from_utf8_lossy(line).into_owned());
                false
            }
        });
        self.events = events;
        end
    }

    /// Passes every line, without its LF, to `on_line` with the time it was read, until
    /// `on_line` says it has what it wanted, the connection ends, [`STALL`] passes
    /// without a byte or `deadline` passes. The lines after the one that satisfied it
    /// are kept for the next call.
    pub fn read_lines(
        &mut self,
        deadline: Instant,
        mut on_line: impl FnMut(&[u8], Instant) -> bool,
    ) -> ReadEnd {
        loop {
            let read_at = self.read_at;
            while let Some(line) = self.next_line() {
                if on_line(&self.buf[line], read_at) {
                    return ReadEnd::Complete;
                }
            }
            let Some(patience) = read_patience(deadline) else {
                return ReadEnd::OutOfTime;
            };
            match self.fill(patience) {
                Ok(0) => return ReadEnd::Closed,
                Ok(_) => {}
                Err(err) => {
                    if let Some(end) = read_failure(&err, patience) {
                        return end;
                    }
                }
            }
        }
    }

    /// The last event and error lines its node sent it, oldest first.
    pub fn into_events(self) -> Vec<String> {
        self.events
    }

    /// Where the next complete line is in `buf`, without its LF; it counts as read.
    fn next_line(&mut self) -> Option<Range<usize>> {
        let unread = &self.buf[self.start..self.end];
        let len = unread.iter().position(|&b| b == b'\n')?;
        let line = self.start..self.start + len;
        self.start += len + 1;
        Some(line)
    }

    /// Moves the unread bytes to the front and reads more, waiting at most `patience`.
    fn fill(&mut self, patience: Duration) -> io::Result<usize> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            return Err(io::Error::other(format!(
                "a line longer than {CHUNK} bytes"
            )));
        }
        self.stream.set_read_timeout(Some(patience))?;
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        self.read_at = Instant::now();
        Ok(n)
    }
}

/// The text of a `<NICK> TEXT` line; `None` for any other line.
fn chat_text(line: &[u8]) -> Option<&[u8]> {
    if !line.starts_with(b"<") {
        return None;
    }
    let nick_end = line.iter().position(|&b| b == b'>')?;
    line.get(nick_end + 2..)
}

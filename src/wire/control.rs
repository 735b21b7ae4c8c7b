//! The control socket's text protocol: cutting a client's bytes into lines, parsing a
//! line into a command, and writing the `<nick>`, `*` and `!` lines a client reads.
//!
//! What a command does is the core's business; this module only knows the syntax.

use std::fmt::{self, Write as _};
use std::str;

use super::text::{is_unsafe_char, sanitize, MAX_TEXT_LEN};

/// Longest line a client may write, in bytes, not counting the LF or a CR before it.
pub const MAX_LINE_LEN: usize = MAX_TEXT_LEN;

/// Lines `/history` shows when it is not told how many.
pub const DEFAULT_HISTORY: usize = 20;

/// The reply to `/help`, one `*` line each.
pub const HELP: &[&str] = &[
    "commands:",
    "  TEXT               send TEXT to every node (write //TEXT to send a leading /)",
    "  /nick NAME         use NAME for the lines you send",
    "  /connect HOST:PORT link this node to another",
    "  /peers             list linked peers",
    "  /who               list the members of the mesh",
    "  /history [N]       the last N chat lines this node holds (default 20)",
    "  /status            node facts and counters",
    "  /help              this list",
    "  /quit              close this connection (the node keeps running)",
];

/// Why a client's line was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// More than [`MAX_LINE_LEN`] bytes before the LF; the rest of it is discarded.
    TooLong,
    /// Not UTF-8.
    NotUtf8,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => write!(f, "line too long (the limit is {MAX_LINE_LEN} bytes)"),
            LineError::NotUtf8 => f.write_str("line is not valid UTF-8"),
        }
    }
}

/// Bytes from a client, cut into lines. Holds at most one line's worth plus the bytes of
/// the read that brought them: an over-long line is discarded as it arrives.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes before this offset were handed out already.
    start: usize,
    /// Inside an over-long line: drop everything up to its LF.
    discarding: bool,
}

impl LineBuffer {
    /// Appends bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Ends an unterminated last line, for a client that closed without a final LF.
    pub fn finish(&mut self) {
        if self.buf.len() > self.start && !self.discarding {
            self.buf.push(b'\n');
        }
    }

    /// The next complete line without its LF or CR, or `None` until more bytes arrive.
    pub fn next_line(&mut self) -> Option<Result<&str, LineError>> {
        loop {
            let pending = &self.buf[self.start..];
            let Some(end) = pending.iter().position(|&b| b == b'\n') else {
                if self.discarding || pending.len() > MAX_LINE_LEN + 1 {
                    self.buf.clear();
                    self.start = 0;
                    let first_report = !self.discarding;
                    self.discarding = true;
                    return first_report.then_some(Err(LineError::TooLong));
                }
                return None;
            };
            let line_start = self.start;
            self.start += end + 1;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let mut line = &self.buf[line_start..line_start + end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.len() > MAX_LINE_LEN {
                return Some(Err(LineError::TooLong));
            }
            return Some(str::from_utf8(line).map_err(|_| LineError::NotUtf8));
        }
    }

    /// Bytes held: a partial line, or whole lines not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// What a client's line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// Broadcast this text; empty text is ignored by the caller.
    Say(&'a str),
    Nick(&'a str),
    Connect(&'a str),
    Peers,
    /// The members of the mesh.
    Who,
    /// The last this many lines of the backlog.
    History(usize),
    Status,
    Help,
    Quit,
}

/// Why a line is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError<'a> {
    /// `/name` that no command has.
    Unknown(&'a str),
    /// A known command with the wrong arguments; holds its usage.
    Usage(&'static str),
}

impl fmt::Display for CommandError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown(name) => write!(f, "unknown command /{name} (try /help)"),
            CommandError::Usage(usage) => write!(f, "usage: {usage}"),
        }
    }
}

/// Parses one line from a client.
pub fn parse_command(line: &str) -> Result<Command<'_>, CommandError<'_>> {
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Command::Say(line));
    };
    if command.starts_with('/') {
        return Ok(Command::Say(command));
    }
    let (name, arg) = match command.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (command, ""),
    };
    let one_word = |usage| match arg {
        "" => Err(CommandError::Usage(usage)),
        arg if arg.contains(char::is_whitespace) => Err(CommandError::Usage(usage)),
        arg => Ok(arg),
    };
    let no_args = |command, usage| match arg {
        "" => Ok(command),
        _ => Err(CommandError::Usage(usage)),
    };
    match name {
        "nick" => one_word("/nick NAME").map(Command::Nick),
        "connect" => one_word("/connect HOST:PORT").map(Command::Connect),
        "peers" => no_args(Command::Peers, "/peers"),
        "who" => no_args(Command::Who, "/who"),
        "history" => match arg {
            "" => Ok(Command::History(DEFAULT_HISTORY)),
            n => n
                .parse()
                .map(Command::History)
                .map_err(|_| CommandError::Usage("/history [N]")),
        },
        "status" => no_args(Command::Status, "/status"),
        "help" => no_args(Command::Help, "/help"),
        "quit" => no_args(Command::Quit, "/quit"),
        other => Err(CommandError::Unknown(other)),
    }
}

/// Whether `addr` has the `host:port` shape: a non-empty host and a port number. The
/// host is resolved only when it is dialled; a control character or a bidirectional
/// override is never part of a host name, and would reach the log as it is.
pub fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(is_unsafe_char) && port.parse::<u16>().is_ok()
    })
}

/// Appends `<nick> text` and a LF, with the text made safe for a terminal.
///
/// The nick needs no such care: every nick has passed the nick rule.
pub fn write_chat(out: &mut Vec<u8>, nick: &str, text: &str) {
    out.reserve(nick.len() + text.len() + 4);
    out.push(b'<');
    out.extend_from_slice(nick.as_bytes());
    out.extend_from_slice(b"> ");
    out.extend_from_slice(sanitize(text).as_bytes());
    out.push(b'\n');
}

/// Appends a `* ...` line: a reply or an event.
pub fn write_info(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    write_marked(out, '*', args);
}

/// Appends a `! ...` line: an error.
pub fn write_error(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    write_marked(out, '!', args);
}

fn write_marked(out: &mut Vec<u8>, mark: char, args: fmt::Arguments<'_>) {
    // Replies can quote what a client or a peer wrote: sanitise the whole line.
    let mut line = String::with_capacity(64);
    line.push(mark);
    line.push(' ');
    line.write_fmt(args)
        .expect("formatting into a String cannot fail");
    out.extend_from_slice(sanitize(&line).as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buffer: &mut LineBuffer) -> Vec<Result<String, LineError>> {
        std::iter::from_fn(|| buffer.next_line().map(|l| l.map(str::to_owned))).collect()
    }

    #[test]
    fn splits_on_lf_and_drops_one_cr() {
        let mut buffer = LineBuffer::default();
        buffer.push(b"one\ntwo\r\nthr");
        assert_eq!(lines(&mut buffer), [Ok("one".into()), Ok("two".into())]);
        assert_eq!(buffer.buffered(), 3);
        buffer.push(b"ee\r\r\n\n");
        assert_eq!(lines(&mut buffer), [Ok("three\r".into()), Ok("".into())]);
        assert_eq!(buffer.buffered(), 0);
    }

    #[test]
    fn finish_ends_an_unterminated_line() {
        let mut buffer = LineBuffer::default();
        buffer.push(b"last");
        assert_eq!(lines(&mut buffer), []);
        buffer.finish();
        assert_eq!(lines(&mut buffer), [Ok("last".into())]);
        buffer.finish();
        assert_eq!(lines(&mut buffer), []);
    }

    #[test]
    fn longest_line_passes_with_or_without_cr() {
        let line = "x".repeat(MAX_LINE_LEN);
        let mut buffer = LineBuffer::default();
        buffer.push(format!("{line}\n{line}\r\n").as_bytes());
        assert_eq!(lines(&mut buffer), [Ok(line.clone()), Ok(line)]);
    }

    #[test]
    fn over_long_line_is_reported_once_and_skipped() {
        let mut buffer = LineBuffer::default();
        buffer.push(&[b'x'; MAX_LINE_LEN + 2]);
        assert_eq!(lines(&mut buffer), [Err(LineError::TooLong)]);
        assert_eq!(buffer.buffered(), 0, "the over-long line is not kept");
        buffer.push(&[b'x'; 100_000]);
        assert_eq!(lines(&mut buffer), []);
        assert_eq!(buffer.buffered(), 0);
        buffer.push(b"tail\nnext\n");
        assert_eq!(lines(&mut buffer), [Ok("next".into())]);
    }

    #[test]
    fn over_long_line_in_one_read_is_reported() {
        let mut buffer = LineBuffer::default();
        let mut bytes = vec![b'x'; MAX_LINE_LEN + 1];
        bytes.extend_from_slice(b"\nok\n");
        buffer.push(&bytes);
        assert_eq!(
            lines(&mut buffer),
            [Err(LineError::TooLong), Ok("ok".into())]
        );
    }

    #[test]
    fn invalid_utf8_is_reported_and_the_next_line_survives() {
        let mut buffer = LineBuffer::default();
        buffer.push(b"caf\xe9\nfine\n");
        assert_eq!(
            lines(&mut buffer),
            [Err(LineError::NotUtf8), Ok("fine".into())]
        );
    }

    #[test]
    fn parses_commands() {
        use Command::*;
        assert_eq!(parse_command("hello"), Ok(Say("hello")));
        assert_eq!(parse_command(""), Ok(Say("")));
        assert_eq!(parse_command("//etc/passwd"), Ok(Say("/etc/passwd")));
        assert_eq!(parse_command("/nick bob"), Ok(Nick("bob")));
        assert_eq!(parse_command("/nick   bob  "), Ok(Nick("bob")));
        assert_eq!(parse_command("/connect h:1"), Ok(Connect("h:1")));
        assert_eq!(parse_command("/peers"), Ok(Peers));
        assert_eq!(parse_command("/status"), Ok(Status));
        assert_eq!(parse_command("/history"), Ok(History(DEFAULT_HISTORY)));
        assert_eq!(parse_command("/history 5"), Ok(History(5)));
        assert_eq!(parse_command("/help"), Ok(Help));
        assert_eq!(parse_command("/quit"), Ok(Quit));
    }

    #[test]
    fn command_errors() {
        use CommandError::*;
        assert_eq!(parse_command("/frob x"), Err(Unknown("frob")));
        assert_eq!(parse_command("/"), Err(Unknown("")));
        assert_eq!(parse_command("/nick"), Err(Usage("/nick NAME")));
        assert_eq!(parse_command("/nick a b"), Err(Usage("/nick NAME")));
        assert_eq!(parse_command("/connect"), Err(Usage("/connect HOST:PORT")));
        assert_eq!(parse_command("/peers now"), Err(Usage("/peers")));
        assert_eq!(parse_command("/history x"), Err(Usage("/history [N]")));
        assert_eq!(parse_command("/history -1"), Err(Usage("/history [N]")));
        assert_eq!(
            parse_command("/frob").unwrap_err().to_string(),
            "unknown command /frob (try /help)"
        );
    }

    #[test]
    fn host_port_shape() {
        assert!(is_host_port("localhost:7654"));
        assert!(is_host_port("[::1]:0"));
        assert!(!is_host_port("localhost"));
        assert!(!is_host_port(":7654"));
        assert!(!is_host_port("h:65536"));
        assert!(!is_host_port("h:port"));
        assert!(!is_host_port("\0:7"), "a NUL, as a fuzzer found");
        assert!(!is_host_port("evil\x1b[2J:7"));
        assert!(!is_host_port("a\u{202e}b:7"));
    }

    #[test]
    fn writes_marked_lines() {
        let mut out = Vec::new();
        write_chat(&mut out, "ann", "hi\u{1b}[31m");
        write_info(&mut out, format_args!("{} peers", 2));
        write_error(&mut out, format_args!("bad {}", "x\ny"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<ann> hi\u{FFFD}[31m\n* 2 peers\n! bad x\u{FFFD}y\n"
        );
    }
}

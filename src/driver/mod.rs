//! The shell around the core: one thread, one `mio::Poll`, one slab holding every
//! socket (both listeners, every peer, every control client).
//!
//! It moves bytes between sockets and the [`Node`] and carries out the node's outputs;
//! it knows no chat. It is the only code that touches mio, sockets or the clock, and it
//! never blocks on a socket: every stream is non-blocking and edge-triggered, read and
//! written until `WouldBlock`. Host names to dial are resolved by
//! a helper thread, `resolver`, which touches no socket of the loop.

mod listen;
mod resolver;
mod socket;
mod tokens;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::proto::{Accepted, ConnId, Node, Output};
use crate::wire::text::describe_io_error;

pub use listen::{Listeners, SocketFile};
use resolver::Resolver;
use socket::{Socket, Stream, StreamEntry};

/// The one read buffer of the loop; a read takes at most this much. As large as the
/// budget of a turn, so that a full Noise message (64 KiB) mostly arrives whole and is
/// opened where it lies, instead of being copied aside until its end arrives.
const SCRATCH_LEN: usize = READ_BUDGET;

/// Bytes taken from one socket per turn before the others get theirs, so that one
/// flooding peer cannot starve the rest.
const READ_BUDGET: usize = 256 * 1024;

/// How soon a listener is tried again after an accept failed for want of resources.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Readiness events taken per poll.
const EVENT_CAPACITY: usize = 1024;

/// Random bytes from the kernel, for keys and seeds.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|err| io::Error::new(err.kind(), format!("cannot read /dev/urandom: {err}")))?;
    Ok(bytes)
}

/// The event loop and everything it owns.
pub struct Driver {
    poll: Poll,
    sockets: Slab<Socket>,
    /// Where each connection of the node lives in `sockets`.
    tokens: HashMap<ConnId, Token>,
    node: Node,
    signals: Signals,
    scratch: Box<[u8]>,
    /// Streams that stopped reading before `WouldBlock`: come back to them next turn.
    unread: Vec<Token>,
    /// Streams with bytes to write this turn.
    dirty: Vec<Token>,
    /// Streams whose writing half is shut down once this turn's writes are done.
    finishing: Vec<Token>,
    /// Started with the first name to resolve: a process with one thread only keeps
    /// malloc on its lock-free path, which the relay path feels.
    resolver: Option<Resolver>,
    /// Dials waiting for the resolver.
    resolving: HashSet<ConnId>,
    /// Listeners whose last accept failed for want of resources: try again soon.
    accept_retry: Vec<Token>,
    /// Accepting has failed since the last success (the failure was logged).
    accept_failing: bool,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("sockets", &self.sockets.len())
            .field("node", &self.node.id())
            .field("unread", &self.unread.len())
            .field("dirty", &self.dirty.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Registers the listeners and the stop signals, and carries out the node's first
    /// outputs (its dials).
    pub fn new(node: Node, listeners: Listeners) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut sockets = Slab::new();
        if let Some(mut listener) = listeners.peer {
            let entry = sockets.vacant_entry();
            poll.registry()
                .register(&mut listener, Token(entry.key()), Interest::READABLE)?;
            entry.insert(Socket::PeerListener(listener));
        }
        if let Some(mut listener) = listeners.irc {
            let entry = sockets.vacant_entry();
            poll.registry()
                .register(&mut listener, Token(entry.key()), Interest::READABLE)?;
            entry.insert(Socket::IrcListener(listener));
        }
        let mut control = listeners.control;
        let entry = sockets.vacant_entry();
        poll.registry()
            .register(&mut control, Token(entry.key()), Interest::READABLE)?;
        entry.insert(Socket::ControlListener(control));

        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, tokens::SIGNALS, Interest::READABLE)?;

        let mut driver = Driver {
            poll,
            sockets,
            tokens: HashMap::new(),
            node,
            signals,
            scratch: vec![0; SCRATCH_LEN].into_boxed_slice(),
            unread: Vec::new(),
            dirty: Vec::new(),
            finishing: Vec::new(),
            resolver: None,
            resolving: HashSet::new(),
            accept_retry: Vec::new(),
            accept_failing: false,
        };
        driver.carry_out(Instant::now());
        Ok(driver)
    }

    /// Runs until SIGTERM or SIGINT; returns the signal's name.
    pub fn run(mut self) -> io::Result<&'static str> {
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let now = Instant::now();
            let carried = std::mem::take(&mut self.unread);
            for event in &events {
                let token = event.token();
                if token == tokens::RESOLVER {
                    self.take_answers(now);
                    continue;
                }
                if token == tokens::SIGNALS {
                    if let Some(signal) = self.stop_signal() {
                        // The leave is written if the sockets take it at once: a stop
                        // waits for no peer.
                        self.node.handle_stop(now);
                        self.carry_out(now);
                        self.write_dirty(now);
                        return Ok(signal);
                    }
                    continue;
                }
                self.on_event(
                    now,
                    token,
                    event.is_readable() || event.is_read_closed() || event.is_error(),
                    event.is_writable(),
                );
            }
            for token in std::mem::take(&mut self.accept_retry) {
                self.accept(now, token);
            }
            for token in carried {
                // Off the list now: clear the mark, so that a read that stops early
                // again lists the stream again.
                if let Some(stream) = self.stream_mut(token).filter(|s| s.unread) {
                    stream.unread = false;
                    self.read(now, token);
                }
            }
            if self.node.poll_timeout().is_some_and(|at| at <= now) {
                self.node.handle_timeout(now);
                self.carry_out(now);
            }
            self.write_dirty(now);
        }
    }

    /// How long the next poll may wait: not at all while a stream that the node would
    /// read from has bytes left, else until the node's next deadline.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let waiting = self.unread.iter().any(|&token| {
            self.stream(token)
                .is_some_and(|s| s.unread && self.node.accepts_input(s.conn))
        });
        if waiting {
            return Some(Duration::ZERO);
        }
        let node = self
            .node
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now));
        if self.accept_retry.is_empty() {
            node
        } else {
            Some(node.map_or(ACCEPT_RETRY, |wait| wait.min(ACCEPT_RETRY)))
        }
    }

    fn stop_signal(&mut self) -> Option<&'static str> {
        self.signals.pending().find_map(|signal| match signal {
            SIGTERM => Some("SIGTERM"),
            SIGINT => Some("SIGINT"),
            _ => None,
        })
    }

    fn stream(&self, token: Token) -> Option<&StreamEntry> {
        match self.sockets.get(token.0) {
            Some(Socket::Stream(stream)) => Some(stream),
            _ => None,
        }
    }

    fn stream_mut(&mut self, token: Token) -> Option<&mut StreamEntry> {
        stream_in(&mut self.sockets, token)
    }

    /// Readiness is a hint: a vacant token (a socket closed earlier this turn) is
    /// ignored, and every operation runs until `WouldBlock` anyway.
    fn on_event(&mut self, now: Instant, token: Token, readable: bool, writable: bool) {
        match self.sockets.get_mut(token.0) {
            None => {}
            Some(Socket::PeerListener(_) | Socket::ControlListener(_) | Socket::IrcListener(_)) => {
                self.accept(now, token)
            }
            Some(Socket::Stream(stream)) => {
                if stream.connecting {
                    self.finish_dial(now, token);
                }
                let Some(stream) = self.stream_mut(token) else {
                    return;
                };
                if writable && !stream.connecting {
                    stream.writable = true;
                    self.mark_dirty(token);
                }
                if readable {
                    self.read(now, token);
                }
            }
        }
    }

    /// Accepts until `WouldBlock`. When the process is out of descriptors (or the
    /// kernel out of buffers) the backlog is left for a retry shortly: no new event
    /// would come for the connections already waiting in it.
    fn accept(&mut self, now: Instant, token: Token) {
        loop {
            let accepted = match self.sockets.get(token.0) {
                Some(Socket::PeerListener(listener)) => listener.accept().map(|(stream, addr)| {
                    // Frames are batched by the queue; Nagle would only add latency.
                    if let Err(err) = stream.set_nodelay(true) {
                        debug!("cannot set TCP_NODELAY for {addr}: {err}");
                    }
                    (Accepted::Peer(addr), Stream::Tcp(stream))
                }),
                Some(Socket::IrcListener(listener)) => listener.accept().map(|(stream, addr)| {
                    if let Err(err) = stream.set_nodelay(true) {
                        debug!("cannot set TCP_NODELAY for IRC client {addr}: {err}");
                    }
                    (Accepted::Irc(addr), Stream::Tcp(stream))
                }),
                Some(Socket::ControlListener(listener)) => listener
                    .accept()
                    .map(|(stream, _)| (Accepted::Client, Stream::Unix(stream))),
                _ => return,
            };
            match accepted {
                Ok((kind, stream)) => {
                    self.accept_failing = false;
                    let conn = self.node.handle_accepted(now, kind);
                    self.add_stream(now, StreamEntry::accepted(conn, stream));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if is_transient_accept_error(&err) => continue,
                Err(err) => {
                    // Said once per spell of failures, not at every retry.
                    if !self.accept_failing {
                        warn!(
                            "cannot accept a connection, retrying every {} ms: {}",
                            ACCEPT_RETRY.as_millis(),
                            describe_io_error(&err)
                        );
                        self.accept_failing = true;
                    }
                    if !self.accept_retry.contains(&token) {
                        self.accept_retry.push(token);
                    }
                    return;
                }
            }
        }
    }

    /// Registers a stream for `conn` and carries out what the node asked meanwhile.
    fn add_stream(&mut self, now: Instant, stream: StreamEntry) {
        let conn = stream.conn;
        let entry = self.sockets.vacant_entry();
        let token = Token(entry.key());
        let stream = entry.insert(Socket::Stream(stream));
        let Socket::Stream(stream) = stream else {
            unreachable!("just inserted a stream");
        };
        let registered = self.poll.registry().register(
            &mut stream.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        );
        match registered {
            Ok(()) => {
                self.tokens.insert(conn, token);
            }
            Err(err) => {
                self.sockets.remove(token.0);
                self.node.handle_error(now, conn, &err);
            }
        }
        self.carry_out(now);
    }

    /// Dials `target`: an IP address at once, a name once the resolver thread answers.
    /// Every address a name resolves to is tried in turn, as `nc` and `ssh` do.
    fn dial(&mut self, now: Instant, conn: ConnId, target: &str) {
        match target.parse::<SocketAddr>() {
            Ok(addr) => self.connect(now, conn, Ok(vec![addr])),
            Err(_) => {
                if self.resolver.is_none() {
                    match Resolver::start(self.poll.registry(), tokens::RESOLVER) {
                        Ok(resolver) => self.resolver = Some(resolver),
                        Err(err) => return self.node.handle_error(now, conn, &err),
                    }
                }
                let resolver = self.resolver.as_ref().expect("started above");
                resolver.ask(conn, target);
                self.resolving.insert(conn);
            }
        }
    }

    /// Starts the dial of `conn` to the first of `addrs` that takes a connect call.
    fn connect(&mut self, now: Instant, conn: ConnId, addrs: io::Result<Vec<SocketAddr>>) {
        let dialled = addrs.and_then(|mut addrs| {
            let stream = connect_next(&mut addrs)?;
            Ok((stream, addrs))
        });
        match dialled {
            Ok((stream, fallback)) => {
                self.add_stream(now, StreamEntry::dialling(conn, stream, fallback));
            }
            Err(err) => self.node.handle_error(now, conn, &err),
        }
    }

    /// Replaces a failed dial's socket with one to the next address, keeping the token;
    /// returns the last error once no address is left.
    fn redial(&mut self, token: Token, err: io::Error) -> Result<(), io::Error> {
        let Some(entry) = stream_in(&mut self.sockets, token) else {
            return Err(err);
        };
        if entry.fallback.is_empty() {
            return Err(err);
        }
        let mut stream = Stream::Tcp(connect_next(&mut entry.fallback)?);
        let registry = self.poll.registry();
        registry.deregister(&mut entry.stream)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        entry.stream = stream;
        Ok(())
    }

    /// Checks a dial under way, on any event for it, as mio's documentation asks: an
    /// error means it failed, a peer address that it connected.
    fn finish_dial(&mut self, now: Instant, token: Token) {
        let Some(stream) = self.stream_mut(token) else {
            return;
        };
        let conn = stream.conn;
        let failure = match stream.stream.take_error() {
            Ok(Some(err)) | Err(err) => Some(err),
            Ok(None) => match stream.stream.tcp_peer_addr() {
                Ok(addr) => {
                    stream.connecting = false;
                    stream.writable = true;
                    if let Stream::Tcp(tcp) = &stream.stream {
                        if let Err(err) = tcp.set_nodelay(true) {
                            debug!("cannot set TCP_NODELAY for {addr}: {err}");
                        }
                    }
                    self.node.handle_connected(now, conn, addr);
                    None
                }
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return,
                Err(err) => Some(err),
            },
        };
        if let Some(err) = failure {
            match self.redial(token, err) {
                Ok(()) => return,
                Err(err) => {
                    if let Some(stream) = self.stream_mut(token) {
                        stream.read_closed = true;
                    }
                    self.node.handle_error(now, conn, &err);
                }
            }
        }
        self.carry_out(now);
    }

    /// Reads until `WouldBlock`, the end of the stream, the turn's budget, or the node
    /// refusing input; in the last two cases the stream is remembered as unread.
    fn read(&mut self, now: Instant, token: Token) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(stream) = stream_in(&mut self.sockets, token) else {
                return;
            };
            if stream.read_closed || stream.connecting {
                return;
            }
            let conn = stream.conn;
            if budget == 0 || !self.node.accepts_input(conn) {
                if !stream.unread {
                    stream.unread = true;
                    self.unread.push(token);
                }
                return;
            }
            match stream.stream.read(&mut self.scratch) {
                Ok(0) => {
                    stream.read_closed = true;
                    stream.unread = false;
                    self.node.handle_eof(now, conn);
                    self.carry_out(now);
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.node.handle_recv(now, conn, &self.scratch[..n]);
                    self.carry_out(now);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    stream.unread = false;
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    stream.read_closed = true;
                    stream.unread = false;
                    self.node.handle_error(now, conn, &err);
                    self.carry_out(now);
                    return;
                }
            }
        }
    }

    fn mark_dirty(&mut self, token: Token) {
        if let Some(stream) = self.stream_mut(token) {
            if !stream.dirty {
                stream.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    /// Writes every stream with queued bytes, batching all that the turn queued into as
    /// few writes as the kernel allows. Writing can free a paused client, whose lines
    /// then queue more; so this runs until nothing is left to write.
    fn write_dirty(&mut self, now: Instant) {
        while let Some(token) = self.dirty.pop() {
            let Some(stream) = self.stream_mut(token) else {
                continue;
            };
            if !stream.dirty {
                continue;
            }
            stream.dirty = false;
            self.write(now, token);
        }
        // Last, so that no shutdown overtakes what the turn wrote on other streams.
        for token in std::mem::take(&mut self.finishing) {
            if let Some(stream) = self.stream_mut(token) {
                if let Err(err) = stream.stream.shutdown_write() {
                    debug!(
                        "cannot shut down the writing half of {}: {err}",
                        stream.conn
                    );
                }
            }
        }
    }

    fn write(&mut self, now: Instant, token: Token) {
        loop {
            let Some(stream) = stream_in(&mut self.sockets, token) else {
                return;
            };
            if !stream.writable {
                return;
            }
            let conn = stream.conn;
            let queued = self.node.send_queue(conn);
            if queued.is_empty() {
                if std::mem::take(&mut stream.finish) {
                    self.finishing.push(token);
                }
                return;
            }
            match stream.stream.write(queued) {
                Ok(0) => {
                    let err = io::Error::from(io::ErrorKind::WriteZero);
                    self.node.handle_error(now, conn, &err);
                    self.carry_out(now);
                    return;
                }
                Ok(n) => {
                    self.node.handle_sent(now, conn, n);
                    self.carry_out(now);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    stream.writable = false;
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.node.handle_error(now, conn, &err);
                    self.carry_out(now);
                    return;
                }
            }
        }
    }

    /// Carries out everything the node has asked for.
    fn carry_out(&mut self, now: Instant) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Flush(conn) => {
                    if let Some(&token) = self.tokens.get(&conn) {
                        self.mark_dirty(token);
                    }
                }
                Output::Close(conn) => self.close(conn),
                // In the flush order, so that a shutdown never overtakes bytes the
                // node queued before it on another link.
                Output::Finish(conn) => {
                    if let Some(&token) = self.tokens.get(&conn) {
                        if let Some(stream) = self.stream_mut(token) {
                            stream.finish = true;
                        }
                        self.mark_dirty(token);
                    }
                }
                Output::Dial { conn, target } => self.dial(now, conn, &target),
            }
        }
    }

    /// Dials the names the resolver has answered for, unless the node gave up on them
    /// meanwhile (the connect timeout).
    fn take_answers(&mut self, now: Instant) {
        let Some(resolver) = &self.resolver else {
            return;
        };
        let answers: Vec<_> = resolver.answers().collect();
        for (conn, addrs) in answers {
            if self.resolving.remove(&conn) {
                self.connect(now, conn, addrs);
                self.carry_out(now);
            }
        }
    }

    fn close(&mut self, conn: ConnId) {
        self.resolving.remove(&conn);
        let Some(token) = self.tokens.remove(&conn) else {
            return;
        };
        if let Socket::Stream(mut stream) = self.sockets.remove(token.0) {
            if let Err(err) = self.poll.registry().deregister(&mut stream.stream) {
                debug!("cannot deregister {conn}: {err}");
            }
        }
    }
}

/// The stream at `token`, borrowing only the slab so that the node stays usable.
fn stream_in(sockets: &mut Slab<Socket>, token: Token) -> Option<&mut StreamEntry> {
    match sockets.get_mut(token.0) {
        Some(Socket::Stream(stream)) => Some(stream),
        _ => None,
    }
}

/// Starts a non-blocking connect to the first of `addrs` that takes one, removing the
/// addresses it used; the last error if none does.
fn connect_next(addrs: &mut Vec<SocketAddr>) -> io::Result<TcpStream> {
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address left to try");
    while !addrs.is_empty() {
        match TcpStream::connect(addrs.remove(0)) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_err = err,
        }
    }
    Err(last_err)
}

/// Accept errors about one connection that died in the backlog: go on accepting.
fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

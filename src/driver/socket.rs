//! The sockets the loop owns, behind one type each for listeners and streams, so that
//! the loop reads, writes and registers without caring which kind it holds.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::proto::ConnId;

/// A connected byte stream: a peer link or a control client.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// The remote address of a TCP stream; `NotConnected` while a dial is under way.
    pub fn tcp_peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Tcp(stream) => stream.peer_addr(),
            Stream::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a control client has no TCP address",
            )),
        }
    }

    /// Shuts down the writing half: the other end reads an end of stream.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Stream::Unix(stream) => stream.shutdown(Shutdown::Write),
        }
    }

    /// A pending error on the socket, such as a refused dial.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(stream) => stream.take_error(),
            Stream::Unix(stream) => stream.take_error(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.register(registry, token, interests),
            Stream::Unix(stream) => stream.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.reregister(registry, token, interests),
            Stream::Unix(stream) => stream.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.deregister(registry),
            Stream::Unix(stream) => stream.deregister(registry),
        }
    }
}

/// A stream and what the loop knows of it.
#[derive(Debug)]
pub struct StreamEntry {
    pub conn: ConnId,
    pub stream: Stream,
    /// A dial under way: not yet connected.
    pub connecting: bool,
    /// The last write did not hit `WouldBlock`, so writing may go on. Edge-triggered
    /// readiness says so only once.
    pub writable: bool,
    /// A read returned 0 bytes or failed: read no more.
    pub read_closed: bool,
    /// Listed in the loop's flush list.
    pub dirty: bool,
    /// Reading stopped before `WouldBlock`, so bytes may wait with no event to come.
    pub unread: bool,
    /// For a dial: further addresses of its target, tried in order if this one fails.
    pub fallback: Vec<SocketAddr>,
    /// The node asked to shut down the writing half: done once everything queued
    /// before is written, here and on the streams flushed before it.
    pub finish: bool,
}

impl StreamEntry {
    /// A connection taken from a listener: connected, and writable until told otherwise.
    pub fn accepted(conn: ConnId, stream: Stream) -> Self {
        StreamEntry {
            conn,
            stream,
            connecting: false,
            writable: true,
            read_closed: false,
            dirty: false,
            unread: false,
            fallback: Vec::new(),
            finish: false,
        }
    }

    /// A dial under way, with the addresses to try next if it fails.
    pub fn dialling(conn: ConnId, stream: TcpStream, fallback: Vec<SocketAddr>) -> Self {
        StreamEntry {
            connecting: true,
            writable: false,
            fallback,
            ..StreamEntry::accepted(conn, Stream::Tcp(stream))
        }
    }
}

/// Everything in the loop's slab.
#[derive(Debug)]
pub enum Socket {
    PeerListener(TcpListener),
    ControlListener(UnixListener),
    IrcListener(TcpListener),
    Stream(StreamEntry),
}

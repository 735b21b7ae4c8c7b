//! Reading many fake peer links at once and tallying the chat lines each is sent in
//! signed batches, opened by each link's end of its secure channel. A fake peer must
//! read: a node cuts a peer whose send queue it cannot empty, as it should.
//! A thread per link would be a thousand threads woken per line, so each of a few threads
//! reads its share of the links through one mio poll.

use std::io::{self, Read};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use p2pchat::proto::secure::{Channel, Credentials};
use p2pchat::wire::frame::Decoder;
use p2pchat::wire::peer::{Message, MAX_BODY_LEN};

use crate::error::{Context, Result};
use crate::peer_links::PeerLink;
use crate::streams::{ReadEnd, CHUNK};
use crate::tally::{Reading, Tally};
use crate::wait::{join, STALL};

/// Threads that share the links: two, for the machine's two cores; more would only take
/// turns with the daemon.
const READER_THREADS: usize = 2;
/// Readiness events taken per poll.
const EVENTS: usize = 1024;

/// Threads reading peer links, each into its own tally.
pub struct LinkReaders {
    threads: Vec<JoinHandle<Result<Vec<Reading>>>>,
}

impl LinkReaders {
    /// Reads every link into its tally until every tally is complete, no link has sent a
    /// byte for [`STALL`], or `deadline` passes. The links become non-blocking: a clone
    /// taken to write on becomes so too.
    pub fn start(links: Vec<(PeerLink, Tally)>, deadline: Instant) -> LinkReaders {
        let share = links.len().div_ceil(READER_THREADS).max(1);
        let mut links = links.into_iter().peekable();
        let mut threads = Vec::new();
        while links.peek().is_some() {
            let part: Vec<_> = links.by_ref().take(share).collect();
            threads.push(thread::spawn(move || read_links(part, deadline)));
        }
        LinkReaders { threads }
    }

    /// What each link got, in the order the links were given.
    pub fn join(self) -> Result<Vec<Reading>> {
        let mut readings = Vec::new();
        for thread in self.threads {
            readings.extend(join(thread, "a reader of peer links")??);
        }
        Ok(readings)
    }
}

/// One link being read.
struct Link {
    stream: mio::net::TcpStream,
    channel: Channel,
    creds: Credentials,
    /// What the channel opened of the last read, reused.
    plain: Vec<u8>,
    decoder: Decoder,
    tally: Tally,
    /// Set once the link has all it expects, or stopped short.
    end: Option<ReadEnd>,
    /// The node closed it, or reading it failed: it is read no more.
    gone: bool,
}

/// The body of one reader thread.
fn read_links(links: Vec<(PeerLink, Tally)>, deadline: Instant) -> Result<Vec<Reading>> {
    let mut poll = Poll::new().context(|| "cannot create a poll".to_owned())?;
    let mut links = links
        .into_iter()
        .enumerate()
        .map(|(index, (link, tally))| {
            let PeerLink {
                stream,
                channel,
                creds,
                plain,
                ..
            } = link;
            stream
                .set_nonblocking(true)
                .context(|| "cannot make a peer link non-blocking".to_owned())?;
            let mut stream = mio::net::TcpStream::from_std(stream);
            poll.registry()
                .register(&mut stream, Token(index), Interest::READABLE)
                .context(|| "cannot register a peer link".to_owned())?;
            let mut link = Link {
                stream,
                channel,
                creds,
                plain: Vec::new(),
                decoder: Decoder::new(MAX_BODY_LEN),
                tally,
                end: None,
                gone: false,
            };
            // What came after the node's hello, read during the handshake.
            link.frames(&plain)?;
            Ok(link)
        })
        .collect::<Result<Vec<Link>>>()?;
    let mut events = Events::with_capacity(EVENTS);
    let mut chunk = vec![0; CHUNK];
    let mut last_byte = Instant::now();
    // Readiness is edge-triggered: bytes that came before a link was registered raise no
    // event, so every link is read once first.
    for link in &mut links {
        if link.read_all(&mut chunk) {
            last_byte = Instant::now();
        }
    }
    while links.iter().any(|link| link.end.is_none()) {
        let now = Instant::now();
        let stalled = now.duration_since(last_byte) >= STALL;
        if stalled || now >= deadline {
            for link in links.iter_mut().filter(|link| link.end.is_none()) {
                link.end = Some(if stalled {
                    ReadEnd::Stalled
                } else {
                    ReadEnd::OutOfTime
                });
            }
            break;
        }
        let wait = (last_byte + STALL).min(deadline).duration_since(now);
        match poll.poll(&mut events, Some(wait.max(Duration::from_millis(1)))) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("polling peer links: {err}")),
        }
        for event in &events {
            if links[event.token().0].read_all(&mut chunk) {
                last_byte = Instant::now();
            }
        }
    }
    Ok(links
        .into_iter()
        .map(|link| {
            let end = link.end.unwrap_or(ReadEnd::Complete);
            Reading::new(link.tally, end, Vec::new())
        })
        .collect())
}

impl Link {
    /// Reads until the socket is empty, tallying every chat line; says whether any byte
    /// came. A link with all it expects is still read, so that the node can write to it
    /// and a late copy counts as a duplicate.
    fn read_all(&mut self, chunk: &mut [u8]) -> bool {
        let mut got_bytes = false;
        while !self.gone {
            let n = match self.stream.read(chunk) {
                Ok(0) => {
                    self.stop(ReadEnd::Closed);
                    break;
                }
                Ok(n) => n,
                Err(err) => match err.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::ConnectionReset => {
                        self.stop(ReadEnd::Closed);
                        break;
                    }
                    _ => {
                        self.stop(ReadEnd::Failed(err.to_string()));
                        break;
                    }
                },
            };
            got_bytes = true;
            if let Err(why) = self.take(&chunk[..n]) {
                self.stop(ReadEnd::Failed(why));
            }
        }
        got_bytes
    }

    /// Opens `bytes` and tallies the chat lines in them.
    fn take(&mut self, bytes: &[u8]) -> Result<()> {
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let mut reply = Vec::new();
        let opened = self
            .channel
            .recv(&self.creds, bytes, &mut reply, &mut plain);
        let result = opened
            .map_err(|err| format!("secure channel: {err}"))
            .and_then(|_| self.frames(&plain));
        self.plain = plain;
        result
    }

    /// Tallies the lines of every batch in plaintext `bytes`; other messages (pings,
    /// summaries of what the node holds) are dropped. The signatures are the node's
    /// business: a reader only counts.
    fn frames(&mut self, mut bytes: &[u8]) -> Result<()> {
        let at = Instant::now();
        while let Some(body) = self
            .decoder
            .next(&mut bytes)
            .map_err(|err| format!("bad framing: {err}"))?
        {
            match Message::parse(body) {
                Ok(Message::Lines(batch)) => {
                    for line in batch.record.lines() {
                        self.tally.record(line.text.as_bytes(), at);
                    }
                }
                Ok(_) => {}
                Err(err) => return Err(format!("a bad message: {err}")),
            }
        }
        if self.end.is_none() && self.tally.is_complete() {
            self.end = Some(ReadEnd::Complete);
        }
        Ok(())
    }

    /// Reads the link no more; it keeps `Complete` if it had everything.
    fn stop(&mut self, end: ReadEnd) {
        self.gone = true;
        if self.end.is_none() {
            self.end = Some(end);
        }
    }
}

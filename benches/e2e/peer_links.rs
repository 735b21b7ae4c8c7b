//! Fake peers: TCP connections of this process to a daemon that speak the real peer
//! protocol (the preamble, the Noise XX handshake with an identity key of their own, then
//! a hello inside the channel, and the node's hello read back), then stay idle (W4), are
//! read and written (W5), or flood and never read (W6).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use p2pchat::config::Secret;
use p2pchat::proto::secure::{Channel, Credentials};
use p2pchat::wire::frame::HEADER_LEN;
use p2pchat::wire::peer::{Hello, MAX_BODY_LEN};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::daemon::Daemon;
use crate::error::{Context, Result};
use crate::lines::EPOCH;
use crate::wait::PATIENCE;

/// Connections in the handshake at once: the daemon gives one IP address 8 handshake
/// slots (`DEFAULT_MAX_HANDSHAKES_PER_IP`) and every fake peer comes from 127.0.0.1; a
/// connection past them is dropped at once.
const CONNECT_BATCH: usize = 8;
/// How long a write on a non-blocking link waits before it tries a full send buffer
/// again: short beside the time the node takes to drain a loopback buffer, so that a
/// writer that waits still keeps the node fed.
const FULL_BUFFER_BACKOFF: Duration = Duration::from_millis(1);
/// Bytes per read while the handshake runs.
const HANDSHAKE_READ: usize = 4096;

/// The identity key of fake peer `number`: "benc", the number, then filler. It also
/// signs the lines the peer writes as an author.
pub fn fake_peer_identity(number: usize) -> Secret {
    let mut key = [0x42; 32];
    key[..4].copy_from_slice(b"benc");
    key[4..12].copy_from_slice(&(number as u64).to_be_bytes());
    Secret(key)
}

/// The nick in the hello of fake peer `number`, and in the lines it writes.
pub fn fake_peer_nick(number: usize) -> String {
    format!("r{number}")
}

/// One fake peer's link: the socket and this end of its secure channel.
pub struct PeerLink {
    pub stream: TcpStream,
    pub channel: Channel,
    /// What this end proves itself with; every read of the channel needs it.
    pub creds: Credentials,
    /// Plaintext the node sent after its hello that nobody has read yet: the start of
    /// the stream of frames a reader of the link takes over.
    pub plain: Vec<u8>,
    number: usize,
    said_hello: bool,
}

impl PeerLink {
    /// Connects fake peer `number` to `node` and sends what opens the handshake.
    fn connect(node: &Daemon, number: usize) -> Result<PeerLink> {
        let mut rng = ChaCha20Rng::seed_from_u64(number as u64);
        let creds = Credentials::new(&fake_peer_identity(number), None, &mut rng);
        let mut stream = TcpStream::connect_timeout(&node.addr(), PATIENCE)
            .context(|| format!("fake peer #{number}: cannot connect to {node}"))?;
        stream
            .set_read_timeout(Some(PATIENCE))
            .context(|| "cannot set a read timeout".to_owned())?;
        let mut wire = Vec::new();
        let channel = Channel::new(&creds, true, &mut rng, &mut wire);
        stream
            .write_all(&wire)
            .context(|| format!("fake peer #{number}: cannot start the handshake"))?;
        Ok(PeerLink {
            stream,
            channel,
            creds,
            plain: Vec::new(),
            number,
            said_hello: false,
        })
    }

    /// Reads until the handshake is done and this end's hello is sent.
    fn finish_handshake(&mut self) -> Result<()> {
        while !self.said_hello {
            self.read_some()?;
        }
        Ok(())
    }

    /// Reads until the node's hello has arrived, and takes it out of [`PeerLink::plain`].
    fn read_hello(&mut self) -> Result<()> {
        const KIND_HELLO: u8 = 1;
        loop {
            if let Some(header) = self.plain.first_chunk::<HEADER_LEN>() {
                let len = u32::from_be_bytes(*header) as usize;
                if len == 0 || len > MAX_BODY_LEN {
                    return Err(format!("a frame of {len} bytes instead of a hello"));
                }
                if self.plain.len() >= HEADER_LEN + len {
                    let kind = self.plain[HEADER_LEN];
                    if kind != KIND_HELLO {
                        return Err(format!("a frame of kind {kind} instead of a hello"));
                    }
                    self.plain.drain(..HEADER_LEN + len);
                    return Ok(());
                }
            }
            self.read_some()?;
        }
    }

    /// One blocking read through the channel: handshake messages are answered, and the
    /// hello is sealed and sent as soon as the channel opens.
    fn read_some(&mut self) -> Result<()> {
        let mut chunk = [0; HANDSHAKE_READ];
        let n = match self.stream.read(&mut chunk) {
            Ok(0) => return Err("the node closed the link".to_owned()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(format!("no handshake: {err}")),
        };
        let mut wire = Vec::new();
        self.channel
            .recv(&self.creds, &chunk[..n], &mut wire, &mut self.plain)
            .map_err(|err| format!("handshake: {err}"))?;
        if self.channel.is_open() && !self.said_hello {
            let mut hello = Vec::new();
            Hello {
                epoch: EPOCH,
                listen_port: 0,
                link_id: 1,
                refusing: false,
                nick: &fake_peer_nick(self.number),
            }
            .encode(&mut hello);
            self.channel.seal(&hello, &mut wire);
            self.said_hello = true;
        }
        if !wire.is_empty() {
            self.stream
                .write_all(&wire)
                .map_err(|err| format!("cannot write the handshake: {err}"))?;
        }
        Ok(())
    }
}

/// Opens peer links to `node` until `links` holds `target`, in batches of
/// [`CONNECT_BATCH`]: connect and open the handshake, then finish each handshake and
/// send the hello, then read each node's hello back. The links are blocking.
pub fn open_peer_links(node: &Daemon, links: &mut Vec<PeerLink>, target: usize) -> Result<()> {
    while links.len() < target {
        let batch = CONNECT_BATCH.min(target - links.len());
        let mut fresh = Vec::with_capacity(batch);
        for number in links.len()..links.len() + batch {
            fresh.push(PeerLink::connect(node, number)?);
        }
        for link in &mut fresh {
            let number = link.number;
            link.finish_handshake()
                .context(|| format!("fake peer #{number} of {node}"))?;
        }
        for link in &mut fresh {
            let number = link.number;
            link.read_hello()
                .context(|| format!("fake peer #{number} of {node}"))?;
        }
        links.append(&mut fresh);
    }
    Ok(())
}

/// Writes as much of `bytes` as a non-blocking link takes before `until`, waiting out a
/// full send buffer (the node not reading the link for now, as its backpressure allows);
/// returns how many bytes it wrote.
pub fn write_until(stream: &mut TcpStream, bytes: &[u8], until: Instant) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= until {
                    break;
                }
                thread::sleep(FULL_BUFFER_BACKOFF);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}

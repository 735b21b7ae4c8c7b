//! Fake peers: TCP connections of this process to a daemon that complete the handshake
//! (send a hello, read the node's), then stay idle (W4), are read and written (W5), or
//! flood and never read (W6).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use p2pchat::wire::frame::HEADER_LEN;
use p2pchat::wire::peer::{Hello, MAX_BODY_LEN};

use crate::daemon::Daemon;
use crate::error::{Context, Result};
use crate::wait::PATIENCE;

/// Connections opened before their hellos are read back (which shows the node has
/// accepted them): half the daemon's listen backlog of 128, so that no connection
/// attempt is dropped and retried a second later.
const CONNECT_BATCH: usize = 64;
/// Node ids of the fake peers: this prefix ("benc"), then the link's number.
const FAKE_PEER_ID_BASE: u64 = 0x6265_6e63_0000_0000;
/// How long a write on a non-blocking link waits before it tries a full send buffer
/// again: short beside the time the node takes to drain a loopback buffer, so that a
/// writer that waits still keeps the node fed.
const FULL_BUFFER_BACKOFF: Duration = Duration::from_millis(1);

/// The node id in the hello of fake peer `number`.
pub fn fake_peer_id(number: usize) -> u64 {
    FAKE_PEER_ID_BASE + number as u64
}

/// The nick in the hello of fake peer `number`, and in the chat lines it originates.
pub fn fake_peer_nick(number: usize) -> String {
    format!("r{number}")
}

/// Opens peer links to `node` until `links` holds `target`, in batches: connect and send
/// a hello, then read each hello back. The links are blocking.
pub fn open_peer_links(node: &Daemon, links: &mut Vec<TcpStream>, target: usize) -> Result<()> {
    while links.len() < target {
        let batch = CONNECT_BATCH.min(target - links.len());
        let mut fresh = Vec::with_capacity(batch);
        for number in links.len()..links.len() + batch {
            fresh.push(open_peer_link(node, number)?);
        }
        for (number, stream) in (links.len()..).zip(&mut fresh) {
            read_hello(stream).context(|| format!("fake peer #{number} of {node}"))?;
        }
        links.append(&mut fresh);
    }
    Ok(())
}

/// A TCP connection to `node` that has sent the hello of fake peer `number`.
fn open_peer_link(node: &Daemon, number: usize) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&node.addr(), PATIENCE)
        .context(|| format!("fake peer #{number}: cannot connect to {node}"))?;
    let mut hello = Vec::new();
    Hello {
        node_id: fake_peer_id(number),
        listen_port: 0,
        link_id: 1,
        nick: &fake_peer_nick(number),
    }
    .encode(&mut hello);
    stream
        .write_all(&hello)
        .context(|| format!("fake peer #{number}: cannot send a hello to {node}"))?;
    Ok(stream)
}

/// Reads and drops one frame, which must be a hello.
fn read_hello(stream: &mut TcpStream) -> Result<()> {
    const KIND_HELLO: u8 = 1;
    stream
        .set_read_timeout(Some(PATIENCE))
        .context(|| "cannot set a read timeout".to_owned())?;
    let mut header = [0; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .context(|| "no hello header".to_owned())?;
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > MAX_BODY_LEN {
        return Err(format!("a frame of {len} bytes instead of a hello"));
    }
    let mut body = vec![0; len];
    stream
        .read_exact(&mut body)
        .context(|| "no complete hello".to_owned())?;
    if body[0] != KIND_HELLO {
        return Err(format!("a frame of kind {} instead of a hello", body[0]));
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

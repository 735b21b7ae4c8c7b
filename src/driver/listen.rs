//! Binding the two listening sockets before anything else happens, so that a bad address
//! or a busy control socket is reported on the terminal with exit status 1.

use std::fs;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use log::info;
use mio::net::{TcpListener, UnixListener};

use crate::daemon;
use crate::wire::text::describe_io_error;

/// Connections a listener holds before they are accepted: far more than the 128 that
/// std and mio choose, so that a crowd of peers or clients arriving at once between two
/// turns of the loop is not refused. (The kernel caps it at net.core.somaxconn.)
pub const BACKLOG: i32 = 1024;

/// The bound listeners, non-blocking, with a backlog of 1024 (`BACKLOG`).
#[derive(Debug)]
pub struct Listeners {
    pub peer: Option<TcpListener>,
    pub control: UnixListener,
    /// IRC clients' listener, with `--irc`.
    pub irc: Option<TcpListener>,
}

impl Listeners {
    /// Binds the peer listener (unless `listen` is `None`), the IRC listener (if
    /// `irc` is given) and the control socket, the latter with permission bits `mode`.
    pub fn bind(
        listen: Option<&str>,
        irc: Option<&str>,
        control: &Path,
        mode: u32,
    ) -> io::Result<(Listeners, SocketFile)> {
        let peer = listen.map(bind_tcp).transpose()?;
        let irc = irc.map(bind_tcp).transpose()?;
        let (control, file) = bind_control(control, mode)?;
        Ok((Listeners { peer, control, irc }, file))
    }

    /// The address peers reach this node on, port 0 resolved to the real port.
    pub fn peer_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.peer.as_ref().map(TcpListener::local_addr).transpose()
    }

    /// The address IRC clients reach this node on, port 0 resolved to the real port.
    pub fn irc_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.irc.as_ref().map(TcpListener::local_addr).transpose()
    }
}

/// Binds the first address `addr` resolves to that can be bound.
fn bind_tcp(addr: &str) -> io::Result<TcpListener> {
    let bind = || -> io::Result<TcpListener> {
        let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address");
        for resolved in addr.to_socket_addrs()? {
            match TcpListener::bind(resolved) {
                Ok(listener) => {
                    daemon::set_listen_backlog(&listener, BACKLOG)?;
                    return Ok(listener);
                }
                Err(err) => last_err = err,
            }
        }
        Err(last_err)
    };
    bind().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot listen on {addr}: {}", describe_io_error(&err)),
        )
    })
}

/// Binds the control socket with permission bits `mode`, replacing a file left by a
/// dead daemon and refusing one that a live daemon serves.
fn bind_control(path: &Path, mode: u32) -> io::Result<(UnixListener, SocketFile)> {
    let fail = |err: io::Error| {
        io::Error::new(
            err.kind(),
            format!(
                "cannot create control socket {}: {}",
                path.display(),
                describe_io_error(&err)
            ),
        )
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(fail(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            )))
        }
        Ok(_) => {
            if is_served(path).map_err(fail)? {
                return Err(fail(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another p2pchat is serving it",
                )));
            }
            fs::remove_file(path).map_err(fail)?;
            info!("replaced stale control socket {}", path.display());
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail(err)),
    }
    // The mode is set by the umask at bind time, so there is no moment when the socket
    // exists with wider permissions.
    let umask = !mode & 0o777;
    let listener = daemon::with_umask(umask, || UnixListener::bind(path)).map_err(fail)?;
    daemon::set_listen_backlog(&listener, BACKLOG).map_err(fail)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
        },
    ))
}

/// Whether a live process accepts connections on the socket at `path`. A non-blocking
/// connect, so that a live daemon with a full backlog cannot stall start-up: it counts
/// as live.
fn is_served(path: &Path) -> io::Result<bool> {
    match mio::net::UnixStream::connect(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => Ok(false),
        Err(err) => Err(err),
    }
}

/// The control socket's file, removed when this is dropped at the end of the run.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

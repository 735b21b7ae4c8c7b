//! Leaving the terminal, and the few system calls std does not wrap: fork and setsid
//! for `--daemon`, the pidfile, the umask, the user id, the open-files limit, a
//! listening socket's backlog.
//!
//! The only module with `unsafe` code; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process;

/// The child's end of the pipe the parent waits on: the parent exits 0 once told the
/// daemon is ready, and 1 with the daemon's error otherwise.
#[derive(Debug)]
pub struct Detached {
    to_parent: io::PipeWriter,
}

/// What the child writes to say it serves.
const READY: &str = "ready";

impl Detached {
    /// Tells the waiting parent the daemon serves; it exits 0.
    pub fn ready(mut self) -> io::Result<()> {
        self.to_parent.write_all(READY.as_bytes())
    }

    /// Tells the waiting parent why start-up failed; it prints this and exits 1.
    pub fn fail(mut self, error: &str) {
        // Nothing more can be done if the parent is gone.
        let _ = self.to_parent.write_all(error.as_bytes());
    }
}

/// Forks into a new session, in `/`, with standard streams on /dev/null. Returns in the child
/// only; the parent waits for the child's word and exits with it.
///
/// Call it before any thread is started: only the calling thread survives a fork.
pub fn detach() -> io::Result<Detached> {
    let (mut from_child, to_parent) = io::pipe()?;
    // SAFETY: the process is single-threaded here (the caller's contract), so the child
    // cannot inherit a lock held by another thread; both sides go on with ordinary code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(from_child);
            // SAFETY: setsid has no preconditions; in a fresh child it cannot fail, as
            // the child is never a process group leader.
            unsafe { libc::setsid() };
            // Hold no directory busy (paths were made absolute on the command line).
            std::env::set_current_dir("/")?;
            redirect_std_streams()?;
            Ok(Detached { to_parent })
        }
        _child => {
            drop(to_parent);
            let mut word = String::new();
            let _ = from_child.read_to_string(&mut word);
            if word == READY {
                process::exit(0);
            }
            if word.is_empty() {
                word = "the daemon exited during start-up".to_owned();
            }
            eprintln!("p2pchat: {word}");
            process::exit(1);
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null, so that the daemon holds no terminal
/// and no pipe of whoever started it.
fn redirect_std_streams() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..=2 {
        // SAFETY: both descriptors are open: `null` lives until the end of this
        // function, and dup2 onto 0, 1 and 2 only replaces the standard streams.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A file holding this process's pid, removed when dropped at the end of the run.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let write = || -> io::Result<()> {
            let mut file = File::create(path)?;
            writeln!(file, "{}", process::id())
        };
        write().map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "cannot write pidfile {}: {}",
                    path.display(),
                    crate::wire::text::describe_io_error(&err)
                ),
            )
        })?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Runs `f` with the file-creation mask set to `mask`, then restores the old one.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps a process-wide integer. The loop is single-threaded, so
    // no other thread creates a file under the temporary mask.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let result = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    result
}

/// Raises the soft limit on open files to the hard limit: every peer and client is a
/// descriptor, and the usual soft limit of 1024 would cap a node far below what it
/// serves. Returns the limit now in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given, which is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct it is given, which is valid.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Sets the backlog of a socket that is listening already (Linux takes a second
/// `listen` as a change of backlog).
pub fn set_listen_backlog(socket: &impl AsRawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen only reads the descriptor, which `socket` keeps open.
    if unsafe { libc::listen(socket.as_raw_fd(), backlog) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The real user id of this process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

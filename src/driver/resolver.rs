//! Host names resolved off the loop. The system resolver blocks, for seconds when a name
//! server is slow or gone, so names go to one helper thread and the answers come back
//! through a mio `Waker`. The thread owns no socket of the loop and decides nothing; IP
//! literals never reach it.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use mio::{Registry, Token, Waker};

use crate::proto::ConnId;
use crate::wire::text::describe_io_error;

/// An answer: the dial it is for, and the addresses in the resolver's order.
pub type Answer = (ConnId, io::Result<Vec<SocketAddr>>);

/// The loop's end of the resolver thread.
#[derive(Debug)]
pub struct Resolver {
    questions: Sender<(ConnId, String)>,
    answers: Receiver<Answer>,
}

impl Resolver {
    /// Starts the thread; answers wake the poll with `token`.
    pub fn start(registry: &Registry, token: Token) -> io::Result<Resolver> {
        let waker = Waker::new(registry, token)?;
        let (questions, asked) = mpsc::channel::<(ConnId, String)>();
        let (answer, answers) = mpsc::channel();
        thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                // Ends when the loop drops its end of the channel.
                for (conn, target) in asked {
                    if answer.send((conn, resolve(&target))).is_err() || waker.wake().is_err() {
                        return;
                    }
                }
            })?;
        Ok(Resolver { questions, answers })
    }

    /// Asks for `target`'s addresses on behalf of dial `conn`.
    pub fn ask(&self, conn: ConnId, target: &str) {
        // The thread only stops when this end is dropped, so the send cannot fail.
        let _ = self.questions.send((conn, target.to_owned()));
    }

    /// The answers that have arrived.
    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }
}

/// The addresses `target` (`host:port`) resolves to, in the resolver's order.
fn resolve(target: &str) -> io::Result<Vec<SocketAddr>> {
    let context = |err: io::Error| {
        io::Error::new(
            err.kind(),
            format!("cannot resolve {target}: {}", describe_io_error(&err)),
        )
    };
    let addrs: Vec<SocketAddr> = target.to_socket_addrs().map_err(context)?.collect();
    if addrs.is_empty() {
        return Err(context(io::Error::new(
            io::ErrorKind::NotFound,
            "no address",
        )));
    }
    Ok(addrs)
}

//! Why a connection was closed: one variant per cause, shown in the log line and in
//! `peer down` events, and whether the remote end is to blame.

use std::fmt;
use std::time::Duration;

use crate::wire::frame::FrameError;
use crate::wire::peer::PeerError;

use super::ids::ConnId;

/// Why a connection was closed; shown in the log line and in `peer down` events.
#[derive(Debug)]
pub(crate) enum Cause {
    ClosedByPeer,
    ClientLeft,
    Io(String),
    DialFailed(String),
    Frame(FrameError),
    Peer(PeerError),
    UnexpectedHello,
    BeforeHello { kind: &'static str },
    Silent { idle: Duration },
    SelfLink,
    TooMany { what: &'static str, limit: usize },
    Duplicate { kept: ConnId },
    Replaced { by: ConnId },
    ConnectTimeout(Duration),
    HandshakeTimeout(Duration),
    Unfinished(Duration),
    QueueFull { limit: usize },
    OverBudget { queued: usize, limit: usize },
    Stalled { queued: usize, idle: Duration },
}

impl Cause {
    /// Whether the remote end broke the protocol or a limit, which is logged as a warning.
    pub(crate) fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Cause::Frame(_)
                | Cause::Peer(_)
                | Cause::UnexpectedHello
                | Cause::BeforeHello { .. }
                | Cause::Silent { .. }
                | Cause::HandshakeTimeout(_)
                | Cause::QueueFull { .. }
                | Cause::OverBudget { .. }
                | Cause::Stalled { .. }
        )
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::ClosedByPeer => f.write_str("closed by the peer"),
            Cause::ClientLeft => f.write_str("client left"),
            Cause::Io(err) => write!(f, "socket error: {err}"),
            Cause::DialFailed(err) => f.write_str(err),
            Cause::Frame(err) => write!(f, "protocol violation: {err}"),
            Cause::Peer(err) => write!(f, "protocol violation: {err}"),
            Cause::UnexpectedHello => f.write_str("protocol violation: second hello"),
            Cause::BeforeHello { kind } => {
                write!(f, "protocol violation: {kind} before hello")
            }
            Cause::Silent { idle } => write!(
                f,
                "silent for {}s: nothing received, not even a pong",
                idle.as_secs()
            ),
            Cause::SelfLink => f.write_str("link to this node itself"),
            Cause::TooMany { what, limit } => write!(f, "too many {what}: the limit is {limit}"),
            Cause::Duplicate { kept } => write!(f, "duplicate link, keeping {kept}"),
            Cause::Replaced { by } => write!(f, "duplicate link, replaced by {by}"),
            Cause::ConnectTimeout(limit) => {
                write!(f, "no connection within {}s", limit.as_secs_f32())
            }
            Cause::HandshakeTimeout(limit) => {
                write!(f, "no hello within {}s", limit.as_secs_f32())
            }
            Cause::Unfinished(limit) => write!(
                f,
                "retired link not shut down by the peer within {}s",
                limit.as_secs_f32()
            ),
            Cause::QueueFull { limit } => {
                write!(f, "not reading: send queue would pass {limit} bytes")
            }
            Cause::OverBudget { queued, limit } => write!(
                f,
                "not reading: the longest send queue ({queued} bytes) when all of them \
                 passed {limit} bytes together"
            ),
            Cause::Stalled { queued, idle } => write!(
                f,
                "not reading: {queued} bytes queued and none taken for {}s",
                idle.as_secs()
            ),
        }
    }
}

//! Why a connection was closed: one variant per cause, shown in the log line and in
//! `peer down` events, and whether the remote end is to blame.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::wire::frame::FrameError;
use crate::wire::peer::PeerError;

use super::ids::ConnId;
use super::secure::ChannelError;

/// Why a connection was closed; shown in the log line and in `peer down` events.
#[derive(Debug)]
pub(crate) enum Cause {
    ClosedByPeer,
    ClientLeft,
    Io(String),
    DialFailed(String),
    Frame(FrameError),
    Peer(PeerError),
    Channel(ChannelError),
    UnexpectedHello,
    BeforeHello {
        kind: &'static str,
    },
    /// A message after the peer's retire message.
    AfterRetire {
        kind: &'static str,
    },
    /// Chat on a link that never came up: a refused one.
    NeverUp {
        kind: &'static str,
    },
    /// The peer sent a batch of lines whose signature does not hold: every node checks
    /// before it passes a batch on, so the sender is to blame, whoever signed it.
    Forged {
        author: super::ids::NodeId,
    },
    Silent {
        idle: Duration,
    },
    SelfLink,
    /// Another process proved this node's own key.
    SameKey,
    /// The peer takes no more peers.
    Refused,
    TooMany {
        what: &'static str,
        limit: usize,
    },
    /// Over the cap on accepted connections in the handshake: in all (`from` is `None`)
    /// or from one address.
    HandshakeSlots {
        from: Option<IpAddr>,
        limit: usize,
    },
    /// The peer gave the link up for another one that did not come up in time.
    NoReplacement(Duration),
    Duplicate {
        kept: ConnId,
    },
    Replaced {
        by: ConnId,
    },
    /// Given up for a newer link that put the node over its target of peers.
    Rewired {
        target: usize,
    },
    ConnectTimeout(Duration),
    HandshakeTimeout(Duration),
    Unfinished(Duration),
    QueueFull {
        limit: usize,
    },
    OverBudget {
        queued: usize,
        limit: usize,
    },
    Stalled {
        queued: usize,
        idle: Duration,
    },
}

impl Cause {
    /// Whether the remote end broke the protocol or a limit, which is logged as a warning.
    pub(crate) fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Cause::Frame(_)
                | Cause::Peer(_)
                | Cause::Channel(_)
                | Cause::UnexpectedHello
                | Cause::BeforeHello { .. }
                | Cause::AfterRetire { .. }
                | Cause::NeverUp { .. }
                | Cause::Forged { .. }
                | Cause::SameKey
                | Cause::Silent { .. }
                | Cause::HandshakeTimeout(_)
                | Cause::QueueFull { .. }
                | Cause::OverBudget { .. }
                | Cause::Stalled { .. }
        )
    }

    /// Whether the close is routine enough to log only at debug level: a host that opens
    /// connections by the hundred must not fill the log.
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(self, Cause::HandshakeSlots { .. })
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
            Cause::Channel(err) => write!(f, "secure channel: {err}"),
            Cause::UnexpectedHello => f.write_str("protocol violation: second hello"),
            Cause::BeforeHello { kind } => {
                write!(f, "protocol violation: {kind} before hello")
            }
            Cause::AfterRetire { kind } => {
                write!(f, "protocol violation: {kind} after retire")
            }
            Cause::NeverUp { kind } => {
                write!(f, "protocol violation: {kind} on a link that never came up")
            }
            Cause::Forged { author } => write!(
                f,
                "protocol violation: lines claiming author {author} with a signature that does not hold"
            ),
            Cause::Silent { idle } => write!(
                f,
                "silent for {}s: nothing received, not even a pong",
                idle.as_secs()
            ),
            Cause::SelfLink => f.write_str("link to this node itself"),
            Cause::SameKey => f.write_str(
                "the peer runs with this node's own key: two processes share one key file",
            ),
            Cause::Refused => f.write_str("refused: the peer has all the peers it takes"),
            Cause::TooMany { what, limit } => write!(f, "too many {what}: the limit is {limit}"),
            Cause::HandshakeSlots { from: None, limit } => write!(
                f,
                "too many connections in the handshake: the limit is {limit}"
            ),
            Cause::HandshakeSlots {
                from: Some(ip),
                limit,
            } => write!(
                f,
                "too many connections in the handshake from {ip}: the limit is {limit}"
            ),
            Cause::NoReplacement(limit) => write!(
                f,
                "the peer gave the link up and no other came up within {}s",
                limit.as_secs_f32()
            ),
            Cause::Duplicate { kept } => write!(f, "duplicate link, keeping {kept}"),
            Cause::Replaced { by } => write!(f, "duplicate link, replaced by {by}"),
            Cause::Rewired { target } => write!(
                f,
                "given up for a newer link, over the target of {target} peers"
            ),
            Cause::ConnectTimeout(limit) => {
                write!(f, "no connection within {}s", limit.as_secs_f32())
            }
            Cause::HandshakeTimeout(limit) => {
                write!(f, "no handshake and hello within {}s", limit.as_secs_f32())
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

//! Bytes on the two kinds of socket, and nothing else.
//!
//! `frame` cuts a byte stream into length-prefixed bodies, `handshake` holds the bytes of
//! a link's set-up around Noise, `peer` gives the bodies inside the channel a meaning
//! (`lines` holds the signed batches of chat lines and the catch-up summary, `member`
//! a node's signed announcement of itself),
//! `control` reads and writes the text lines of the control socket, and `text` holds the
//! rules both share (nicks, chat text, sanitising). This layer imports nothing of the
//! crate: it knows bytes, not peers, connections, keys or time.

pub mod control;
pub mod frame;
pub mod handshake;
pub mod irc;
pub mod lines;
pub mod member;
pub mod peer;
pub mod text;

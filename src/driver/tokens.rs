//! Poll tokens outside the socket slab: slab keys count up from 0, so these count down
//! from the top and can never meet them.

use mio::Token;

/// SIGTERM and SIGINT, delivered through signal-hook's self-pipe.
pub const SIGNALS: Token = Token(usize::MAX);

/// Answers from the resolver thread.
pub const RESOLVER: Token = Token(usize::MAX - 1);

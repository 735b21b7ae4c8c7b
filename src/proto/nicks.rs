//! Nicks bound to keys: the name clients are shown for a line, so that no client ever
//! sees two keys under one name. The first key seen using a nick holds it while it goes
//! on using it; lines of any other key that claims it show `NICK#XXXX`, XXXX being the
//! shortest prefix of that key's id (at least four hex digits) that is not the holder's.
//!
//! This is display only: who wrote a line is settled by its signature, in `author`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ids::NodeId;

/// A nick its holder has not used for this long is free for the next key to use it.
pub const NICK_HOLD: Duration = Duration::from_secs(600);

/// Nicks remembered at the most; past it the one unused the longest is forgotten.
const MAX_NICKS: usize = 65_536;

/// A holder's use is written down again only this long after the last time, so that
/// a busy author costs a lookup per line and nothing more.
const TOUCH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Nicks {
    holders: BTreeMap<String, (NodeId, Instant)>,
    by_use: BTreeSet<(Instant, String)>,
}

impl Nicks {
    /// How a line `author` signed with `nick` is shown at `now`.
    pub fn display<'a>(&mut self, now: Instant, nick: &'a str, author: NodeId) -> Cow<'a, str> {
        match self.holders.get_mut(nick) {
            Some((holder, used)) if *holder == author => {
                if now.saturating_duration_since(*used) >= TOUCH_EVERY {
                    let old = std::mem::replace(used, now);
                    self.by_use.remove(&(old, nick.to_owned()));
                    self.by_use.insert((now, nick.to_owned()));
                }
                Cow::Borrowed(nick)
            }
            Some((holder, used)) if now.saturating_duration_since(*used) < NICK_HOLD => {
                Cow::Owned(format!("{nick}#{}", distinct_prefix(author, *holder)))
            }
            _ => {
                self.hold(now, nick, author);
                Cow::Borrowed(nick)
            }
        }
    }

    /// How an old line is shown, as [`Nicks::display`] would show it now but without
    /// taking a free nick for its author: history gives nobody a nick.
    pub fn shown<'a>(&self, now: Instant, nick: &'a str, author: NodeId) -> Cow<'a, str> {
        match self.holders.get(nick) {
            Some(&(holder, used))
                if holder != author && now.saturating_duration_since(used) < NICK_HOLD =>
            {
                Cow::Owned(format!("{nick}#{}", distinct_prefix(author, holder)))
            }
            _ => Cow::Borrowed(nick),
        }
    }

    fn hold(&mut self, now: Instant, nick: &str, author: NodeId) {
        if let Some((_, used)) = self.holders.insert(nick.to_owned(), (author, now)) {
            self.by_use.remove(&(used, nick.to_owned()));
        }
        self.by_use.insert((now, nick.to_owned()));
        while self.holders.len() > MAX_NICKS {
            let (_, oldest) = self.by_use.pop_first().expect("one entry per holder");
            self.holders.remove(&oldest);
        }
    }
}

/// The shortest prefix of `id`'s hex form, at least four digits, that `other`'s lacks.
fn distinct_prefix(id: NodeId, other: NodeId) -> String {
    let (a, b) = (id.to_string(), other.to_string());
    let same = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    a[..(same + 1).clamp(4, a.len())].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: NodeId = NodeId(0xaaaa_0000_0000_0001);
    const MALLORY: NodeId = NodeId(0xbbbb_0000_0000_0002);
    const TWIN: NodeId = NodeId(0xaaaa_1000_0000_0003);

    #[test]
    fn the_first_key_holds_a_nick_and_others_are_told_apart() {
        let mut nicks = Nicks::default();
        let now = Instant::now();
        assert_eq!(nicks.display(now, "alice", ALICE), "alice");
        assert_eq!(nicks.display(now, "alice", MALLORY), "alice#bbbb");
        assert_eq!(nicks.display(now, "alice", TWIN), "alice#aaaa1");
        assert_eq!(nicks.display(now, "alice", ALICE), "alice");
        assert_eq!(nicks.display(now, "mallory", MALLORY), "mallory");
    }

    #[test]
    fn history_gives_nobody_a_nick() {
        let mut nicks = Nicks::default();
        let now = Instant::now();
        assert_eq!(nicks.shown(now, "alice", MALLORY), "alice");
        assert_eq!(nicks.display(now, "alice", ALICE), "alice", "still free");
        assert_eq!(nicks.shown(now, "alice", MALLORY), "alice#bbbb");
    }

    #[test]
    fn an_unused_nick_is_free_again() {
        let mut nicks = Nicks::default();
        let now = Instant::now();
        nicks.display(now, "alice", ALICE);
        let later = now + NICK_HOLD;
        assert_eq!(nicks.display(later, "alice", MALLORY), "alice");
        assert_eq!(nicks.display(later, "alice", ALICE), "alice#aaaa");
    }

    #[test]
    fn a_holder_that_goes_on_keeps_its_nick() {
        let mut nicks = Nicks::default();
        let mut now = Instant::now();
        nicks.display(now, "alice", ALICE);
        for _ in 0..3 {
            now += NICK_HOLD / 2;
            assert_eq!(nicks.display(now, "alice", ALICE), "alice");
        }
        assert_eq!(nicks.display(now, "alice", MALLORY), "alice#bbbb");
    }
}

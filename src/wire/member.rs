//! A node's signed announcement of itself on the wire: who it is, the nicks its clients
//! use, and how soon it will announce itself again, or that it is leaving.
//!
//! Like a batch of lines, an announcement is a *record* (the signed part, then the
//! signature) inside an envelope of hops that relays change. Who signs it and what a
//! member table makes of it is the protocol core's business.

use std::str;

use byteorder::{BigEndian, ByteOrder};

use super::lines::{KEY_LEN, SIGNATURE_LEN};
use super::peer::{PeerError, KIND_MEMBER};
use super::text::{self, MAX_NICK_LEN};

/// Most nicks one announcement lists: the node's own and those its clients use.
pub const MAX_NICKS: usize = 8;

/// The signed part before the nicks: key, epoch, serial, time, flags, period, count.
const SIGNED_FIXED_LEN: usize = KEY_LEN + 8 + 8 + 8 + 1 + 4 + 1;

/// Longest record: every nick at its longest.
pub const MAX_MEMBER_RECORD_LEN: usize =
    SIGNED_FIXED_LEN + MAX_NICKS * (1 + MAX_NICK_LEN) + SIGNATURE_LEN;

/// Longest announcement message body: kind, hops, record.
pub const MAX_MEMBER_BODY_LEN: usize = 1 + 1 + MAX_MEMBER_RECORD_LEN;

/// The flag of a node's last announcement: it stops.
const FLAG_LEAVING: u8 = 1;

/// A validated announcement message, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce<'a> {
    /// Links this copy may still cross, this one included; never 0 on the wire.
    pub hops: u8,
    pub record: MemberRecord<'a>,
}

/// The signed part of an announcement and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRecord<'a> {
    bytes: &'a [u8],
    /// The node's public key.
    pub key: &'a [u8; KEY_LEN],
    /// The node's run (its start, nanoseconds since the Unix epoch).
    pub epoch: u64,
    /// Counts the run's announcements up from 0: a later one replaces an earlier one.
    pub serial: u64,
    /// The node's clock when it announced: milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The node stops: this is its last announcement.
    pub leaving: bool,
    /// Seconds within which the node announces itself again.
    pub period_s: u32,
    nick_count: u8,
    nicks: &'a [u8],
}

impl<'a> Announce<'a> {
    /// Parses an announcement message body after its kind byte.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, PeerError> {
        let (&hops, record) = body
            .split_first()
            .ok_or(PeerError::Truncated { kind: "member" })?;
        if hops == 0 {
            return Err(PeerError::NoHops);
        }
        Ok(Announce {
            hops,
            record: MemberRecord::parse(record)?,
        })
    }

    /// Appends an announcement message carrying `record` to `out` as a whole frame.
    pub fn encode(out: &mut Vec<u8>, hops: u8, record: &[u8]) {
        super::frame::encode(out, |out| {
            out.push(KIND_MEMBER);
            out.push(hops);
            out.extend_from_slice(record);
        });
    }
}

impl<'a> MemberRecord<'a> {
    /// Parses and validates a record: every nick must pass the nick rule.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PeerError> {
        let truncated = PeerError::Truncated { kind: "member" };
        if bytes.len() > MAX_MEMBER_RECORD_LEN {
            return Err(PeerError::MemberTooLong(bytes.len()));
        }
        let signed_len = bytes.len().checked_sub(SIGNATURE_LEN).ok_or(truncated)?;
        if signed_len < SIGNED_FIXED_LEN {
            return Err(truncated);
        }
        let (head, nicks) = bytes[..signed_len].split_at(SIGNED_FIXED_LEN);
        let (key, fields) = head.split_at(KEY_LEN);
        let nick_count = fields[29];
        if nick_count == 0 || usize::from(nick_count) > MAX_NICKS {
            return Err(PeerError::NickCount(nick_count));
        }
        let record = MemberRecord {
            bytes,
            key: key.try_into().expect("split at the key's length"),
            epoch: BigEndian::read_u64(&fields[0..8]),
            serial: BigEndian::read_u64(&fields[8..16]),
            time_ms: BigEndian::read_u64(&fields[16..24]),
            leaving: fields[24] & FLAG_LEAVING != 0,
            period_s: BigEndian::read_u32(&fields[25..29]),
            nick_count,
            nicks,
        };
        let mut rest = nicks;
        for _ in 0..nick_count {
            let (&len, tail) = rest.split_first().ok_or(truncated)?;
            let (nick, tail) = tail.split_at_checked(usize::from(len)).ok_or(truncated)?;
            let nick = str::from_utf8(nick).map_err(|_| PeerError::NickNotUtf8)?;
            text::check_nick(nick).map_err(PeerError::BadNick)?;
            rest = tail;
        }
        super::lines::no_trailing(rest, "member")?;
        Ok(record)
    }

    /// The whole record, as it is stored and relayed.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// What the signature covers.
    pub fn signed(&self) -> &'a [u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        (self.bytes[self.bytes.len() - SIGNATURE_LEN..])
            .try_into()
            .expect("a record ends with its signature")
    }

    /// The nicks, the node's own first.
    pub fn nicks(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.nicks;
        (0..self.nick_count).map(move |_| {
            let len = usize::from(rest[0]);
            let nick = str::from_utf8(&rest[1..1 + len]).expect("checked when parsed");
            rest = &rest[1 + len..];
            nick
        })
    }
}

/// The signed part of an announcement, to be signed: `nicks` must pass the nick rule,
/// and there must be 1 to [`MAX_NICKS`] of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberDraft<'a> {
    pub key: &'a [u8; KEY_LEN],
    pub epoch: u64,
    pub serial: u64,
    pub time_ms: u64,
    pub leaving: bool,
    pub period_s: u32,
    pub nicks: &'a [String],
}

impl MemberDraft<'_> {
    /// The signed part's bytes.
    pub fn signed(&self) -> Vec<u8> {
        assert!(
            (1..=MAX_NICKS).contains(&self.nicks.len()),
            "an announcement lists 1 to {MAX_NICKS} nicks"
        );
        let mut out = Vec::with_capacity(SIGNED_FIXED_LEN + 8 * (1 + MAX_NICK_LEN));
        out.extend_from_slice(self.key);
        let mut fields = [0; 8 + 8 + 8];
        BigEndian::write_u64(&mut fields[0..8], self.epoch);
        BigEndian::write_u64(&mut fields[8..16], self.serial);
        BigEndian::write_u64(&mut fields[16..24], self.time_ms);
        out.extend_from_slice(&fields);
        out.push(if self.leaving { FLAG_LEAVING } else { 0 });
        let mut period = [0; 4];
        BigEndian::write_u32(&mut period, self.period_s);
        out.extend_from_slice(&period);
        out.push(self.nicks.len() as u8);
        for nick in self.nicks {
            debug_assert!(text::check_nick(nick).is_ok(), "nicks are checked first");
            out.push(nick.len() as u8);
            out.extend_from_slice(nick.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{Decoder, HEADER_LEN};
    use crate::wire::peer::{Message, MAX_BODY_LEN};

    fn record(nicks: &[&str], leaving: bool) -> Vec<u8> {
        let nicks: Vec<String> = nicks.iter().map(|n| n.to_string()).collect();
        let mut bytes = MemberDraft {
            key: &[7; KEY_LEN],
            epoch: 11,
            serial: 3,
            time_ms: 1_764_624_703_123,
            leaving,
            period_s: 30,
            nicks: &nicks,
        }
        .signed();
        bytes.extend_from_slice(&[9; SIGNATURE_LEN]);
        bytes
    }

    #[test]
    fn an_announcement_round_trips_through_a_frame() {
        let bytes = record(&["relay", "alice", "bob"], true);
        let mut frame = Vec::new();
        Announce::encode(&mut frame, 5, &bytes);
        let mut input = &frame[..];
        let mut decoder = Decoder::new(MAX_BODY_LEN);
        let body = decoder.next(&mut input).unwrap().unwrap();
        let Ok(Message::Member(announce)) = Message::parse(body) else {
            panic!("a member message");
        };
        assert_eq!(announce.hops, 5);
        let r = announce.record;
        assert_eq!((r.key, r.epoch, r.serial), (&[7; KEY_LEN], 11, 3));
        assert_eq!(
            (r.time_ms, r.leaving, r.period_s),
            (1_764_624_703_123, true, 30)
        );
        assert_eq!(r.nicks().collect::<Vec<_>>(), ["relay", "alice", "bob"]);
        assert_eq!(r.bytes(), &bytes[..]);
        assert_eq!(r.signature(), &[9; SIGNATURE_LEN]);
        assert_eq!(r.signed().len(), bytes.len() - SIGNATURE_LEN);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = record(&["alice", "bob"], false);
        assert!(MemberRecord::parse(&bytes).is_ok());
        for cut in 0..bytes.len() {
            assert!(MemberRecord::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.insert(bytes.len() - SIGNATURE_LEN, 0);
        assert!(MemberRecord::parse(&longer).is_err());
    }

    #[test]
    fn bad_nicks_counts_and_hops_are_refused() {
        let mut bytes = record(&["alice"], false);
        let count_at = SIGNED_FIXED_LEN - 1;
        bytes[count_at] = 0;
        assert_eq!(MemberRecord::parse(&bytes), Err(PeerError::NickCount(0)));
        bytes[count_at] = MAX_NICKS as u8 + 1;
        assert!(matches!(
            MemberRecord::parse(&bytes),
            Err(PeerError::NickCount(_))
        ));
        let mut bad = record(&["alice"], false);
        bad[SIGNED_FIXED_LEN + 1] = b'#';
        assert!(matches!(
            MemberRecord::parse(&bad),
            Err(PeerError::BadNick(_))
        ));
        let mut frame = Vec::new();
        Announce::encode(&mut frame, 0, &record(&["a"], false));
        assert_eq!(Message::parse(&frame[HEADER_LEN..]), Err(PeerError::NoHops));
    }

    #[test]
    fn the_longest_announcement_fits_its_bound() {
        let nicks: Vec<String> = (0..MAX_NICKS).map(|i| format!("{i}").repeat(32)).collect();
        let nicks: Vec<&str> = nicks.iter().map(String::as_str).collect();
        let bytes = record(&nicks, false);
        assert_eq!(bytes.len(), MAX_MEMBER_RECORD_LEN);
        assert!(MemberRecord::parse(&bytes).is_ok());
    }
}

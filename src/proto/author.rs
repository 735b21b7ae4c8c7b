//! Signing the lines this node's clients write and the node's announcements of itself,
//! and checking the signature of every batch and announcement that arrives: the only
//! place that knows how either is signed.
//!
//! The lines a node reads from its clients in one go become one batch with one Ed25519
//! signature, so that signing and verifying cost per batch, not per line, under load,
//! while a lone line is signed alone and at once. What a signature proves, and what
//! becomes of a batch after it, is for `logs` and the node.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::config::Secret;
use crate::wire::lines::{Draft, Record, KEY_LEN, SIGNATURE_LEN};
use crate::wire::member::{MemberDraft, MemberRecord};

/// Put before a batch's digest in what is signed, so that no signature over a batch is
/// ever valid for anything else a node key signs (the link handshake's proof has a
/// context of its own).
const BATCH_CONTEXT: &[u8] = b"p2pchat v2 lines:";

/// Put before an announcement's signed part (a few hundred bytes at most, so signed
/// as it is) in what is signed.
const MEMBER_CONTEXT: &[u8] = b"p2pchat v2 member:";

/// The BLAKE3 key-derivation context of a batch's digest.
const DIGEST_CONTEXT: &str = "p2pchat v2 2026-12-02 batch of signed lines";

/// What an author signs for a batch: the context and a BLAKE3 digest of the signed
/// part. Ed25519 hashes what it signs with SHA-512, twice to sign and once to check,
/// at some 0.5 GB/s here; BLAKE3 digests a full batch about eight times as fast, so a
/// signature costs per batch, not per byte.
fn message(signed: &[u8]) -> [u8; BATCH_CONTEXT.len() + blake3::OUT_LEN] {
    let digest = blake3::Hasher::new_derive_key(DIGEST_CONTEXT)
        .update(signed)
        .finalize();
    let mut message = [0; BATCH_CONTEXT.len() + blake3::OUT_LEN];
    message[..BATCH_CONTEXT.len()].copy_from_slice(BATCH_CONTEXT);
    message[BATCH_CONTEXT.len()..].copy_from_slice(digest.as_bytes());
    message
}

/// This node as an author: its key, its run, and the batch its clients are writing.
#[derive(Debug)]
pub struct Author {
    signing: SigningKey,
    key: [u8; KEY_LEN],
    epoch: u64,
    /// The sequence number of the next line written here.
    next_seq: u64,
    draft: Option<Draft>,
}

impl Author {
    /// The author of run `epoch`, whose first line is number 0.
    pub fn new(identity: &Secret, epoch: u64) -> Self {
        Author::at(identity, epoch, 0)
    }

    /// The author of run `epoch` from line `next_seq` on: for tests, fuzzing and
    /// benchmarks that speak for other nodes.
    pub fn at(identity: &Secret, epoch: u64, next_seq: u64) -> Self {
        let signing = SigningKey::from_bytes(&identity.0);
        Author {
            key: signing.verifying_key().to_bytes(),
            signing,
            epoch,
            next_seq,
            draft: None,
        }
    }

    /// Adds a line to the batch being written. When it does not fit, the batch so far
    /// is signed and returned first, and the line starts the next one.
    pub fn write(&mut self, time_ms: u64, nick: &str, text: &str) -> Option<Vec<u8>> {
        let full = self.draft.as_ref().is_some_and(|d| !d.fits(nick, text));
        let sealed = if full { self.seal() } else { None };
        let (key, epoch, first) = (&self.key, self.epoch, self.next_seq);
        let draft = self
            .draft
            .get_or_insert_with(|| Draft::new(key, epoch, first));
        draft.push(time_ms, nick, text);
        self.next_seq += 1;
        sealed
    }

    /// Signs the batch being written and returns its record, if it holds any line.
    pub fn seal(&mut self) -> Option<Vec<u8>> {
        let draft = self.draft.take()?;
        let signature = self.signing.sign(&message(draft.signed())).to_bytes();
        Some(draft.into_record(&signature))
    }

    /// Signs an announcement of this node's run; returns its record.
    pub fn announce(
        &self,
        serial: u64,
        time_ms: u64,
        leaving: bool,
        period_s: u32,
        nicks: &[String],
    ) -> Vec<u8> {
        let mut record = MemberDraft {
            key: &self.key,
            epoch: self.epoch,
            serial,
            time_ms,
            leaving,
            period_s,
            nicks,
        }
        .signed();
        let signature = self.signing.sign(&[MEMBER_CONTEXT, &record].concat());
        record.extend_from_slice(&signature.to_bytes());
        record
    }
}

/// Author keys whose decoded form is kept: a busy relay's authors, most of the time.
const KEYS_KEPT: usize = 4096;

/// Checks batch signatures; keeps the decoded keys of recent authors, since decoding
/// a key costs a fifth of a check.
#[derive(Debug, Default)]
pub struct Verifier {
    keys: BTreeMap<[u8; KEY_LEN], VerifyingKey>,
}

impl Verifier {
    /// Whether `record` was signed by the key it names. Strict verification: no weak
    /// key and no second encoding of a signature passes.
    pub fn verify(&mut self, record: &Record<'_>) -> bool {
        self.holds(record.author, &message(record.signed()), record.signature())
    }

    /// Whether `record` was signed by the node it announces, as strictly.
    pub fn verify_member(&mut self, record: &MemberRecord<'_>) -> bool {
        let signed = [MEMBER_CONTEXT, record.signed()].concat();
        self.holds(record.key, &signed, record.signature())
    }

    fn holds(
        &mut self,
        key: &[u8; KEY_LEN],
        signed: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        let key = match self.keys.get(key) {
            Some(decoded) => *decoded,
            None => {
                let Ok(decoded) = VerifyingKey::from_bytes(key) else {
                    return false;
                };
                if self.keys.len() >= KEYS_KEPT {
                    self.keys.clear();
                }
                self.keys.insert(*key, decoded);
                decoded
            }
        };
        key.verify_strict(signed, &Signature::from_bytes(signature))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Author {
        Author::new(&Secret([3; 32]), 77)
    }

    #[test]
    fn a_sealed_batch_verifies_and_numbers_its_lines() {
        let mut me = author();
        assert!(me.write(1, "alice", "one").is_none());
        assert!(me.write(2, "bob", "two").is_none());
        let record = me.seal().expect("two lines");
        let parsed = Record::parse(&record).unwrap();
        assert_eq!((parsed.epoch, parsed.first, parsed.count), (77, 0, 2));
        assert!(Verifier::default().verify(&parsed));
        assert!(me.seal().is_none(), "nothing written since");
        me.write(3, "alice", "three");
        let next = me.seal().unwrap();
        assert_eq!(Record::parse(&next).unwrap().first, 2);
    }

    #[test]
    fn any_altered_byte_fails() {
        let mut me = author();
        me.write(1, "alice", "pay bob 5");
        let record = me.seal().unwrap();
        let mut verifier = Verifier::default();
        for i in 0..record.len() {
            let mut altered = record.clone();
            altered[i] ^= 0x01;
            if let Ok(parsed) = Record::parse(&altered) {
                assert!(!verifier.verify(&parsed), "byte {i} altered yet verified");
            }
        }
    }

    #[test]
    fn another_key_cannot_sign_for_an_author() {
        let mut mallory = Author::new(&Secret([9; 32]), 77);
        mallory.write(1, "alice", "forged");
        let mut record = mallory.seal().unwrap();
        record[..KEY_LEN].copy_from_slice(&author().key);
        let parsed = Record::parse(&record).unwrap();
        assert!(!Verifier::default().verify(&parsed));
    }

    #[test]
    fn an_announcement_verifies_and_is_no_batch() {
        let me = author();
        let record = me.announce(4, 1000, false, 30, &["alice".to_owned()]);
        let parsed = MemberRecord::parse(&record).unwrap();
        let mut verifier = Verifier::default();
        assert!(verifier.verify_member(&parsed));
        for i in 0..record.len() {
            let mut altered = record.clone();
            altered[i] ^= 0x01;
            if let Ok(parsed) = MemberRecord::parse(&altered) {
                assert!(
                    !verifier.verify_member(&parsed),
                    "byte {i} altered yet verified"
                );
            }
        }
    }

    #[test]
    fn a_full_batch_is_sealed_before_the_line_that_does_not_fit() {
        let mut me = author();
        let text = "x".repeat(4000);
        let mut sealed = Vec::new();
        for i in 0..40 {
            sealed.extend(me.write(i, "n", &text));
        }
        sealed.extend(me.seal());
        let mut next = 0;
        for record in &sealed {
            let parsed = Record::parse(record).unwrap();
            assert_eq!(parsed.first, next);
            next = parsed.end();
        }
        assert_eq!(next, 40);
        assert!(sealed.len() >= 3);
    }
}

//! The bytes of a link's set-up that are not Noise's own: the preamble each end sends
//! first, in the clear, and the identity proof each end carries inside the handshake.
//!
//! The layout is written down in docs/PROTOCOL.md ("Handshake"). This file checks
//! shapes, not signatures: verifying the proof is the core's job.

use std::fmt;

use byteorder::{BigEndian, ByteOrder};

/// First bytes on every link: tell a p2pchat peer from anything else that connects.
pub const MAGIC: [u8; 4] = *b"P2PC";

/// The protocol version this build speaks; a peer with another one is refused.
pub const VERSION: u16 = 2;

/// Bytes of the preamble: magic, version, flags, one reserved byte.
pub const PREAMBLE_LEN: usize = 8;

/// The preamble flag saying the sender mixes a network key into the handshake.
const FLAG_NETWORK_KEY: u8 = 1;

/// Bytes of an Ed25519 public key, and of a node's identity key on the wire.
pub const KEY_LEN: usize = 32;

/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Bytes of the identity proof: the identity key, then its signature.
pub const IDENTITY_LEN: usize = KEY_LEN + SIGNATURE_LEN;

/// What the identity key signs: this context, then the sender's Noise static key. The
/// context keeps the signature from meaning anything outside a p2pchat handshake.
pub const IDENTITY_CONTEXT: &[u8] = b"p2pchat v2 noise static key:";

/// The first bytes each end sends: who it is not (a stranger), which version it speaks,
/// and whether it expects a network key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    pub network_key: bool,
}

/// Why a preamble is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreambleError {
    /// The first bytes are not [`MAGIC`]: not a p2pchat peer.
    BadMagic([u8; 4]),
    /// A p2pchat peer of another protocol version.
    Version { theirs: u16 },
}

impl fmt::Display for PreambleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreambleError::BadMagic(magic) => {
                write!(f, "bad magic {magic:02x?} (not a p2pchat peer)")
            }
            PreambleError::Version { theirs } => write!(
                f,
                "protocol version mismatch: we speak {VERSION}, the peer speaks {theirs}"
            ),
        }
    }
}

impl std::error::Error for PreambleError {}

impl Preamble {
    /// Parses the first [`PREAMBLE_LEN`] bytes of a link.
    pub fn parse(bytes: &[u8; PREAMBLE_LEN]) -> Result<Self, PreambleError> {
        let magic: [u8; 4] = bytes[..4].try_into().expect("4 of 8 bytes");
        if magic != MAGIC {
            // Version 1 began with a frame header, then a hello holding the magic.
            if bytes[4..] == [1, b'P', b'2', b'P'] {
                return Err(PreambleError::Version { theirs: 1 });
            }
            return Err(PreambleError::BadMagic(magic));
        }
        let version = BigEndian::read_u16(&bytes[4..6]);
        if version != VERSION {
            return Err(PreambleError::Version { theirs: version });
        }
        // Flags this version does not know, and the reserved byte, are ignored: a later
        // version may set them without being refused.
        Ok(Preamble {
            network_key: bytes[6] & FLAG_NETWORK_KEY != 0,
        })
    }

    /// Appends the preamble to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(if self.network_key {
            FLAG_NETWORK_KEY
        } else {
            0
        });
        out.push(0);
    }
}

/// A node's identity key and its signature over the sender's Noise static key, as a
/// handshake payload carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityProof {
    pub key: [u8; KEY_LEN],
    pub signature: [u8; SIGNATURE_LEN],
}

/// A handshake payload that is not an identity proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadProofLength(pub usize);

impl fmt::Display for BadProofLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "identity proof of {} bytes, not {IDENTITY_LEN}", self.0)
    }
}

impl IdentityProof {
    pub fn parse(payload: &[u8]) -> Result<Self, BadProofLength> {
        if payload.len() != IDENTITY_LEN {
            return Err(BadProofLength(payload.len()));
        }
        let (key, signature) = payload.split_at(KEY_LEN);
        Ok(IdentityProof {
            key: key.try_into().expect("split at KEY_LEN"),
            signature: signature.try_into().expect("the rest is SIGNATURE_LEN"),
        })
    }

    pub fn encode(&self) -> [u8; IDENTITY_LEN] {
        let mut out = [0; IDENTITY_LEN];
        out[..KEY_LEN].copy_from_slice(&self.key);
        out[KEY_LEN..].copy_from_slice(&self.signature);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_layout_is_stable() {
        let mut out = Vec::new();
        Preamble { network_key: true }.encode(&mut out);
        assert_eq!(out, [b'P', b'2', b'P', b'C', 0, 2, 1, 0]);
        let parsed = Preamble::parse(&out.try_into().unwrap());
        assert_eq!(parsed, Ok(Preamble { network_key: true }));
    }

    #[test]
    fn another_version_is_named() {
        let bytes = [b'P', b'2', b'P', b'C', 0, 3, 0, 0];
        assert_eq!(
            Preamble::parse(&bytes),
            Err(PreambleError::Version { theirs: 3 })
        );
        let v1_hello = [0, 0, 0, 31, 1, b'P', b'2', b'P'];
        assert_eq!(
            Preamble::parse(&v1_hello),
            Err(PreambleError::Version { theirs: 1 })
        );
        assert_eq!(
            PreambleError::Version { theirs: 3 }.to_string(),
            "protocol version mismatch: we speak 2, the peer speaks 3"
        );
    }

    #[test]
    fn a_stranger_is_not_a_peer() {
        let http = *b"GET / HT";
        assert!(matches!(
            Preamble::parse(&http),
            Err(PreambleError::BadMagic(_))
        ));
    }

    #[test]
    fn unknown_flags_are_ignored() {
        let bytes = [b'P', b'2', b'P', b'C', 0, 2, 0xfe, 7];
        assert_eq!(Preamble::parse(&bytes), Ok(Preamble { network_key: false }));
    }

    #[test]
    fn identity_proof_round_trips_and_checks_its_length() {
        let proof = IdentityProof {
            key: [1; KEY_LEN],
            signature: [2; SIGNATURE_LEN],
        };
        assert_eq!(IdentityProof::parse(&proof.encode()), Ok(proof));
        assert_eq!(IdentityProof::parse(&[0; 95]), Err(BadProofLength(95)));
    }
}

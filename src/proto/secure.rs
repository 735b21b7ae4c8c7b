//! A link's secure channel: the preamble, the Noise XX handshake in which each end
//! proves its node key, and the transport messages after it.
//!
//! Pure computation on bytes handed in: snow performs no I/O, and the randomness of the
//! ephemeral keys comes from a seed the node passes, so the simulator runs the real
//! protocol deterministically. It knows nothing of chat, connections or time. The bytes
//! are in docs/PROTOCOL.md ("Handshake").

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{HandshakeState, TransportState};

use crate::config::Secret;
use crate::wire::frame::{Decoder, FrameError, NOISE_HEADER_LEN};
use crate::wire::handshake::{
    BadProofLength, IdentityProof, Preamble, PreambleError, IDENTITY_CONTEXT, KEY_LEN, PREAMBLE_LEN,
};

use super::ids::NodeId;

/// Without a network key: X25519, ChaCha20-Poly1305, BLAKE2s.
const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// With a network key, mixed in before the first message, so that a responder refuses a
/// stranger on message 1, before it has revealed anything.
const PATTERN_PSK: &str = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2s";

/// Bound into the handshake hash: a handshake of anything else cannot be replayed here.
const PROLOGUE: &[u8] = b"p2pchat v2";

/// The longest Noise message: what a 2-byte length can say.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// The AEAD tag every transport message carries.
const TAG_LEN: usize = 16;

/// Bytes a handshake message holds besides its payload at the most: an ephemeral key,
/// an encrypted static key and two tags (XX message 2).
const HANDSHAKE_OVERHEAD: usize = 32 + 32 + 16 + 16;

/// Plaintext in one transport message at the most.
pub const MAX_PLAINTEXT_LEN: usize = MAX_MESSAGE_LEN - TAG_LEN;

/// The node id of an identity key: its first 8 bytes. Claiming another node's id takes a
/// key whose first 64 bits match, about 2^64 key generations.
pub fn node_id_of(key: &[u8; KEY_LEN]) -> NodeId {
    NodeId(u64::from_be_bytes(
        key[..8].try_into().expect("8 of 32 bytes"),
    ))
}

/// The public half of an identity key.
pub fn public_key(identity: &Secret) -> [u8; KEY_LEN] {
    SigningKey::from_bytes(&identity.0)
        .verifying_key()
        .to_bytes()
}

/// What a node proves itself with on every link, made once per run: its identity key,
/// a Noise static key for this run and the identity key's signature over it.
pub struct Credentials {
    id: NodeId,
    static_private: Secret,
    proof: IdentityProof,
    network_key: Option<Secret>,
    params: NoiseParams,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("network_key", &self.network_key.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials for the node with `identity`; `rng` draws this run's static key.
    pub fn new(identity: &Secret, network_key: Option<Secret>, rng: &mut ChaCha20Rng) -> Self {
        let signing = SigningKey::from_bytes(&identity.0);
        let key = signing.verifying_key().to_bytes();
        let pattern = if network_key.is_some() {
            PATTERN_PSK
        } else {
            PATTERN
        };
        let params: NoiseParams = pattern.parse().expect("a pattern snow supports");
        let keypair = snow::Builder::with_resolver(params.clone(), Box::new(Resolver::new(rng)))
            .generate_keypair()
            .expect("the resolver has X25519 and a random source");
        let mut message = IDENTITY_CONTEXT.to_vec();
        message.extend_from_slice(&keypair.public);
        Credentials {
            id: node_id_of(&key),
            static_private: Secret(
                keypair.private[..]
                    .try_into()
                    .expect("X25519 keys are 32 bytes"),
            ),
            proof: IdentityProof {
                key,
                signature: signing.sign(&message).to_bytes(),
            },
            network_key,
            params,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The public identity key, from which the id is derived.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.proof.key
    }

    fn preamble(&self) -> Preamble {
        Preamble {
            network_key: self.network_key.is_some(),
        }
    }
}

/// The remote end of a channel whose handshake is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proven {
    /// Derived from `key`.
    pub id: NodeId,
    pub key: [u8; KEY_LEN],
}

/// Why a channel failed; the link must be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    Preamble(PreambleError),
    /// One end has a network key and the other none.
    NetworkKey {
        ours: bool,
    },
    Frame(FrameError),
    /// A handshake message did not decrypt or did not fit the pattern; with a network
    /// key on both ends, message 1 fails so when the keys differ.
    Handshake {
        message: u8,
        network_key: bool,
    },
    BadProof(BadProofLength),
    /// The identity proof's signature does not verify: the peer does not hold the key it
    /// shows.
    Forged {
        claimed: NodeId,
    },
    /// A transport message did not decrypt: altered, forged or replayed bytes.
    Decrypt,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Preamble(err) => err.fmt(f),
            ChannelError::NetworkKey { ours: true } => {
                f.write_str("network key mismatch: we have one, the peer has none")
            }
            ChannelError::NetworkKey { ours: false } => {
                f.write_str("network key mismatch: the peer has one, we have none")
            }
            ChannelError::Frame(err) => write!(f, "noise message: {err}"),
            ChannelError::Handshake {
                message: 1,
                network_key: true,
            } => f.write_str("handshake message 1 did not decrypt: another network key"),
            ChannelError::Handshake { message, .. } => {
                write!(f, "handshake message {message} is invalid")
            }
            ChannelError::BadProof(err) => write!(f, "handshake: {err}"),
            ChannelError::Forged { claimed } => write!(
                f,
                "identity proof does not verify: the peer does not hold the key of node {claimed}"
            ),
            ChannelError::Decrypt => {
                f.write_str("transport message did not decrypt (altered or forged bytes)")
            }
        }
    }
}

impl std::error::Error for ChannelError {}

/// One end of a link's secure channel.
pub struct Channel {
    state: State,
    /// The peer's preamble as far as it has arrived.
    preamble: Vec<u8>,
    /// Cuts the bytes after the preamble into Noise messages.
    decoder: Decoder,
    /// Handshake messages read so far.
    read: u8,
    /// The remote end, once its proof verified; handed out when the handshake is done.
    proven: Option<Proven>,
}

enum State {
    Handshake(Box<HandshakeState>),
    Transport(Box<TransportState>),
    /// After an error nothing more is read: input is ignored.
    Broken,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Handshake(_) => "handshake",
            State::Transport(_) => "transport",
            State::Broken => "broken",
        };
        f.debug_struct("Channel").field("state", &state).finish()
    }
}

impl Channel {
    /// Starts a channel, appending what this end sends first to `wire`: the preamble,
    /// and message 1 for the initiator. `rng` draws the ephemeral key.
    pub fn new(
        creds: &Credentials,
        initiator: bool,
        rng: &mut ChaCha20Rng,
        wire: &mut Vec<u8>,
    ) -> Self {
        let mut builder =
            snow::Builder::with_resolver(creds.params.clone(), Box::new(Resolver::new(rng)))
                .local_private_key(&creds.static_private.0)
                .and_then(|b| b.prologue(PROLOGUE))
                .expect("a fresh builder takes a key and a prologue");
        if let Some(psk) = &creds.network_key {
            builder = builder
                .psk(0, &psk.0)
                .expect("the psk pattern has a psk at 0");
        }
        let handshake = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .expect("a complete builder");
        creds.preamble().encode(wire);
        let mut channel = Channel {
            state: State::Handshake(Box::new(handshake)),
            preamble: Vec::with_capacity(PREAMBLE_LEN),
            decoder: Decoder::noise(),
            read: 0,
            proven: None,
        };
        if initiator {
            channel
                .write_handshake(&[], wire)
                .expect("message 1 is written first");
        }
        channel
    }

    /// Whether the handshake is done and transport messages flow.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Transport(_))
    }

    /// Reads bytes from the peer: handshake messages are answered into `wire`, transport
    /// messages decrypted onto the end of `plain`. Returns the proven remote end in the
    /// call that completes the handshake (plaintext after it is already in `plain`).
    pub fn recv(
        &mut self,
        creds: &Credentials,
        mut input: &[u8],
        wire: &mut Vec<u8>,
        plain: &mut Vec<u8>,
    ) -> Result<Option<Proven>, ChannelError> {
        if matches!(self.state, State::Broken) {
            return Ok(None);
        }
        let result = self.recv_inner(creds, &mut input, wire, plain);
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    fn recv_inner(
        &mut self,
        creds: &Credentials,
        input: &mut &[u8],
        wire: &mut Vec<u8>,
        plain: &mut Vec<u8>,
    ) -> Result<Option<Proven>, ChannelError> {
        let mut opened = None;
        if self.preamble.len() < PREAMBLE_LEN {
            let take = (PREAMBLE_LEN - self.preamble.len()).min(input.len());
            self.preamble.extend_from_slice(&input[..take]);
            *input = &input[take..];
            let Ok(bytes) = <&[u8; PREAMBLE_LEN]>::try_from(&self.preamble[..]) else {
                return Ok(None);
            };
            let theirs = Preamble::parse(bytes).map_err(ChannelError::Preamble)?;
            let ours = creds.preamble();
            if theirs.network_key != ours.network_key {
                return Err(ChannelError::NetworkKey {
                    ours: ours.network_key,
                });
            }
        }
        while let Some(message) = self.decoder.next(input).map_err(ChannelError::Frame)? {
            match &mut self.state {
                State::Transport(transport) => {
                    let start = plain.len();
                    plain.resize(start + message.len(), 0);
                    let opened = transport.read_message(message, &mut plain[start..]);
                    // Nothing of a message that does not open stays behind.
                    plain.truncate(start + *opened.as_ref().unwrap_or(&0));
                    opened.map_err(|_| ChannelError::Decrypt)?;
                }
                State::Handshake(handshake) => {
                    self.read += 1;
                    let failed = ChannelError::Handshake {
                        message: if handshake.is_initiator() {
                            2 * self.read
                        } else {
                            2 * self.read - 1
                        },
                        network_key: creds.network_key.is_some(),
                    };
                    if handshake.is_my_turn() {
                        return Err(failed);
                    }
                    let mut payload = [0; MAX_MESSAGE_LEN];
                    let n = handshake
                        .read_message(message, &mut payload)
                        .map_err(|_| failed.clone())?;
                    match handshake.get_remote_static() {
                        Some(remote_static) => {
                            self.proven = Some(verify(&payload[..n], remote_static)?);
                        }
                        None if n == 0 => {}
                        None => return Err(failed),
                    }
                    if !handshake.is_handshake_finished() {
                        self.write_handshake(&creds.proof.encode(), wire)
                            .map_err(|()| failed)?;
                    }
                    if let Some(proven) = self.open()? {
                        opened = Some(proven);
                    }
                }
                State::Broken => unreachable!("recv returns early on a broken channel"),
            }
        }
        Ok(opened)
    }

    /// Moves to transport mode once the handshake is finished.
    fn open(&mut self) -> Result<Option<Proven>, ChannelError> {
        let State::Handshake(handshake) = &self.state else {
            return Ok(None);
        };
        if !handshake.is_handshake_finished() {
            return Ok(None);
        }
        let State::Handshake(handshake) = std::mem::replace(&mut self.state, State::Broken) else {
            unreachable!("matched above");
        };
        let transport = handshake
            .into_transport_mode()
            .expect("a finished handshake has transport keys");
        self.state = State::Transport(Box::new(transport));
        Ok(Some(self.proven.expect("XX proves the remote static key")))
    }

    fn write_handshake(&mut self, payload: &[u8], wire: &mut Vec<u8>) -> Result<(), ()> {
        let State::Handshake(handshake) = &mut self.state else {
            unreachable!("written during the handshake only");
        };
        let room = payload.len() + HANDSHAKE_OVERHEAD;
        write_message(wire, room, |out| handshake.write_message(payload, out)).map_err(|_| ())
    }

    /// Seals `plain` into as few transport messages as it fits in, appended to `wire`.
    pub fn seal(&mut self, plain: &[u8], wire: &mut Vec<u8>) {
        let State::Transport(transport) = &mut self.state else {
            unreachable!("plaintext is queued only once the channel is open");
        };
        for chunk in plain.chunks(MAX_PLAINTEXT_LEN) {
            write_message(wire, chunk.len() + TAG_LEN, |out| {
                transport.write_message(chunk, out)
            })
            .expect("a chunk fits one message and the nonce lasts 2^64 messages");
        }
    }
}

/// Appends one Noise message of at most `room` bytes to `wire` with its 2-byte length,
/// written in place.
fn write_message(
    wire: &mut Vec<u8>,
    room: usize,
    write: impl FnOnce(&mut [u8]) -> Result<usize, snow::Error>,
) -> Result<(), snow::Error> {
    let start = wire.len();
    wire.resize(start + NOISE_HEADER_LEN + room, 0);
    let n = match write(&mut wire[start + NOISE_HEADER_LEN..]) {
        Ok(n) => n,
        Err(err) => {
            wire.truncate(start);
            return Err(err);
        }
    };
    wire.truncate(start + NOISE_HEADER_LEN + n);
    let len = u16::try_from(n).expect("snow writes at most 65535 bytes");
    wire[start..start + NOISE_HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Checks an identity proof against the Noise static key the handshake authenticated.
fn verify(payload: &[u8], remote_static: &[u8]) -> Result<Proven, ChannelError> {
    let proof = IdentityProof::parse(payload).map_err(ChannelError::BadProof)?;
    let claimed = node_id_of(&proof.key);
    let forged = ChannelError::Forged { claimed };
    let key = VerifyingKey::from_bytes(&proof.key).map_err(|_| forged.clone())?;
    let mut message = IDENTITY_CONTEXT.to_vec();
    message.extend_from_slice(remote_static);
    key.verify_strict(&message, &Signature::from_bytes(&proof.signature))
        .map_err(|_| forged)?;
    Ok(Proven {
        id: claimed,
        key: proof.key,
    })
}

/// snow's primitives, measured (BENCHMARKS.md): ring's ChaCha20-Poly1305, which costs a
/// tenth of the RustCrypto one per small message, and the RustCrypto X25519 and BLAKE2s
/// that ring lacks; randomness from a seed drawn from the node's generator.
struct Resolver {
    seed: [u8; 32],
}

impl Resolver {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let mut seed = [0; 32];
        rng.fill_bytes(&mut seed);
        Resolver { seed }
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Seeded(ChaCha20Rng::from_seed(self.seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver.resolve_cipher(choice)
    }
}

struct Seeded(ChaCha20Rng);

impl Random for Seeded {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// Credentials made from one byte: the identity key, the generator's seed and the
/// network key (if any) are that byte 32 times. For the crate's tests.
#[cfg(test)]
pub(crate) fn test_credentials(key: u8, network_key: Option<u8>) -> Credentials {
    let mut rng = ChaCha20Rng::from_seed([key; 32]);
    Credentials::new(
        &Secret([key; 32]),
        network_key.map(|k| Secret([k; 32])),
        &mut rng,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_credentials as creds;

    /// Runs a handshake between two ends, moving bytes until neither has any to send.
    fn connect(
        a: &Credentials,
        b: &Credentials,
    ) -> (Channel, Channel, Result<(Proven, Proven), ChannelError>) {
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
        let mut ca = Channel::new(a, true, &mut rng, &mut to_b);
        let mut cb = Channel::new(b, false, &mut rng, &mut to_a);
        let (mut pa, mut pb) = (None, None);
        let mut plain = Vec::new();
        while !to_a.is_empty() || !to_b.is_empty() {
            let input = std::mem::take(&mut to_b);
            match cb.recv(b, &input, &mut to_a, &mut plain) {
                Ok(p) => pb = pb.or(p),
                Err(err) => return (ca, cb, Err(err)),
            }
            let input = std::mem::take(&mut to_a);
            match ca.recv(a, &input, &mut to_b, &mut plain) {
                Ok(p) => pa = pa.or(p),
                Err(err) => return (ca, cb, Err(err)),
            }
        }
        assert!(plain.is_empty());
        (ca, cb, Ok((pa.expect("a opened"), pb.expect("b opened"))))
    }

    #[test]
    fn each_end_proves_its_identity_key() {
        let (a, b) = (creds(1, None), creds(2, None));
        let (ca, cb, proven) = connect(&a, &b);
        let (pa, pb) = proven.unwrap();
        assert_eq!((pa.id, pb.id), (b.id(), a.id()));
        assert_eq!(&pa.key, b.key());
        assert!(ca.is_open() && cb.is_open());
    }

    #[test]
    fn plaintext_crosses_in_any_cut_and_one_flipped_bit_is_refused() {
        let (a, b) = (creds(1, Some(7)), creds(2, Some(7)));
        let (mut ca, mut cb, proven) = connect(&a, &b);
        proven.unwrap();
        let text: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        ca.seal(&text, &mut wire);
        assert_eq!(wire.len(), text.len() + 4 * (NOISE_HEADER_LEN + TAG_LEN));
        let mut plain = Vec::new();
        for piece in wire.chunks(1000) {
            assert_eq!(cb.recv(&b, piece, &mut Vec::new(), &mut plain), Ok(None));
        }
        assert_eq!(plain, text);

        let mut wire = Vec::new();
        ca.seal(b"hello", &mut wire);
        wire[5] ^= 1;
        let err = cb.recv(&b, &wire, &mut Vec::new(), &mut plain);
        assert_eq!(err, Err(ChannelError::Decrypt));
    }

    #[test]
    fn network_keys_must_match() {
        let (_, _, result) = connect(&creds(1, Some(7)), &creds(2, Some(8)));
        assert_eq!(
            result.unwrap_err(),
            ChannelError::Handshake {
                message: 1,
                network_key: true
            }
        );
        let (_, _, result) = connect(&creds(1, None), &creds(2, Some(8)));
        assert_eq!(result.unwrap_err(), ChannelError::NetworkKey { ours: true });
    }

    #[test]
    fn a_proof_for_another_static_key_is_refused() {
        let (a, mut b) = (creds(1, None), creds(2, None));
        // b shows a's key with a's signature, made over a's static key, not b's.
        b.proof = a.proof;
        let (_, _, result) = connect(&a, &b);
        assert_eq!(
            result.unwrap_err(),
            ChannelError::Forged { claimed: a.id() }
        );
    }
}

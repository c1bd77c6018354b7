//! The key agreement itself: Signal's X3DH without one-time prekeys, in the exact profile of
//! WIRE.md Part A.
//!
//! ```text
//! DH1 = X25519(IK_A, SPK_B)    DH2 = X25519(EK_A, IK_B)    DH3 = X25519(EK_A, SPK_B)
//! SK  = HKDF-SHA256(salt = 32 zero bytes, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3,
//!                   info = "status-rs X3DH", 32 bytes)
//! AD  = Ed25519 IK_A ‖ Ed25519 IK_B
//! ```
//!
//! IK are the X25519 forms of the Ed25519 identities. Every DH output must be contributory.

use hkdf::Hkdf;
use proto::Message;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::bundle::{DecodeError, InstallationId, PreKeyId, VerifiedBundle, decode_bounded};
use crate::keys::{
    AssociatedData, DhOutput, EphemeralKeyPair, IdentityKeyPair, KEY_LEN, NonContributory,
    PublicIdentity, SharedSecret, SignedPreKeyPair, X25519PublicKey, diffie_hellman,
};

/// The HKDF `info` of SK (WIRE.md Part A).
pub const X3DH_INFO: &[u8] = b"status-rs X3DH";

/// The largest encoded initial-message header accepted, in bytes. A header holds three 32-byte
/// keys and a 32-bit id (about 110 bytes with protobuf framing); the margin allows for fields a
/// newer peer may add, which are skipped.
pub const MAX_HEADER_LEN: usize = 256;

/// The header of an initial message: who the initiator is, the ephemeral key, and which of the
/// responder's signed prekeys was used.
///
/// Wire form: `proto::secure::X3dhHeader { key = 1 (EK_A), id = 4 (the responder's SPK public key),
/// identity = 5 (IK_A, Ed25519), pre_key_version = 6 (the SPK's id) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialHeader {
    identity: PublicIdentity,
    ephemeral: X25519PublicKey,
    signed_pre_key: X25519PublicKey,
    pre_key_id: PreKeyId,
}

impl InitialHeader {
    /// The initiator's identity (IK_A).
    pub fn identity(&self) -> &PublicIdentity {
        &self.identity
    }

    /// The initiator's ephemeral public key (EK_A).
    pub fn ephemeral_key(&self) -> X25519PublicKey {
        self.ephemeral
    }

    /// The responder's signed prekey that was used (SPK_B).
    pub fn signed_pre_key(&self) -> X25519PublicKey {
        self.signed_pre_key
    }

    /// The id of that signed prekey.
    pub fn pre_key_id(&self) -> PreKeyId {
        self.pre_key_id
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::secure::X3dhHeader {
        proto::secure::X3dhHeader {
            key: self.ephemeral.as_bytes().to_vec(),
            id: self.signed_pre_key.as_bytes().to_vec(),
            identity: self.identity.ed25519_bytes().to_vec(),
            pre_key_version: self.pre_key_id.get(),
        }
    }

    /// Encodes the wire form to bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Parses the wire form; every key is checked (canonical, on the curve, not of small order).
    ///
    /// # Errors
    /// [`DecodeError::Key`] naming the field (`"key"`, `"id"` or `"identity"`), or
    /// [`DecodeError::MissingField`] if `pre_key_version` is absent (0).
    pub fn from_proto(msg: &proto::secure::X3dhHeader) -> Result<Self, DecodeError> {
        let ephemeral =
            X25519PublicKey::from_bytes(&msg.key).map_err(|error| DecodeError::Key {
                field: "key",
                error,
            })?;
        let signed_pre_key = X25519PublicKey::from_bytes(&msg.id)
            .map_err(|error| DecodeError::Key { field: "id", error })?;
        let identity =
            PublicIdentity::from_bytes(&msg.identity).map_err(|error| DecodeError::Key {
                field: "identity",
                error,
            })?;
        Ok(Self {
            identity,
            ephemeral,
            signed_pre_key,
            pre_key_id: PreKeyId::new(msg.pre_key_version).ok_or(DecodeError::MissingField {
                field: "pre_key_version",
            })?,
        })
    }

    /// Decodes bytes: at most [`MAX_HEADER_LEN`] of them, then [`Self::from_proto`].
    ///
    /// # Errors
    /// See [`DecodeError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let msg = decode_bounded::<proto::secure::X3dhHeader>(bytes, MAX_HEADER_LEN)?;
        Self::from_proto(&msg)
    }
}

/// Why the initiator could not complete an agreement. Nothing was changed; the ephemeral key
/// passed in is dropped (zeroized) either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitiateError {
    /// The bundle has no prekey for that installation (caller's mistake).
    #[error("bundle has no prekey for installation {installation_id}")]
    UnknownInstallation {
        /// The installation asked for.
        installation_id: InstallationId,
    },
    /// A Diffie-Hellman output did not depend on our secret. Bundle parsing refuses small-order
    /// keys, so this is a defence in depth that should never trigger.
    #[error("a Diffie-Hellman output was not contributory")]
    NonContributory,
}

/// What the initiator (Alice) gets from [`initiate`].
///
/// Start the Double Ratchet with `shared_secret`, `associated_data` and `remote_signed_pre_key` as
/// the responder's first ratchet public key, and send `header` with the first messages.
#[derive(Debug)]
#[non_exhaustive]
pub struct InitiatorOutput {
    /// SK.
    pub shared_secret: SharedSecret,
    /// AD = IK_A ‖ IK_B (Ed25519).
    pub associated_data: AssociatedData,
    /// The header to send in the initial message(s).
    pub header: InitialHeader,
    /// The responder's identity (IK_B).
    pub remote_identity: PublicIdentity,
    /// The responder's signed prekey (SPK_B): the ratchet's first remote ratchet key.
    pub remote_signed_pre_key: X25519PublicKey,
    /// The responder's installation this agreement is with.
    pub installation_id: InstallationId,
}

/// What the responder (Bob) gets from [`PreKeyStore::respond`](crate::PreKeyStore::respond).
///
/// Start the Double Ratchet with `shared_secret`, `associated_data` and `signed_pre_key` as the
/// first ratchet key pair.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResponderOutput {
    /// SK.
    pub shared_secret: SharedSecret,
    /// AD = IK_A ‖ IK_B (Ed25519).
    pub associated_data: AssociatedData,
    /// The initiator's identity (IK_A), as claimed by the header. X3DH authenticates it
    /// implicitly: only its owner can derive the same SK, so trust it once the first ratchet
    /// message decrypts.
    pub remote_identity: PublicIdentity,
    /// A copy of the signed prekey pair that was used (SPK_B): the ratchet's first key pair.
    pub signed_pre_key: SignedPreKeyPair,
    /// Its id.
    pub pre_key_id: PreKeyId,
}

/// Runs X3DH as the initiator against `installation_id`'s prekey in a verified bundle, with a
/// fresh `ephemeral` key that this call consumes.
///
/// Without one-time prekeys the responder cannot tell a replayed initial message from a new one
/// by itself; it keeps a replay cache. The ratchet must not send on SK before its first DH step
/// (WIRE.md Part A).
///
/// # Errors
/// See [`InitiateError`].
pub fn initiate(
    identity: &IdentityKeyPair,
    bundle: &VerifiedBundle,
    installation_id: &InstallationId,
    ephemeral: EphemeralKeyPair,
) -> Result<InitiatorOutput, InitiateError> {
    let pre_key =
        bundle
            .pre_key(installation_id)
            .ok_or_else(|| InitiateError::UnknownInstallation {
                installation_id: installation_id.clone(),
            })?;
    let remote = bundle.identity();
    let spk = pre_key.public_key();
    let contributory = |_| InitiateError::NonContributory;
    let dh1 = diffie_hellman(identity.x25519_secret(), &spk).map_err(contributory)?;
    let dh2 = diffie_hellman(ephemeral.secret(), &remote.x25519()).map_err(contributory)?;
    let dh3 = diffie_hellman(ephemeral.secret(), &spk).map_err(contributory)?;
    let shared_secret = derive_shared_secret(&dh1, &dh2, &dh3);
    Ok(InitiatorOutput {
        shared_secret,
        associated_data: AssociatedData::new(identity.public(), remote),
        header: InitialHeader {
            identity: *identity.public(),
            ephemeral: ephemeral.public_key(),
            signed_pre_key: spk,
            pre_key_id: pre_key.id(),
        },
        remote_identity: *remote,
        remote_signed_pre_key: spk,
        installation_id: installation_id.clone(),
    })
}

impl VerifiedBundle {
    /// [`initiate`] with an ephemeral key drawn from `rng` (32 bytes).
    ///
    /// # Errors
    /// See [`InitiateError`].
    pub fn initiate<R: rand_core::CryptoRng + ?Sized>(
        &self,
        identity: &IdentityKeyPair,
        installation_id: &InstallationId,
        rng: &mut R,
    ) -> Result<InitiatorOutput, InitiateError> {
        initiate(
            identity,
            self,
            installation_id,
            EphemeralKeyPair::generate(rng),
        )
    }
}

/// The responder's side of the computation, without any bookkeeping: SK and AD from our identity,
/// the signed prekey pair the header names, and the header.
pub(crate) fn respond_with(
    identity: &IdentityKeyPair,
    signed_pre_key: &SignedPreKeyPair,
    header: &InitialHeader,
) -> Result<(SharedSecret, AssociatedData), NonContributory> {
    let dh1 = diffie_hellman(signed_pre_key.secret(), &header.identity.x25519())?;
    let dh2 = diffie_hellman(identity.x25519_secret(), &header.ephemeral)?;
    let dh3 = diffie_hellman(signed_pre_key.secret(), &header.ephemeral)?;
    Ok((
        derive_shared_secret(&dh1, &dh2, &dh3),
        AssociatedData::new(&header.identity, identity.public()),
    ))
}

/// SK = HKDF-SHA256(salt = 0×32, ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3, info = X3DH_INFO, 32 bytes).
fn derive_shared_secret(dh1: &DhOutput, dh2: &DhOutput, dh3: &DhOutput) -> SharedSecret {
    let mut ikm = Zeroizing::new([0u8; 4 * KEY_LEN]);
    let parts: [&[u8; KEY_LEN]; 4] = [
        &[0xff; KEY_LEN],
        dh1.as_bytes(),
        dh2.as_bytes(),
        dh3.as_bytes(),
    ];
    for (chunk, part) in ikm.chunks_exact_mut(KEY_LEN).zip(parts) {
        chunk.copy_from_slice(part);
    }
    let hkdf = Hkdf::<Sha256>::new(Some(&[0u8; KEY_LEN]), ikm.as_slice());
    let mut sk = [0u8; KEY_LEN];
    let expanded = hkdf.expand(X3DH_INFO, &mut sk);
    // HKDF-SHA256 can expand up to 255 × 32 bytes; 32 always succeeds.
    debug_assert!(expanded.is_ok());
    let secret = SharedSecret::new(sk);
    zeroize::Zeroize::zeroize(&mut sk);
    secret
}

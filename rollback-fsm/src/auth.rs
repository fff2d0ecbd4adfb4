//! Authentication of the staged image at boot (feature `signature`).

use crate::descriptor::ImageDescriptor;

/// Error returned when a staged image cannot be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AuthError {
    /// The evidence has the wrong length or format.
    MalformedEvidence,
    /// The signature does not verify for this descriptor.
    InvalidSignature,
}

/// Checks that a staged image is authentic, given the evidence stored next to it.
pub trait ImageAuthenticator {
    /// Returns `Ok` if `evidence` proves that `descriptor` comes from a trusted signer.
    ///
    /// The bootloader has already checked that the staged bytes match the
    /// descriptor's size and SHA-256 when this is called.
    fn authenticate(&self, descriptor: &ImageDescriptor, evidence: &[u8]) -> Result<(), AuthError>;
}

/// Ed25519 signature over [`ImageDescriptor::to_bytes`]; the evidence is the
/// 64-byte signature.
///
/// NOTE: the evidence will become the signed release manifest once
/// `syssync-proto` provides its manifest check against an image size and
/// SHA-256; that check replaces the body of `authenticate`.
#[derive(Debug, Clone)]
pub struct Ed25519Authenticator {
    key: ed25519_dalek::VerifyingKey,
}

impl Ed25519Authenticator {
    /// Creates an authenticator that trusts `key`.
    pub fn new(key: ed25519_dalek::VerifyingKey) -> Self {
        Self { key }
    }
}

impl ImageAuthenticator for Ed25519Authenticator {
    fn authenticate(&self, descriptor: &ImageDescriptor, evidence: &[u8]) -> Result<(), AuthError> {
        let signature = ed25519_dalek::Signature::from_slice(evidence)
            .map_err(|_| AuthError::MalformedEvidence)?;
        self.key
            .verify_strict(&descriptor.to_bytes(), &signature)
            .map_err(|_| AuthError::InvalidSignature)
    }
}

//! Authentication of the staged image at boot (feature `authentication`).

use crate::descriptor::ImageDescriptor;

/// Error returned when a staged image cannot be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AuthError {
    /// The evidence has the wrong length or format.
    MalformedEvidence,
    /// The signature does not verify for this descriptor.
    InvalidSignature,
    /// The signed manifest names no application image, or one whose size,
    /// SHA-256, target type, version or security counter differs from the
    /// staged image's descriptor.
    ManifestMismatch,
}

/// Checks that a staged image is authentic, given the evidence stored next to it.
pub trait ImageAuthenticator {
    /// Returns `Ok` if `evidence` proves that `descriptor` comes from a trusted signer.
    ///
    /// The bootloader has already checked that the staged bytes match the
    /// descriptor's size and SHA-256 when this is called.
    fn authenticate(&self, descriptor: &ImageDescriptor, evidence: &[u8]) -> Result<(), AuthError>;
}

/// Ed25519 signature over [`ImageDescriptor::to_bytes`], with the 64-byte
/// signature as the evidence. It suits bootloaders used without syssync
/// release manifests; syssync devices use [`ManifestAuthenticator`].
#[cfg(feature = "signature")]
#[derive(Debug, Clone)]
pub struct Ed25519Authenticator {
    key: ed25519_dalek::VerifyingKey,
}

#[cfg(feature = "signature")]
impl Ed25519Authenticator {
    /// Creates an authenticator that trusts `key`.
    pub fn new(key: ed25519_dalek::VerifyingKey) -> Self {
        Self { key }
    }
}

#[cfg(feature = "signature")]
impl ImageAuthenticator for Ed25519Authenticator {
    fn authenticate(&self, descriptor: &ImageDescriptor, evidence: &[u8]) -> Result<(), AuthError> {
        let signature = ed25519_dalek::Signature::from_slice(evidence)
            .map_err(|_| AuthError::MalformedEvidence)?;
        self.key
            .verify_strict(&descriptor.to_bytes(), &signature)
            .map_err(|_| AuthError::InvalidSignature)
    }
}

/// The signed syssync release manifest: the evidence is
/// [`SignedManifest::encode`](syssync_proto::SignedManifest::encode) output, as
/// the device received it in the job offer. The bootloader checks the
/// signature against its own trusted release keys, then that the manifest's
/// application image is exactly the staged image: size, SHA-256, target type,
/// version and security counter.
///
/// `C` verifies the signature: `RustCrypto` through [`new`](Self::new), or any
/// `syssync_proto::Crypto` through [`with_crypto`](Self::with_crypto), for
/// example `CompactCrypto` where flash is short.
#[derive(Debug, Clone, Copy)]
pub struct ManifestAuthenticator<'k, C> {
    trusted: &'k [syssync_proto::TrustedKey],
    crypto: C,
}

#[cfg(feature = "signature")]
impl<'k> ManifestAuthenticator<'k, syssync_proto::RustCrypto> {
    /// Creates an authenticator that trusts the release keys in `trusted` and
    /// verifies with `RustCrypto` (`ed25519-dalek`).
    pub const fn new(trusted: &'k [syssync_proto::TrustedKey]) -> Self {
        Self::with_crypto(trusted, syssync_proto::RustCrypto)
    }
}

impl<'k, C: syssync_proto::Crypto> ManifestAuthenticator<'k, C> {
    /// Creates an authenticator that trusts the release keys in `trusted` and
    /// verifies signatures with `crypto`.
    pub const fn with_crypto(trusted: &'k [syssync_proto::TrustedKey], crypto: C) -> Self {
        Self { trusted, crypto }
    }
}

impl<C: syssync_proto::Crypto> ImageAuthenticator for ManifestAuthenticator<'_, C> {
    fn authenticate(&self, descriptor: &ImageDescriptor, evidence: &[u8]) -> Result<(), AuthError> {
        let signed = syssync_proto::SignedManifest::decode(evidence)
            .map_err(|_| AuthError::MalformedEvidence)?;
        // Decoded in place: a manifest returned by value was copied several
        // times on the stack.
        let mut manifest = syssync_proto::Manifest::empty();
        signed
            .verify_into(&self.crypto, self.trusted, &mut manifest)
            .map_err(|error| match error {
                syssync_proto::ManifestError::BadSignature
                | syssync_proto::ManifestError::UnknownKey(_) => AuthError::InvalidSignature,
                _ => AuthError::MalformedEvidence,
            })?;
        let (_, application) = manifest.application().ok_or(AuthError::ManifestMismatch)?;
        let version = manifest.version;
        let matches = application.size == descriptor.size
            && application.sha256 == descriptor.sha256
            && manifest.target.as_bytes() == descriptor.target_type.as_bytes()
            && version.major == descriptor.version.major
            && version.minor == descriptor.version.minor
            && version.patch == descriptor.version.patch
            && version.build == descriptor.version.build
            && manifest.security_counter == descriptor.security_counter;
        if matches {
            Ok(())
        } else {
            Err(AuthError::ManifestMismatch)
        }
    }
}

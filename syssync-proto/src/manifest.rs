//! The signed release manifest.
//!
//! A release key signs the manifest body, not the update server: the server
//! stores and forwards the signed bytes but cannot change what a device will
//! accept. The device checks the signature over the body bytes exactly as
//! received, before it decodes them.

use serde::{Deserialize, Serialize};

use crate::crypto::Crypto;
use crate::error::{BodyError, ManifestError};
use crate::limits::{MAX_MANIFEST_FILES, MAX_MANIFEST_LEN, MAX_REMOVALS};
use crate::types::{FileName, Sha256Digest, Signature, TargetType, Version};

/// Bytes that precede the manifest body in the signed message (domain separation).
pub const SIGNATURE_CONTEXT: &[u8] = b"syssync manifest v1\0";

/// What a manifest file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// The application image, installed through the bootloader. At most one per manifest.
    Application,
    /// A plain file kept in the device's file store (configuration, certificates, assets).
    Plain,
}

/// One file of a release.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Application image or plain file.
    pub kind: FileKind,
    /// Name on the device. For the application image it is informative only.
    pub name: FileName,
    /// Size in bytes.
    pub size: u32,
    /// SHA-256 of the whole file.
    #[serde(deserialize_with = "crate::types::deserialize_digest")]
    pub sha256: Sha256Digest,
}

/// The release manifest body, as signed by the release key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manifest {
    /// Hardware type the release is built for.
    pub target: TargetType,
    /// Release version.
    pub version: Version,
    /// Anti-rollback security counter: a device refuses a manifest whose counter
    /// is below the one it has committed to.
    pub security_counter: u32,
    /// Expiry as Unix time in seconds (UTC). A device with a trusted clock refuses
    /// the manifest after this instant.
    pub expires_at: u64,
    /// Files to install, at most [`MAX_MANIFEST_FILES`].
    pub files: heapless::Vec<ManifestFile, MAX_MANIFEST_FILES>,
    /// Plain files to remove, at most [`MAX_REMOVALS`].
    pub remove: heapless::Vec<FileName, MAX_REMOVALS>,
}

impl Manifest {
    /// Returns the application image entry and its index, if the release has one.
    pub fn application(&self) -> Option<(usize, &ManifestFile)> {
        self.files
            .iter()
            .enumerate()
            .find(|(_, file)| file.kind == FileKind::Application)
    }

    /// Checks the rules that the type system does not: at most one application
    /// image, unique file names, no file both installed and removed.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let applications = self
            .files
            .iter()
            .filter(|file| file.kind == FileKind::Application)
            .count();
        if applications > 1 {
            return Err(ManifestError::SeveralApplications);
        }
        let mut rest = self.files.as_slice();
        while let [file, later @ ..] = rest {
            if later.iter().any(|other| other.name == file.name) {
                return Err(ManifestError::DuplicateName);
            }
            if self.remove.contains(&file.name) {
                return Err(ManifestError::DuplicateName);
            }
            rest = later;
        }
        Ok(())
    }

    /// Encodes the manifest body into `out` and returns the written prefix.
    pub fn encode<'a>(&self, out: &'a mut [u8]) -> Result<&'a mut [u8], ManifestError> {
        self.validate()?;
        let limit = out.len().min(MAX_MANIFEST_LEN);
        postcard::to_slice(self, &mut out[..limit]).map_err(|_| ManifestError::TooLong)
    }

    /// Decodes and validates a manifest body.
    pub fn decode(body: &[u8]) -> Result<Self, ManifestError> {
        let mut manifest = Self::empty();
        manifest.decode_from(body)?;
        Ok(manifest)
    }

    /// Returns a manifest with no target, files or removals, for
    /// [`decode_from`](Self::decode_from) and
    /// [`SignedManifest::verify_into`] to fill.
    pub const fn empty() -> Self {
        Self {
            target: heapless::String::new(),
            version: Version {
                major: 0,
                minor: 0,
                patch: 0,
                build: 0,
            },
            security_counter: 0,
            expires_at: 0,
            files: heapless::Vec::new(),
            remove: heapless::Vec::new(),
        }
    }

    /// Decodes and validates a manifest body into `self`, as
    /// [`decode`](Self::decode) does, without moving a manifest through
    /// the return value. A manifest is about 1.5 KiB, and on a
    /// microcontroller each such move can take another copy on the stack.
    ///
    /// On an error `self` contains whatever was decoded before the error.
    /// Do not use it then.
    pub fn decode_from(&mut self, body: &[u8]) -> Result<(), ManifestError> {
        if body.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLong);
        }
        crate::codec::decode_manifest(body, self)?;
        self.validate()
    }
}

/// A manifest body with its signature, as carried in a job offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest<'a> {
    /// Which of the device's trusted release keys signed it.
    pub key_id: u8,
    /// The encoded [`Manifest`], exactly as signed.
    #[serde(borrow)]
    pub body: &'a [u8],
    /// Ed25519 signature over [`signed_message`] of `body`.
    pub signature: Signature,
}

/// A release public key that a device trusts, with the id that manifests name it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// Key id as carried in [`SignedManifest::key_id`].
    pub id: u8,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
}

/// Longest [`SignedManifest::encode`] output: key id, a two-byte length, the
/// longest body and the signature.
pub const MAX_SIGNED_MANIFEST_LEN: usize = 1 + 2 + MAX_MANIFEST_LEN + 64;

impl<'a> SignedManifest<'a> {
    /// Encodes key id, body and signature as they appear inside a job offer
    /// (postcard), for storage next to a staged image where a bootloader
    /// checks it again.
    pub fn encode<'o>(&self, out: &'o mut [u8]) -> Result<&'o mut [u8], ManifestError> {
        if self.body.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLong);
        }
        postcard::to_slice(self, out).map_err(|_| ManifestError::TooLong)
    }

    /// Decodes the output of [`SignedManifest::encode`], borrowing the body.
    /// The signature is not checked here: call [`SignedManifest::verify`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_SIGNED_MANIFEST_LEN {
            return Err(ManifestError::TooLong);
        }
        let mut reader = crate::codec::Reader::new(bytes);
        let signed = crate::codec::decode_signed_manifest(&mut reader);
        reader.finish()?;
        if signed.body.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLong);
        }
        Ok(signed)
    }
}

impl SignedManifest<'_> {
    /// Verifies the signature with the trusted key named by `key_id`, then decodes
    /// and validates the body. Nothing of the body is interpreted before the
    /// signature has verified.
    pub fn verify<C: Crypto + ?Sized>(
        &self,
        crypto: &C,
        trusted: &[TrustedKey],
    ) -> Result<Manifest, ManifestError> {
        let mut manifest = Manifest::empty();
        self.verify_into(crypto, trusted, &mut manifest)?;
        Ok(manifest)
    }

    /// Does what [`verify`](Self::verify) does, and decodes the body into
    /// `manifest` instead of returning it, which keeps the stack of a
    /// bootloader or device small (see [`Manifest::decode_from`]).
    ///
    /// If the signature fails, `manifest` is left unchanged. On a later
    /// error it contains whatever was decoded before the error. Do not use
    /// it after an error.
    pub fn verify_into<C: Crypto + ?Sized>(
        &self,
        crypto: &C,
        trusted: &[TrustedKey],
        manifest: &mut Manifest,
    ) -> Result<(), ManifestError> {
        let key = trusted
            .iter()
            .find(|key| key.id == self.key_id)
            .ok_or(ManifestError::UnknownKey(self.key_id))?;
        if self.body.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLong);
        }
        let message = signed_message(crypto, self.body);
        if !crypto.verify_ed25519(&key.public_key, &message, &self.signature.0) {
            return Err(ManifestError::BadSignature);
        }
        manifest.decode_from(self.body)
    }
}

/// Returns the 32-byte message that the release key signs for `body`:
/// SHA-256 over [`SIGNATURE_CONTEXT`] followed by the body. Signing a digest lets
/// a device or bootloader check a manifest with a streaming hash and a small stack.
pub fn signed_message<C: Crypto + ?Sized>(crypto: &C, body: &[u8]) -> Sha256Digest {
    crypto.sha256(&[SIGNATURE_CONTEXT, body])
}

/// Signs an encoded manifest body with an Ed25519 secret key (release tooling).
#[cfg(feature = "signing")]
pub fn sign(body: &[u8], secret_key: &[u8; 32]) -> Signature {
    use ed25519_dalek::Signer;

    let message = signed_message(&crate::crypto::RustCrypto, body);
    let key = ed25519_dalek::SigningKey::from_bytes(secret_key);
    Signature(key.sign(&message).to_bytes())
}

/// Derives the Ed25519 public key of a secret key (release tooling).
#[cfg(feature = "signing")]
pub fn public_key(secret_key: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(secret_key)
        .verifying_key()
        .to_bytes()
}

impl From<BodyError> for ManifestError {
    fn from(error: BodyError) -> Self {
        ManifestError::Body(error)
    }
}

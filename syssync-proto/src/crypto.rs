//! The cryptographic primitives the protocol needs, behind one small trait so
//! that a device's hardware crypto engine can replace the software default.

/// An incremental SHA-256 computation.
pub trait Sha256Hasher {
    /// Feeds more input.
    fn update(&mut self, data: &[u8]);

    /// Finishes and returns the digest.
    fn finalize(self) -> [u8; 32];
}

/// HMAC-SHA256, SHA-256 and Ed25519 verification.
///
/// Inputs are given as a list of parts that the implementation processes as if
/// concatenated, so that callers never copy a frame to authenticate it.
pub trait Crypto {
    /// The incremental SHA-256 state.
    type Sha256: Sha256Hasher;

    /// Starts an incremental SHA-256 computation.
    fn sha256_start(&self) -> Self::Sha256;

    /// Computes HMAC-SHA256 of the concatenated `parts` under `key`.
    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32];

    /// Computes SHA-256 of the concatenated `parts`.
    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = self.sha256_start();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize()
    }

    /// Verifies an Ed25519 signature (RFC 8032, no pre-hash variant) over `message`.
    /// Returns `false` for a malformed key or signature as well as for a wrong one.
    ///
    /// The software backends apply the strict checks of `ed25519-dalek`'s
    /// `verify_strict`, which [`ed25519_strict_checks`] offers to other
    /// implementations.
    fn verify_ed25519(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool;
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // A black-boxed read keeps the compiler from turning the fold into an early exit.
    core::hint::black_box(difference) == 0
}

/// Expands to the SHA-256 methods of a `Crypto` impl over this crate's
/// software [`Sha256`], which every software backend shares.
#[cfg(any(feature = "rustcrypto", feature = "salty", feature = "compact"))]
macro_rules! software_sha256 {
    () => {
        type Sha256 = $crate::crypto::Sha256;

        fn sha256_start(&self) -> $crate::crypto::Sha256 {
            $crate::crypto::Sha256::new()
        }

        fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
            $crate::crypto::sha::hmac_sha256(key, parts)
        }

        fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
            $crate::crypto::sha::sha256(parts)
        }
    };
}

#[cfg(feature = "sha256")]
mod sha;

#[cfg(feature = "sha256")]
pub use sha::Sha256;

#[cfg(feature = "rustcrypto")]
mod rustcrypto {
    use super::Crypto;

    /// The software default: this crate's SHA-256 and HMAC-SHA256, and
    /// `ed25519-dalek`.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct RustCrypto;

    impl Crypto for RustCrypto {
        software_sha256!();

        fn verify_ed25519(
            &self,
            public_key: &[u8; 32],
            message: &[u8],
            signature: &[u8; 64],
        ) -> bool {
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
                return false;
            };
            let signature = ed25519_dalek::Signature::from_bytes(signature);
            key.verify_strict(message, &signature).is_ok()
        }
    }
}

#[cfg(feature = "rustcrypto")]
pub use rustcrypto::RustCrypto;

mod strict;

pub use strict::ed25519_strict_checks;

#[cfg(feature = "salty")]
mod salty_backend;

#[cfg(feature = "salty")]
pub use salty_backend::SaltyCrypto;

#[cfg(feature = "compact")]
mod compact;

#[cfg(feature = "compact")]
pub use compact::CompactCrypto;

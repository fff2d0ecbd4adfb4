//! [`SaltyCrypto`]: Ed25519 verification from the `salty` crate, for targets
//! short of flash.
//!
//! `salty` 0.3 checks the RFC 8032 equation `[s]B = R + [k]A` without the
//! strict checks that `ed25519-dalek`'s `verify_strict` adds. This module adds
//! them before it calls `salty`: `s` must be below the group order, and
//! neither the public key nor `R` may encode a point of small order. With
//! them the two backends agree on every case in `tests/ed25519.rs`, which
//! include Project Wycheproof's EdDSA vectors.

use super::strict::ed25519_strict_checks;
use super::Crypto;

/// SHA-256 and HMAC-SHA256 like [`RustCrypto`](super::RustCrypto), and Ed25519 verification from `salty`
/// with the same strict checks as `ed25519-dalek`'s `verify_strict`.
///
/// In the Cortex-M4 size probes of `benches/footprint` it takes about 5 KiB
/// less code than `RustCrypto`, but it is much slower. `salty`'s
/// documentation gives 16 million cycles per verification on an LPC55S69
/// (Cortex-M33) with its assembly field arithmetic, and 100 million with its
/// portable one (feature `salty/slow-motion`, and every target other than
/// Cortex-M4 and Cortex-M33).
///
/// The host tests run `salty`'s portable field arithmetic. On `thumbv7em`
/// and `thumbv8m.main` targets `salty` switches to its own assembly, which
/// `benches/footprint/on-target.sh` checks with the same vectors on an
/// emulated Cortex-M4 (QEMU's MPS2 AN386 board).
#[derive(Clone, Copy, Debug, Default)]
pub struct SaltyCrypto;

impl Crypto for SaltyCrypto {
    software_sha256!();

    fn verify_ed25519(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        if !ed25519_strict_checks(public_key, signature) {
            return false;
        }
        let Ok(key) = salty::PublicKey::try_from(public_key) else {
            return false;
        };
        key.verify(message, &salty::Signature::from(signature))
            .is_ok()
    }
}

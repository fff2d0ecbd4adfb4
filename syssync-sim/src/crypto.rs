//! The simulated devices' crypto: [`RustCrypto`] with two shortcuts that
//! change no result.
//!
//! - Every device of a fleet checks the same release signatures, so
//!   [`SimCrypto`] remembers each Ed25519 check it has done, keyed by the
//!   SHA-256 of public key, signature and message, and returns the stored
//!   result for a repeat. A real device checks each signature itself; here that would
//!   spend a large share of a big fleet's run time on identical work.
//! - A device authenticates every frame with its one key, so [`SimCrypto`]
//!   keeps that key's HMAC state after the key block is absorbed and starts
//!   each tag from it, as a firmware build would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use syssync_proto::{Crypto, RustCrypto};

/// Results of the Ed25519 checks done so far, shared by the devices of a run.
#[derive(Debug, Default)]
pub struct SignatureMemo {
    results: Mutex<HashMap<[u8; 32], bool>>,
}

impl SignatureMemo {
    /// Creates an empty memo, to share between the devices of one run.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Locks the results; a poisoned lock (a panic in a test) is used as is.
    fn results(&self) -> MutexGuard<'_, HashMap<[u8; 32], bool>> {
        self.results.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the number of distinct checks done.
    pub fn len(&self) -> usize {
        self.results().len()
    }

    /// Returns `true` before the first check.
    pub fn is_empty(&self) -> bool {
        self.results().is_empty()
    }
}

/// [`RustCrypto`] for one device: its own HMAC key prepared once, and
/// signature checks shared with the rest of the fleet.
#[derive(Clone)]
pub struct SimCrypto {
    key: Vec<u8>,
    keyed: Option<Hmac<Sha256>>,
    memo: Arc<SignatureMemo>,
}

impl std::fmt::Debug for SimCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCrypto").finish_non_exhaustive()
    }
}

impl SimCrypto {
    /// Prepares the HMAC state of `device_key`; `memo` is shared by the fleet.
    pub fn new(device_key: &[u8], memo: Arc<SignatureMemo>) -> Self {
        Self {
            key: device_key.to_vec(),
            // HMAC takes keys of any length; without a state every tag is
            // computed from scratch.
            keyed: Hmac::<Sha256>::new_from_slice(device_key).ok(),
            memo,
        }
    }
}

impl Crypto for SimCrypto {
    type Sha256 = <RustCrypto as Crypto>::Sha256;

    fn sha256_start(&self) -> Self::Sha256 {
        RustCrypto.sha256_start()
    }

    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let Some(keyed) = self.keyed.as_ref().filter(|_| key == self.key.as_slice()) else {
            return RustCrypto.hmac_sha256(key, parts);
        };
        let mut mac = keyed.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn verify_ed25519(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        let id = RustCrypto.sha256(&[public_key, signature, message]);
        if let Some(valid) = self.memo.results().get(&id) {
            return *valid;
        }
        let valid = RustCrypto.verify_ed25519(public_key, message, signature);
        self.memo.results().insert(id, valid);
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syssync_proto::manifest::{public_key, sign, signed_message};

    #[test]
    fn results_match_rustcrypto() {
        // Proves that the shortcuts change no result: tags for the device key
        // and for other keys, and signature checks both fresh and remembered,
        // valid and forged.
        let memo = SignatureMemo::shared();
        let crypto = SimCrypto::new(&[7; 32], Arc::clone(&memo));
        let parts: [&[u8]; 2] = [b"header", b"body"];
        assert_eq!(
            crypto.hmac_sha256(&[7; 32], &parts),
            RustCrypto.hmac_sha256(&[7; 32], &parts)
        );
        assert_eq!(
            crypto.hmac_sha256(&[8; 32], &parts),
            RustCrypto.hmac_sha256(&[8; 32], &parts)
        );

        let secret = [3u8; 32];
        let key = public_key(&secret);
        let signature = sign(b"manifest", &secret).0;
        let message = signed_message(&RustCrypto, b"manifest");
        let other = signed_message(&RustCrypto, b"other");
        let mut forged = signature;
        forged[5] ^= 1;
        for _ in 0..2 {
            assert!(crypto.verify_ed25519(&key, &message, &signature));
            assert!(!crypto.verify_ed25519(&key, &message, &forged));
            assert!(!crypto.verify_ed25519(&key, &other, &signature));
        }
        assert_eq!(memo.len(), 3);
    }
}

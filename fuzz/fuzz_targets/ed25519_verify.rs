//! Checks syssync-proto's own Ed25519 verification (`CompactCrypto`) against
//! `ed25519-dalek`'s `verify_strict` (`RustCrypto`).
//!
//! The input is a 32-byte secret key, a 96-byte mask and the message. The
//! target signs the message, XORs the mask into the public key and the
//! signature, and requires both backends to give the same result. An all-zero
//! mask leaves a valid signature, so the fuzzer reaches both outcomes.
#![no_main]

use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use syssync_proto::{CompactCrypto, Crypto, RustCrypto};

fuzz_target!(|data: &[u8]| {
    let Some((secret, rest)) = data.split_first_chunk::<32>() else {
        return;
    };
    let Some((mask, message)) = rest.split_first_chunk::<96>() else {
        return;
    };
    let key = SigningKey::from_bytes(secret);
    let mut public_key = key.verifying_key().to_bytes();
    let mut signature = key.sign(message).to_bytes();
    for (byte, mask) in public_key.iter_mut().chain(signature.iter_mut()).zip(mask) {
        *byte ^= mask;
    }

    let expected = RustCrypto.verify_ed25519(&public_key, message, &signature);
    let outcome = CompactCrypto.verify_ed25519(&public_key, message, &signature);
    assert_eq!(
        outcome, expected,
        "CompactCrypto disagrees with ed25519-dalek"
    );
    if mask.iter().all(|byte| *byte == 0) {
        assert!(outcome, "an untouched signature must verify");
    }
});

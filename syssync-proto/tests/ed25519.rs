//! Every software `Crypto` backend verifies Ed25519 signatures alike. The
//! RFC 8032 vectors and Project Wycheproof's EdDSA vectors give the expected
//! result. The strict checks of `ed25519-dalek`'s `verify_strict` hold: no
//! small-order key or `R`, and no `s` at or above the group order. On random
//! keys, messages and corruptions the backends agree.

use ed25519_dalek::Signer;
use proptest::prelude::*;
use syssync_proto::crypto::ed25519_strict_checks;
use syssync_proto::manifest::{self, SignedManifest, TrustedKey};
use syssync_proto::{CompactCrypto, Crypto, ManifestError, RustCrypto, SaltyCrypto};

/// One backend under test, by name for the failure messages.
type Backend = (
    &'static str,
    &'static dyn Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
);

const BACKENDS: [Backend; 3] = [
    ("RustCrypto", &|key, message, signature| {
        RustCrypto.verify_ed25519(key, message, signature)
    }),
    ("SaltyCrypto", &|key, message, signature| {
        SaltyCrypto.verify_ed25519(key, message, signature)
    }),
    ("CompactCrypto", &|key, message, signature| {
        CompactCrypto.verify_ed25519(key, message, signature)
    }),
];

/// The order of the Ed25519 base point, little-endian.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

fn bytes<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn sign(secret: &[u8; 32], message: &[u8]) -> ([u8; 32], [u8; 64]) {
    let key = ed25519_dalek::SigningKey::from_bytes(secret);
    (key.verifying_key().to_bytes(), key.sign(message).to_bytes())
}

/// Adds the group order to the little-endian scalar `s` of `signature`.
fn add_group_order(signature: &mut [u8; 64]) {
    let mut carry = 0u16;
    for (byte, order) in signature[32..].iter_mut().zip(GROUP_ORDER) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "s + L must still fit in 32 bytes");
}

#[test]
fn rfc8032_vectors_verify() {
    // RFC 8032 section 7.1, tests 1 to 3: the secret key, the public key, the
    // message and the signature.
    let vectors = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];
    for (secret, public, message, signature) in vectors {
        let public: [u8; 32] = bytes(public);
        let signature: [u8; 64] = bytes(signature);
        let message = hex::decode(message).unwrap();
        assert_eq!(sign(&bytes(secret), &message), (public, signature));
        for (name, verify) in BACKENDS {
            assert!(verify(&public, &message, &signature), "{name}");
            let mut other = message.clone();
            other.push(0);
            assert!(
                !verify(&public, &other, &signature),
                "{name}: longer message"
            );
        }
    }
}

#[test]
fn wycheproof_vectors_give_expected_results() {
    let data = include_str!("data/wycheproof_eddsa.txt");
    let mut count = 0;
    for line in data.lines().filter(|line| !line.starts_with('#')) {
        let (fields, comment) = line.split_once(" # ").unwrap();
        let fields: Vec<&str> = fields.split(' ').collect();
        let [id, result, public, signature, message] = fields[..] else {
            panic!("malformed line: {line}");
        };
        let valid = match result {
            "valid" => true,
            "invalid" => false,
            other => panic!("test {id}: unknown result {other}"),
        };
        let public: [u8; 32] = bytes(public);
        let message = if message == "-" {
            Vec::new()
        } else {
            hex::decode(message).unwrap()
        };
        let signature = if signature == "-" {
            Vec::new()
        } else {
            hex::decode(signature).unwrap()
        };
        count += 1;
        let Ok(signature) = <[u8; 64]>::try_from(signature.as_slice()) else {
            // The `Crypto` trait takes 64 bytes, so other lengths never reach a backend.
            assert!(
                !valid,
                "test {id} ({comment}) is valid with {} bytes",
                signature.len()
            );
            continue;
        };
        for (name, verify) in BACKENDS {
            assert_eq!(
                verify(&public, &message, &signature),
                valid,
                "{name}: test {id} ({comment})"
            );
        }
    }
    assert_eq!(count, 145);
}

#[test]
fn small_order_key_rejected() {
    // With the identity as public key, R = identity and s = 0 satisfy the
    // plain verification equation for every message.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity);
    for (name, verify) in BACKENDS {
        assert!(!verify(&identity, b"any message", &signature), "{name}");
        assert!(!verify(&identity, b"", &signature), "{name}");
    }

    // The same with a point of order 8 (y = 0x26e8...) as key and as R.
    let order_8: [u8; 32] =
        bytes("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05");
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&order_8);
    for (name, verify) in BACKENDS {
        assert!(!verify(&order_8, b"any message", &signature), "{name}");
    }
}

#[test]
fn small_order_r_rejected() {
    // A valid key with R = identity and s = 0 would verify only if [k]A were
    // the identity; the strict check rejects R before that question arises.
    let (public, _) = sign(&[7; 32], b"message");
    let mut signature = [0u8; 64];
    signature[0] = 1;
    for (name, verify) in BACKENDS {
        assert!(!verify(&public, b"message", &signature), "{name}");
    }
}

#[test]
fn non_canonical_s_rejected() {
    // s + L satisfies the same equation as s, so a verifier that accepted it
    // would let anyone make a second valid signature from a first one.
    let message = b"release manifest";
    let (public, signature) = sign(&[9; 32], message);
    let mut malleated = signature;
    add_group_order(&mut malleated);
    for (name, verify) in BACKENDS {
        assert!(verify(&public, message, &signature), "{name}");
        assert!(!verify(&public, message, &malleated), "{name}");
    }
}

#[test]
fn strict_checks_for_other_backends() {
    // `ed25519_strict_checks` passes a good signature and fails each case
    // that the strict checks reject, without checking the equation.
    let message = b"release manifest";
    let (public, signature) = sign(&[9; 32], message);
    assert!(ed25519_strict_checks(&public, &signature));

    let mut malleated = signature;
    add_group_order(&mut malleated);
    assert!(!ed25519_strict_checks(&public, &malleated));

    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(!ed25519_strict_checks(&identity, &signature));

    let mut identity_r = signature;
    identity_r[..32].copy_from_slice(&identity);
    assert!(!ed25519_strict_checks(&public, &identity_r));

    // A wrong signature with a valid shape passes: the equation is the
    // backend's own check.
    let (_, other) = sign(&[10; 32], message);
    assert!(ed25519_strict_checks(&public, &other));
}

#[test]
fn manifest_verifies_with_every_backend() {
    // A signed manifest that one backend accepts, the others accept too, and
    // a wrong key or body is rejected by all.
    fn check<C: Crypto>(crypto: &C, name: &str) {
        let secret = [0x11; 32];
        let trusted = [TrustedKey {
            id: 3,
            public_key: manifest::public_key(&secret),
        }];
        let body = b"not decoded before the signature check".as_slice();
        let signed = SignedManifest {
            key_id: 3,
            body,
            signature: manifest::sign(body, &secret),
        };
        let wrong_key = [TrustedKey {
            id: 3,
            public_key: manifest::public_key(&[0x12; 32]),
        }];
        let tampered = SignedManifest {
            body: b"Not decoded before the signature check",
            ..signed
        };

        // The body is not a manifest, so a good signature ends in a body error.
        let outcome = signed.verify(crypto, &trusted).err();
        assert!(
            matches!(outcome, Some(ManifestError::Body(_))),
            "{name}: {outcome:?}"
        );
        assert_eq!(
            signed.verify(crypto, &wrong_key),
            Err(ManifestError::BadSignature),
            "{name}"
        );
        assert_eq!(
            tampered.verify(crypto, &trusted),
            Err(ManifestError::BadSignature),
            "{name}"
        );
    }
    check(&RustCrypto, "RustCrypto");
    check(&SaltyCrypto, "SaltyCrypto");
    check(&CompactCrypto, "CompactCrypto");
}

#[test]
fn hashes_match_between_backends() {
    let key = b"device key";
    let parts: [&[u8]; 3] = [b"frame ", b"in ", b"parts"];
    assert_eq!(
        RustCrypto.hmac_sha256(key, &parts),
        SaltyCrypto.hmac_sha256(key, &parts)
    );
    assert_eq!(
        RustCrypto.hmac_sha256(key, &parts),
        CompactCrypto.hmac_sha256(key, &parts)
    );
    assert_eq!(RustCrypto.sha256(&parts), SaltyCrypto.sha256(&parts));
    assert_eq!(RustCrypto.sha256(&parts), CompactCrypto.sha256(&parts));
    // SHA-256("abc") from FIPS 180-2, appendix B.1.
    assert_eq!(
        SaltyCrypto.sha256(&[b"a", b"bc"]),
        bytes::<32>("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
}

proptest! {
    #[test]
    fn backends_agree_on_random_signatures(
        secret in any::<[u8; 32]>(),
        message in proptest::collection::vec(any::<u8>(), 0..200),
        flip in 0usize..(64 * 8),
    ) {
        // A fresh signature verifies on both, and with any one bit flipped
        // it verifies on neither.
        let (public, signature) = sign(&secret, &message);
        let mut corrupted = signature;
        corrupted[flip / 8] ^= 1 << (flip % 8);
        for (name, verify) in BACKENDS {
            prop_assert!(verify(&public, &message, &signature), "{}", name);
            prop_assert!(!verify(&public, &message, &corrupted), "{}", name);
        }
    }

    #[test]
    fn backends_agree_on_random_bytes(
        public in any::<[u8; 32]>(),
        signature in any::<[u8; 64]>(),
        message in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let outcomes: Vec<bool> = BACKENDS
            .iter()
            .map(|(_, verify)| verify(&public, &message, &signature))
            .collect();
        prop_assert!(outcomes.iter().all(|outcome| *outcome == outcomes[0]), "{:?}", outcomes);
    }
}

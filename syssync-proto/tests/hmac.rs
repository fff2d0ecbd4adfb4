//! HMAC-SHA256 of both software backends matches RFC 4231's test cases and
//! the `hmac` crate, for keys shorter than, equal to and longer than the
//! 64-byte block, with the input split into parts anywhere.

use hmac::{Hmac, Mac};
use proptest::collection::vec;
use proptest::prelude::*;
use sha2::Sha256;
use syssync_proto::{CompactCrypto, Crypto, RustCrypto, SaltyCrypto};

fn hex32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

/// Computes HMAC-SHA256 with the `hmac` crate.
fn reference(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[test]
fn hmac_matches_rfc_4231() {
    let long_key = [0xaa; 131];
    let key_25: Vec<u8> = (1..=25).collect();
    let cases: [(&[u8], &[u8], &str); 6] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 20],
            &[0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            &key_25,
            &[0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            &long_key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            &long_key,
            b"This is a test using a larger than block-size key and a larger than \
              block-size data. The key needs to be hashed before being used by the \
              HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (index, (key, data, expected)) in cases.into_iter().enumerate() {
        let expected = hex32(expected);
        assert_eq!(
            RustCrypto.hmac_sha256(key, &[data]),
            expected,
            "case {index}"
        );
        assert_eq!(
            SaltyCrypto.hmac_sha256(key, &[data]),
            expected,
            "case {index}"
        );
        assert_eq!(
            CompactCrypto.hmac_sha256(key, &[data]),
            expected,
            "case {index}"
        );
        assert_eq!(reference(key, data), expected, "case {index}");
    }
}

proptest! {
    #[test]
    fn hmac_matches_hmac_crate(
        key in vec(any::<u8>(), 0..=200),
        data in vec(any::<u8>(), 0..300),
        split in any::<prop::sample::Index>(),
    ) {
        let expected = reference(&key, &data);
        let at = split.index(data.len() + 1);
        let (head, tail) = data.split_at(at);
        prop_assert_eq!(RustCrypto.hmac_sha256(&key, &[head, tail]), expected);
        prop_assert_eq!(SaltyCrypto.hmac_sha256(&key, &[&data]), expected);
        prop_assert_eq!(CompactCrypto.hmac_sha256(&key, &[&data]), expected);
    }

    #[test]
    fn hmac_at_block_size_keys(length in 62usize..=66, data in vec(any::<u8>(), 0..80)) {
        let key: Vec<u8> = (0..length).map(|index| index as u8).collect();
        prop_assert_eq!(RustCrypto.hmac_sha256(&key, &[&data]), reference(&key, &data));
    }
}

//! Golden vectors: `docs/PROTOCOL.md` lists the exact bytes of every message
//! type, and these tests prove that the code encodes and decodes exactly those
//! bytes, so the document cannot drift from the code.

mod common;

use common::*;
use syssync_proto::frame::Frame;
use syssync_proto::{FrameError, RustCrypto, SignedManifest, TrustedKey};

const PROTOCOL_MD: &str = include_str!("../../docs/PROTOCOL.md");

#[test]
fn protocol_md_lists_every_vector() {
    let documented = parse_vectors(PROTOCOL_MD);
    let computed = all_vectors();
    let mut missing = Vec::new();
    for (name, bytes) in &computed {
        match documented.iter().find(|(doc_name, _)| doc_name == name) {
            Some((_, doc_bytes)) => assert_eq!(
                doc_bytes,
                bytes,
                "vector {name} differs; the code now encodes:\n{}",
                hex_lines(bytes)
            ),
            None => missing.push(format!(
                "```golden\nname: {name}\n{}\n```",
                hex_lines(bytes)
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "vectors missing from PROTOCOL.md:\n{}",
        missing.join("\n")
    );
    assert_eq!(
        documented.len(),
        computed.len(),
        "PROTOCOL.md lists unknown vectors"
    );
}

#[test]
fn uplink_vectors_decode_to_their_messages() {
    for (name, message) in uplink_messages() {
        let bytes = encode_up(&message);
        let frame = Frame::parse(&bytes).unwrap();
        assert_eq!(frame.uplink_header().unwrap(), HEADER, "{name}");
        let (header, decoded) = frame
            .open_uplink(&RustCrypto, &uplink_key(&message))
            .unwrap();
        assert_eq!(header, HEADER, "{name}");
        assert_eq!(decoded, message, "{name}");
    }
}

#[test]
fn downlink_vectors_decode_to_their_messages() {
    let body = manifest_body();
    for (name, message) in downlink_messages(&body, &chunk_data()) {
        let bytes = encode_down(&message);
        let frame = Frame::parse(&bytes).unwrap();
        let decoded = frame
            .open_downlink(&RustCrypto, &device_key(), binding())
            .unwrap();
        assert_eq!(decoded, message, "{name}");
    }
}

#[test]
fn manifest_vector_verifies_and_decodes() {
    let body = manifest_body();
    let signed = SignedManifest {
        key_id: 1,
        body: &body,
        signature: syssync_proto::manifest::sign(&body, &RELEASE_SECRET),
    };
    let trusted = [TrustedKey {
        id: 1,
        public_key: syssync_proto::manifest::public_key(&RELEASE_SECRET),
    }];
    assert_eq!(
        signed.verify(&RustCrypto, &trusted).unwrap(),
        example_manifest()
    );
}

#[test]
fn every_truncation_is_rejected() {
    for (name, bytes) in all_vectors().into_iter().filter(|(name, _)| is_frame(name)) {
        for len in 0..bytes.len() {
            assert!(
                Frame::parse(&bytes[..len]).is_err(),
                "{name} truncated to {len} bytes was accepted"
            );
        }
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    for (name, bytes) in all_vectors().into_iter().filter(|(name, _)| is_frame(name)) {
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = Frame::parse(&flipped);
            assert!(
                matches!(result, Err(FrameError::CrcMismatch { .. })),
                "{name} with bit {bit} flipped gave {result:?}"
            );
        }
    }
}

#[test]
fn bit_flip_with_recomputed_crc_fails_the_mac() {
    // A gateway that alters a frame and fixes up the CRC is caught by the tag.
    for (name, bytes) in all_vectors().into_iter().filter(|(name, _)| is_frame(name)) {
        let body_end = bytes.len() - 12;
        for bit in 16..body_end * 8 {
            let mut forged = bytes.clone();
            forged[bit / 8] ^= 1 << (bit % 8);
            let crc = syssync_proto::frame::crc32(&forged[..bytes.len() - 4]);
            let len = forged.len();
            forged[len - 4..].copy_from_slice(&crc.to_le_bytes());
            let Ok(frame) = Frame::parse(&forged) else {
                continue;
            };
            let accepted = if frame.message_type().is_uplink() {
                let key = if name == "registration-request" {
                    syssync_proto::frame::derive_device_key(&RustCrypto, CLAIM_TOKEN, HEADER.device)
                } else {
                    device_key()
                };
                frame.open_uplink(&RustCrypto, &key).is_ok()
            } else {
                frame
                    .open_downlink(&RustCrypto, &device_key(), binding())
                    .is_ok()
            };
            assert!(
                !accepted,
                "{name} with bit {bit} flipped and CRC fixed was accepted"
            );
        }
    }
}

fn is_frame(name: &str) -> bool {
    !matches!(
        name,
        "manifest-body"
            | "manifest-signature"
            | "release-public-key"
            | "registration-key"
            | "inventory-digest"
    )
}

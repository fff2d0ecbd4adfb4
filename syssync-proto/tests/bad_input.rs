//! Bad input from a peer or a gateway gets a typed error, never a panic and
//! never a silent success: wrong CRC, MAC, version, type, direction, trailing
//! bytes, oversized lists and strings, lengths beyond limits.

mod common;

use common::*;
use syssync_proto::frame::{crc32, encode_downlink, encode_uplink, Binding, Frame};
use syssync_proto::message::{Chunk, ChunkRequest, DeviceMessage, Idle, ServerMessage};
use syssync_proto::{
    BodyError, DeviceId, DeviceKey, EncodeError, FrameError, JobId, Manifest, ManifestError,
    RustCrypto, SignedManifest, TrustedKey, MAX_CHUNK_LEN, MAX_FRAME_LEN, MIN_FRAME_LEN,
};

/// Builds a frame with a valid CRC and tag around arbitrary body bytes.
fn seal_raw(
    version: u8,
    kind: u8,
    body: &[u8],
    key: &DeviceKey,
    binding: Binding,
    uplink: bool,
) -> Vec<u8> {
    use syssync_proto::Crypto;
    let mut frame = vec![version, kind];
    frame.extend_from_slice(body);
    let direction = if uplink { b'U' } else { b'D' };
    let mac = RustCrypto.hmac_sha256(
        &key.0,
        &[
            &[direction],
            &binding.device.0.to_le_bytes(),
            &binding.counter.to_le_bytes(),
            &frame,
        ],
    );
    frame.extend_from_slice(&mac[..8]);
    let crc = crc32(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fn with_header(body: &[u8]) -> Vec<u8> {
    // Device 42 and counter 7 are single-byte varints.
    let mut bytes = vec![42, 7];
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn frame_length_limits() {
    assert_eq!(Frame::parse(&[]), Err(FrameError::TooShort { len: 0 }));
    assert_eq!(
        Frame::parse(&[0u8; MIN_FRAME_LEN - 1]),
        Err(FrameError::TooShort {
            len: MIN_FRAME_LEN - 1
        })
    );
    let long = vec![0u8; MAX_FRAME_LEN + 1];
    assert_eq!(
        Frame::parse(&long),
        Err(FrameError::TooLong {
            len: MAX_FRAME_LEN + 1
        })
    );
}

#[test]
fn wrong_crc_is_rejected() {
    let mut bytes = encode_down(&ServerMessage::Idle(Idle { interval_s: 900 }));
    let len = bytes.len();
    bytes[len - 1] ^= 0xFF;
    assert!(matches!(
        Frame::parse(&bytes),
        Err(FrameError::CrcMismatch { .. })
    ));
}

#[test]
fn unknown_version_with_valid_crc_is_rejected() {
    let bytes = seal_raw(2, 0x81, &[0x84, 0x07], &device_key(), binding(), false);
    assert_eq!(Frame::parse(&bytes), Err(FrameError::UnsupportedVersion(2)));
}

#[test]
fn unknown_type_with_valid_crc_is_rejected() {
    for kind in [0x00, 0x06, 0x7F, 0x80, 0x89, 0xFF] {
        let bytes = seal_raw(1, kind, &[], &device_key(), binding(), false);
        assert_eq!(
            Frame::parse(&bytes),
            Err(FrameError::UnknownType(kind)),
            "type {kind:#x}"
        );
    }
}

#[test]
fn message_in_wrong_direction_is_rejected() {
    let uplink = encode_up(&uplink_messages()[0].1);
    let frame = Frame::parse(&uplink).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::WrongDirection(0x01))
    );
    let downlink = encode_down(&ServerMessage::Idle(Idle { interval_s: 60 }));
    let frame = Frame::parse(&downlink).unwrap();
    assert_eq!(frame.uplink_header(), Err(FrameError::WrongDirection(0x81)));
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::WrongDirection(0x81))
    );
}

#[test]
fn wrong_key_fails_the_mac() {
    let other_key = DeviceKey([0xEE; 32]);
    let uplink = encode_up(&uplink_messages()[0].1);
    let frame = Frame::parse(&uplink).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &other_key),
        Err(FrameError::BadMac)
    );
    let downlink = encode_down(&ServerMessage::Idle(Idle { interval_s: 60 }));
    let frame = Frame::parse(&downlink).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &other_key, binding()),
        Err(FrameError::BadMac)
    );
}

#[test]
fn reply_for_another_device_or_counter_fails_the_mac() {
    let downlink = encode_down(&ServerMessage::Idle(Idle { interval_s: 60 }));
    let frame = Frame::parse(&downlink).unwrap();
    let replayed = Binding {
        device: DeviceId(42),
        counter: 6,
    };
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), replayed),
        Err(FrameError::BadMac)
    );
    let other_device = Binding {
        device: DeviceId(43),
        counter: 7,
    };
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), other_device),
        Err(FrameError::BadMac)
    );
}

#[test]
fn reflected_device_message_fails_as_reply() {
    // A gateway that relabels a device's own check-in as a server reply is caught:
    // the direction byte in the tag input differs.
    let uplink = encode_up(&uplink_messages()[0].1);
    let mut reflected = uplink.clone();
    reflected[1] = 0x81;
    let len = reflected.len();
    let crc = crc32(&reflected[..len - 4]);
    reflected[len - 4..].copy_from_slice(&crc.to_le_bytes());
    let frame = Frame::parse(&reflected).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::BadMac)
    );
}

#[test]
fn unauthenticated_refusal_is_reported_as_such() {
    let vectors = all_vectors();
    let (_, bytes) = vectors
        .iter()
        .find(|(name, _)| name == "unauthenticated-refusal")
        .unwrap();
    let frame = Frame::parse(bytes).unwrap();
    match frame.open_downlink(&RustCrypto, &device_key(), binding()) {
        Err(FrameError::UnauthenticatedRefusal(refusal)) => {
            assert_eq!(refusal.code, syssync_proto::RefusalCode::BAD_MAC);
            assert_eq!(refusal.retry_after_s, 60);
        }
        other => panic!("expected an unauthenticated refusal, got {other:?}"),
    }
}

#[test]
fn zero_tag_on_other_types_is_a_bad_mac() {
    let mut bytes = vec![1, 0x85, 0x05];
    bytes.extend_from_slice(&[0; 8]);
    let crc = crc32(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::BadMac)
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    // Idle with interval 5, then one extra byte.
    let bytes = seal_raw(1, 0x81, &[0x05, 0x00], &device_key(), binding(), false);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::Body(BodyError::TrailingBytes))
    );
    let bytes = seal_raw(1, 0x82, &[0x00], &device_key(), binding(), false);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::Body(BodyError::TrailingBytes))
    );
}

#[test]
fn truncated_body_is_rejected() {
    // Confirm without its job id.
    let bytes = seal_raw(1, 0x85, &[], &device_key(), binding(), false);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::Body(BodyError::Truncated))
    );
}

#[test]
fn overlong_varint_is_rejected() {
    // Idle whose u32 varint runs six bytes.
    let bytes = seal_raw(
        1,
        0x81,
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        &device_key(),
        binding(),
        false,
    );
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_downlink(&RustCrypto, &device_key(), binding()),
        Err(FrameError::Body(BodyError::BadVarint))
    );
}

#[test]
fn unknown_enum_variant_is_rejected() {
    // Job report with outcome variant 9.
    let body = with_header(&[0x05, 0x09]);
    let bytes = seal_raw(1, 0x04, &body, &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::Body(BodyError::InvalidValue))
    );
}

#[test]
fn overlong_string_is_rejected() {
    // Registration request whose target name is 33 bytes long.
    let mut body = with_header(&[0x05, 33]);
    body.extend_from_slice(&[b'a'; 33]);
    body.extend_from_slice(&[1, 0, 0, 0]);
    let bytes = seal_raw(1, 0x05, &body, &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::Body(BodyError::InvalidValue))
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut body = with_header(&[0x05, 2, 0xC3, 0x28]);
    body.extend_from_slice(&[1, 0, 0, 0]);
    let bytes = seal_raw(1, 0x05, &body, &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::Body(BodyError::BadUtf8))
    );
}

#[test]
fn oversized_inventory_list_is_rejected() {
    // An inventory with 33 files, one more than the limit. The decoder fills a
    // list of fixed capacity and fails at the 33rd element, so memory never
    // depends on the count claimed on the wire.
    let mut body = with_header(&[1, b'x', 1, 0, 0, 0, 0]);
    body.extend_from_slice(&[0; 32]);
    body.push(0); // security counter
    body.push(33); // file count
    for index in 0..33u8 {
        body.extend_from_slice(&[2, b'f', b'a' + index % 26, 1]);
        body.extend_from_slice(&[index; 32]);
    }
    let bytes = seal_raw(1, 0x02, &body, &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::Body(BodyError::InvalidValue))
    );
}

#[test]
fn inventory_count_beyond_data_is_truncated() {
    // A count of 1000 with no elements behind it: no allocation, just an error.
    let mut body = with_header(&[1, b'x', 1, 0, 0, 0, 0]);
    body.extend_from_slice(&[0; 32]);
    body.push(0);
    body.extend_from_slice(&[0xE8, 0x07]);
    let bytes = seal_raw(1, 0x02, &body, &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::Body(BodyError::Truncated))
    );
}

#[test]
fn unsorted_inventory_is_rejected() {
    // `encode_uplink` sorts the files, so serde encodes the unsorted body.
    let mut inventory = example_inventory();
    inventory.files.reverse();
    let body = with_header(&postcard::to_allocvec(&inventory).unwrap());
    let bytes = seal_raw(1, 0x02, &body, &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.open_uplink(&RustCrypto, &device_key()),
        Err(FrameError::Body(BodyError::LimitExceeded))
    );
}

#[test]
fn chunk_request_length_beyond_limit_is_rejected() {
    for length in [0u16, MAX_CHUNK_LEN as u16 + 1, u16::MAX] {
        let message = DeviceMessage::ChunkRequest(ChunkRequest {
            job: JobId(1),
            file: 0,
            offset: 0,
            length,
        });
        let bytes = encode_up(&message);
        let frame = Frame::parse(&bytes).unwrap();
        assert_eq!(
            frame.open_uplink(&RustCrypto, &device_key()),
            Err(FrameError::Body(BodyError::LimitExceeded)),
            "length {length}"
        );
    }
}

#[test]
fn oversized_chunk_is_not_encoded() {
    let data = vec![0u8; MAX_CHUNK_LEN + 1];
    let mut out = vec![0u8; MAX_FRAME_LEN * 2];
    assert_eq!(
        encode_downlink(
            &RustCrypto,
            &device_key(),
            binding(),
            &ServerMessage::Chunk(Chunk { data: &data }),
            &mut out
        ),
        Err(EncodeError::LimitExceeded)
    );
}

#[test]
fn small_output_buffer_is_an_error() {
    let message = &uplink_messages()[0].1;
    for size in 0..encode_up(message).len() {
        let mut out = vec![0u8; size];
        assert_eq!(
            encode_uplink(&RustCrypto, &device_key(), HEADER, message, &mut out),
            Err(EncodeError::BufferTooSmall),
            "buffer of {size} bytes"
        );
    }
}

#[test]
fn manifest_signature_checks() {
    let body = manifest_body();
    let public_key = syssync_proto::manifest::public_key(&RELEASE_SECRET);
    let trusted = [TrustedKey { id: 1, public_key }];
    let signature = syssync_proto::manifest::sign(&body, &RELEASE_SECRET);

    let unknown_key = SignedManifest {
        key_id: 2,
        body: &body,
        signature,
    };
    assert_eq!(
        unknown_key.verify(&RustCrypto, &trusted),
        Err(ManifestError::UnknownKey(2))
    );

    let mut tampered = body.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = SignedManifest {
        key_id: 1,
        body: &tampered,
        signature,
    };
    assert_eq!(
        tampered.verify(&RustCrypto, &trusted),
        Err(ManifestError::BadSignature)
    );

    let other_signer = SignedManifest {
        key_id: 1,
        body: &body,
        signature: syssync_proto::manifest::sign(&body, &[0x02; 32]),
    };
    assert_eq!(
        other_signer.verify(&RustCrypto, &trusted),
        Err(ManifestError::BadSignature)
    );
}

#[test]
fn manifest_rules_are_enforced() {
    let mut two_apps = example_manifest();
    two_apps.files[1].kind = syssync_proto::FileKind::Application;
    let mut buffer = [0u8; 2048];
    assert_eq!(
        two_apps.encode(&mut buffer).err(),
        Some(ManifestError::SeveralApplications)
    );

    let mut duplicate = example_manifest();
    duplicate.files[1].name = duplicate.files[0].name.clone();
    assert_eq!(
        duplicate.encode(&mut buffer).err(),
        Some(ManifestError::DuplicateName)
    );

    let mut install_and_remove = example_manifest();
    install_and_remove.remove[0] = install_and_remove.files[1].name.clone();
    assert_eq!(
        install_and_remove.encode(&mut buffer).err(),
        Some(ManifestError::DuplicateName)
    );

    assert_eq!(Manifest::decode(&[0u8; 1537]), Err(ManifestError::TooLong));
    assert!(matches!(
        Manifest::decode(&manifest_body()[..10]),
        Err(ManifestError::Body(_))
    ));
}

#[test]
fn uplink_header_of_garbage_is_an_error() {
    // A check-in whose body ends inside the device id varint.
    let bytes = seal_raw(1, 0x01, &[0xFF], &device_key(), binding(), true);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.uplink_header(),
        Err(FrameError::Body(BodyError::Truncated))
    );
}

#[test]
fn registration_account_read_before_mac() {
    // A server reads the account of a registration before it can pick the key;
    // other message types and garbled bodies give nothing.
    let registration = &uplink_messages()[6].1;
    let bytes = encode_up(registration);
    let frame = Frame::parse(&bytes).unwrap();
    assert_eq!(
        frame.registration_account(),
        Some(syssync_proto::AccountId(5))
    );

    let check_in = encode_up(&uplink_messages()[0].1);
    assert_eq!(
        Frame::parse(&check_in).unwrap().registration_account(),
        None
    );

    let garbled = seal_raw(
        1,
        0x05,
        &with_header(&[0x05]),
        &device_key(),
        binding(),
        true,
    );
    assert_eq!(Frame::parse(&garbled).unwrap().registration_account(), None);
}

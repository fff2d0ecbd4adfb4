//! The hand-written codec that devices use agrees with postcard and serde,
//! which servers and tools use: it writes the same bytes, and for any input
//! it decodes the same value or fails with the same typed error, never a
//! panic. Inputs are the golden messages, every truncation of them, random
//! byte changes and random bytes.

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use syssync_proto::frame::{crc32, encode_uplink, Binding, Frame};
use syssync_proto::message::{
    Cancel, CheckIn, Chunk, ChunkRequest, Confirm, DeviceMessage, Idle, JobOffer, JobOutcome,
    JobProgress, JobReport, JobState, MessageType, Refusal, RegistrationRequest,
    RegistrationResult, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    AccountId, BodyError, Crypto, DeviceId, FailureCode, FileName, FrameError, JobId, Location,
    Manifest, ManifestError, RejectReason, RevertReason, RustCrypto, SignedManifest, Version,
    MAX_CHUNK_LEN, MAX_FRAME_LEN, MAX_MANIFEST_LEN,
};

/// Decodes `bytes` whole with postcard, as the serde path does.
fn serde_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, BodyError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(BodyError::from)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(BodyError::TrailingBytes)
    }
}

/// Decodes and validates a manifest through serde, as a reference for [`Manifest::decode`].
fn serde_manifest(body: &[u8]) -> Result<Manifest, ManifestError> {
    if body.len() > MAX_MANIFEST_LEN {
        return Err(ManifestError::TooLong);
    }
    let manifest: Manifest = serde_exact(body).map_err(ManifestError::Body)?;
    manifest.validate()?;
    Ok(manifest)
}

/// Decodes the body of a server message through serde, with the same limits.
fn serde_server(kind: MessageType, body: &[u8]) -> Result<ServerMessage<'_>, BodyError> {
    let message = match kind {
        MessageType::Idle => ServerMessage::Idle(serde_exact::<Idle>(body)?),
        MessageType::InventoryRequest => {
            if !body.is_empty() {
                return Err(BodyError::TrailingBytes);
            }
            ServerMessage::InventoryRequest
        }
        MessageType::JobOffer => {
            let offer: JobOffer<'_> = serde_exact(body)?;
            if offer.manifest.body.len() > MAX_MANIFEST_LEN {
                return Err(BodyError::LimitExceeded);
            }
            ServerMessage::JobOffer(offer)
        }
        MessageType::Chunk => {
            let chunk: Chunk<'_> = serde_exact(body)?;
            if chunk.data.len() > MAX_CHUNK_LEN {
                return Err(BodyError::LimitExceeded);
            }
            ServerMessage::Chunk(chunk)
        }
        MessageType::Confirm => ServerMessage::Confirm(serde_exact::<Confirm>(body)?),
        MessageType::Cancel => ServerMessage::Cancel(serde_exact::<Cancel>(body)?),
        MessageType::RegistrationResult => {
            ServerMessage::RegistrationResult(serde_exact::<RegistrationResult>(body)?)
        }
        MessageType::Refusal => ServerMessage::Refusal(serde_exact::<Refusal>(body)?),
        _ => return Err(BodyError::BadTag),
    };
    Ok(message)
}

/// Seals `body` as a server message of type `kind` to the fixed binding.
fn seal_down(kind: MessageType, body: &[u8]) -> Vec<u8> {
    let binding = binding();
    let mut frame = vec![1, kind as u8];
    frame.extend_from_slice(body);
    let mac = RustCrypto.hmac_sha256(
        &device_key().0,
        &[
            b"D",
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

/// Checks that the device's decoder of a server message body agrees with serde.
fn check_server_body(kind: MessageType, body: &[u8]) {
    let sealed = seal_down(kind, body);
    if sealed.len() > MAX_FRAME_LEN {
        return;
    }
    let frame = Frame::parse(&sealed).unwrap();
    let decoded = frame.open_downlink(&RustCrypto, &device_key(), binding());
    let expected = serde_server(kind, body).map_err(FrameError::Body);
    assert_eq!(decoded, expected, "{kind:?} body {body:02x?}");
}

/// Checks the manifest decoder, and the signed manifest decoder, against serde.
fn check_manifest_body(body: &[u8]) {
    assert_eq!(Manifest::decode(body), serde_manifest(body), "{body:02x?}");
    // Decoding in place over another manifest gives the same result.
    let mut reused = example_manifest();
    let in_place = reused.decode_from(body).map(|()| reused);
    assert_eq!(in_place, Manifest::decode(body), "{body:02x?}");
    let signed = SignedManifest::decode(body);
    let reference = if body.len() > syssync_proto::manifest::MAX_SIGNED_MANIFEST_LEN {
        Err(ManifestError::TooLong)
    } else {
        serde_exact::<SignedManifest<'_>>(body)
            .map_err(ManifestError::Body)
            .and_then(|signed| {
                if signed.body.len() > MAX_MANIFEST_LEN {
                    Err(ManifestError::TooLong)
                } else {
                    Ok(signed)
                }
            })
    };
    assert_eq!(signed, reference, "{body:02x?}");
}

/// Returns the golden server messages as (type, body) pairs.
fn server_bodies() -> Vec<(MessageType, Vec<u8>)> {
    downlink_messages(&manifest_body(), &chunk_data())
        .into_iter()
        .map(|(_, message)| {
            let frame = encode_down(&message);
            (message.message_type(), frame[2..frame.len() - 12].to_vec())
        })
        .collect()
}

#[test]
fn server_bodies_truncated_at_every_length() {
    // Every prefix of every golden body decodes as serde decodes it: to the
    // same error, or for a few message types to the same shorter value.
    for (kind, body) in server_bodies() {
        for len in 0..=body.len() {
            check_server_body(kind, &body[..len]);
        }
        let mut longer = body.clone();
        longer.push(0);
        check_server_body(kind, &longer);
    }
}

#[test]
fn manifest_truncated_at_every_length() {
    let body = manifest_body();
    assert_eq!(Manifest::decode(&body), Ok(example_manifest()));
    for len in 0..body.len() {
        assert!(Manifest::decode(&body[..len]).is_err(), "length {len}");
        check_manifest_body(&body[..len]);
    }
    let mut longer = body.clone();
    longer.push(0);
    assert_eq!(
        Manifest::decode(&longer),
        Err(ManifestError::Body(BodyError::TrailingBytes))
    );
}

#[test]
fn overlong_lists_fail_like_serde() {
    // A list one element over capacity fails with `InvalidValue` once that
    // element has decoded, and with `Truncated` if it is cut short, as
    // heapless' serde support does.
    let name = FileName::try_from("a").unwrap();
    let mut manifest = example_manifest();
    manifest.files.clear();
    manifest.remove.clear();
    manifest.remove.push(name.clone()).unwrap();
    let mut buffer = [0u8; 2048];
    let body = manifest.encode(&mut buffer).unwrap().to_vec();
    let count_at = body.len() - 3;
    assert_eq!(body[count_at..], [1, 1, b'a']);
    for count in [8u8, 9, 10, 127] {
        let mut bytes = body[..count_at].to_vec();
        bytes.push(count);
        for _ in 0..count.min(9) {
            bytes.extend_from_slice(&[1, b'a']);
        }
        check_manifest_body(&bytes);
    }

    // The same for the file list, with the bytes of one file repeated.
    manifest.remove.clear();
    let empty = manifest.encode(&mut buffer).unwrap().to_vec();
    let prefix = &empty[..empty.len() - 2];
    manifest
        .files
        .push(example_manifest().files[0].clone())
        .unwrap();
    let one = manifest.encode(&mut buffer).unwrap().to_vec();
    let file = &one[prefix.len() + 1..one.len() - 1];
    for count in [16u8, 17, 18, 127] {
        let mut bytes = prefix.to_vec();
        bytes.push(count);
        for _ in 0..count.min(17) {
            bytes.extend_from_slice(file);
        }
        bytes.push(0);
        check_manifest_body(&bytes);
        // Sixteen copies of the application image decode, then fail validation.
        let expected = if count == 16 {
            Err(ManifestError::SeveralApplications)
        } else {
            Err(ManifestError::Body(BodyError::InvalidValue))
        };
        assert_eq!(Manifest::decode(&bytes), expected, "{count} files");
    }

    // A count of 2^32 - 1 with no file after it stops at the first missing byte.
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    check_manifest_body(&bytes);
    assert_eq!(
        Manifest::decode(&bytes),
        Err(ManifestError::Body(BodyError::Truncated))
    );
}

#[test]
fn varint_limits_match_postcard() {
    // Non-minimal varints decode, an overlong one or one with bits beyond
    // the field's width fails with `BadVarint`, in u16, u32 and u64 fields.
    let cases: &[&[u8]] = &[
        &[0x80, 0x00],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0xff, 0xff, 0xff, 0xff, 0x10],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
        &[0xff, 0xff, 0x03],
        &[0xff, 0xff, 0x04],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        &[0x80; 11],
    ];
    for case in cases {
        for kind in [
            MessageType::Idle,
            MessageType::Refusal,
            MessageType::RegistrationResult,
        ] {
            let mut body = case.to_vec();
            body.extend_from_slice(&[1, 2]);
            for len in 0..=body.len() {
                check_server_body(kind, &body[..len]);
            }
        }
    }
}

fn header() -> impl Strategy<Value = UplinkHeader> {
    (any::<u64>(), any::<u32>()).prop_map(|(device, counter)| UplinkHeader {
        device: DeviceId(device),
        counter,
    })
}

fn outcome() -> impl Strategy<Value = JobOutcome> {
    prop_oneof![
        Just(JobOutcome::Installed),
        any::<u16>().prop_map(|code| JobOutcome::Failed(FailureCode(code))),
        any::<u16>().prop_map(|code| JobOutcome::Reverted(RevertReason(code))),
        any::<u16>().prop_map(|code| JobOutcome::Rejected(RejectReason(code))),
        Just(JobOutcome::Cancelled),
    ]
}

/// Generates device messages with integers over their whole range, where
/// varint lengths change.
fn device_message() -> impl Strategy<Value = DeviceMessage> {
    let state = prop_oneof![
        Just(JobState::Downloading),
        Just(JobState::Staged),
        Just(JobState::Trial)
    ];
    let location = (any::<i32>(), any::<i32>(), any::<u32>()).prop_map(
        |(latitude_e7, longitude_e7, accuracy_m)| Location {
            latitude_e7,
            longitude_e7,
            accuracy_m,
        },
    );
    prop_oneof![
        (
            proptest::option::of((any::<u32>(), state, any::<u32>())),
            any::<[u8; 8]>(),
            proptest::option::of(location),
        )
            .prop_map(|(job, inventory, location)| {
                DeviceMessage::CheckIn(CheckIn {
                    job: job.map(|(job, state, bytes_done)| JobProgress {
                        job: JobId(job),
                        state,
                        bytes_done,
                    }),
                    inventory,
                    location,
                })
            }),
        (any::<u32>(), any::<u8>(), any::<u32>(), any::<u16>()).prop_map(
            |(job, file, offset, length)| {
                DeviceMessage::ChunkRequest(ChunkRequest {
                    job: JobId(job),
                    file,
                    offset,
                    length,
                })
            }
        ),
        (any::<u32>(), outcome()).prop_map(|(job, outcome)| {
            DeviceMessage::JobReport(JobReport {
                job: JobId(job),
                outcome,
            })
        }),
        (
            any::<u64>(),
            "[a-z0-9-]{1,32}",
            any::<(u16, u16, u16, u32)>()
        )
            .prop_map(|(account, target, (major, minor, patch, build))| {
                DeviceMessage::RegistrationRequest(RegistrationRequest {
                    account: AccountId(account),
                    target: target.as_str().try_into().unwrap(),
                    version: Version::new(major, minor, patch, build),
                })
            }),
        Just(DeviceMessage::InventoryReport(example_inventory())),
    ]
}

/// Encodes the header and body of a device message through serde.
fn serde_uplink_body(header: &UplinkHeader, message: &DeviceMessage) -> Vec<u8> {
    let mut bytes = postcard::to_allocvec(header).unwrap();
    let body = match message {
        DeviceMessage::CheckIn(body) => postcard::to_allocvec(body),
        DeviceMessage::InventoryReport(body) => postcard::to_allocvec(body),
        DeviceMessage::ChunkRequest(body) => postcard::to_allocvec(body),
        DeviceMessage::JobReport(body) => postcard::to_allocvec(body),
        DeviceMessage::RegistrationRequest(body) => postcard::to_allocvec(body),
    };
    bytes.extend_from_slice(&body.unwrap());
    bytes
}

proptest! {
    #[test]
    fn uplink_bodies_equal_serde_bytes(header in header(), message in device_message()) {
        let mut out = [0u8; MAX_FRAME_LEN];
        let len = encode_uplink(&RustCrypto, &device_key(), header, &message, &mut out).unwrap();
        let body = &out[2..len - 12];
        prop_assert_eq!(body, &serde_uplink_body(&header, &message)[..]);
    }

    #[test]
    fn uplink_too_small_buffer_is_an_error(message in device_message(), cut in 1usize..64) {
        // A buffer that misses any byte of the frame gives `BufferTooSmall`.
        let header = HEADER;
        let mut out = [0u8; MAX_FRAME_LEN];
        let len = encode_uplink(&RustCrypto, &device_key(), header, &message, &mut out).unwrap();
        let short = len.saturating_sub(cut);
        prop_assert_eq!(
            encode_uplink(&RustCrypto, &device_key(), header, &message, &mut out[..short]),
            Err(syssync_proto::EncodeError::BufferTooSmall)
        );
    }

    #[test]
    fn changed_server_bodies_decode_like_serde(
        which in 0usize..8,
        changes in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (kind, mut body) = server_bodies().swap_remove(which);
        for (index, byte) in changes {
            if !body.is_empty() {
                let at = index.index(body.len());
                body[at] = byte;
            }
        }
        check_server_body(kind, &body);
    }

    #[test]
    fn random_server_bodies_decode_like_serde(which in 0usize..8, body in vec(any::<u8>(), 0..160)) {
        let kind = server_bodies()[which].0;
        check_server_body(kind, &body);
    }

    #[test]
    fn changed_manifests_decode_like_serde(
        changes in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut body = manifest_body();
        for (index, byte) in changes {
            let at = index.index(body.len());
            body[at] = byte;
        }
        check_manifest_body(&body);
        let len = cut.index(body.len() + 1);
        check_manifest_body(&body[..len]);
    }

    #[test]
    fn random_manifests_decode_like_serde(body in vec(any::<u8>(), 0..200)) {
        check_manifest_body(&body);
    }

    #[test]
    fn inventory_digest_hashes_serde_bytes(seed in any::<u8>()) {
        // The digest is SHA-256 over the context and the postcard encoding.
        let mut inventory = example_inventory();
        inventory.security_counter = u32::from(seed) << 20;
        let mut input = syssync_proto::message::INVENTORY_DIGEST_CONTEXT.to_vec();
        input.extend_from_slice(&postcard::to_allocvec(&inventory).unwrap());
        let expected = RustCrypto.sha256(&[&input]);
        prop_assert_eq!(&inventory.digest(&RustCrypto)[..], &expected[..8]);
    }
}

#[test]
fn refusal_without_tag_decodes_like_serde() {
    // An all-zero tag on a refusal leads to the refusal decoder: every
    // truncation fails as serde fails, and the whole body is reported as an
    // unauthenticated refusal.
    let body = [0x03, 0x00, 0x05];
    let binding = Binding {
        device: DeviceId(1),
        counter: 1,
    };
    for len in 0..=body.len() {
        let mut frame = vec![1, MessageType::Refusal as u8];
        frame.extend_from_slice(&body[..len]);
        frame.extend_from_slice(&[0; 8]);
        let crc = crc32(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        let parsed = Frame::parse(&frame).unwrap();
        let expected = match serde_exact::<Refusal>(&body[..len]) {
            Ok(refusal) => FrameError::UnauthenticatedRefusal(refusal),
            Err(error) => FrameError::Body(error),
        };
        assert_eq!(
            parsed.open_downlink(&RustCrypto, &device_key(), binding),
            Err(expected),
            "length {len}"
        );
    }
}

#[test]
fn verify_into_matches_verify() {
    let body = manifest_body();
    let signed = SignedManifest {
        key_id: 1,
        body: &body,
        signature: syssync_proto::manifest::sign(&body, &RELEASE_SECRET),
    };
    let trusted = [syssync_proto::TrustedKey {
        id: 1,
        public_key: syssync_proto::manifest::public_key(&RELEASE_SECRET),
    }];
    let mut into = Manifest::empty();
    assert_eq!(signed.verify_into(&RustCrypto, &trusted, &mut into), Ok(()));
    assert_eq!(Ok(into), signed.verify(&RustCrypto, &trusted));

    // A bad signature leaves the manifest as it was.
    let forged = SignedManifest {
        signature: syssync_proto::Signature([7; 64]),
        ..signed
    };
    let mut untouched = Manifest::empty();
    assert_eq!(
        forged.verify_into(&RustCrypto, &trusted, &mut untouched),
        Err(ManifestError::BadSignature)
    );
    assert_eq!(untouched, Manifest::empty());
}

#[test]
fn inventory_report_sorts_files() {
    // Proves that an inventory report lists its files by name on the wire
    // whatever their order in the value: the frame of a reversed list equals
    // the frame of the sorted one.
    let sorted = example_inventory();
    let mut reversed = sorted.clone();
    reversed.files.reverse();
    assert!(!reversed.is_normalized());

    let header = UplinkHeader {
        device: DeviceId(7),
        counter: 9,
    };
    let mut expected = [0u8; MAX_FRAME_LEN];
    let message = DeviceMessage::InventoryReport(sorted);
    let len = encode_uplink(&RustCrypto, &device_key(), header, &message, &mut expected).unwrap();
    let mut actual = [0u8; MAX_FRAME_LEN];
    let message = DeviceMessage::InventoryReport(reversed);
    let actual_len =
        encode_uplink(&RustCrypto, &device_key(), header, &message, &mut actual).unwrap();
    assert_eq!(actual[..actual_len], expected[..len]);
}

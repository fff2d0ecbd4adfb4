//! Every message type survives encode → parse → open unchanged, for arbitrary
//! field values within the protocol's limits.

use proptest::collection::vec;
use proptest::prelude::*;
use syssync_proto::frame::{encode_downlink, encode_uplink, Binding, Frame};
use syssync_proto::manifest::{FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::message::{
    Cancel, CheckIn, Chunk, ChunkRequest, Confirm, DeviceMessage, Idle, InstalledApplication,
    InstalledFile, Inventory, JobOffer, JobOutcome, JobProgress, JobReport, JobState, Refusal,
    RegistrationRequest, RegistrationResult, ResetWindow, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    AccountId, DeviceId, DeviceKey, FailureCode, FileName, JobId, Location, RefusalCode,
    RejectReason, RevertReason, RustCrypto, Signature, Version, MAX_CHUNK_LEN, MAX_FRAME_LEN,
};

fn name() -> impl Strategy<Value = FileName> {
    "[a-z0-9._/-]{1,32}".prop_map(|text| FileName::try_from(text.as_str()).unwrap())
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u16>(), any::<u16>(), any::<u16>(), any::<u32>())
        .prop_map(|(major, minor, patch, build)| Version::new(major, minor, patch, build))
}

fn location() -> impl Strategy<Value = Location> {
    (any::<i32>(), any::<i32>(), any::<u32>()).prop_map(
        |(latitude_e7, longitude_e7, accuracy_m)| Location {
            latitude_e7,
            longitude_e7,
            accuracy_m,
        },
    )
}

fn job_state() -> impl Strategy<Value = JobState> {
    prop_oneof![
        Just(JobState::Downloading),
        Just(JobState::Staged),
        Just(JobState::Trial)
    ]
}

fn check_in() -> impl Strategy<Value = CheckIn> {
    (
        proptest::option::of((any::<u32>(), job_state(), any::<u32>())),
        any::<[u8; 8]>(),
        proptest::option::of(location()),
    )
        .prop_map(|(job, inventory, location)| CheckIn {
            job: job.map(|(job, state, bytes_done)| JobProgress {
                job: JobId(job),
                state,
                bytes_done,
            }),
            inventory,
            location,
        })
}

fn inventory() -> impl Strategy<Value = Inventory> {
    (
        name(),
        version(),
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        proptest::collection::btree_map(name(), (any::<u32>(), any::<[u8; 32]>()), 0..32),
    )
        .prop_map(|(target, version, size, sha256, security_counter, files)| {
            let mut inventory = Inventory {
                target,
                application: InstalledApplication {
                    version,
                    size,
                    sha256,
                },
                security_counter,
                files: heapless::Vec::new(),
            };
            for (name, (size, sha256)) in files {
                inventory
                    .files
                    .push(InstalledFile { name, size, sha256 })
                    .unwrap();
            }
            inventory.normalize();
            inventory
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

fn device_message() -> impl Strategy<Value = DeviceMessage> {
    prop_oneof![
        check_in().prop_map(DeviceMessage::CheckIn),
        inventory().prop_map(DeviceMessage::InventoryReport),
        (
            any::<u32>(),
            any::<u8>(),
            any::<u32>(),
            1..=MAX_CHUNK_LEN as u16
        )
            .prop_map(|(job, file, offset, length)| DeviceMessage::ChunkRequest(
                ChunkRequest {
                    job: JobId(job),
                    file,
                    offset,
                    length,
                }
            )),
        (any::<u32>(), outcome()).prop_map(|(job, outcome)| DeviceMessage::JobReport(JobReport {
            job: JobId(job),
            outcome,
        })),
        (any::<u64>(), name(), version()).prop_map(|(account, target, version)| {
            DeviceMessage::RegistrationRequest(RegistrationRequest {
                account: AccountId(account),
                target,
                version,
            })
        }),
    ]
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        name(),
        version(),
        any::<u32>(),
        any::<u64>(),
        proptest::collection::btree_map(name(), (any::<u32>(), any::<[u8; 32]>()), 1..8),
        any::<bool>(),
    )
        .prop_map(
            |(target, version, security_counter, expires_at, files, with_app)| {
                let mut manifest = Manifest {
                    target,
                    version,
                    security_counter,
                    expires_at,
                    files: heapless::Vec::new(),
                    remove: heapless::Vec::new(),
                };
                for (index, (name, (size, sha256))) in files.into_iter().enumerate() {
                    let kind = if with_app && index == 0 {
                        FileKind::Application
                    } else {
                        FileKind::Plain
                    };
                    manifest
                        .files
                        .push(ManifestFile {
                            kind,
                            name,
                            size,
                            sha256,
                        })
                        .unwrap();
                }
                manifest
            },
        )
}

#[derive(Debug, Clone)]
enum OwnedServerMessage {
    Idle(u32),
    InventoryRequest,
    JobOffer {
        job: u32,
        window: Option<(u32, u32)>,
        key_id: u8,
        body: Vec<u8>,
        signature: [u8; 32],
    },
    Chunk(Vec<u8>),
    Confirm(u32),
    Cancel(u32),
    RegistrationResult(u64, u32),
    Refusal(u16, u32, u32),
}

impl OwnedServerMessage {
    fn borrow(&self) -> ServerMessage<'_> {
        match self {
            OwnedServerMessage::Idle(interval_s) => ServerMessage::Idle(Idle {
                interval_s: *interval_s,
            }),
            OwnedServerMessage::InventoryRequest => ServerMessage::InventoryRequest,
            OwnedServerMessage::JobOffer {
                job,
                window,
                key_id,
                body,
                signature,
            } => {
                let mut bytes = [0u8; 64];
                bytes[..32].copy_from_slice(signature);
                bytes[32..].copy_from_slice(signature);
                ServerMessage::JobOffer(JobOffer {
                    job: JobId(*job),
                    reset_window: window.map(|(opens_in_s, closes_in_s)| ResetWindow {
                        opens_in_s,
                        closes_in_s,
                    }),
                    manifest: SignedManifest {
                        key_id: *key_id,
                        body,
                        signature: Signature(bytes),
                    },
                })
            }
            OwnedServerMessage::Chunk(data) => ServerMessage::Chunk(Chunk { data }),
            OwnedServerMessage::Confirm(job) => {
                ServerMessage::Confirm(Confirm { job: JobId(*job) })
            }
            OwnedServerMessage::Cancel(job) => ServerMessage::Cancel(Cancel { job: JobId(*job) }),
            OwnedServerMessage::RegistrationResult(account, interval_s) => {
                ServerMessage::RegistrationResult(RegistrationResult {
                    account: AccountId(*account),
                    interval_s: *interval_s,
                })
            }
            OwnedServerMessage::Refusal(code, retry_after_s, detail) => {
                ServerMessage::Refusal(Refusal {
                    code: RefusalCode(*code),
                    retry_after_s: *retry_after_s,
                    detail: *detail,
                })
            }
        }
    }
}

fn server_message() -> impl Strategy<Value = OwnedServerMessage> {
    prop_oneof![
        any::<u32>().prop_map(OwnedServerMessage::Idle),
        Just(OwnedServerMessage::InventoryRequest),
        (
            any::<u32>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
            any::<u8>(),
            manifest(),
            any::<[u8; 32]>()
        )
            .prop_map(|(job, window, key_id, manifest, signature)| {
                let mut buffer = [0u8; 2048];
                let body = manifest.encode(&mut buffer).unwrap().to_vec();
                OwnedServerMessage::JobOffer {
                    job,
                    window,
                    key_id,
                    body,
                    signature,
                }
            }),
        vec(any::<u8>(), 0..=MAX_CHUNK_LEN).prop_map(OwnedServerMessage::Chunk),
        any::<u32>().prop_map(OwnedServerMessage::Confirm),
        any::<u32>().prop_map(OwnedServerMessage::Cancel),
        (any::<u64>(), any::<u32>())
            .prop_map(|(a, i)| OwnedServerMessage::RegistrationResult(a, i)),
        (any::<u16>(), any::<u32>(), any::<u32>())
            .prop_map(|(c, r, d)| OwnedServerMessage::Refusal(c, r, d)),
    ]
}

proptest! {
    #[test]
    fn device_messages_round_trip(
        message in device_message(),
        device in any::<u64>(),
        counter in any::<u32>(),
        key in any::<[u8; 32]>(),
    ) {
        let key = DeviceKey(key);
        let header = UplinkHeader { device: DeviceId(device), counter };
        let mut out = [0u8; MAX_FRAME_LEN];
        let len = encode_uplink(&RustCrypto, &key, header, &message, &mut out).unwrap();
        let frame = Frame::parse(&out[..len]).unwrap();
        prop_assert_eq!(frame.message_type(), message.message_type());
        let (decoded_header, decoded) = frame.open_uplink(&RustCrypto, &key).unwrap();
        prop_assert_eq!(decoded_header, header);
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn server_messages_round_trip(
        message in server_message(),
        device in any::<u64>(),
        counter in any::<u32>(),
        key in any::<[u8; 32]>(),
    ) {
        let key = DeviceKey(key);
        let binding = Binding { device: DeviceId(device), counter };
        let message = message.borrow();
        let mut out = [0u8; MAX_FRAME_LEN];
        let len = encode_downlink(&RustCrypto, &key, binding, &message, &mut out).unwrap();
        let frame = Frame::parse(&out[..len]).unwrap();
        prop_assert_eq!(frame.open_downlink(&RustCrypto, &key, binding).unwrap(), message);
        let other = Binding { device: DeviceId(device), counter: counter.wrapping_add(1) };
        prop_assert!(frame.open_downlink(&RustCrypto, &key, other).is_err());
    }

    #[test]
    fn inventory_normalize_restores_order(sorted in inventory(), rotation in 0usize..32) {
        // A reversed and rotated file list normalizes back to the sorted list,
        // and the digest does not depend on the order of the files.
        prop_assert!(sorted.is_normalized());
        let mut shuffled = sorted.clone();
        shuffled.files.reverse();
        if !shuffled.files.is_empty() {
            let len = shuffled.files.len();
            shuffled.files.rotate_left(rotation % len);
        }
        prop_assert_eq!(shuffled.digest(&RustCrypto), sorted.digest(&RustCrypto));
        shuffled.normalize();
        prop_assert_eq!(shuffled, sorted);
    }

    #[test]
    fn manifests_round_trip(manifest in manifest()) {
        let mut buffer = [0u8; 2048];
        let body = manifest.encode(&mut buffer).unwrap();
        prop_assert_eq!(Manifest::decode(body).unwrap(), manifest);
    }
}

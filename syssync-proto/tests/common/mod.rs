//! Fixed keys and messages shared by the golden-vector and bad-input tests.

#![allow(dead_code, unreachable_pub)]

use syssync_proto::frame::{self, encode_downlink, encode_uplink, Binding};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::message::{
    Cancel, CheckIn, Chunk, ChunkRequest, Confirm, DeviceMessage, Idle, InstalledApplication,
    InstalledFile, Inventory, JobOffer, JobOutcome, JobProgress, JobReport, JobState, Refusal,
    RegistrationRequest, RegistrationResult, ResetWindow, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    AccountId, DeviceId, DeviceKey, FailureCode, JobId, Location, RefusalCode, RustCrypto, Version,
    MAX_FRAME_LEN,
};

/// Device key of the vectors: bytes 0x00, 0x01, .., 0x1f.
pub fn device_key() -> DeviceKey {
    let mut key = [0u8; 32];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = index as u8;
    }
    DeviceKey(key)
}

/// Release secret key of the vectors: 32 bytes of 0x01.
pub const RELEASE_SECRET: [u8; 32] = [0x01; 32];

/// Claim token of the registration vector.
pub const CLAIM_TOKEN: &[u8] = b"example-claim-token";

pub const HEADER: UplinkHeader = UplinkHeader {
    device: DeviceId(42),
    counter: 7,
};

pub fn binding() -> Binding {
    Binding::from(HEADER)
}

pub fn example_inventory() -> Inventory {
    let mut inventory = Inventory {
        target: "esp8266-4m".try_into().unwrap(),
        application: InstalledApplication {
            version: Version::new(1, 9, 4, 0),
            size: 604_872,
            sha256: [0xAA; 32],
        },
        security_counter: 3,
        files: heapless::Vec::new(),
    };
    for (name, size, byte) in [("ca.der", 1106, 0xBB), ("net.json", 210, 0xCC)] {
        inventory
            .files
            .push(InstalledFile {
                name: name.try_into().unwrap(),
                size,
                sha256: [byte; 32],
            })
            .unwrap();
    }
    inventory
}

pub fn example_manifest() -> Manifest {
    let mut files = heapless::Vec::new();
    files
        .push(ManifestFile {
            kind: FileKind::Application,
            name: "app.bin".try_into().unwrap(),
            size: 615_388,
            sha256: [0x10; 32],
        })
        .unwrap();
    files
        .push(ManifestFile {
            kind: FileKind::Plain,
            name: "net.json".try_into().unwrap(),
            size: 240,
            sha256: [0x20; 32],
        })
        .unwrap();
    let mut remove = heapless::Vec::new();
    remove.push("old.json".try_into().unwrap()).unwrap();
    Manifest {
        target: "esp8266-4m".try_into().unwrap(),
        version: Version::new(1, 10, 0, 7),
        security_counter: 4,
        expires_at: 1_830_297_600,
        files,
        remove,
    }
}

pub fn manifest_body() -> Vec<u8> {
    let mut buffer = [0u8; 2048];
    example_manifest().encode(&mut buffer).unwrap().to_vec()
}

pub fn uplink_messages() -> Vec<(&'static str, DeviceMessage)> {
    vec![
        (
            "check-in",
            DeviceMessage::CheckIn(CheckIn {
                job: None,
                inventory: example_inventory().digest(&RustCrypto),
                location: None,
            }),
        ),
        (
            "check-in-downloading",
            DeviceMessage::CheckIn(CheckIn {
                job: Some(JobProgress {
                    job: JobId(300),
                    state: JobState::Downloading,
                    bytes_done: 65_536,
                }),
                inventory: example_inventory().digest(&RustCrypto),
                location: Some(Location {
                    latitude_e7: 473_977_000,
                    longitude_e7: 85_255_000,
                    accuracy_m: 25,
                }),
            }),
        ),
        (
            "inventory-report",
            DeviceMessage::InventoryReport(example_inventory()),
        ),
        (
            "chunk-request",
            DeviceMessage::ChunkRequest(ChunkRequest {
                job: JobId(300),
                file: 0,
                offset: 4096,
                length: 1024,
            }),
        ),
        (
            "job-report-installed",
            DeviceMessage::JobReport(JobReport {
                job: JobId(300),
                outcome: JobOutcome::Installed,
            }),
        ),
        (
            "job-report-failed",
            DeviceMessage::JobReport(JobReport {
                job: JobId(300),
                outcome: JobOutcome::Failed(FailureCode::DIGEST_MISMATCH),
            }),
        ),
        (
            "registration-request",
            DeviceMessage::RegistrationRequest(RegistrationRequest {
                account: AccountId(5),
                target: "esp8266-4m".try_into().unwrap(),
                version: Version::new(1, 9, 4, 0),
            }),
        ),
    ]
}

/// The key that authenticates `message`: the derived registration key for a
/// registration request, the device key otherwise.
pub fn uplink_key(message: &DeviceMessage) -> DeviceKey {
    match message {
        DeviceMessage::RegistrationRequest(_) => {
            frame::derive_device_key(&RustCrypto, CLAIM_TOKEN, HEADER.device)
        }
        _ => device_key(),
    }
}

pub fn encode_up(message: &DeviceMessage) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode_uplink(&RustCrypto, &uplink_key(message), HEADER, message, &mut out).unwrap();
    out[..len].to_vec()
}

pub fn downlink_messages(
    manifest_body: &[u8],
    chunk: &[u8],
) -> Vec<(&'static str, ServerMessage<'static>)> {
    let manifest_body: &'static [u8] = Box::leak(manifest_body.to_vec().into_boxed_slice());
    let chunk: &'static [u8] = Box::leak(chunk.to_vec().into_boxed_slice());
    vec![
        ("idle", ServerMessage::Idle(Idle { interval_s: 900 })),
        ("inventory-request", ServerMessage::InventoryRequest),
        (
            "job-offer",
            ServerMessage::JobOffer(JobOffer {
                job: JobId(300),
                reset_window: Some(ResetWindow {
                    opens_in_s: 0,
                    closes_in_s: 7200,
                }),
                manifest: SignedManifest {
                    key_id: 1,
                    body: manifest_body,
                    signature: manifest::sign(manifest_body, &RELEASE_SECRET),
                },
            }),
        ),
        ("chunk", ServerMessage::Chunk(Chunk { data: chunk })),
        (
            "confirm",
            ServerMessage::Confirm(Confirm { job: JobId(300) }),
        ),
        ("cancel", ServerMessage::Cancel(Cancel { job: JobId(300) })),
        (
            "registration-result",
            ServerMessage::RegistrationResult(RegistrationResult {
                account: AccountId(5),
                interval_s: 900,
            }),
        ),
        (
            "refusal",
            ServerMessage::Refusal(Refusal {
                code: RefusalCode::STALE_COUNTER,
                retry_after_s: 0,
                detail: 9,
            }),
        ),
    ]
}

/// Chunk data of the vectors: 16 bytes 0x00..0x0f.
pub fn chunk_data() -> Vec<u8> {
    (0u8..16).collect()
}

pub fn encode_down(message: &ServerMessage<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode_downlink(&RustCrypto, &device_key(), binding(), message, &mut out).unwrap();
    out[..len].to_vec()
}

/// Every golden vector by name, in the order `PROTOCOL.md` lists them.
pub fn all_vectors() -> Vec<(String, Vec<u8>)> {
    let mut vectors = Vec::new();
    for (name, message) in uplink_messages() {
        vectors.push((name.to_string(), encode_up(&message)));
    }
    let body = manifest_body();
    for (name, message) in downlink_messages(&body, &chunk_data()) {
        vectors.push((name.to_string(), encode_down(&message)));
    }
    let mut out = [0u8; MAX_FRAME_LEN];
    let refusal = Refusal {
        code: RefusalCode::BAD_MAC,
        retry_after_s: 60,
        detail: 0,
    };
    let len = frame::encode_unauthenticated_refusal(&refusal, &mut out).unwrap();
    vectors.push(("unauthenticated-refusal".to_string(), out[..len].to_vec()));
    vectors.push(("manifest-body".to_string(), body.clone()));
    vectors.push((
        "manifest-signature".to_string(),
        manifest::sign(&body, &RELEASE_SECRET).0.to_vec(),
    ));
    vectors.push((
        "release-public-key".to_string(),
        manifest::public_key(&RELEASE_SECRET).to_vec(),
    ));
    vectors.push((
        "registration-key".to_string(),
        frame::derive_device_key(&RustCrypto, CLAIM_TOKEN, HEADER.device)
            .0
            .to_vec(),
    ));
    vectors.push((
        "inventory-digest".to_string(),
        example_inventory().digest(&RustCrypto).to_vec(),
    ));
    vectors
}

/// Formats bytes as lowercase hex pairs, 16 to a line.
pub fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Extracts the golden vectors from the text of `PROTOCOL.md`: every fenced
/// block tagged `golden` whose first line is `name: NAME` and whose other lines
/// are hex bytes.
pub fn parse_vectors(document: &str) -> Vec<(String, Vec<u8>)> {
    let mut vectors = Vec::new();
    let mut rest = document;
    while let Some(start) = rest.find("```golden\n") {
        let after = &rest[start + "```golden\n".len()..];
        let end = after.find("```").expect("unterminated golden block");
        let block = &after[..end];
        let mut lines = block.lines();
        let name = lines
            .next()
            .and_then(|line| line.strip_prefix("name: "))
            .expect("golden block without a name line")
            .trim()
            .to_string();
        let hex: String = lines.flat_map(|line| line.split_whitespace()).collect();
        vectors.push((
            name,
            hex::decode(hex).expect("golden block with invalid hex"),
        ));
        rest = &after[end + 3..];
    }
    vectors
}

//! One realistic sample of every protocol message, for the codec benchmarks
//! and the wire-cost table.
//!
//! The device has id 700001 and replay counter 35040, which is a year of
//! check-ins every 15 minutes. It runs a 615,388-byte application and has 8
//! plain files installed. The release offered has an application and 3 files.

use syssync_proto::frame::Binding;
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::message::{
    Cancel, CheckIn, Chunk, ChunkRequest, Confirm, DeviceMessage, Idle, InstalledApplication,
    InstalledFile, Inventory, JobOffer, JobOutcome, JobProgress, JobReport, JobState, Refusal,
    RegistrationRequest, RegistrationResult, ResetWindow, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    AccountId, DeviceId, DeviceKey, JobId, RefusalCode, RustCrypto, TrustedKey, Version,
};

/// Device id of the samples.
pub const DEVICE: DeviceId = DeviceId(700_001);

/// Replay counter of the samples' request.
pub const COUNTER: u32 = 35_040;

/// Secret release key that signs the sample manifest.
pub const RELEASE_SECRET: [u8; 32] = [0x33; 32];

/// Returns the device key of the samples.
pub fn device_key() -> DeviceKey {
    DeviceKey([0x5A; 32])
}

/// Returns the header of the samples' request.
pub fn header() -> UplinkHeader {
    UplinkHeader {
        device: DEVICE,
        counter: COUNTER,
    }
}

/// Returns the binding of replies to the samples' request.
pub fn binding() -> Binding {
    Binding::from(header())
}

/// Returns the trusted release key that verifies the sample manifest.
pub fn trusted_keys() -> [TrustedKey; 1] {
    [TrustedKey {
        id: 1,
        public_key: manifest::public_key(&RELEASE_SECRET),
    }]
}

fn name(text: &str) -> heapless::String<32> {
    let mut name = heapless::String::new();
    // Every name used here is shorter than 32 bytes.
    let _ = name.push_str(text);
    name
}

/// Builds an inventory with an application and `files` plain files.
pub fn inventory(files: usize) -> Inventory {
    let mut inventory = Inventory {
        target: name("esp8266-4m"),
        application: InstalledApplication {
            version: Version::new(1, 9, 4, 0),
            size: 604_872,
            sha256: [0x11; 32],
        },
        security_counter: 3,
        files: heapless::Vec::new(),
    };
    for index in 0..files {
        let _ = inventory.files.push(InstalledFile {
            name: name(&format!("config/file-{index:02}.json")),
            size: 1_500,
            sha256: [index as u8; 32],
        });
    }
    inventory.normalize();
    inventory
}

/// Builds a steady-state check-in: no job, and the digest of an 8-file inventory.
pub fn steady_check_in() -> DeviceMessage {
    DeviceMessage::CheckIn(CheckIn {
        job: None,
        inventory: inventory(8).digest(&RustCrypto),
        location: None,
    })
}

/// Builds one sample of every device message, each with a short name.
pub fn device_messages() -> Vec<(&'static str, DeviceMessage)> {
    let progress = CheckIn {
        job: Some(JobProgress {
            job: JobId(1_042),
            state: JobState::Downloading,
            bytes_done: 262_144,
        }),
        inventory: inventory(8).digest(&RustCrypto),
        location: None,
    };
    vec![
        ("check-in", steady_check_in()),
        ("check-in-with-job", DeviceMessage::CheckIn(progress)),
        (
            "inventory-report",
            DeviceMessage::InventoryReport(inventory(8)),
        ),
        (
            "chunk-request",
            DeviceMessage::ChunkRequest(ChunkRequest {
                job: JobId(1_042),
                file: 0,
                offset: 523_264,
                length: 1_024,
            }),
        ),
        (
            "job-report",
            DeviceMessage::JobReport(JobReport {
                job: JobId(1_042),
                outcome: JobOutcome::Installed,
            }),
        ),
        (
            "registration-request",
            DeviceMessage::RegistrationRequest(RegistrationRequest {
                account: AccountId(17),
                target: name("esp8266-4m"),
                version: Version::new(1, 9, 4, 0),
            }),
        ),
    ]
}

/// Builds the manifest of the sample release: an application and 3 files.
pub fn release_manifest() -> Manifest {
    let mut files = heapless::Vec::new();
    let entries = [
        (FileKind::Application, "firmware.bin", 615_388),
        (FileKind::Plain, "config/network.json", 1_210),
        (FileKind::Plain, "config/sensors.json", 3_400),
        (FileKind::Plain, "certs/server-ca.der", 1_106),
    ];
    for (kind, file, size) in entries {
        let _ = files.push(ManifestFile {
            kind,
            name: name(file),
            size,
            sha256: [0x42; 32],
        });
    }
    Manifest {
        target: name("esp8266-4m"),
        version: Version::new(1, 10, 0, 187),
        security_counter: 4,
        expires_at: 1_830_297_600,
        files,
        remove: heapless::Vec::new(),
    }
}

/// Owned bytes that the sample server messages borrow.
#[derive(Debug, Clone)]
pub struct ServerSamples {
    manifest_body: Vec<u8>,
    signature: syssync_proto::Signature,
    chunk_1k: Vec<u8>,
    chunk_4k: Vec<u8>,
}

impl Default for ServerSamples {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerSamples {
    /// Encodes and signs the sample manifest and fills the chunk data.
    pub fn new() -> Self {
        let mut body = [0u8; syssync_proto::MAX_MANIFEST_LEN];
        let manifest_body = release_manifest()
            .encode(&mut body)
            .map(|body| body.to_vec())
            .unwrap_or_default();
        let signature = manifest::sign(&manifest_body, &RELEASE_SECRET);
        Self {
            manifest_body,
            signature,
            chunk_1k: (0..1024).map(|i| (i * 7) as u8).collect(),
            chunk_4k: (0..4096).map(|i| (i * 13) as u8).collect(),
        }
    }

    /// Returns the signed sample manifest.
    pub fn signed_manifest(&self) -> SignedManifest<'_> {
        SignedManifest {
            key_id: 1,
            body: &self.manifest_body,
            signature: self.signature,
        }
    }

    /// Returns one sample of every server message, each with a short name, and
    /// chunks of both 1 and 4 KiB.
    pub fn messages(&self) -> Vec<(&'static str, ServerMessage<'_>)> {
        vec![
            ("idle", ServerMessage::Idle(Idle { interval_s: 900 })),
            ("inventory-request", ServerMessage::InventoryRequest),
            (
                "job-offer",
                ServerMessage::JobOffer(JobOffer {
                    job: JobId(1_042),
                    reset_window: Some(ResetWindow {
                        opens_in_s: 3_600,
                        closes_in_s: 7_200,
                    }),
                    manifest: self.signed_manifest(),
                }),
            ),
            (
                "chunk-1k",
                ServerMessage::Chunk(Chunk {
                    data: &self.chunk_1k,
                }),
            ),
            (
                "chunk-4k",
                ServerMessage::Chunk(Chunk {
                    data: &self.chunk_4k,
                }),
            ),
            (
                "confirm",
                ServerMessage::Confirm(Confirm { job: JobId(1_042) }),
            ),
            (
                "cancel",
                ServerMessage::Cancel(Cancel { job: JobId(1_042) }),
            ),
            (
                "registration-result",
                ServerMessage::RegistrationResult(RegistrationResult {
                    account: AccountId(17),
                    interval_s: 900,
                }),
            ),
            (
                "refusal",
                ServerMessage::Refusal(Refusal {
                    code: RefusalCode::STALE_COUNTER,
                    retry_after_s: 0,
                    detail: COUNTER - 1,
                }),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syssync_proto::frame::{encode_downlink, encode_uplink, Frame};
    use syssync_proto::MAX_FRAME_LEN;

    #[test]
    fn every_sample_round_trips() {
        // Proves that each sample message encodes, verifies and decodes back to itself, so the benchmarks time valid work.
        let crypto = RustCrypto;
        let key = device_key();
        let mut out = [0u8; MAX_FRAME_LEN];
        for (name, message) in device_messages() {
            let len = encode_uplink(&crypto, &key, header(), &message, &mut out).unwrap();
            let frame = Frame::parse(&out[..len]).unwrap();
            let (got_header, decoded) = frame.open_uplink(&crypto, &key).unwrap();
            assert_eq!(got_header, header(), "{name}");
            assert_eq!(decoded, message, "{name}");
        }
        let samples = ServerSamples::new();
        for (name, message) in samples.messages() {
            let len = encode_downlink(&crypto, &key, binding(), &message, &mut out).unwrap();
            let frame = Frame::parse(&out[..len]).unwrap();
            let decoded = frame.open_downlink(&crypto, &key, binding()).unwrap();
            assert_eq!(decoded, message, "{name}");
        }
    }

    #[test]
    fn sample_manifest_verifies() {
        // Proves that the sample manifest is signed by the trusted key and decodes to the release.
        let samples = ServerSamples::new();
        let manifest = samples
            .signed_manifest()
            .verify(&RustCrypto, &trusted_keys())
            .unwrap();
        assert_eq!(manifest, release_manifest());
    }
}

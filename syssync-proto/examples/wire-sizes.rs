//! Prints the encoded size of the protocol's common messages, one
//! `<message> <bytes>` line each, including version, type, tag and CRC.
//!
//! The device has a realistic id (700001) and replay counter (35040, a year
//! of check-ins every 15 minutes), an application and 8 files installed.

use syssync_proto::frame::{encode_downlink, encode_uplink, Binding};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::message::{
    CheckIn, Chunk, ChunkRequest, DeviceMessage, Idle, InstalledApplication, InstalledFile,
    Inventory, JobOffer, ServerMessage, UplinkHeader,
};
use syssync_proto::{DeviceId, DeviceKey, JobId, RustCrypto, Version, MAX_FRAME_LEN};

fn inventory(files: usize) -> Inventory {
    let mut inventory = Inventory {
        target: "esp8266-4m".try_into().unwrap_or_default(),
        application: InstalledApplication {
            version: Version::new(1, 9, 4, 0),
            size: 604_872,
            sha256: [0x11; 32],
        },
        security_counter: 3,
        files: heapless::Vec::new(),
    };
    for index in 0..files {
        let mut name = heapless::String::new();
        let _ = core::fmt::write(&mut name, format_args!("config/file-{index:02}.json"));
        let _ = inventory.files.push(InstalledFile {
            name,
            size: 1_500,
            sha256: [index as u8; 32],
        });
    }
    inventory.normalize();
    inventory
}

fn main() {
    let crypto = RustCrypto;
    let key = DeviceKey([0x5A; 32]);
    let header = UplinkHeader {
        device: DeviceId(700_001),
        counter: 35_040,
    };
    let binding = Binding::from(header);
    let mut out = [0u8; MAX_FRAME_LEN];

    let mut print_uplink = |name: &str, message: &DeviceMessage| match encode_uplink(
        &crypto, &key, header, message, &mut out,
    ) {
        Ok(len) => println!("{name} {len}"),
        Err(error) => println!("{name} error: {error}"),
    };
    for (name, files) in [
        ("check-in", 8),
        ("check-in-0-files", 0),
        ("check-in-32-files", 32),
    ] {
        let check_in = CheckIn {
            job: None,
            inventory: inventory(files).digest(&crypto),
            location: None,
        };
        print_uplink(name, &DeviceMessage::CheckIn(check_in));
    }
    print_uplink(
        "chunk-request",
        &DeviceMessage::ChunkRequest(ChunkRequest {
            job: JobId(1_042),
            file: 0,
            offset: 523_264,
            length: 1_024,
        }),
    );
    print_uplink(
        "inventory-report",
        &DeviceMessage::InventoryReport(inventory(8)),
    );

    let mut print_downlink = |name: &str, message: &ServerMessage<'_>| match encode_downlink(
        &crypto, &key, binding, message, &mut out,
    ) {
        Ok(len) => println!("{name} {len}"),
        Err(error) => println!("{name} error: {error}"),
    };
    print_downlink("idle", &ServerMessage::Idle(Idle { interval_s: 900 }));
    let data = [0xA5u8; 1024];
    print_downlink("chunk-1024", &ServerMessage::Chunk(Chunk { data: &data }));

    let mut files = heapless::Vec::new();
    let entries = [
        (FileKind::Application, "firmware.bin", 615_388),
        (FileKind::Plain, "config/network.json", 1_210),
        (FileKind::Plain, "config/sensors.json", 3_400),
        (FileKind::Plain, "certs/server-ca.der", 1_106),
    ];
    for (kind, name, size) in entries {
        let _ = files.push(ManifestFile {
            kind,
            name: name.try_into().unwrap_or_default(),
            size,
            sha256: [0x42; 32],
        });
    }
    let release = Manifest {
        target: "esp8266-4m".try_into().unwrap_or_default(),
        version: Version::new(1, 10, 0, 187),
        security_counter: 4,
        expires_at: 1_830_297_600,
        files,
        remove: heapless::Vec::new(),
    };
    let mut body = [0u8; 2048];
    let Ok(body) = release.encode(&mut body) else {
        println!("job-offer error: manifest does not encode");
        return;
    };
    let body: &[u8] = body;
    let offer = JobOffer {
        job: JobId(1_042),
        reset_window: None,
        manifest: SignedManifest {
            key_id: 1,
            body,
            signature: manifest::sign(body, &[0x33; 32]),
        },
    };
    print_downlink("job-offer-app-3-files", &ServerMessage::JobOffer(offer));
}

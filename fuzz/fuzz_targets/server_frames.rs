//! Drives the server's device face with sequences of device frames. A
//! commissioned device with a running fleet job sends arbitrary message bodies.
//! They are sealed with its key and fresh counters, so they pass the tag and
//! replay checks and reach the decisions. Every reply must be a well-formed frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syssync_proto::frame::{crc32, Frame};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, TrustedKey};
use syssync_proto::message::{InstalledApplication, Inventory};
use syssync_proto::{AccountId, Crypto, DeviceId, DeviceKey, RustCrypto, Version, MAX_FRAME_LEN};
use syssync_server_core::{AccountSettings, Command, Created, JobSpec, JobTarget, Server};

const T0: u64 = 1_704_067_200;
const KEY: DeviceKey = DeviceKey([0x42; 32]);
const DEVICE: u64 = 7;
const RELEASE_SECRET: [u8; 32] = [0x24; 32];

fn server() -> Option<(Server, AccountId)> {
    let mut server = Server::in_memory();
    let mut settings = AccountSettings::new("fuzz");
    settings.release_keys = vec![TrustedKey {
        id: 1,
        public_key: manifest::public_key(&RELEASE_SECRET),
    }];
    settings.claim_token = Some([0x77; 32]);
    let account = server.create_account(settings).ok()?;
    server
        .execute(
            T0,
            account,
            Command::AddTargetType {
                name: "board".into(),
            },
        )
        .ok()?;
    let inventory = Inventory {
        target: "board".try_into().ok()?,
        application: InstalledApplication {
            version: Version::new(1, 0, 0, 0),
            size: 64,
            sha256: [1; 32],
        },
        security_counter: 1,
        files: heapless::Vec::new(),
    };
    server
        .execute(
            T0,
            account,
            Command::RegisterDevice {
                device: DeviceId(DEVICE),
                key: KEY,
                target: "board".into(),
                tags: Vec::new(),
                inventory: Some(Box::new(inventory)),
            },
        )
        .ok()?;
    let image = vec![0x5A; 3000];
    let mut files = heapless::Vec::new();
    files
        .push(ManifestFile {
            kind: FileKind::Application,
            name: "app.bin".try_into().ok()?,
            size: image.len() as u32,
            sha256: RustCrypto.sha256(&[&image]),
        })
        .ok()?;
    let release = Manifest {
        target: "board".try_into().ok()?,
        version: Version::new(1, 1, 0, 0),
        security_counter: 2,
        expires_at: u64::MAX,
        files,
        remove: heapless::Vec::new(),
    };
    let mut buffer = [0u8; 1536];
    let body = release.encode(&mut buffer).ok()?.to_vec();
    let signature = manifest::sign(&body, &RELEASE_SECRET);
    let created = server
        .execute(
            T0,
            account,
            Command::UploadRelease {
                key_id: 1,
                body,
                signature,
                artifacts: vec![image],
            },
        )
        .ok()?
        .created;
    let Created::Release(release) = created else {
        return None;
    };
    server
        .execute(T0, account, Command::ApproveRelease { release })
        .ok()?;
    server
        .execute(
            T0,
            account,
            Command::CreateJob(JobSpec::new(release, JobTarget::Fleet, T0)),
        )
        .ok()?;
    Some((server, account))
}

/// Seals `body` (which starts after the uplink header) as a device frame.
fn seal(kind: u8, counter: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![1, kind];
    // Device 7 and a counter below 2^21 as postcard varints.
    frame.push(DEVICE as u8);
    let mut value = counter;
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            frame.push(byte);
            break;
        }
        frame.push(byte | 0x80);
    }
    frame.extend_from_slice(body);
    let mac = RustCrypto.hmac_sha256(
        &KEY.0,
        &[
            &[b'U'],
            &DEVICE.to_le_bytes(),
            &counter.to_le_bytes(),
            &frame,
        ],
    );
    frame.extend_from_slice(&mac[..8]);
    let crc = crc32(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fuzz_target!(|data: &[u8]| {
    let Some((mut server, _account)) = server() else {
        panic!("the fixture must build");
    };
    let mut out = vec![0u8; MAX_FRAME_LEN];
    let mut now = T0;
    let mut counter = 1u32;
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let len = usize::from(control >> 2).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        now += u64::from(control & 3) * 400;
        let frame = if control & 3 == 3 {
            // Unsealed bytes: whatever a peer or gateway may send.
            body.to_vec()
        } else {
            counter += 1;
            seal(1 + control % 5, counter, body)
        };
        let outcome = server.handle_frame(now, &frame, &mut out);
        assert!(outcome.reply_len <= out.len());
        if outcome.reply_len > 0 {
            let reply = Frame::parse(&out[..outcome.reply_len]);
            assert!(
                reply.is_ok(),
                "the server wrote an invalid frame: {reply:?}"
            );
        }
    }
});

//! A large in-memory fleet for throughput measurements, shared by the
//! criterion benchmark and the `checkin-throughput` example.

use syssync_proto::frame::encode_uplink;
use syssync_proto::manifest::{FileKind, Manifest, ManifestFile};
use syssync_proto::message::{
    CheckIn, DeviceMessage, InstalledApplication, Inventory, UplinkHeader,
};
use syssync_proto::{AccountId, Crypto, DeviceId, DeviceKey, RustCrypto, Signature, Version};
use syssync_server_core::{
    AccountSettings, Command, Created, JobSpec, JobTarget, MemoryStorage, Phase, Server,
};

/// Monday 2024-01-01 00:00:00 UTC.
pub const T0: u64 = 1_704_067_200;

/// A fleet of devices of one account, all on the factory inventory, with a
/// running fleet job whose first phase admits 1 % of them. Most check-ins
/// therefore evaluate the job and answer idle; the admitted ones are on it.
pub struct Fleet {
    pub server: Server,
    pub account: AccountId,
    pub devices: u64,
    pub check_in: DeviceMessage,
    /// Replay counter of the next round of check-ins.
    pub round: u32,
    /// Unix time of the next round.
    pub now: u64,
}

pub fn device_key(id: u64) -> DeviceKey {
    let mut key = [0u8; 32];
    for part in key.chunks_mut(8) {
        part.copy_from_slice(&id.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    }
    DeviceKey(key)
}

/// Device ids are spread over the id space as an operator's serial numbers would be.
pub fn device_id(index: u64) -> DeviceId {
    DeviceId(0x5E_0000_0000 + index * 7)
}

impl Fleet {
    pub fn build(devices: u64) -> Self {
        let mut server = Server::new(
            MemoryStorage::with_device_capacity(devices as usize),
            RustCrypto,
        );
        let account = server
            .create_account(AccountSettings::new("bench"))
            .expect("account");
        server
            .execute(
                T0,
                account,
                Command::AddTargetType {
                    name: "sensor-v1".into(),
                },
            )
            .expect("target type");
        let factory = Inventory {
            target: "sensor-v1".try_into().expect("short"),
            application: InstalledApplication {
                version: Version::new(1, 0, 0, 1),
                size: 100,
                sha256: [1; 32],
            },
            security_counter: 1,
            files: heapless::Vec::new(),
        };
        for index in 0..devices {
            let id = device_id(index);
            server
                .execute(
                    T0,
                    account,
                    Command::RegisterDevice {
                        device: id,
                        key: device_key(id.0),
                        target: "sensor-v1".into(),
                        tags: Vec::new(),
                        inventory: Some(Box::new(factory.clone())),
                    },
                )
                .expect("register");
        }
        let image = vec![0x5A; 64 * 1024];
        let mut files = heapless::Vec::new();
        files
            .push(ManifestFile {
                kind: FileKind::Application,
                name: "app.bin".try_into().expect("short"),
                size: image.len() as u32,
                sha256: RustCrypto.sha256(&[&image]),
            })
            .expect("room");
        let manifest = Manifest {
            target: "sensor-v1".try_into().expect("short"),
            version: Version::new(1, 1, 0, 7),
            security_counter: 2,
            expires_at: T0 + 365 * 86_400,
            files,
            remove: heapless::Vec::new(),
        };
        let mut buffer = [0u8; 1536];
        let body = manifest.encode(&mut buffer).expect("encodes").to_vec();
        let upload = Command::UploadRelease {
            key_id: 1,
            body,
            signature: Signature([0; 64]),
            artifacts: vec![image],
        };
        let Created::Release(release) =
            server.execute(T0, account, upload).expect("upload").created
        else {
            panic!("upload created no release");
        };
        server
            .execute(T0, account, Command::ApproveRelease { release })
            .expect("approve");
        let mut spec = JobSpec::new(release, JobTarget::Fleet, T0);
        spec.phases = vec![
            Phase {
                share_permille: 10,
                delay_s: 0,
                success_permille: 0,
            },
            Phase {
                share_permille: 1000,
                delay_s: 30 * 86_400,
                success_permille: 950,
            },
        ];
        server
            .execute(T0, account, Command::CreateJob(spec))
            .expect("job");
        let check_in = DeviceMessage::CheckIn(CheckIn {
            job: None,
            inventory: factory.digest(&RustCrypto),
            location: None,
        });
        Fleet {
            server,
            account,
            devices,
            check_in,
            round: 1,
            now: T0 + 60,
        }
    }

    /// The device a position in a round visits: a stride through the fleet, so
    /// that consecutive check-ins hit records far apart as real traffic does.
    pub fn visit(&self, position: u64) -> DeviceId {
        device_id(position.wrapping_mul(7919) % self.devices)
    }

    /// Encodes the check-in frame of the device at `position` in the current round.
    pub fn frame(&self, position: u64, out: &mut [u8]) -> usize {
        let device = self.visit(position);
        let header = UplinkHeader {
            device,
            counter: self.round,
        };
        encode_uplink(
            &RustCrypto,
            &device_key(device.0),
            header,
            &self.check_in,
            out,
        )
        .expect("encodes")
    }

    /// Ends a round: every device's next message needs a higher counter.
    pub fn next_round(&mut self) {
        self.round += 1;
        self.now += 900;
    }
}

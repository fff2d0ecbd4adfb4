//! A small fleet harness: an account, signed releases and devices that speak
//! the protocol as well-behaved firmware would.
#![allow(dead_code, unreachable_pub)]

use syssync_proto::frame::{derive_device_key, encode_uplink, Binding, Frame};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, TrustedKey};
use syssync_proto::message::{
    CheckIn, ChunkRequest, DeviceMessage, InstalledApplication, InstalledFile, Inventory,
    JobOutcome, JobProgress, JobReport, JobState, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    AccountId, Crypto, DeviceId, DeviceKey, FileName, JobId, RefusalCode, RustCrypto, Version,
    MAX_FRAME_LEN,
};
use syssync_server_core::{
    AccountSettings, Command, JobSpec, JobTarget, Notification, ReleaseId, Server,
};

/// Monday 2024-01-01 00:00:00 UTC.
pub const T0: u64 = 1_704_067_200;
pub const TARGET: &str = "sensor-v1";
pub const RELEASE_SECRET: [u8; 32] = [0x42; 32];

/// A server reply, owned, so that tests can keep it past the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Idle(u32),
    InventoryRequest,
    Offer {
        job: JobId,
        reset_window: Option<(u32, u32)>,
        manifest: Box<Manifest>,
    },
    Chunk(Vec<u8>),
    Confirm(JobId),
    Cancel(JobId),
    Registered(AccountId),
    Refused(RefusalCode, u32),
}

impl Reply {
    pub fn from_message(message: &ServerMessage<'_>) -> Self {
        match message {
            ServerMessage::Idle(idle) => Reply::Idle(idle.interval_s),
            ServerMessage::InventoryRequest => Reply::InventoryRequest,
            ServerMessage::JobOffer(offer) => Reply::Offer {
                job: offer.job,
                reset_window: offer
                    .reset_window
                    .map(|window| (window.opens_in_s, window.closes_in_s)),
                manifest: Box::new(
                    offer
                        .manifest
                        .verify(&RustCrypto, &[release_key()])
                        .expect("offered manifest verifies"),
                ),
            },
            ServerMessage::Chunk(chunk) => Reply::Chunk(chunk.data.to_vec()),
            ServerMessage::Confirm(confirm) => Reply::Confirm(confirm.job),
            ServerMessage::Cancel(cancel) => Reply::Cancel(cancel.job),
            ServerMessage::RegistrationResult(result) => Reply::Registered(result.account),
            ServerMessage::Refusal(refusal) => Reply::Refused(refusal.code, refusal.detail),
        }
    }
}

pub fn release_key() -> TrustedKey {
    TrustedKey {
        id: 1,
        public_key: manifest::public_key(&RELEASE_SECRET),
    }
}

pub fn name(text: &str) -> FileName {
    FileName::try_from(text).expect("short name")
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    RustCrypto.sha256(&[data])
}

/// Returns the inventory of a device as it leaves the factory: application 1.0.0+1.
pub fn factory_inventory() -> Inventory {
    let image = factory_image();
    let mut files = heapless::Vec::new();
    files
        .push(InstalledFile {
            name: name("config.toml"),
            size: 4,
            sha256: sha256(b"old\n"),
        })
        .expect("room");
    Inventory {
        target: TARGET.try_into().expect("short"),
        application: InstalledApplication {
            version: Version::new(1, 0, 0, 1),
            size: image.len() as u32,
            sha256: sha256(&image),
        },
        security_counter: 1,
        files,
    }
}

pub fn factory_image() -> Vec<u8> {
    vec![0x11; 3000]
}

/// Release contents: an application image of `size` bytes filled with `fill`,
/// and a new `config.toml`.
pub struct ReleaseFiles {
    pub version: Version,
    pub image: Vec<u8>,
    pub config: Vec<u8>,
}

impl ReleaseFiles {
    pub fn new(version: Version, fill: u8, size: usize) -> Self {
        Self {
            version,
            image: vec![fill; size],
            config: format!("version = \"{}\"\n", version).into_bytes(),
        }
    }

    pub fn manifest(&self) -> Manifest {
        let mut files = heapless::Vec::new();
        files
            .push(ManifestFile {
                kind: FileKind::Application,
                name: name("app.bin"),
                size: self.image.len() as u32,
                sha256: sha256(&self.image),
            })
            .expect("room");
        files
            .push(ManifestFile {
                kind: FileKind::Plain,
                name: name("config.toml"),
                size: self.config.len() as u32,
                sha256: sha256(&self.config),
            })
            .expect("room");
        Manifest {
            target: TARGET.try_into().expect("short"),
            version: self.version,
            security_counter: 2,
            expires_at: T0 + 365 * 86_400,
            files,
            remove: heapless::Vec::new(),
        }
    }

    pub fn upload_command(&self) -> Command {
        let manifest = self.manifest();
        let mut buffer = [0u8; 1536];
        let body = manifest
            .encode(&mut buffer)
            .expect("manifest encodes")
            .to_vec();
        let signature = manifest::sign(&body, &RELEASE_SECRET);
        Command::UploadRelease {
            key_id: 1,
            body,
            signature,
            artifacts: vec![self.image.clone(), self.config.clone()],
        }
    }
}

/// Applies a manifest to an inventory as a device's installer does.
pub fn apply(inventory: &Inventory, manifest: &Manifest) -> Inventory {
    let mut next = inventory.clone();
    next.files
        .retain(|file| !manifest.remove.contains(&file.name));
    for file in &manifest.files {
        match file.kind {
            FileKind::Application => {
                next.application = InstalledApplication {
                    version: manifest.version,
                    size: file.size,
                    sha256: file.sha256,
                }
            }
            FileKind::Plain => {
                let installed = InstalledFile {
                    name: file.name.clone(),
                    size: file.size,
                    sha256: file.sha256,
                };
                if let Some(existing) = next.files.iter_mut().find(|f| f.name == file.name) {
                    *existing = installed;
                } else {
                    next.files.push(installed).expect("room");
                }
            }
        }
    }
    next.normalize();
    next
}

/// A device as the tests drive it: its key, counter and what it has installed.
#[derive(Clone, Debug)]
pub struct TestDevice {
    pub id: DeviceId,
    pub key: DeviceKey,
    pub counter: u32,
    pub inventory: Inventory,
    pub job: Option<(JobId, JobState, Manifest)>,
}

impl TestDevice {
    pub fn new(id: u64) -> Self {
        Self {
            id: DeviceId(id),
            key: DeviceKey([id as u8 ^ 0xA5; 32]),
            counter: 0,
            inventory: factory_inventory(),
            job: None,
        }
    }

    pub fn register_command(&self, with_inventory: bool) -> Command {
        Command::RegisterDevice {
            device: self.id,
            key: self.key.clone(),
            target: TARGET.into(),
            tags: Vec::new(),
            inventory: with_inventory.then(|| Box::new(self.inventory.clone())),
        }
    }

    /// Sends a message through `handle_message` and returns the reply.
    pub fn send(
        &mut self,
        server: &mut Server,
        now: u64,
        message: DeviceMessage,
    ) -> (Reply, Vec<Notification>) {
        self.counter += 1;
        let header = UplinkHeader {
            device: self.id,
            counter: self.counter,
        };
        let outcome = server.handle_message(now, header, &message);
        (Reply::from_message(&outcome.reply), outcome.notifications)
    }

    /// Sends a message as a frame through `handle_frame` and opens the reply.
    pub fn send_frame(&mut self, server: &mut Server, now: u64, message: DeviceMessage) -> Reply {
        self.counter += 1;
        let header = UplinkHeader {
            device: self.id,
            counter: self.counter,
        };
        let mut uplink = [0u8; MAX_FRAME_LEN];
        let len = encode_uplink(&RustCrypto, &self.key, header, &message, &mut uplink)
            .expect("uplink encodes");
        let mut downlink = [0u8; MAX_FRAME_LEN];
        let outcome = server.handle_frame(now, &uplink[..len], &mut downlink);
        let frame = Frame::parse(&downlink[..outcome.reply_len]).expect("reply frame parses");
        let reply = frame
            .open_downlink(&RustCrypto, &self.key, Binding::from(header))
            .expect("reply verifies");
        Reply::from_message(&reply)
    }

    pub fn check_in_message(&self) -> DeviceMessage {
        DeviceMessage::CheckIn(CheckIn {
            job: self.job.as_ref().map(|(job, state, _)| JobProgress {
                job: *job,
                state: *state,
                bytes_done: 0,
            }),
            inventory: self.inventory.digest(&RustCrypto),
            location: None,
        })
    }

    pub fn check_in(&mut self, server: &mut Server, now: u64) -> (Reply, Vec<Notification>) {
        let message = self.check_in_message();
        self.send(server, now, message)
    }

    pub fn report_inventory(
        &mut self,
        server: &mut Server,
        now: u64,
    ) -> (Reply, Vec<Notification>) {
        let message = DeviceMessage::InventoryReport(self.inventory.clone());
        self.send(server, now, message)
    }

    pub fn report(
        &mut self,
        server: &mut Server,
        now: u64,
        job: JobId,
        outcome: JobOutcome,
    ) -> (Reply, Vec<Notification>) {
        self.send(
            server,
            now,
            DeviceMessage::JobReport(JobReport { job, outcome }),
        )
    }

    /// Takes an offer reply.
    pub fn accept(&mut self, reply: &Reply) -> JobId {
        match reply {
            Reply::Offer { job, manifest, .. } => {
                self.job = Some((*job, JobState::Downloading, (**manifest).clone()));
                *job
            }
            other => panic!("expected a job offer, got {other:?}"),
        }
    }

    /// Downloads every file of the current job with chunk requests and checks
    /// each file's digest. Returns the number of chunk requests.
    pub fn download(&mut self, server: &mut Server, now: u64) -> usize {
        let (job, _, manifest) = self.job.clone().expect("device has a job");
        let mut requests = 0;
        for (index, file) in manifest.files.iter().enumerate() {
            let mut data = Vec::new();
            while data.len() < file.size as usize {
                let request = ChunkRequest {
                    job,
                    file: index as u8,
                    offset: data.len() as u32,
                    length: 4096,
                };
                let (reply, _) = self.send(server, now, DeviceMessage::ChunkRequest(request));
                requests += 1;
                match reply {
                    Reply::Chunk(bytes) => data.extend_from_slice(&bytes),
                    other => panic!("expected a chunk, got {other:?}"),
                }
            }
            assert_eq!(sha256(&data), file.sha256, "file {index} digest");
        }
        self.job = Some((job, JobState::Staged, manifest));
        requests
    }

    /// Resets into the new image: the device now runs it on trial.
    pub fn install(&mut self) {
        let (job, _, manifest) = self.job.clone().expect("device has a job");
        self.inventory = apply(&self.inventory, &manifest);
        self.job = Some((job, JobState::Trial, manifest));
    }

    /// Runs a whole update from the current offer: download, install, report,
    /// inventory, confirm. Returns the notifications of the confirming step.
    pub fn finish_update(&mut self, server: &mut Server, now: u64) -> Vec<Notification> {
        let job = self.job.as_ref().expect("device has a job").0;
        self.download(server, now);
        self.install();
        let (reply, _) = self.report(server, now, job, JobOutcome::Installed);
        assert_eq!(reply, Reply::InventoryRequest);
        let (reply, notes) = self.report_inventory(server, now);
        assert_eq!(reply, Reply::Confirm(job));
        self.job = None;
        notes
    }
}

/// Creates an account with the test target type and a trusted release key.
pub fn account(server: &mut Server, name: &str) -> AccountId {
    let mut settings = AccountSettings::new(name);
    settings.release_keys = vec![release_key()];
    settings.claim_token = Some([0x77; 32]);
    let account = server.create_account(settings).expect("account");
    server
        .execute(
            T0,
            account,
            Command::AddTargetType {
                name: TARGET.into(),
            },
        )
        .expect("target type");
    account
}

/// Uploads and approves a release.
pub fn approved_release(
    server: &mut Server,
    account: AccountId,
    files: &ReleaseFiles,
) -> ReleaseId {
    let release = match server
        .execute(T0, account, files.upload_command())
        .expect("upload")
        .created
    {
        syssync_server_core::Created::Release(id) => id,
        other => panic!("expected a release, got {other:?}"),
    };
    server
        .execute(T0, account, Command::ApproveRelease { release })
        .expect("approve");
    release
}

pub fn create_job(server: &mut Server, now: u64, account: AccountId, spec: JobSpec) -> JobId {
    match server
        .execute(now, account, Command::CreateJob(spec))
        .expect("job")
        .created
    {
        syssync_server_core::Created::Job(id) => id,
        other => panic!("expected a job, got {other:?}"),
    }
}

/// Builds a server with one account, `count` commissioned devices (inventory known)
/// and one approved release 1.1.0+7.
pub fn fleet(count: u64) -> (Server, AccountId, Vec<TestDevice>, ReleaseId) {
    let mut server = Server::in_memory();
    let account = account(&mut server, "acme");
    let mut devices = Vec::new();
    for id in 1..=count {
        let device = TestDevice::new(id);
        server
            .execute(T0, account, device.register_command(true))
            .expect("register");
        devices.push(device);
    }
    let release = approved_release(
        &mut server,
        account,
        &ReleaseFiles::new(Version::new(1, 1, 0, 7), 0x5A, 10_000),
    );
    (server, account, devices, release)
}

pub fn fleet_job(release: ReleaseId, start: u64) -> JobSpec {
    JobSpec::new(release, JobTarget::Fleet, start)
}

pub fn claim_key(device: DeviceId) -> DeviceKey {
    derive_device_key(&RustCrypto, &[0x77; 32], device)
}

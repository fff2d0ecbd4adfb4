//! The decision engine of a syssync update server.
//!
//! Everything an update server decides (who owns a device, which job a device
//! gets and when, which chunk bytes it may fetch, whether its new image is
//! confirmed, when a rollout pauses) is a function of the stored records and
//! the current time. This crate is that function. A front end (HTTP, MQTT,
//! CoAP, a simulator) carries the bytes; a [`Storage`] carries the records.
//!
//! - No clock, socket, file, database or random source inside: every entry
//!   point takes `now`, Unix time in seconds.
//! - [`Server::handle_frame`] takes a raw device frame and writes the reply
//!   frame; [`Server::handle_message`] takes a message whose MAC the front end
//!   checked. Both return [`Notification`]s instead of sending them.
//! - [`Server::execute`] runs an operator [`Command`] for one account, and the
//!   queries ([`Server::devices`], [`Server::job_progress`],
//!   [`Server::job_failures`]) serve a dashboard. Every account-scoped check
//!   lives there: a record of another account is reported as not found.
//! - Deterministic: no hash map order reaches a decision or an output, and the
//!   rollout order of devices is a stable hash of device and job id
//!   ([`schedule::rollout_rank`]), so a simulation with the same inputs gives
//!   the same outputs.
//!
//! # Rules the engine applies
//!
//! - **Replay**: a device message must carry a counter above the last accepted
//!   one, else it is refused with `STALE_COUNTER` (detail: the last accepted).
//! - **Attempts**: an offer is an attempt. A device gets a job at most
//!   `max_attempts` times; a failed, reverted or rejected report, or no install
//!   report within `in_progress_timeout_s`, is a failed attempt; the last one
//!   fails the device for the job and raises [`NotificationKind::RetryLimitReached`].
//! - **Phases**: phase `k` admits devices whose rollout rank is below its
//!   cumulative share, and never more than `ceil(share × targets)` in total. It
//!   opens once `delay_s` has passed since phase `k − 1` opened and the
//!   devices admitted so far reached its success ratio.
//! - **Failure threshold**: when devices with a failed attempt exceed the
//!   threshold share of the admitted devices (after `min_sample`), the job
//!   pauses and raises [`NotificationKind::RolloutPaused`].
//! - **Windows**: with a [`MaintenanceSchedule`], offers happen only inside a
//!   window; the offer's reset window closes with it, and a device checking in
//!   outside one is told to come back when the next opens (if sooner than its
//!   normal interval).
//! - **Confirm**: after an install report (or a check-in on trial) the server
//!   compares the device's inventory with what the job should produce (the
//!   previous inventory with the manifest's installs and removals applied) and
//!   confirms only an exact match (security counter aside) while the job runs.
//!   A paused or cancelled job is never confirmed; a confirm, once given, is
//!   repeated for a device that lost it.
//! - **Chunks**: served from the content-addressed artifact store with no
//!   history row; only a per-device byte counter grows.
//!
//! # A whole flow
//!
//! ```
//! use syssync_proto::frame::{encode_uplink, Binding, Frame};
//! use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile};
//! use syssync_proto::message::{
//!     CheckIn, ChunkRequest, DeviceMessage, InstalledApplication, Inventory, JobOutcome,
//!     JobProgress, JobReport, JobState, ServerMessage, UplinkHeader,
//! };
//! use syssync_proto::{Crypto, DeviceId, DeviceKey, RustCrypto, Version, MAX_FRAME_LEN};
//! use syssync_server_core::{
//!     AccountSettings, Command, Created, JobSpec, JobStatus, JobTarget, NotificationKind,
//!     Phase, Server,
//! };
//!
//! let t0 = 1_704_067_200; // Monday 2024-01-01 00:00 UTC
//! let mut server = Server::in_memory();
//!
//! // An account with a release key and a target type.
//! let release_secret = [0x42; 32];
//! let mut settings = AccountSettings::new("acme");
//! settings.release_keys = vec![manifest::TrustedKey { id: 1, public_key: manifest::public_key(&release_secret) }];
//! let acme = server.create_account(settings)?;
//! server.execute(t0, acme, Command::AddTargetType { name: "sensor-v1".into() })?;
//!
//! // Two devices from the commissioning tool, with their keys and factory inventory.
//! let factory = Inventory {
//!     target: "sensor-v1".try_into().unwrap(),
//!     application: InstalledApplication { version: Version::new(1, 0, 0, 1), size: 100, sha256: [1; 32] },
//!     security_counter: 1,
//!     files: heapless::Vec::new(),
//! };
//! for id in [1, 2] {
//!     server.execute(t0, acme, Command::RegisterDevice {
//!         device: DeviceId(id),
//!         key: DeviceKey([id as u8; 32]),
//!         target: "sensor-v1".into(),
//!         tags: vec![],
//!         inventory: Some(Box::new(factory.clone())),
//!     })?;
//! }
//!
//! // A release signed by release tooling, uploaded with its image, then approved.
//! let image = vec![0x5A; 6000];
//! let mut files = heapless::Vec::new();
//! files.push(ManifestFile {
//!     kind: FileKind::Application,
//!     name: "app.bin".try_into().unwrap(),
//!     size: 6000,
//!     sha256: RustCrypto.sha256(&[&image]),
//! }).unwrap();
//! let release_manifest = Manifest {
//!     target: "sensor-v1".try_into().unwrap(),
//!     version: Version::new(1, 1, 0, 7),
//!     security_counter: 2,
//!     expires_at: t0 + 90 * 86_400,
//!     files,
//!     remove: heapless::Vec::new(),
//! };
//! let mut buffer = [0u8; 1536];
//! let body = release_manifest.encode(&mut buffer).unwrap().to_vec();
//! let signature = manifest::sign(&body, &release_secret);
//! let upload = Command::UploadRelease { key_id: 1, body, signature, artifacts: vec![image.clone()] };
//! let Created::Release(release) = server.execute(t0, acme, upload)?.created else { unreachable!() };
//! server.execute(t0, acme, Command::ApproveRelease { release })?;
//!
//! // A fleet job in two phases: half the fleet first, the rest an hour later
//! // once every admitted device has succeeded.
//! let mut spec = JobSpec::new(release, JobTarget::Fleet, t0);
//! spec.phases = vec![
//!     Phase { share_permille: 500, delay_s: 0, success_permille: 0 },
//!     Phase { share_permille: 1000, delay_s: 3600, success_permille: 1000 },
//! ];
//! let executed = server.execute(t0, acme, Command::CreateJob(spec))?;
//! let Created::Job(job) = executed.created else { unreachable!() };
//! assert_eq!(executed.notifications[0].kind, NotificationKind::JobStarted);
//!
//! // Device 2 ranks in the first half for this job. Its check-in goes through
//! // the frame path, as a front end would pass it.
//! let key = DeviceKey([2; 32]);
//! let header = UplinkHeader { device: DeviceId(2), counter: 1 };
//! let check_in = DeviceMessage::CheckIn(CheckIn { job: None, inventory: factory.digest(&RustCrypto), location: None });
//! let mut uplink = [0u8; MAX_FRAME_LEN];
//! let len = encode_uplink(&RustCrypto, &key, header, &check_in, &mut uplink).unwrap();
//! let mut downlink = [0u8; MAX_FRAME_LEN];
//! let outcome = server.handle_frame(t0 + 60, &uplink[..len], &mut downlink);
//! let reply = Frame::parse(&downlink[..outcome.reply_len]).unwrap()
//!     .open_downlink(&RustCrypto, &key, Binding::from(header)).unwrap();
//! let ServerMessage::JobOffer(offer) = reply else { panic!("expected an offer, got {reply:?}") };
//! assert_eq!(offer.job, job);
//! assert!(offer.manifest.verify(&RustCrypto, &[manifest::TrustedKey { id: 1, public_key: manifest::public_key(&release_secret) }]).is_ok());
//!
//! // Device 1 ranks in the second half: nothing for it yet.
//! let header1 = UplinkHeader { device: DeviceId(1), counter: 1 };
//! let reply = server.handle_message(t0 + 60, header1, &check_in).reply;
//! assert!(matches!(reply, ServerMessage::Idle(_)));
//!
//! // Device 2 fetches the image in chunks. The front end checked the MAC
//! // here, so the decoded-message entry is used.
//! let mut counter = 1;
//! let mut fetched = Vec::new();
//! while fetched.len() < image.len() {
//!     counter += 1;
//!     let header = UplinkHeader { device: DeviceId(2), counter };
//!     let request = ChunkRequest { job, file: 0, offset: fetched.len() as u32, length: 4096 };
//!     match server.handle_message(t0 + 120, header, &DeviceMessage::ChunkRequest(request)).reply {
//!         ServerMessage::Chunk(chunk) => fetched.extend_from_slice(chunk.data),
//!         other => panic!("expected a chunk, got {other:?}"),
//!     }
//! }
//! assert_eq!(fetched, image);
//!
//! // It installs and reports; the server asks for the inventory it now runs.
//! counter += 1;
//! let header = UplinkHeader { device: DeviceId(2), counter };
//! let report = DeviceMessage::JobReport(JobReport { job, outcome: JobOutcome::Installed });
//! let reply = server.handle_message(t0 + 300, header, &report).reply;
//! assert_eq!(reply, ServerMessage::InventoryRequest);
//!
//! // The inventory matches the job exactly: confirm.
//! let mut updated = factory.clone();
//! updated.application = InstalledApplication {
//!     version: Version::new(1, 1, 0, 7),
//!     size: 6000,
//!     sha256: RustCrypto.sha256(&[&image]),
//! };
//! counter += 1;
//! let header = UplinkHeader { device: DeviceId(2), counter };
//! let outcome = server.handle_message(t0 + 301, header, &DeviceMessage::InventoryReport(updated));
//! assert_eq!(outcome.notifications[0].kind, NotificationKind::DeviceUpdated);
//! assert!(matches!(outcome.reply, ServerMessage::Confirm(confirm) if confirm.job == job));
//!
//! // An hour later the second phase opens and device 1 gets its offer.
//! let notes = server.tick(t0 + 3600, acme);
//! assert!(notes.is_empty());
//! let progress = server.job_progress(acme, job)?;
//! assert_eq!(progress.phases[1].opened_at, Some(t0 + 3600));
//! let header1 = UplinkHeader { device: DeviceId(1), counter: 2 };
//! let reply = server.handle_message(t0 + 3700, header1, &check_in).reply;
//! assert!(matches!(reply, ServerMessage::JobOffer(_)));
//!
//! // The dashboard view.
//! let devices = server.devices(t0 + 3700, acme)?;
//! assert_eq!(devices[1].version, Version::new(1, 1, 0, 7));
//! assert_eq!(server.job_progress(acme, job)?.status, JobStatus::Running);
//! # let _ = JobProgress { job, state: JobState::Trial, bytes_done: 0 };
//! # Ok::<(), syssync_server_core::ManagementError>(())
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod device;
mod error;
mod manage;
mod model;
mod query;
pub mod schedule;
mod server;
mod storage;

pub use device::{DeviceOutcome, FrameOutcome, FrameStatus};
pub use error::ManagementError;
pub use manage::{Command, Created, Executed};
pub use model::*;
pub use query::{DeviceStatus, JobProgressReport, PhaseProgress};
pub use schedule::{MaintenanceSchedule, MaintenanceWindow, Weekday, WindowState};
pub use server::Server;
pub use storage::{MemoryStorage, Storage, StoredInventory};

/// Limits on management input. Larger input is rejected with
/// [`ManagementError::TooLarge`].
pub mod limits {
    /// Maximum length of a name, tag or other text, in bytes.
    pub const MAX_TEXT_LEN: usize = 64;
    /// Maximum number of tags on one device.
    pub const MAX_TAGS: usize = 16;
    /// Maximum size of one uploaded file, in bytes (64 MiB).
    pub const MAX_ARTIFACT_LEN: usize = 64 << 20;
    /// Maximum number of devices in one static group.
    pub const MAX_GROUP_MEMBERS: usize = 100_000;
    /// Maximum number of phases in one job.
    pub const MAX_PHASES: usize = 16;
    /// Maximum per-device attempt limit of a job.
    pub const MAX_ATTEMPTS: u8 = 32;
    /// Maximum number of maintenance windows in one schedule.
    pub const MAX_WINDOWS: usize = 32;
}

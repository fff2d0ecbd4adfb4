//! The interfaces between the simulator and the crates it drives.
//!
//! The simulator owns time, links, faults and bookkeeping. Every decision of
//! a device or the server is made by the real crates behind these traits (`syssync-device` with `rollback-fsm` over `flash-sim` on the device
//! side, `syssync-server-core` on the server side).

use flash_sim::PowerRail;
use syssync_proto::{DeviceId, DeviceKey, JobId, TrustedKey};

use crate::queue::SimTime;
use crate::release::BuiltRelease;

/// An engine event that the simulated application acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A download of a job started.
    DownloadStarted,
    /// An update is staged and the engine wants a reset, at the latest at `deadline`.
    ResetWanted {
        /// Latest simulated time for the reset.
        deadline: SimTime,
    },
    /// The new image was made permanent.
    Confirmed,
    /// The job failed before the new image ran.
    Failed,
    /// The bootloader went back to the previous image.
    Reverted,
}

/// Result of the bootloader run after a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootOutcome {
    /// It booted an image; `trial` is set while the image awaits confirmation.
    Booted {
        /// SHA-256 of the image now running.
        image_sha256: [u8; 32],
        /// Whether the image runs on trial.
        trial: bool,
    },
    /// No verified image can be booted.
    Bricked,
    /// Power failed during the boot; power is back and the boot must run again.
    PowerLost,
}

/// Everything a device needs at provisioning time.
#[derive(Clone, Debug)]
pub struct DeviceSpec<'a> {
    /// Device index in the fleet.
    pub index: u32,
    /// Device id on the wire.
    pub id: DeviceId,
    /// The device's message-authentication key.
    pub key: DeviceKey,
    /// Hardware type.
    pub target: &'a str,
    /// The release installed in the factory.
    pub installed: &'a BuiltRelease,
    /// The release key the device trusts.
    pub trusted_key: TrustedKey,
    /// Largest application image of the scenario, to size the partitions.
    pub max_image_size: u32,
    /// Largest total of plain files of any release, to size the file store.
    pub max_files_size: u32,
    /// Seed for the engine's jitter and the flash model's unstable bits.
    pub seed: u64,
}

/// One simulated device: flash, bootloader state, file store and update engine.
pub trait DeviceModel {
    /// Feeds the current time.
    fn handle_timeout(&mut self, now: SimTime);
    /// Feeds a frame from the server.
    fn handle_frame(&mut self, now: SimTime, frame: &[u8]);
    /// Tells the engine that the network came up or went down.
    fn set_network(&mut self, now: SimTime, up: bool);
    /// Tells the engine that the application found the running image unhealthy.
    fn report_unhealthy(&mut self, now: SimTime);
    /// Writes the next frame to send into `out` and returns its length.
    fn poll_transmit(&mut self, now: SimTime, out: &mut [u8]) -> Option<usize>;
    /// Returns the next event for the application.
    fn poll_event(&mut self) -> Option<DeviceEvent>;
    /// Returns the time of the next [`DeviceModel::handle_timeout`] call the engine requests.
    fn poll_timeout(&self) -> Option<SimTime>;
    /// Returns the power rail of all the device's flash.
    fn power_rail(&self) -> &PowerRail;
    /// Resets the device: drops all RAM state, runs the bootloader to
    /// completion and builds the engine again from flash alone.
    fn reset(&mut self, now: SimTime) -> BootOutcome;
    /// Power-cycles the device and checks that the bootloader boots an image
    /// whose bytes in the active partition match its SHA-256.
    fn boots_verified_image(&mut self, now: SimTime) -> bool;
    /// Returns a SHA-256 over the identity and application records of the
    /// settings store, to detect changes. The engine's replay-counter
    /// reservation is left out, because the engine rewrites it by design.
    fn settings_digest(&mut self) -> [u8; 32];
    /// Bytes of simulated flash this device holds.
    fn flash_bytes(&self) -> u64;
}

/// A notification from the server for an account owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerNotification {
    /// Account index.
    pub account: u64,
    /// Kind, in kebab case (`rollout-paused`, `retry-limit-reached`, ...).
    pub kind: String,
    /// Job, if any.
    pub job: Option<JobId>,
    /// Device, if any.
    pub device: Option<DeviceId>,
    /// Failure cause, for failure notifications.
    pub cause: Option<String>,
    /// Whether the account wants this kind.
    pub wanted: bool,
}

/// A rollout as the server is asked to run it.
#[derive(Clone, Debug)]
pub struct RolloutSpec<'a> {
    /// The release.
    pub release: &'a BuiltRelease,
    /// Members of the group at the start.
    pub devices: &'a [DeviceId],
    /// Phases as (cumulative share, delay after the previous phase in seconds, success ratio).
    pub phases: &'a [(f64, u64, f64)],
    /// Offers per device at most.
    pub attempt_limit: u8,
    /// Failure share above which the job pauses.
    pub failure_threshold: f64,
    /// Attempted devices needed before the failure threshold applies.
    pub failure_min_sample: u32,
    /// Time a device may take between offer and outcome, in seconds.
    pub in_progress_timeout_s: u64,
    /// Weekly maintenance windows as (day with Monday 0, start minute, length
    /// in minutes) in local time; empty means offers at any time.
    pub windows: &'a [(u8, u16, u16)],
    /// Local time minus UTC of the windows, in minutes.
    pub utc_offset_minutes: i16,
}

/// Phase and status view of a job, in Unix seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobView {
    /// When each phase opened.
    pub phases_opened: Vec<Option<u64>>,
    /// Whether the job is paused.
    pub paused: bool,
    /// Whether the job is completed.
    pub completed: bool,
    /// The server's own counters of the job.
    pub counters: crate::report::ServerCounters,
}

/// The update server, as the simulator drives it.
pub trait ServerModel {
    /// Registers a device of an account with its key.
    fn add_device(
        &mut self,
        now_unix_s: u64,
        account: u32,
        id: DeviceId,
        key: &DeviceKey,
    ) -> Result<(), String>;
    /// Uploads and approves a release.
    fn add_release(&mut self, now_unix_s: u64, release: &BuiltRelease) -> Result<(), String>;
    /// Starts a rollout at `now_unix_s` and returns its job.
    fn start_rollout(&mut self, now_unix_s: u64, spec: &RolloutSpec<'_>) -> Result<JobId, String>;
    /// Adds devices to the group of a running rollout.
    fn join_group(
        &mut self,
        now_unix_s: u64,
        job: JobId,
        devices: &[DeviceId],
    ) -> Result<(), String>;
    /// Hands a device over to another account: offer by the owner, accept by the new owner.
    fn transfer(
        &mut self,
        now_unix_s: u64,
        device: DeviceId,
        to_account: u32,
    ) -> Result<(), String>;
    /// Returns the accounts that see `device` in their device list.
    fn owners_seeing(&self, now_unix_s: u64, device: DeviceId) -> Vec<u32>;
    /// Handles one frame from a device and writes the reply into `out`.
    fn handle_frame(&mut self, now_unix_s: u64, frame: &[u8], out: &mut [u8]) -> Option<usize>;
    /// Advances time-driven decisions (phases, timeouts).
    fn tick(&mut self, now_unix_s: u64);
    /// Drains notifications produced since the last call.
    fn drain_notifications(&mut self) -> Vec<ServerNotification>;
    /// Returns the phase and status view of `job`.
    fn job_view(&self, job: JobId) -> JobView;
    /// Returns the failed attempts of `job` per device, as the server counted them.
    fn failed_attempts(&self, job: JobId) -> std::collections::BTreeMap<DeviceId, u32>;
}

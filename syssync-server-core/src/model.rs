//! The records the server keeps and the settings an operator gives it.
//!
//! Every record is plain data. [`DeviceRecord`] is `Copy` and small, because a
//! check-in loads and stores one per request; the larger records (accounts,
//! releases, groups, jobs) are read by reference from the [`Storage`](crate::Storage).

use std::collections::{BTreeMap, BTreeSet};

use syssync_proto::manifest::{Manifest, TrustedKey};
use syssync_proto::message::JobState;
use syssync_proto::{
    AccountId, DeviceId, FailureCode, InventoryDigest, JobId, Location, RejectReason, RevertReason,
    Sha256Digest, Signature, Version,
};

use crate::schedule::MaintenanceSchedule;

/// Identifier of a release, assigned by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId(pub u32);

/// Identifier of a device group, assigned by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

/// Reference to an interned target type name (see [`Storage::intern_target`](crate::Storage::intern_target)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetRef(pub u32);

/// Reference to an interned, sorted set of device tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagSetRef(pub u32);

/// Reference to an interned inventory: one stored copy per distinct inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InventoryRef(pub u32);

/// The kinds of notification an account holder can receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotificationKind {
    /// A job reached its start time and began offering.
    JobStarted,
    /// A device confirmed the job's release.
    DeviceUpdated,
    /// A device failed an attempt (failed, reverted, rejected or timed out).
    DeviceFailed,
    /// A device used up the job's attempt limit and is failed for that job.
    RetryLimitReached,
    /// The job's failure threshold was exceeded and the job paused itself.
    RolloutPaused,
    /// Every target device of the job has an outcome. A group or fleet job
    /// reopens for a device that joins its targets later, so it is sent
    /// again when that device has its outcome too.
    RolloutCompleted,
}

impl NotificationKind {
    /// Every kind, in declaration order.
    pub const ALL: [NotificationKind; 6] = [
        NotificationKind::JobStarted,
        NotificationKind::DeviceUpdated,
        NotificationKind::DeviceFailed,
        NotificationKind::RetryLimitReached,
        NotificationKind::RolloutPaused,
        NotificationKind::RolloutCompleted,
    ];

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which notification kinds an account holder wants delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NotificationPrefs(u8);

impl NotificationPrefs {
    /// Every kind wanted.
    pub const ALL: Self = Self(0b11_1111);
    /// No kind wanted.
    pub const NONE: Self = Self(0);

    /// Returns these preferences with `kind` wanted or not.
    #[must_use]
    pub const fn with(self, kind: NotificationKind, wanted: bool) -> Self {
        if wanted {
            Self(self.0 | kind.bit())
        } else {
            Self(self.0 & !kind.bit())
        }
    }

    /// Returns `true` if `kind` is wanted.
    pub const fn wants(self, kind: NotificationKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

impl Default for NotificationPrefs {
    fn default() -> Self {
        Self::ALL
    }
}

/// An event for an account holder. The server returns it; delivering it (mail,
/// webhook, dashboard) is the front end's work, and `wanted` says whether the
/// account's preferences ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The account the event belongs to.
    pub account: AccountId,
    /// What happened.
    pub kind: NotificationKind,
    /// The job concerned, if any.
    pub job: Option<JobId>,
    /// The device concerned, if any.
    pub device: Option<DeviceId>,
    /// Why a device failed, for [`NotificationKind::DeviceFailed`] and
    /// [`NotificationKind::RetryLimitReached`].
    pub cause: Option<FailureCause>,
    /// `true` if the account's preferences ask for this kind.
    pub wanted: bool,
}

/// An account's settings, given at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// Display name, at most [`MAX_TEXT_LEN`](crate::limits::MAX_TEXT_LEN) bytes.
    pub name: String,
    /// Secret from which devices derive their keys for automatic registration
    /// ([`derive_device_key`](syssync_proto::frame::derive_device_key)); `None`
    /// refuses automatic registration for the account.
    pub claim_token: Option<[u8; 32]>,
    /// Release keys whose signatures the server checks on upload; an empty list
    /// stores manifests after decoding them without a signature check.
    pub release_keys: Vec<TrustedKey>,
    /// Seconds between check-ins that the server asks devices for.
    pub check_in_interval_s: u32,
    /// A device is overdue when it has not checked in for this many seconds.
    pub overdue_after_s: u32,
    /// Which notifications the account holder wants.
    pub notifications: NotificationPrefs,
}

impl AccountSettings {
    /// Settings with a name, no claim token, no release keys, a 15-minute
    /// check-in interval, overdue after three missed check-ins, and every
    /// notification wanted.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            claim_token: None,
            release_keys: Vec::new(),
            check_in_interval_s: 900,
            overdue_after_s: 3 * 900,
            notifications: NotificationPrefs::ALL,
        }
    }
}

/// A customer: owner of devices, releases, groups and jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Identifier, assigned by the server.
    pub id: AccountId,
    /// Settings.
    pub settings: AccountSettings,
    /// Target types this account registered; releases and devices must name one.
    pub targets: BTreeSet<TargetRef>,
}

/// A device's current job, as the server tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceJob {
    /// The job.
    pub job: JobId,
    /// Where the device stands in it.
    pub state: DeviceJobState,
    /// The phase that was the highest open one when the device was admitted.
    pub phase: u8,
    /// Unix time of the offer that started this attempt.
    pub offered_at: u64,
    /// The inventory the device has after a correct install.
    pub expected: InventoryRef,
    /// Bytes the device reports as fetched and verified.
    pub bytes_done: u32,
}

/// Where a device stands in its current job, on the server's books.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceJobState {
    /// Offered, not yet reported on.
    Offered,
    /// Fetching files.
    Downloading,
    /// Files verified and staged, waiting for the reset.
    Staged,
    /// Running the new image on trial.
    Trial,
    /// Reported installed; the server waits for its inventory.
    Installed,
    /// Confirmed. A confirm is repeated until the device stops naming the job.
    Confirmed,
    /// Abandoned by the server (job cancelled, attempt timed out or device
    /// handed over): the server answers with a cancel until the device drops the job.
    Abandoned,
}

impl From<JobState> for DeviceJobState {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Downloading => DeviceJobState::Downloading,
            JobState::Staged => DeviceJobState::Staged,
            JobState::Trial => DeviceJobState::Trial,
        }
    }
}

/// Everything the server keeps per device. Small and `Copy`: a check-in loads
/// it, decides, and stores it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Identifier.
    pub id: DeviceId,
    /// The owning account. There is exactly one at every moment.
    pub account: AccountId,
    /// The device's message-authentication key.
    pub key: [u8; 32],
    /// The last replay counter accepted from the device; `None` before the first message.
    pub last_counter: Option<u32>,
    /// Unix time of the last accepted message; 0 before the first.
    pub last_seen: u64,
    /// Hardware type.
    pub target: TargetRef,
    /// Tags set by the owner, for group filters.
    pub tags: TagSetRef,
    /// Version of the running application, from registration or the last inventory.
    pub version: Version,
    /// The last inventory the device reported in full, if any.
    pub inventory: Option<InventoryRef>,
    /// The inventory digest of the last check-in, if any.
    pub reported_digest: Option<InventoryDigest>,
    /// The last position the device sent.
    pub location: Option<Location>,
    /// The current job, if any.
    pub job: Option<DeviceJob>,
    /// Chunk bytes served to the device over its lifetime.
    pub bytes_served: u64,
}

/// A stored file, shared by every release that lists its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The file's bytes.
    pub data: Vec<u8>,
    /// How many release file entries reference it.
    pub references: u32,
}

/// A release: a signed manifest and the files it lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// Identifier.
    pub id: ReleaseId,
    /// The owning account.
    pub account: AccountId,
    /// Hardware type, interned.
    pub target: TargetRef,
    /// The decoded manifest.
    pub manifest: Manifest,
    /// Id of the release key that signed the body.
    pub key_id: u8,
    /// The manifest body exactly as signed.
    pub body: Vec<u8>,
    /// The release key's signature.
    pub signature: Signature,
    /// Digest of each manifest file, in manifest order: the artifact keys.
    pub artifacts: Vec<Sha256Digest>,
    /// Approved for deployment. An approved release never changes.
    pub approved: bool,
}

/// A version constraint of a group filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionFilter {
    /// Below this version.
    Below(Version),
    /// Exactly this version.
    Exactly(Version),
    /// At or above this version.
    AtLeast(Version),
}

impl VersionFilter {
    /// Returns `true` if `version` passes.
    pub fn matches(self, version: Version) -> bool {
        match self {
            VersionFilter::Below(bound) => version < bound,
            VersionFilter::Exactly(bound) => version == bound,
            VersionFilter::AtLeast(bound) => version >= bound,
        }
    }
}

/// A dynamic group: every device of the account that passes all given constraints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    /// Hardware type, if constrained.
    pub target: Option<String>,
    /// Application version, if constrained.
    pub version: Option<VersionFilter>,
    /// A tag the device must carry, if constrained.
    pub tag: Option<String>,
}

/// How a group selects its devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Listed devices.
    Static(BTreeSet<DeviceId>),
    /// Devices that pass a filter, evaluated when a device checks in.
    Filter(GroupFilter),
}

/// A named set of an account's devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Identifier.
    pub id: GroupId,
    /// The owning account.
    pub account: AccountId,
    /// Display name.
    pub name: String,
    /// Membership.
    pub kind: GroupKind,
    /// The filter's target type, interned when the group was created.
    pub filter_target: Option<TargetRef>,
}

/// The devices a job is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobTarget {
    /// One device.
    Device(DeviceId),
    /// The members of a group, including devices that join after the start.
    Group(GroupId),
    /// Every device of the account with the release's target type.
    Fleet,
}

/// One phase of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// Cumulative share of the target devices that may be admitted once this
    /// phase is open, in thousandths (the last phase must be 1000).
    pub share_permille: u16,
    /// Seconds after the previous phase opened before this one may open.
    pub delay_s: u64,
    /// Share of the devices admitted so far that must have succeeded before
    /// this phase opens, in thousandths. Ignored for the first phase.
    pub success_permille: u16,
}

/// When a job pauses itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureThreshold {
    /// Pause when devices with a failed attempt exceed this share of the
    /// admitted devices, in thousandths.
    pub max_failed_permille: u16,
    /// Admitted devices needed before the threshold applies.
    pub min_sample: u32,
}

/// What an operator asks for when creating a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The release to deploy; it must be approved.
    pub release: ReleaseId,
    /// Which devices.
    pub target: JobTarget,
    /// Unix time at which the job starts offering.
    pub start_at: u64,
    /// Phases, at least one, with rising cumulative shares ending at 1000.
    pub phases: Vec<Phase>,
    /// Weekly maintenance windows; `None` offers at any time.
    pub schedule: Option<MaintenanceSchedule>,
    /// Offers per device at most (1 to [`MAX_ATTEMPTS`](crate::limits::MAX_ATTEMPTS)).
    pub max_attempts: u8,
    /// Seconds a device may take from an offer to its install report before
    /// the attempt counts as failed.
    pub in_progress_timeout_s: u64,
    /// When the job pauses itself; `None` never pauses on failures.
    pub failure_threshold: Option<FailureThreshold>,
}

impl JobSpec {
    /// A single-phase job for `target` starting at `start_at`: no windows, 3
    /// attempts, a one-day in-progress timeout, no failure threshold.
    pub fn new(release: ReleaseId, target: JobTarget, start_at: u64) -> Self {
        Self {
            release,
            target,
            start_at,
            phases: vec![Phase {
                share_permille: 1000,
                delay_s: 0,
                success_permille: 0,
            }],
            schedule: None,
            max_attempts: 3,
            in_progress_timeout_s: 86_400,
            failure_threshold: None,
        }
    }
}

/// A job's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for its start time.
    Scheduled,
    /// Offering to devices in open phases.
    Running,
    /// Paused by the operator or the failure threshold: offers and confirms nothing.
    Paused,
    /// Cancelled: devices on it get a cancel.
    Cancelled,
    /// Every target device has an outcome. A device that joins a group or
    /// fleet job's targets later reopens it.
    Completed,
}

impl JobStatus {
    /// Returns `true` while the job can still change devices (scheduled, running or paused).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            JobStatus::Scheduled | JobStatus::Running | JobStatus::Paused
        )
    }
}

/// Counters of one phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCounters {
    /// Unix time at which the phase opened, if it has.
    pub opened_at: Option<u64>,
    /// Devices admitted while this phase was the highest open one.
    pub admitted: u32,
    /// Of those, devices that confirmed.
    pub succeeded: u32,
    /// Of those, devices that used up their attempts.
    pub failed: u32,
}

/// Counters of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounters {
    /// Devices the job is for: those matching at creation plus those that matched later.
    pub targets: u32,
    /// Devices that received at least one offer.
    pub admitted: u32,
    /// Devices that confirmed.
    pub succeeded: u32,
    /// Devices that already ran the release when the job reached them.
    pub up_to_date: u32,
    /// Devices that used up their attempts.
    pub failed: u32,
    /// Devices handed over to another account before they had an outcome.
    pub left: u32,
    /// Devices with at least one failed attempt.
    pub failing: u32,
    /// Offers made.
    pub offers: u32,
    /// Failed attempts.
    pub failed_attempts: u32,
}

/// Why one attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureCause {
    /// The device reported a failure.
    Failed(FailureCode),
    /// The device went back to its previous image.
    Reverted(RevertReason),
    /// The device refused the offer.
    Rejected(RejectReason),
    /// The device did not report an install within the in-progress timeout.
    TimedOut,
    /// The device dropped the job without a report.
    Dropped,
}

/// One failed attempt, for the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureRecord {
    /// The device.
    pub device: DeviceId,
    /// Unix time of the failure.
    pub at: u64,
    /// Which attempt it was (1 for the first offer).
    pub attempt: u8,
    /// Why.
    pub cause: FailureCause,
}

/// A job with its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Identifier.
    pub id: JobId,
    /// The owning account.
    pub account: AccountId,
    /// What the operator asked for.
    pub spec: JobSpec,
    /// The release's target type.
    pub target_type: TargetRef,
    /// Current status.
    pub status: JobStatus,
    /// Progress counters.
    pub counters: JobCounters,
    /// Per-phase counters, one per phase of the spec.
    pub phases: Vec<PhaseCounters>,
    /// Expected inventory after the install, per inventory the device had before.
    pub expected: BTreeMap<InventoryRef, InventoryRef>,
    /// Failed attempts, oldest first. One row per failed attempt, never per chunk.
    pub failures: Vec<FailureRecord>,
}

/// One device's standing in one job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemberState {
    /// Offers made to the device for the job.
    pub attempts: u8,
    /// The phase that was the highest open one at the first offer.
    pub phase: u8,
    /// Bit set of the `MemberState::*` flags.
    pub flags: u8,
}

impl MemberState {
    /// The device is counted in the job's targets.
    pub const COUNTED: u8 = 1;
    /// The device confirmed the release.
    pub const SUCCEEDED: u8 = 2;
    /// The device used up its attempts.
    pub const FAILED: u8 = 4;
    /// The device had at least one failed attempt.
    pub const HAD_FAILURE: u8 = 8;
    /// The device already ran the release when the job reached it.
    pub const UP_TO_DATE: u8 = 16;
    /// The device was handed over to another account before it had an outcome.
    pub const LEFT: u8 = 32;

    /// Returns `true` if `flag` is set.
    pub const fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Returns `true` once the device has an outcome in the job.
    pub const fn is_done(self) -> bool {
        self.flags & (Self::SUCCEEDED | Self::FAILED | Self::UP_TO_DATE | Self::LEFT) != 0
    }
}

/// A pending handover: the owner offered the device to another account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The device.
    pub device: DeviceId,
    /// The current owner, who offered it.
    pub from: AccountId,
    /// The account that may accept it.
    pub to: AccountId,
}

//! The [`Server`]: stored records plus crypto, and the job logic that both faces share.

use syssync_proto::manifest::FileKind;
use syssync_proto::message::{InstalledApplication, InstalledFile, Inventory};
use syssync_proto::{AccountId, Crypto, DeviceId, JobId};

use crate::model::{
    DeviceRecord, FailureCause, FailureRecord, Group, GroupKind, InventoryRef, Job, JobStatus,
    MemberState, Notification, NotificationKind,
};
use crate::storage::{MemoryStorage, Storage};

/// The decision engine of an update server.
///
/// It holds a [`Storage`] and a [`Crypto`] and nothing else: no clock, no
/// socket, no randomness. Every entry point takes the current Unix time in
/// seconds and returns what to send and which [`Notification`]s arose.
///
/// - Device face: [`Server::handle_frame`] for raw frames, or
///   [`Server::handle_message`] for a message whose MAC the caller checked.
/// - Management face: [`Server::create_account`], [`Server::execute`] with a
///   [`Command`](crate::Command), and the queries ([`Server::devices`],
///   [`Server::job_progress`], [`Server::job_failures`]).
/// - [`Server::tick`] moves jobs along with time (start, phases, completion)
///   even when no device checks in; device decisions do the same on the way.
///   [`Server::expire_attempts`] counts the timeouts of devices that went
///   silent in the middle of a job.
pub struct Server<S: Storage = MemoryStorage, C: Crypto = syssync_proto::RustCrypto> {
    pub(crate) store: S,
    pub(crate) crypto: C,
}

impl Server<MemoryStorage, syssync_proto::RustCrypto> {
    /// Creates a server with an empty in-memory store and the software crypto.
    pub fn in_memory() -> Self {
        Self::new(MemoryStorage::new(), syssync_proto::RustCrypto)
    }
}

impl<S: Storage, C: Crypto> Server<S, C> {
    /// Creates a server over a store.
    pub fn new(store: S, crypto: C) -> Self {
        Self { store, crypto }
    }

    /// Returns the store, for inspection.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Returns the crypto implementation.
    pub fn crypto(&self) -> &C {
        &self.crypto
    }

    /// Moves every open job of `account` along with time: starts scheduled
    /// jobs, opens phases whose delay and success ratio are met, and completes
    /// jobs whose devices all have an outcome.
    pub fn tick(&mut self, now: u64, account: AccountId) -> Vec<Notification> {
        let mut notes = Vec::new();
        let count = self.store.jobs_of(account).len();
        for index in 0..count {
            let Some(job) = self.store.jobs_of(account).get(index).copied() else {
                break;
            };
            self.refresh_job(now, job, &mut notes);
        }
        notes
    }

    pub(crate) fn notify(
        &self,
        notes: &mut Vec<Notification>,
        account: AccountId,
        kind: NotificationKind,
        job: Option<JobId>,
        device: Option<DeviceId>,
        cause: Option<FailureCause>,
    ) {
        let wanted = self
            .store
            .account(account)
            .is_some_and(|account| account.settings.notifications.wants(kind));
        notes.push(Notification {
            account,
            kind,
            job,
            device,
            cause,
            wanted,
        });
    }

    /// Returns `true` if the job has a transition due at `now`.
    pub(crate) fn job_needs_refresh(job: &Job, now: u64) -> bool {
        match job.status {
            JobStatus::Scheduled => now >= job.spec.start_at,
            JobStatus::Running => {
                let next = job
                    .phases
                    .iter()
                    .position(|phase| phase.opened_at.is_none());
                match next {
                    Some(next) => Self::phase_may_open(job, next, now),
                    None => Self::job_is_complete(job),
                }
            }
            _ => false,
        }
    }

    fn phase_may_open(job: &Job, next: usize, now: u64) -> bool {
        let previous = next
            .checked_sub(1)
            .and_then(|i| job.phases.get(i))
            .and_then(|phase| phase.opened_at);
        let (Some(previous), Some(spec)) = (previous, job.spec.phases.get(next)) else {
            return false;
        };
        if now < previous.saturating_add(spec.delay_s) {
            return false;
        }
        let counters = &job.counters;
        let admitted = u64::from(counters.admitted) + u64::from(counters.up_to_date);
        let succeeded = u64::from(counters.succeeded) + u64::from(counters.up_to_date);
        admitted == 0 || succeeded * 1000 >= u64::from(spec.success_permille) * admitted
    }

    fn job_is_complete(job: &Job) -> bool {
        let counters = &job.counters;
        let decided = u64::from(counters.succeeded)
            + u64::from(counters.up_to_date)
            + u64::from(counters.failed)
            + u64::from(counters.left);
        // A group or fleet job completes once every device counted so far has
        // an outcome; a device that joins its targets later reopens it (see
        // `consider_job`). An empty target set keeps the job running.
        counters.targets > 0 && decided >= u64::from(counters.targets)
    }

    /// Applies every transition due at `now` to one job.
    pub(crate) fn refresh_job(&mut self, now: u64, id: JobId, notes: &mut Vec<Notification>) {
        let Some(job) = self.store.job(id) else {
            return;
        };
        if !Self::job_needs_refresh(job, now) {
            return;
        }
        let account = job.account;
        let mut started = false;
        let mut completed = false;
        if let Some(job) = self.store.job_mut(id) {
            if job.status == JobStatus::Scheduled && now >= job.spec.start_at {
                job.status = JobStatus::Running;
                if let Some(first) = job.phases.first_mut() {
                    first.opened_at = Some(job.spec.start_at);
                }
                started = true;
            }
            while job.status == JobStatus::Running {
                match job
                    .phases
                    .iter()
                    .position(|phase| phase.opened_at.is_none())
                {
                    Some(next) if Self::phase_may_open(job, next, now) => {
                        if let Some(phase) = job.phases.get_mut(next) {
                            phase.opened_at = Some(now);
                        }
                    }
                    Some(_) => break,
                    None => {
                        if Self::job_is_complete(job) {
                            job.status = JobStatus::Completed;
                            completed = true;
                        }
                        break;
                    }
                }
            }
        }
        if started {
            self.notify(
                notes,
                account,
                NotificationKind::JobStarted,
                Some(id),
                None,
                None,
            );
        }
        if completed {
            self.notify(
                notes,
                account,
                NotificationKind::RolloutCompleted,
                Some(id),
                None,
                None,
            );
        }
    }

    /// Returns `true` if the job is for this device (account, target type and membership).
    pub(crate) fn job_targets_device(&self, job: &Job, device: &DeviceRecord) -> bool {
        if job.account != device.account || job.target_type != device.target {
            return false;
        }
        match job.spec.target {
            crate::model::JobTarget::Device(id) => id == device.id,
            crate::model::JobTarget::Fleet => true,
            crate::model::JobTarget::Group(group) => self
                .store
                .group(group)
                .is_some_and(|group| self.group_contains(group, device)),
        }
    }

    pub(crate) fn group_contains(&self, group: &Group, device: &DeviceRecord) -> bool {
        if group.account != device.account {
            return false;
        }
        match &group.kind {
            GroupKind::Static(members) => members.contains(&device.id),
            GroupKind::Filter(filter) => {
                let target_ok =
                    filter.target.is_none() || group.filter_target == Some(device.target);
                let version_ok = filter
                    .version
                    .is_none_or(|constraint| constraint.matches(device.version));
                let tag_ok = filter
                    .tag
                    .as_ref()
                    .is_none_or(|tag| self.store.tags(device.tags).contains(tag));
                target_ok && version_ok && tag_ok
            }
        }
    }

    /// Returns the inventory a device with inventory `base` has after a correct
    /// install of the job's release, interning it and caching it in the job.
    /// `None` if the result would break the protocol's inventory limits.
    pub(crate) fn expected_inventory(
        &mut self,
        id: JobId,
        base: InventoryRef,
    ) -> Option<InventoryRef> {
        let job = self.store.job(id)?;
        if let Some(expected) = job.expected.get(&base) {
            return Some(*expected);
        }
        let release = self.store.release(job.spec.release)?;
        let mut inventory = self.store.inventory(base)?.inventory.clone();
        let manifest = &release.manifest;
        inventory
            .files
            .retain(|file| !manifest.remove.contains(&file.name));
        for file in &manifest.files {
            match file.kind {
                FileKind::Application => {
                    inventory.application = InstalledApplication {
                        version: manifest.version,
                        size: file.size,
                        sha256: file.sha256,
                    };
                }
                FileKind::Plain => {
                    let installed = InstalledFile {
                        name: file.name.clone(),
                        size: file.size,
                        sha256: file.sha256,
                    };
                    match inventory.files.iter_mut().find(|f| f.name == file.name) {
                        Some(existing) => *existing = installed,
                        None => inventory.files.push(installed).ok()?,
                    }
                }
            }
        }
        inventory.normalize();
        let digest = inventory.digest(&self.crypto);
        let expected = self.store.intern_inventory(&inventory, digest);
        if let Some(job) = self.store.job_mut(id) {
            job.expected.insert(base, expected);
        }
        Some(expected)
    }

    /// Compares an installed inventory with the expected one: target type,
    /// application (version, size, SHA-256) and files must be equal. The
    /// security counter is left out because a device commits the new counter
    /// only after the confirm.
    pub(crate) fn inventory_matches(&self, reported: InventoryRef, expected: InventoryRef) -> bool {
        if reported == expected {
            return true;
        }
        match (
            self.store.inventory(reported),
            self.store.inventory(expected),
        ) {
            (Some(reported), Some(expected)) => {
                same_install(&reported.inventory, &expected.inventory)
            }
            _ => false,
        }
    }

    /// Counts a failed attempt of `device` in `job`. The device fails for the
    /// job when its attempts are used up, and the job pauses when its failure
    /// threshold is exceeded.
    pub(crate) fn fail_attempt(
        &mut self,
        now: u64,
        job_id: JobId,
        device: DeviceId,
        cause: FailureCause,
        notes: &mut Vec<Notification>,
    ) {
        let mut member = self.store.member(job_id, device);
        if member.is_done() {
            return;
        }
        let Some(job) = self.store.job_mut(job_id) else {
            return;
        };
        let account = job.account;
        job.counters.failed_attempts += 1;
        job.failures.push(FailureRecord {
            device,
            at: now,
            attempt: member.attempts,
            cause,
        });
        if !member.has(MemberState::HAD_FAILURE) {
            member.flags |= MemberState::HAD_FAILURE;
            job.counters.failing += 1;
        }
        let final_failure = member.attempts >= job.spec.max_attempts;
        if final_failure {
            member.flags |= MemberState::FAILED;
            job.counters.failed += 1;
            if let Some(phase) = job.phases.get_mut(usize::from(member.phase)) {
                phase.failed += 1;
            }
        }
        let mut paused = false;
        if let (JobStatus::Running, Some(threshold)) = (job.status, job.spec.failure_threshold) {
            let admitted = u64::from(job.counters.admitted);
            let failing = u64::from(job.counters.failing);
            if admitted >= u64::from(threshold.min_sample)
                && failing * 1000 > u64::from(threshold.max_failed_permille) * admitted
            {
                job.status = JobStatus::Paused;
                paused = true;
            }
        }
        self.store.put_member(job_id, device, member);
        let job = Some(job_id);
        self.notify(
            notes,
            account,
            NotificationKind::DeviceFailed,
            job,
            Some(device),
            Some(cause),
        );
        if final_failure {
            self.notify(
                notes,
                account,
                NotificationKind::RetryLimitReached,
                job,
                Some(device),
                Some(cause),
            );
        }
        if paused {
            self.notify(
                notes,
                account,
                NotificationKind::RolloutPaused,
                job,
                None,
                None,
            );
        }
        self.refresh_job(now, job_id, notes);
    }

    /// Counts a confirmed install.
    pub(crate) fn record_success(
        &mut self,
        now: u64,
        job_id: JobId,
        device: DeviceId,
        notes: &mut Vec<Notification>,
    ) {
        let mut member = self.store.member(job_id, device);
        if member.is_done() {
            return;
        }
        member.flags |= MemberState::SUCCEEDED;
        let Some(job) = self.store.job_mut(job_id) else {
            return;
        };
        let account = job.account;
        job.counters.succeeded += 1;
        if let Some(phase) = job.phases.get_mut(usize::from(member.phase)) {
            phase.succeeded += 1;
        }
        self.store.put_member(job_id, device, member);
        self.notify(
            notes,
            account,
            NotificationKind::DeviceUpdated,
            Some(job_id),
            Some(device),
            None,
        );
        self.refresh_job(now, job_id, notes);
    }
}

/// Compares the installed files of two inventories, leaving out the security counter.
pub(crate) fn same_install(a: &Inventory, b: &Inventory) -> bool {
    a.target == b.target && a.application == b.application && a.files == b.files
}

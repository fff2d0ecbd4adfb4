//! Queries a dashboard needs, each scoped to one account.

use syssync_proto::{AccountId, Crypto, DeviceId, InventoryDigest, JobId, Location, Version};

use crate::error::ManagementError;
use crate::model::{
    DeviceJob, FailureRecord, JobCounters, JobStatus, JobTarget, ReleaseId, Transfer,
};
use crate::server::Server;
use crate::storage::Storage;

/// A device as a dashboard lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Identifier.
    pub id: DeviceId,
    /// Hardware type.
    pub target: String,
    /// Version of the running application, as last reported.
    pub version: Version,
    /// Unix time of the last accepted message; `None` if the device never sent one.
    pub last_seen: Option<u64>,
    /// `true` if the device was seen but not within the account's overdue time.
    pub overdue: bool,
    /// Digest of the inventory in the last check-in.
    pub inventory_digest: Option<InventoryDigest>,
    /// The current job and the device's progress in it.
    pub job: Option<DeviceJob>,
    /// The latest position the device sent.
    pub location: Option<Location>,
    /// Chunk bytes served to the device.
    pub bytes_served: u64,
    /// The account the device is offered to, if a handover is pending.
    pub offered_to: Option<AccountId>,
}

/// Progress of one phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseProgress {
    /// Cumulative share of the targets, in thousandths.
    pub share_permille: u16,
    /// Unix time at which the phase opened.
    pub opened_at: Option<u64>,
    /// Devices admitted while this phase was the highest open one.
    pub admitted: u32,
    /// Of those, devices that confirmed.
    pub succeeded: u32,
    /// Of those, devices that used up their attempts.
    pub failed: u32,
}

/// A job's progress by phase and outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobProgressReport {
    /// The job.
    pub job: JobId,
    /// Its release.
    pub release: ReleaseId,
    /// Its devices.
    pub target: JobTarget,
    /// Its status.
    pub status: JobStatus,
    /// Totals.
    pub counters: JobCounters,
    /// Admitted devices without an outcome yet.
    pub in_progress: u32,
    /// One entry per phase.
    pub phases: Vec<PhaseProgress>,
}

impl<S: Storage, C: Crypto> Server<S, C> {
    /// Lists the account's devices, ascending by id, with last seen and
    /// overdue status at Unix time `now`.
    pub fn devices(
        &self,
        now: u64,
        account: AccountId,
    ) -> Result<Vec<DeviceStatus>, ManagementError> {
        self.check_account(account)?;
        let mut statuses = Vec::new();
        for device in self.store.devices_of(account) {
            statuses.push(self.device_status(now, account, device)?);
        }
        Ok(statuses)
    }

    /// Returns one device of the account.
    pub fn device_status(
        &self,
        now: u64,
        account: AccountId,
        device: DeviceId,
    ) -> Result<DeviceStatus, ManagementError> {
        let settings = &self
            .store
            .account(account)
            .ok_or(ManagementError::UnknownAccount(account))?
            .settings;
        let record = self.owned_device(account, device)?;
        let last_seen =
            (record.last_seen != 0 || record.last_counter.is_some()).then_some(record.last_seen);
        let overdue = last_seen
            .is_some_and(|seen| now.saturating_sub(seen) > u64::from(settings.overdue_after_s));
        Ok(DeviceStatus {
            id: record.id,
            target: self
                .store
                .target(record.target)
                .map_or_else(String::new, |name| name.to_string()),
            version: record.version,
            last_seen,
            overdue,
            inventory_digest: record.reported_digest,
            job: record.job,
            location: record.location,
            bytes_served: record.bytes_served,
            offered_to: self
                .store
                .transfer(device)
                .filter(|transfer: &Transfer| transfer.from == account)
                .map(|transfer| transfer.to),
        })
    }

    /// Lists the account's jobs, ascending by id.
    pub fn jobs(&self, account: AccountId) -> Result<Vec<JobId>, ManagementError> {
        self.check_account(account)?;
        Ok(self.store.jobs_of(account).to_vec())
    }

    /// Lists the account's releases, ascending by id.
    pub fn releases(&self, account: AccountId) -> Result<Vec<ReleaseId>, ManagementError> {
        self.check_account(account)?;
        Ok(self.store.releases_of(account))
    }

    /// Returns a job's progress by phase and outcome.
    pub fn job_progress(
        &self,
        account: AccountId,
        job: JobId,
    ) -> Result<JobProgressReport, ManagementError> {
        self.check_account(account)?;
        let record = self.owned_job(account, job)?;
        let counters = record.counters;
        let phases = record
            .spec
            .phases
            .iter()
            .zip(&record.phases)
            .map(|(spec, counters)| PhaseProgress {
                share_permille: spec.share_permille,
                opened_at: counters.opened_at,
                admitted: counters.admitted,
                succeeded: counters.succeeded,
                failed: counters.failed,
            })
            .collect();
        Ok(JobProgressReport {
            job,
            release: record.spec.release,
            target: record.spec.target,
            status: record.status,
            counters,
            in_progress: counters
                .admitted
                .saturating_sub(counters.succeeded + counters.failed),
            phases,
        })
    }

    /// Returns a job's failed attempts with their causes, oldest first.
    pub fn job_failures(
        &self,
        account: AccountId,
        job: JobId,
    ) -> Result<Vec<FailureRecord>, ManagementError> {
        self.check_account(account)?;
        Ok(self.owned_job(account, job)?.failures.clone())
    }

    fn check_account(&self, account: AccountId) -> Result<(), ManagementError> {
        self.store
            .account(account)
            .map(|_| ())
            .ok_or(ManagementError::UnknownAccount(account))
    }
}

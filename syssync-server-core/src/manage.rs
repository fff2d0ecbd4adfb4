//! The management face: operator commands, each checked against the calling account.

use std::collections::{BTreeMap, BTreeSet};

use syssync_proto::manifest::{Manifest, SignedManifest};
use syssync_proto::message::Inventory;
use syssync_proto::{AccountId, Crypto, DeviceId, DeviceKey, JobId, Signature, TargetType};

use crate::error::ManagementError;
use crate::limits::{
    MAX_ARTIFACT_LEN, MAX_ATTEMPTS, MAX_GROUP_MEMBERS, MAX_PHASES, MAX_TAGS, MAX_TEXT_LEN,
};
use crate::model::{
    Account, AccountSettings, Artifact, DeviceJobState, DeviceRecord, Group, GroupId, GroupKind,
    Job, JobCounters, JobSpec, JobStatus, JobTarget, MemberState, Notification, NotificationPrefs,
    PhaseCounters, Release, ReleaseId, TagSetRef, Transfer,
};
use crate::server::Server;
use crate::storage::Storage;

/// An operator command, run for one account by [`Server::execute`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Registers a hardware type, so that devices and releases may name it.
    AddTargetType {
        /// The name, as devices and manifests spell it.
        name: String,
    },
    /// Registers a device with its key, as a commissioning tool does.
    RegisterDevice {
        /// The device id; it must be new to the server.
        device: DeviceId,
        /// The device's message-authentication key.
        key: DeviceKey,
        /// Its hardware type, registered for the account.
        target: String,
        /// Its tags, for group filters.
        tags: Vec<String>,
        /// The installed inventory, if the commissioning tool has it. Without
        /// it the server requests one from the device before its first offer.
        inventory: Option<Box<Inventory>>,
    },
    /// Replaces a device's tags.
    SetTags {
        /// The device.
        device: DeviceId,
        /// Its new tags.
        tags: Vec<String>,
    },
    /// Offers a device to another account; the owner keeps it until that account accepts.
    OfferTransfer {
        /// The device.
        device: DeviceId,
        /// The receiving account.
        to: AccountId,
    },
    /// Withdraws a pending handover.
    WithdrawTransfer {
        /// The device.
        device: DeviceId,
    },
    /// Accepts a device offered to the calling account: ownership moves in one step.
    AcceptTransfer {
        /// The device.
        device: DeviceId,
    },
    /// Uploads a release: the signed manifest and the bytes of each file it lists.
    UploadRelease {
        /// Id of the release key that signed the manifest.
        key_id: u8,
        /// The manifest body as signed.
        body: Vec<u8>,
        /// The signature.
        signature: Signature,
        /// One byte string per manifest file, in manifest order.
        artifacts: Vec<Vec<u8>>,
    },
    /// Approves a release for deployment; from then on it never changes.
    ApproveRelease {
        /// The release.
        release: ReleaseId,
    },
    /// Deletes a release no open job deploys, and every file nothing else references.
    DeleteRelease {
        /// The release.
        release: ReleaseId,
    },
    /// Creates a group.
    CreateGroup {
        /// Display name.
        name: String,
        /// Membership.
        kind: GroupKind,
    },
    /// Adds a device to a static group.
    AddToGroup {
        /// The group.
        group: GroupId,
        /// The device.
        device: DeviceId,
    },
    /// Removes a device from a static group.
    RemoveFromGroup {
        /// The group.
        group: GroupId,
        /// The device.
        device: DeviceId,
    },
    /// Creates a job.
    CreateJob(JobSpec),
    /// Stops offering and confirming until resumed.
    PauseJob {
        /// The job.
        job: JobId,
    },
    /// Resumes a paused job.
    ResumeJob {
        /// The job.
        job: JobId,
    },
    /// Cancels a job: devices on it get a cancel.
    CancelJob {
        /// The job.
        job: JobId,
    },
    /// Sets which notifications the account holder wants.
    SetNotifications(NotificationPrefs),
}

/// The record a command created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// Nothing new (the command changed existing records).
    Nothing,
    /// A release.
    Release(ReleaseId),
    /// A group.
    Group(GroupId),
    /// A job.
    Job(JobId),
}

/// The result of a successful command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The created record, if any.
    pub created: Created,
    /// Events for account holders.
    pub notifications: Vec<Notification>,
}

fn check_text(what: &'static str, text: &str) -> Result<(), ManagementError> {
    if text.is_empty() {
        return Err(ManagementError::Invalid {
            what,
            reason: "must not be empty",
        });
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(ManagementError::TooLarge {
            what,
            size: text.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

fn normalize_tags(tags: &[String]) -> Result<Vec<String>, ManagementError> {
    if tags.len() > MAX_TAGS {
        return Err(ManagementError::TooLarge {
            what: "tag list",
            size: tags.len(),
            max: MAX_TAGS,
        });
    }
    for tag in tags {
        check_text("tag", tag)?;
    }
    let set: BTreeSet<String> = tags.iter().cloned().collect();
    Ok(set.into_iter().collect())
}

fn check_settings(settings: &AccountSettings) -> Result<(), ManagementError> {
    check_text("account name", &settings.name)?;
    if settings.check_in_interval_s == 0 {
        return Err(ManagementError::Invalid {
            what: "check-in interval",
            reason: "must be at least one second",
        });
    }
    if settings.overdue_after_s < settings.check_in_interval_s {
        return Err(ManagementError::Invalid {
            what: "overdue time",
            reason: "must not be shorter than the check-in interval",
        });
    }
    Ok(())
}

fn check_job_spec(spec: &JobSpec) -> Result<(), ManagementError> {
    let invalid = |what, reason| Err(ManagementError::Invalid { what, reason });
    if spec.phases.is_empty() {
        return invalid("phases", "a job needs at least one phase");
    }
    if spec.phases.len() > MAX_PHASES {
        return Err(ManagementError::TooLarge {
            what: "phase list",
            size: spec.phases.len(),
            max: MAX_PHASES,
        });
    }
    let mut previous = 0;
    for phase in &spec.phases {
        if phase.share_permille <= previous || phase.share_permille > 1000 {
            return invalid(
                "phases",
                "cumulative shares must rise and stay within 1 to 1000",
            );
        }
        if phase.success_permille > 1000 {
            return invalid("phases", "success ratio must be within 0 to 1000");
        }
        previous = phase.share_permille;
    }
    if previous != 1000 {
        return invalid("phases", "the last phase must reach a share of 1000");
    }
    if spec.max_attempts == 0 || spec.max_attempts > MAX_ATTEMPTS {
        return invalid("attempt limit", "must be within 1 and 32");
    }
    if spec.in_progress_timeout_s == 0 {
        return invalid("in-progress timeout", "must be at least one second");
    }
    if let Some(threshold) = spec.failure_threshold {
        if threshold.max_failed_permille > 1000 {
            return invalid("failure threshold", "must be within 0 to 1000");
        }
    }
    if let Some(schedule) = &spec.schedule {
        schedule
            .validate()
            .map_err(|reason| ManagementError::Invalid {
                what: "maintenance schedule",
                reason,
            })?;
    }
    Ok(())
}

impl<S: Storage, C: Crypto> Server<S, C> {
    /// Creates an account. This is the server operator's command, not an
    /// account's: it is the only management call without a calling account.
    pub fn create_account(
        &mut self,
        settings: AccountSettings,
    ) -> Result<AccountId, ManagementError> {
        check_settings(&settings)?;
        let id = self.store.allocate_account_id();
        self.store.put_account(Account {
            id,
            settings,
            targets: BTreeSet::new(),
        });
        Ok(id)
    }

    /// Runs a command for `account` at Unix time `now`.
    ///
    /// Every record the command names must belong to `account`; one that
    /// belongs to another account is reported as not found. On error nothing
    /// changed.
    pub fn execute(
        &mut self,
        now: u64,
        account: AccountId,
        command: Command,
    ) -> Result<Executed, ManagementError> {
        if self.store.account(account).is_none() {
            return Err(ManagementError::UnknownAccount(account));
        }
        let mut notifications = Vec::new();
        let created = match command {
            Command::AddTargetType { name } => {
                let name = parse_target(&name)?;
                let target = self.store.intern_target(&name);
                if let Some(mut record) = self.store.account(account).cloned() {
                    record.targets.insert(target);
                    self.store.put_account(record);
                }
                Created::Nothing
            }
            Command::RegisterDevice {
                device,
                key,
                target,
                tags,
                inventory,
            } => {
                self.register_device(now, account, device, key, &target, &tags, inventory)?;
                Created::Nothing
            }
            Command::SetTags { device, tags } => {
                let mut record = self.owned_device(account, device)?;
                let tags = normalize_tags(&tags)?;
                record.tags = self.store.intern_tags(&tags);
                self.store.put_device(record);
                Created::Nothing
            }
            Command::OfferTransfer { device, to } => {
                self.owned_device(account, device)?;
                if to == account || self.store.account(to).is_none() {
                    return Err(ManagementError::UnknownAccount(to));
                }
                self.store.set_transfer(
                    device,
                    Some(Transfer {
                        device,
                        from: account,
                        to,
                    }),
                );
                Created::Nothing
            }
            Command::WithdrawTransfer { device } => {
                self.owned_device(account, device)?;
                if self.store.transfer(device).is_none() {
                    return Err(ManagementError::NoTransferOffer(device));
                }
                self.store.set_transfer(device, None);
                Created::Nothing
            }
            Command::AcceptTransfer { device } => {
                self.accept_transfer(now, account, device)?;
                Created::Nothing
            }
            Command::UploadRelease {
                key_id,
                body,
                signature,
                artifacts,
            } => {
                Created::Release(self.upload_release(account, key_id, body, signature, artifacts)?)
            }
            Command::ApproveRelease { release } => {
                let mut record = self.owned_release(account, release)?.clone();
                record.approved = true;
                self.store.put_release(record);
                Created::Nothing
            }
            Command::DeleteRelease { release } => {
                self.delete_release(account, release)?;
                Created::Nothing
            }
            Command::CreateGroup { name, kind } => {
                Created::Group(self.create_group(account, name, kind)?)
            }
            Command::AddToGroup { group, device } => {
                self.owned_device(account, device)?;
                self.change_static_group(account, group, |members| {
                    if members.len() >= MAX_GROUP_MEMBERS {
                        return Err(ManagementError::TooLarge {
                            what: "static group",
                            size: members.len() + 1,
                            max: MAX_GROUP_MEMBERS,
                        });
                    }
                    members.insert(device);
                    Ok(())
                })?;
                Created::Nothing
            }
            Command::RemoveFromGroup { group, device } => {
                self.owned_device(account, device)?;
                self.change_static_group(account, group, |members| {
                    members.remove(&device);
                    Ok(())
                })?;
                Created::Nothing
            }
            Command::CreateJob(spec) => {
                Created::Job(self.create_job(now, account, spec, &mut notifications)?)
            }
            Command::PauseJob { job } => {
                self.set_job_status(
                    account,
                    job,
                    &[JobStatus::Scheduled, JobStatus::Running],
                    JobStatus::Paused,
                )?;
                Created::Nothing
            }
            Command::ResumeJob { job } => {
                let started = self
                    .store
                    .job(job)
                    .and_then(|j| j.phases.first())
                    .is_some_and(|phase| phase.opened_at.is_some());
                let status = if started {
                    JobStatus::Running
                } else {
                    JobStatus::Scheduled
                };
                self.set_job_status(account, job, &[JobStatus::Paused], status)?;
                self.refresh_job(now, job, &mut notifications);
                Created::Nothing
            }
            Command::CancelJob { job } => {
                self.set_job_status(
                    account,
                    job,
                    &[JobStatus::Scheduled, JobStatus::Running, JobStatus::Paused],
                    JobStatus::Cancelled,
                )?;
                Created::Nothing
            }
            Command::SetNotifications(prefs) => {
                if let Some(mut record) = self.store.account(account).cloned() {
                    record.settings.notifications = prefs;
                    self.store.put_account(record);
                }
                Created::Nothing
            }
        };
        Ok(Executed {
            created,
            notifications,
        })
    }

    pub(crate) fn owned_device(
        &self,
        account: AccountId,
        device: DeviceId,
    ) -> Result<DeviceRecord, ManagementError> {
        self.store
            .device(device)
            .filter(|record| record.account == account)
            .ok_or(ManagementError::UnknownDevice(device))
    }

    pub(crate) fn owned_release(
        &self,
        account: AccountId,
        release: ReleaseId,
    ) -> Result<&Release, ManagementError> {
        self.store
            .release(release)
            .filter(|record| record.account == account)
            .ok_or(ManagementError::UnknownRelease(release))
    }

    pub(crate) fn owned_job(
        &self,
        account: AccountId,
        job: JobId,
    ) -> Result<&Job, ManagementError> {
        self.store
            .job(job)
            .filter(|record| record.account == account)
            .ok_or(ManagementError::UnknownJob(job))
    }

    fn account_target(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<crate::model::TargetRef, ManagementError> {
        let unknown = || ManagementError::UnknownTargetType(name.into());
        let target = self.store.find_target(name).ok_or_else(unknown)?;
        let registered = self
            .store
            .account(account)
            .is_some_and(|record| record.targets.contains(&target));
        if registered {
            Ok(target)
        } else {
            Err(unknown())
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn register_device(
        &mut self,
        now: u64,
        account: AccountId,
        device: DeviceId,
        key: DeviceKey,
        target: &str,
        tags: &[String],
        inventory: Option<Box<Inventory>>,
    ) -> Result<(), ManagementError> {
        if self.store.device(device).is_some() {
            return Err(ManagementError::DeviceExists(device));
        }
        let target = self.account_target(account, target)?;
        let tags = normalize_tags(tags)?;
        if let Some(inventory) = &inventory {
            if !inventory.is_normalized() {
                return Err(ManagementError::Invalid {
                    what: "inventory",
                    reason: "files must be sorted by name and unique",
                });
            }
            if self.store.find_target(&inventory.target) != Some(target) {
                return Err(ManagementError::Invalid {
                    what: "inventory",
                    reason: "target type differs from the device's",
                });
            }
        }
        let tags = self.store.intern_tags(&tags);
        let (version, inventory_ref, digest) = match inventory {
            Some(inventory) => {
                let digest = inventory.digest(&self.crypto);
                let reference = self.store.intern_inventory(&inventory, digest);
                (inventory.application.version, Some(reference), Some(digest))
            }
            None => (Default::default(), None, None),
        };
        let _ = now;
        self.store.put_device(DeviceRecord {
            id: device,
            account,
            key: key.0,
            last_counter: None,
            last_seen: 0,
            target,
            tags,
            version,
            inventory: inventory_ref,
            reported_digest: digest,
            location: None,
            job: None,
            bytes_served: 0,
        });
        Ok(())
    }

    /// Moves the device to the calling account in one write of its record, so
    /// that the old owner's access ends exactly when the new owner's begins.
    fn accept_transfer(
        &mut self,
        now: u64,
        account: AccountId,
        device: DeviceId,
    ) -> Result<(), ManagementError> {
        let transfer = self
            .store
            .transfer(device)
            .filter(|transfer| transfer.to == account)
            .ok_or(ManagementError::NoTransferOffer(device))?;
        let mut record = self
            .store
            .device(device)
            .filter(|record| record.account == transfer.from)
            .ok_or(ManagementError::NoTransferOffer(device))?;
        let registered = self
            .store
            .account(account)
            .is_some_and(|target| target.targets.contains(&record.target));
        if !registered {
            let name = self
                .store
                .target(record.target)
                .map_or_else(String::new, |t| t.to_string());
            return Err(ManagementError::UnknownTargetType(name));
        }
        // The old owner's jobs end for this device without an outcome.
        let jobs = self.store.jobs_of(transfer.from).to_vec();
        for job in jobs {
            let mut member = self.store.member(job, device);
            let open = self.store.job(job).is_some_and(|j| j.status.is_open());
            if open && member.has(MemberState::COUNTED) && !member.is_done() {
                member.flags |= MemberState::LEFT;
                self.store.put_member(job, device, member);
                if let Some(job) = self.store.job_mut(job) {
                    job.counters.left += 1;
                }
            }
        }
        if let Some(slot) = record.job.as_mut() {
            if slot.state != DeviceJobState::Confirmed {
                slot.state = DeviceJobState::Abandoned;
            }
        }
        record.account = account;
        record.tags = TagSetRef(0);
        record.location = None;
        self.store.put_device(record);
        self.store.set_transfer(device, None);
        let mut notes = Vec::new();
        for job in self.store.jobs_of(transfer.from).to_vec() {
            self.refresh_job(now, job, &mut notes);
        }
        Ok(())
    }

    fn upload_release(
        &mut self,
        account: AccountId,
        key_id: u8,
        body: Vec<u8>,
        signature: Signature,
        artifacts: Vec<Vec<u8>>,
    ) -> Result<ReleaseId, ManagementError> {
        if body.len() > syssync_proto::MAX_MANIFEST_LEN {
            return Err(ManagementError::TooLarge {
                what: "manifest",
                size: body.len(),
                max: syssync_proto::MAX_MANIFEST_LEN,
            });
        }
        let keys = self
            .store
            .account(account)
            .map(|record| record.settings.release_keys.clone())
            .unwrap_or_default();
        let manifest = if keys.is_empty() {
            Manifest::decode(&body)
        } else {
            SignedManifest {
                key_id,
                body: &body,
                signature,
            }
            .verify(&self.crypto, &keys)
        }
        .map_err(ManagementError::Manifest)?;
        let target = self.account_target(account, &manifest.target)?;
        if artifacts.len() != manifest.files.len() {
            return Err(ManagementError::ArtifactCount {
                expected: manifest.files.len(),
                received: artifacts.len(),
            });
        }
        for (index, (file, data)) in manifest.files.iter().zip(&artifacts).enumerate() {
            if data.len() > MAX_ARTIFACT_LEN {
                return Err(ManagementError::TooLarge {
                    what: "file",
                    size: data.len(),
                    max: MAX_ARTIFACT_LEN,
                });
            }
            if data.len() != file.size as usize || self.crypto.sha256(&[data]) != file.sha256 {
                return Err(ManagementError::ArtifactMismatch { index });
            }
        }
        for id in self.store.releases_of(account) {
            if let Some(existing) = self.store.release(id) {
                if existing.target == target && existing.manifest.version == manifest.version {
                    return Err(ManagementError::DuplicateRelease(id));
                }
            }
        }
        let mut digests = Vec::with_capacity(artifacts.len());
        for (file, data) in manifest.files.iter().zip(artifacts) {
            match self.store.artifact_mut(&file.sha256) {
                Some(artifact) => artifact.references += 1,
                None => self.store.put_artifact(
                    file.sha256,
                    Artifact {
                        data,
                        references: 1,
                    },
                ),
            }
            digests.push(file.sha256);
        }
        let id = self.store.allocate_release_id();
        self.store.put_release(Release {
            id,
            account,
            target,
            manifest,
            key_id,
            body,
            signature,
            artifacts: digests,
            approved: false,
        });
        Ok(id)
    }

    fn delete_release(
        &mut self,
        account: AccountId,
        release: ReleaseId,
    ) -> Result<(), ManagementError> {
        let record = self.owned_release(account, release)?.clone();
        let in_use = self.store.jobs_of(account).iter().any(|job| {
            self.store
                .job(*job)
                .is_some_and(|job| job.spec.release == release && job.status.is_open())
        });
        if in_use {
            return Err(ManagementError::ReleaseInUse(release));
        }
        for digest in &record.artifacts {
            let unreferenced = match self.store.artifact_mut(digest) {
                Some(artifact) => {
                    artifact.references = artifact.references.saturating_sub(1);
                    artifact.references == 0
                }
                None => false,
            };
            if unreferenced {
                self.store.remove_artifact(digest);
            }
        }
        self.store.remove_release(release);
        Ok(())
    }

    fn create_group(
        &mut self,
        account: AccountId,
        name: String,
        kind: GroupKind,
    ) -> Result<GroupId, ManagementError> {
        check_text("group name", &name)?;
        let mut filter_target = None;
        match &kind {
            GroupKind::Static(members) => {
                if members.len() > MAX_GROUP_MEMBERS {
                    return Err(ManagementError::TooLarge {
                        what: "static group",
                        size: members.len(),
                        max: MAX_GROUP_MEMBERS,
                    });
                }
                for device in members {
                    self.owned_device(account, *device)?;
                }
            }
            GroupKind::Filter(filter) => {
                if let Some(target) = &filter.target {
                    filter_target = Some(self.account_target(account, target)?);
                }
                if let Some(tag) = &filter.tag {
                    check_text("tag", tag)?;
                }
            }
        }
        let id = self.store.allocate_group_id();
        self.store.put_group(Group {
            id,
            account,
            name,
            kind,
            filter_target,
        });
        Ok(id)
    }

    fn change_static_group(
        &mut self,
        account: AccountId,
        group: GroupId,
        change: impl FnOnce(&mut BTreeSet<DeviceId>) -> Result<(), ManagementError>,
    ) -> Result<(), ManagementError> {
        let mut record = self
            .store
            .group(group)
            .filter(|record| record.account == account)
            .cloned()
            .ok_or(ManagementError::UnknownGroup(group))?;
        let GroupKind::Static(members) = &mut record.kind else {
            return Err(ManagementError::Invalid {
                what: "group",
                reason: "a filter group has no member list",
            });
        };
        change(members)?;
        self.store.put_group(record);
        Ok(())
    }

    fn create_job(
        &mut self,
        now: u64,
        account: AccountId,
        spec: JobSpec,
        notes: &mut Vec<Notification>,
    ) -> Result<JobId, ManagementError> {
        check_job_spec(&spec)?;
        let release = self.owned_release(account, spec.release)?;
        if !release.approved {
            return Err(ManagementError::ReleaseNotApproved(spec.release));
        }
        let target_type = release.target;
        match spec.target {
            JobTarget::Device(device) => {
                let record = self.owned_device(account, device)?;
                if record.target != target_type {
                    return Err(ManagementError::Invalid {
                        what: "job target",
                        reason: "the device's target type differs from the release's",
                    });
                }
            }
            JobTarget::Group(group) => {
                self.store
                    .group(group)
                    .filter(|record| record.account == account)
                    .ok_or(ManagementError::UnknownGroup(group))?;
            }
            JobTarget::Fleet => {}
        }
        let id = self.store.allocate_job_id();
        let phases = vec![PhaseCounters::default(); spec.phases.len()];
        let mut job = Job {
            id,
            account,
            spec,
            target_type,
            status: JobStatus::Scheduled,
            counters: JobCounters::default(),
            phases,
            expected: BTreeMap::new(),
            failures: Vec::new(),
        };
        let mut targets = Vec::new();
        for device in self.store.devices_of(account) {
            if let Some(record) = self.store.device(device) {
                if self.job_targets_device(&job, &record) {
                    targets.push(device);
                }
            }
        }
        job.counters.targets = targets.len() as u32;
        self.store.put_job(job);
        for device in targets {
            let member = MemberState {
                flags: MemberState::COUNTED,
                ..MemberState::default()
            };
            self.store.put_member(id, device, member);
        }
        self.refresh_job(now, id, notes);
        Ok(id)
    }

    fn set_job_status(
        &mut self,
        account: AccountId,
        job: JobId,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<(), ManagementError> {
        let status = self.owned_job(account, job)?.status;
        if !from.contains(&status) {
            return Err(ManagementError::JobStatus { job, status });
        }
        if let Some(record) = self.store.job_mut(job) {
            record.status = to;
        }
        Ok(())
    }
}

fn parse_target(name: &str) -> Result<TargetType, ManagementError> {
    check_text("target type", name)?;
    TargetType::try_from(name).map_err(|_| ManagementError::TooLarge {
        what: "target type",
        size: name.len(),
        max: syssync_proto::MAX_NAME_LEN,
    })
}

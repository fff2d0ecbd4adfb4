//! The device face: one device message in, one reply and the notifications out.

use syssync_proto::frame::{
    derive_device_key, encode_downlink, encode_unauthenticated_refusal, Binding, Frame,
};
use syssync_proto::message::{
    Cancel, CheckIn, Chunk, ChunkRequest, Confirm, DeviceMessage, Idle, Inventory, JobOffer,
    JobOutcome, JobReport, JobState, MessageType, Refusal, RegistrationRequest, RegistrationResult,
    ResetWindow, ServerMessage, UplinkHeader,
};
use syssync_proto::{
    AccountId, Crypto, DeviceId, DeviceKey, EncodeError, FrameError, JobId, RefusalCode,
    Sha256Digest,
};

use crate::model::{
    DeviceJob, DeviceJobState, DeviceRecord, FailureCause, Job, JobStatus, JobTarget, MemberState,
    Notification, ReleaseId, TagSetRef,
};
use crate::schedule::{rollout_rank, WindowState};
use crate::server::Server;
use crate::storage::Storage;

/// The reply to one device message and the notifications it caused.
#[derive(Debug)]
pub struct DeviceOutcome<'a> {
    /// The reply to send, bound to the request's counter when framed.
    pub reply: ServerMessage<'a>,
    /// Events for account holders.
    pub notifications: Vec<Notification>,
}

/// The handling of a frame by [`Server::handle_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// The request was authenticated; the reply in `out` is bound to its counter.
    Answered,
    /// The request could not be authenticated; `out` contains an unauthenticated
    /// refusal with this code, which a device treats as advice only.
    Unauthenticated(RefusalCode),
    /// The frame gets no reply because it is too short, fails its CRC or
    /// travels in the wrong direction. Nothing was written.
    Dropped(FrameError),
    /// The reply did not fit `out`. A buffer of
    /// [`MAX_FRAME_LEN`](syssync_proto::MAX_FRAME_LEN) bytes always fits.
    EncodeFailed(EncodeError),
}

/// The result of [`Server::handle_frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameOutcome {
    /// Bytes of the reply frame at the start of `out`; 0 if there is none.
    pub reply_len: usize,
    /// What happened.
    pub status: FrameStatus,
    /// Events for account holders.
    pub notifications: Vec<Notification>,
}

/// A decision before it borrows reply bytes from the store.
#[derive(Clone, Copy, Debug)]
enum Decision {
    Idle(u32),
    InventoryRequest,
    Offer {
        job: JobId,
        release: ReleaseId,
        reset_window: Option<ResetWindow>,
    },
    Chunk {
        digest: Sha256Digest,
        start: usize,
        end: usize,
    },
    Confirm(JobId),
    Cancel(JobId),
    Registered {
        account: AccountId,
        interval_s: u32,
    },
    Refuse {
        code: RefusalCode,
        retry_after_s: u32,
        detail: u32,
    },
}

impl Decision {
    fn refuse(code: RefusalCode) -> Self {
        Decision::Refuse {
            code,
            retry_after_s: 0,
            detail: 0,
        }
    }
}

/// Per-request context: the device's record being changed and the notifications.
struct Request {
    now: u64,
    device: DeviceRecord,
    interval_s: u32,
    notes: Vec<Notification>,
}

impl<S: Storage, C: Crypto> Server<S, C> {
    /// Handles one device message whose MAC the caller has verified under the
    /// device's key (or, for a [`RegistrationRequest`], under the key derived
    /// from the named account's claim token).
    ///
    /// Checks the replay counter (strictly above the last accepted one, else a
    /// [`RefusalCode::STALE_COUNTER`] refusal whose detail is the last accepted
    /// counter), decides, stores the device's record and returns the reply. A
    /// message from an unknown device, other than a registration, gets
    /// [`RefusalCode::UNKNOWN_DEVICE`] and changes nothing.
    pub fn handle_message(
        &mut self,
        now: u64,
        header: UplinkHeader,
        message: &DeviceMessage,
    ) -> DeviceOutcome<'_> {
        let record = self.store.device(header.device);
        let (decision, notifications) = self.decide(now, header, message, record);
        DeviceOutcome {
            reply: self.render(decision),
            notifications,
        }
    }

    /// Handles one raw frame from a device and writes the reply frame into `out`.
    ///
    /// Parses the frame, looks up the sender's key (or, for a registration of
    /// an unknown device, derives it from the named account's claim token),
    /// verifies the MAC, then runs [`Server::handle_message`] and encodes the
    /// reply bound to the request's counter. Requests that cannot be
    /// authenticated get an unauthenticated refusal and change nothing.
    pub fn handle_frame(&mut self, now: u64, bytes: &[u8], out: &mut [u8]) -> FrameOutcome {
        let frame = match Frame::parse(bytes) {
            Ok(frame) => frame,
            Err(FrameError::UnsupportedVersion(_)) => {
                return unauthenticated(RefusalCode::UNSUPPORTED_VERSION, out)
            }
            Err(error) => return dropped(error),
        };
        let header = match frame.uplink_header() {
            Ok(header) => header,
            Err(error) => return dropped(error),
        };
        let record = self.store.device(header.device);
        let key = match record {
            Some(record) => DeviceKey(record.key),
            None if frame.message_type() == MessageType::RegistrationRequest => {
                match self.registration_key(&frame, header.device) {
                    Some(key) => key,
                    None => return unauthenticated(RefusalCode::REGISTRATION_REJECTED, out),
                }
            }
            None => return unauthenticated(RefusalCode::UNKNOWN_DEVICE, out),
        };
        let (decision, notifications) = match frame.open_uplink(&self.crypto, &key) {
            Ok((header, message)) => self.decide(now, header, &message, record),
            Err(FrameError::BadMac) => return unauthenticated(RefusalCode::BAD_MAC, out),
            // The MAC verified but the body is malformed, so the reply is a refusal bound to the request.
            Err(FrameError::Body(_)) => {
                (Decision::refuse(RefusalCode::INVALID_REQUEST), Vec::new())
            }
            Err(error) => return dropped(error),
        };
        let reply = self.render(decision);
        let status = match encode_downlink(&self.crypto, &key, Binding::from(header), &reply, out) {
            Ok(len) => {
                return FrameOutcome {
                    reply_len: len,
                    status: FrameStatus::Answered,
                    notifications,
                }
            }
            Err(error) => FrameStatus::EncodeFailed(error),
        };
        FrameOutcome {
            reply_len: 0,
            status,
            notifications,
        }
    }

    /// Derives the key of a device that registers itself, from the claim token
    /// of the account its request names. `None` if the account does not exist
    /// or does not accept automatic registration.
    fn registration_key(&self, frame: &Frame<'_>, device: DeviceId) -> Option<DeviceKey> {
        let account = self.store.account(frame.registration_account()?)?;
        let token = account.settings.claim_token?;
        Some(derive_device_key(&self.crypto, &token, device))
    }

    fn render(&self, decision: Decision) -> ServerMessage<'_> {
        match decision {
            Decision::Idle(interval_s) => ServerMessage::Idle(Idle { interval_s }),
            Decision::InventoryRequest => ServerMessage::InventoryRequest,
            Decision::Offer {
                job,
                release,
                reset_window,
            } => match self.store.release(release) {
                Some(release) => ServerMessage::JobOffer(JobOffer {
                    job,
                    reset_window,
                    manifest: syssync_proto::SignedManifest {
                        key_id: release.key_id,
                        body: &release.body,
                        signature: release.signature,
                    },
                }),
                None => refusal(RefusalCode::UNKNOWN_JOB, 0, 0),
            },
            Decision::Chunk { digest, start, end } => {
                match self
                    .store
                    .artifact(&digest)
                    .and_then(|a| a.data.get(start..end))
                {
                    Some(data) => ServerMessage::Chunk(Chunk { data }),
                    None => refusal(RefusalCode::OUT_OF_RANGE, 0, 0),
                }
            }
            Decision::Confirm(job) => ServerMessage::Confirm(Confirm { job }),
            Decision::Cancel(job) => ServerMessage::Cancel(Cancel { job }),
            Decision::Registered {
                account,
                interval_s,
            } => ServerMessage::RegistrationResult(RegistrationResult {
                account,
                interval_s,
            }),
            Decision::Refuse {
                code,
                retry_after_s,
                detail,
            } => refusal(code, retry_after_s, detail),
        }
    }

    fn decide(
        &mut self,
        now: u64,
        header: UplinkHeader,
        message: &DeviceMessage,
        record: Option<DeviceRecord>,
    ) -> (Decision, Vec<Notification>) {
        let Some(device) = record else {
            if let DeviceMessage::RegistrationRequest(request) = message {
                return (self.register_new(now, header, request), Vec::new());
            }
            return (Decision::refuse(RefusalCode::UNKNOWN_DEVICE), Vec::new());
        };
        if device
            .last_counter
            .is_some_and(|last| header.counter <= last)
        {
            let refusal = Decision::Refuse {
                code: RefusalCode::STALE_COUNTER,
                retry_after_s: 0,
                detail: device.last_counter.unwrap_or(0),
            };
            return (refusal, Vec::new());
        }
        let interval_s = self
            .store
            .account(device.account)
            .map_or(900, |account| account.settings.check_in_interval_s);
        let mut request = Request {
            now,
            device,
            interval_s,
            notes: Vec::new(),
        };
        request.device.last_counter = Some(header.counter);
        request.device.last_seen = now;
        self.expire_attempt(&mut request);
        let decision = match message {
            DeviceMessage::CheckIn(check_in) => self.on_check_in(&mut request, check_in),
            DeviceMessage::InventoryReport(inventory) => self.on_inventory(&mut request, inventory),
            DeviceMessage::ChunkRequest(chunk) => self.on_chunk_request(&mut request, chunk),
            DeviceMessage::JobReport(report) => self.on_job_report(&mut request, report),
            DeviceMessage::RegistrationRequest(registration) => {
                if registration.account == request.device.account {
                    Decision::Registered {
                        account: request.device.account,
                        interval_s,
                    }
                } else {
                    Decision::refuse(RefusalCode::REGISTRATION_REJECTED)
                }
            }
        };
        self.store.put_device(request.device);
        (decision, request.notes)
    }

    fn register_new(
        &mut self,
        now: u64,
        header: UplinkHeader,
        request: &RegistrationRequest,
    ) -> Decision {
        let Some(account) = self.store.account(request.account) else {
            return Decision::refuse(RefusalCode::REGISTRATION_REJECTED);
        };
        let Some(token) = account.settings.claim_token else {
            return Decision::refuse(RefusalCode::REGISTRATION_REJECTED);
        };
        let Some(target) = self.store.find_target(&request.target) else {
            return Decision::refuse(RefusalCode::REGISTRATION_REJECTED);
        };
        if !account.targets.contains(&target) {
            return Decision::refuse(RefusalCode::REGISTRATION_REJECTED);
        }
        let interval_s = account.settings.check_in_interval_s;
        let key = derive_device_key(&self.crypto, &token, header.device);
        self.store.put_device(DeviceRecord {
            id: header.device,
            account: request.account,
            key: key.0,
            last_counter: Some(header.counter),
            last_seen: now,
            target,
            tags: TagSetRef(0),
            version: request.version,
            inventory: None,
            reported_digest: None,
            location: None,
            job: None,
            bytes_served: 0,
        });
        Decision::Registered {
            account: request.account,
            interval_s,
        }
    }

    /// Counts the timed-out attempts of an account's devices that took an
    /// offer but reported no install within the job's in-progress timeout and
    /// sent nothing since. Each device's next message notices its own timeout
    /// anyway; this sweep is for devices that went silent, so that their
    /// failures count and their jobs can complete. It reads every device of
    /// the account, so a front end runs it now and then, not per request.
    pub fn expire_attempts(&mut self, now: u64, account: AccountId) -> Vec<Notification> {
        let mut notes = Vec::new();
        for id in self.store.devices_of(account) {
            let Some(device) = self.store.device(id) else {
                continue;
            };
            if device.job.is_none() {
                continue;
            }
            let mut request = Request {
                now,
                device,
                interval_s: 0,
                notes: Vec::new(),
            };
            self.expire_attempt(&mut request);
            if request.device != device {
                self.store.put_device(request.device);
            }
            notes.append(&mut request.notes);
        }
        notes
    }

    /// Counts a timed-out attempt: the device took the offer but did not
    /// report an install within the job's in-progress timeout.
    fn expire_attempt(&mut self, request: &mut Request) {
        let Some(slot) = request.device.job else {
            return;
        };
        let in_progress = matches!(
            slot.state,
            DeviceJobState::Offered | DeviceJobState::Downloading | DeviceJobState::Staged
        );
        let Some(job) = self.store.job(slot.job) else {
            return;
        };
        let deadline = slot
            .offered_at
            .saturating_add(job.spec.in_progress_timeout_s);
        if in_progress && job.status.is_open() && request.now > deadline {
            self.fail_attempt(
                request.now,
                slot.job,
                request.device.id,
                FailureCause::TimedOut,
                &mut request.notes,
            );
            set_state(request, DeviceJobState::Abandoned);
        }
    }

    fn on_check_in(&mut self, request: &mut Request, check_in: &CheckIn) -> Decision {
        request.device.reported_digest = Some(check_in.inventory);
        if let Some(location) = check_in.location {
            request.device.location = Some(location);
        }
        let Some(slot) = request.device.job else {
            return match check_in.job {
                // The device works on a job the server does not assign to it.
                Some(progress) => Decision::Cancel(progress.job),
                None => self.select_job(request),
            };
        };
        if let Some(progress) = check_in.job {
            if progress.job != slot.job {
                return Decision::Cancel(progress.job);
            }
        }
        let status = self.store.job(slot.job).map(|job| job.status);
        if slot.state == DeviceJobState::Confirmed {
            if check_in.job.is_none() {
                request.device.job = None;
                return self.select_job(request);
            }
            return Decision::Confirm(slot.job);
        }
        if slot.state == DeviceJobState::Abandoned
            || status.is_none_or(|s| s == JobStatus::Cancelled)
        {
            if check_in.job.is_none() {
                request.device.job = None;
                return self.select_job(request);
            }
            return Decision::Cancel(slot.job);
        }
        let Some(progress) = check_in.job else {
            return self.on_job_dropped(request, slot);
        };
        if let Some(job) = request.device.job.as_mut() {
            job.bytes_done = progress.bytes_done;
        }
        match progress.state {
            JobState::Downloading | JobState::Staged => {
                set_state(request, progress.state.into());
                Decision::Idle(request.interval_s)
            }
            JobState::Trial => {
                if slot.state != DeviceJobState::Installed {
                    set_state(request, DeviceJobState::Trial);
                }
                if status != Some(JobStatus::Running) {
                    return Decision::Idle(request.interval_s);
                }
                let expected_digest = self.store.inventory(slot.expected).map(|i| i.digest);
                if expected_digest == Some(check_in.inventory) {
                    request.device.inventory = Some(slot.expected);
                    self.confirm(request, slot.job)
                } else {
                    Decision::InventoryRequest
                }
            }
        }
    }

    /// Handles a check-in without a job from a device that the server has on a job.
    fn on_job_dropped(&mut self, request: &mut Request, slot: DeviceJob) -> Decision {
        let status = self.store.job(slot.job).map(|job| job.status);
        match slot.state {
            // The offer was lost on the way: offer again, within the same attempt.
            DeviceJobState::Offered if status == Some(JobStatus::Running) => {
                match self.offer_window(slot.job, request.now) {
                    Ok(reset_window) => match self.store.job(slot.job) {
                        Some(job) => Decision::Offer {
                            job: slot.job,
                            release: job.spec.release,
                            reset_window,
                        },
                        None => Decision::Idle(request.interval_s),
                    },
                    Err(opens_in) => Decision::Idle(request.interval_s.min(opens_in)),
                }
            }
            DeviceJobState::Offered => Decision::Idle(request.interval_s),
            _ => {
                self.fail_attempt(
                    request.now,
                    slot.job,
                    request.device.id,
                    FailureCause::Dropped,
                    &mut request.notes,
                );
                request.device.job = None;
                Decision::Idle(request.interval_s)
            }
        }
    }

    fn on_inventory(&mut self, request: &mut Request, inventory: &Inventory) -> Decision {
        let mut inventory = inventory.clone();
        inventory.normalize();
        let digest = inventory.digest(&self.crypto);
        let reference = self.store.intern_inventory(&inventory, digest);
        request.device.inventory = Some(reference);
        request.device.reported_digest = Some(digest);
        request.device.version = inventory.application.version;
        let Some(slot) = request.device.job else {
            return self.select_job(request);
        };
        let status = self.store.job(slot.job).map(|job| job.status);
        match slot.state {
            DeviceJobState::Confirmed => Decision::Confirm(slot.job),
            DeviceJobState::Abandoned => Decision::Cancel(slot.job),
            _ if status.is_none_or(|s| s == JobStatus::Cancelled) => Decision::Cancel(slot.job),
            DeviceJobState::Trial | DeviceJobState::Installed => {
                if status == Some(JobStatus::Running)
                    && self.inventory_matches(reference, slot.expected)
                {
                    self.confirm(request, slot.job)
                } else {
                    // NOTE: a mismatch is not counted here; the device's trial
                    // runs out and its revert report counts the failed attempt.
                    Decision::Idle(request.interval_s)
                }
            }
            _ => Decision::Idle(request.interval_s),
        }
    }

    fn confirm(&mut self, request: &mut Request, job: JobId) -> Decision {
        set_state(request, DeviceJobState::Confirmed);
        self.record_success(request.now, job, request.device.id, &mut request.notes);
        Decision::Confirm(job)
    }

    fn on_chunk_request(&mut self, request: &mut Request, chunk: &ChunkRequest) -> Decision {
        let Some(slot) = request.device.job.filter(|slot| slot.job == chunk.job) else {
            return Decision::refuse(RefusalCode::UNKNOWN_JOB);
        };
        let Some(job) = self.store.job(slot.job) else {
            return Decision::refuse(RefusalCode::UNKNOWN_JOB);
        };
        let active = job.status == JobStatus::Running
            && matches!(
                slot.state,
                DeviceJobState::Offered | DeviceJobState::Downloading
            );
        if !active {
            return Decision::Refuse {
                code: RefusalCode::JOB_NOT_ACTIVE,
                retry_after_s: request.interval_s,
                detail: 0,
            };
        }
        let Some(release) = self.store.release(job.spec.release) else {
            return Decision::refuse(RefusalCode::UNKNOWN_JOB);
        };
        let index = usize::from(chunk.file);
        let (Some(file), Some(digest)) = (
            release.manifest.files.get(index),
            release.artifacts.get(index),
        ) else {
            return Decision::refuse(RefusalCode::OUT_OF_RANGE);
        };
        let size = u64::from(file.size);
        let start = u64::from(chunk.offset);
        if start >= size {
            return Decision::refuse(RefusalCode::OUT_OF_RANGE);
        }
        let end = size.min(start + u64::from(chunk.length));
        let digest = *digest;
        request.device.bytes_served += end - start;
        set_state(request, DeviceJobState::Downloading);
        Decision::Chunk {
            digest,
            start: start as usize,
            end: end as usize,
        }
    }

    fn on_job_report(&mut self, request: &mut Request, report: &JobReport) -> Decision {
        let Some(slot) = request.device.job.filter(|slot| slot.job == report.job) else {
            // A report on a job the device is not on (a repeat, or after a handover).
            return Decision::Idle(request.interval_s);
        };
        let status = self.store.job(slot.job).map(|job| job.status);
        let cancelled = slot.state == DeviceJobState::Abandoned
            || status.is_none_or(|s| s == JobStatus::Cancelled);
        // A paused job refuses chunk requests, so a device that gives up its
        // download then is not a failed attempt: it is offered the job again
        // when the job resumes.
        let paused = status == Some(JobStatus::Paused);
        let cause = match report.outcome {
            JobOutcome::Installed => {
                return if slot.state == DeviceJobState::Confirmed {
                    Decision::Confirm(slot.job)
                } else if cancelled {
                    Decision::Cancel(slot.job)
                } else {
                    set_state(request, DeviceJobState::Installed);
                    Decision::InventoryRequest
                };
            }
            JobOutcome::Failed(code) => FailureCause::Failed(code),
            JobOutcome::Reverted(reason) => FailureCause::Reverted(reason),
            JobOutcome::Rejected(reason) => FailureCause::Rejected(reason),
            JobOutcome::Cancelled if cancelled || paused => {
                request.device.job = None;
                return Decision::Idle(request.interval_s);
            }
            JobOutcome::Cancelled => FailureCause::Dropped,
        };
        if slot.state == DeviceJobState::Confirmed {
            return Decision::Idle(request.interval_s);
        }
        if !cancelled {
            self.fail_attempt(
                request.now,
                slot.job,
                request.device.id,
                cause,
                &mut request.notes,
            );
        }
        request.device.job = None;
        Decision::Idle(request.interval_s)
    }

    /// Returns the reset window for an offer made now, or the seconds until
    /// the job's next maintenance window if none is open.
    fn offer_window(&self, job: JobId, now: u64) -> Result<Option<ResetWindow>, u32> {
        let Some(schedule) = self
            .store
            .job(job)
            .and_then(|job| job.spec.schedule.as_ref())
        else {
            return Ok(None);
        };
        match schedule.state_at(now) {
            WindowState::Open { closes_in_s } => Ok(Some(ResetWindow {
                opens_in_s: 0,
                closes_in_s: u32::try_from(closes_in_s).unwrap_or(u32::MAX),
            })),
            WindowState::Closed { opens_in_s } => {
                Err(u32::try_from(opens_in_s).unwrap_or(u32::MAX))
            }
        }
    }

    /// Finds the first job (by id) that may be offered to the device now, and
    /// offers it. Otherwise the reply is idle, with an interval that ends at
    /// the next maintenance window of a job waiting for one.
    fn select_job(&mut self, request: &mut Request) -> Decision {
        let account = request.device.account;
        let mut interval_s = request.interval_s;
        let count = self.store.jobs_of(account).len();
        for index in 0..count {
            let Some(job_id) = self.store.jobs_of(account).get(index).copied() else {
                break;
            };
            match self.consider_job(request, job_id) {
                Consider::Skip => {}
                Consider::WindowClosed(opens_in) => interval_s = interval_s.min(opens_in),
                Consider::Decide(decision) => return decision,
            }
        }
        Decision::Idle(interval_s)
    }

    /// Decides whether one job can be offered to the device now: the job runs
    /// and targets the device, the device has attempts left and room in an
    /// open phase, a window is open, and its inventory is known.
    fn consider_job(&mut self, request: &mut Request, job_id: JobId) -> Consider {
        let now = request.now;
        let Some(job) = self.store.job(job_id) else {
            return Consider::Skip;
        };
        // A completed group or fleet job still reaches devices that join its
        // targets later, and admitting one reopens the job until it has an
        // outcome. A completed job's release may be deleted, and then the job
        // reaches no one.
        let reopenable = job.status == JobStatus::Completed
            && !matches!(job.spec.target, JobTarget::Device(_))
            && self.store.release(job.spec.release).is_some();
        if !job.status.is_open() && !reopenable {
            return Consider::Skip;
        }
        if Self::job_needs_refresh(job, now) {
            self.refresh_job(now, job_id, &mut request.notes);
        }
        let Some(job) = self.store.job(job_id) else {
            return Consider::Skip;
        };
        let offering = job.status == JobStatus::Running || reopenable;
        if !offering || !self.job_targets_device(job, &request.device) {
            return Consider::Skip;
        }

        let device = request.device.id;
        let mut member = self.store.member(job_id, device);
        if member.is_done() || member.attempts >= job.spec.max_attempts {
            return Consider::Skip;
        }
        if !member.has(MemberState::COUNTED) {
            // The device joined the job's targets after the job was created.
            member.flags |= MemberState::COUNTED;
            self.store.put_member(job_id, device, member);
            if let Some(job) = self.store.job_mut(job_id) {
                job.counters.targets += 1;
                if job.status == JobStatus::Completed {
                    job.status = JobStatus::Running;
                }
            }
        } else if reopenable {
            return Consider::Skip;
        }
        let Some(job) = self.store.job(job_id) else {
            return Consider::Skip;
        };
        let Some(open_phase) = admission_phase(job, member, device) else {
            return Consider::Skip;
        };

        let reset_window = match self.offer_window(job_id, now) {
            Ok(window) => window,
            Err(opens_in) => return Consider::WindowClosed(opens_in),
        };

        let release = job.spec.release;
        let base = match request.device.inventory {
            Some(base)
                if self.store.inventory(base).map(|i| i.digest)
                    == request.device.reported_digest =>
            {
                base
            }
            _ => return Consider::Decide(Decision::InventoryRequest),
        };
        let Some(expected) = self.expected_inventory(job_id, base) else {
            return Consider::Skip;
        };
        if self.inventory_matches(base, expected) {
            self.mark_up_to_date(request, job_id, member);
            return Consider::Skip;
        }

        let admission = Admission {
            job: job_id,
            release,
            open_phase,
            expected,
            reset_window,
        };
        Consider::Decide(self.offer(request, admission, member))
    }

    /// Records that the device already runs the job's release.
    fn mark_up_to_date(&mut self, request: &mut Request, job_id: JobId, mut member: MemberState) {
        member.flags |= MemberState::UP_TO_DATE;
        self.store.put_member(job_id, request.device.id, member);
        if let Some(job) = self.store.job_mut(job_id) {
            job.counters.up_to_date += 1;
        }
        self.refresh_job(request.now, job_id, &mut request.notes);
    }

    /// Offers the job: counts the attempt (and the admission on the first
    /// one) and puts the device on the job.
    fn offer(
        &mut self,
        request: &mut Request,
        admission: Admission,
        mut member: MemberState,
    ) -> Decision {
        member.attempts += 1;
        let first = member.attempts == 1;
        if first {
            member.phase = u8::try_from(admission.open_phase).unwrap_or(u8::MAX);
        }
        self.store
            .put_member(admission.job, request.device.id, member);
        if let Some(job) = self.store.job_mut(admission.job) {
            job.counters.offers += 1;
            if first {
                job.counters.admitted += 1;
                if let Some(phase) = job.phases.get_mut(admission.open_phase) {
                    phase.admitted += 1;
                }
            }
        }
        request.device.job = Some(DeviceJob {
            job: admission.job,
            state: DeviceJobState::Offered,
            phase: member.phase,
            offered_at: request.now,
            expected: admission.expected,
            bytes_done: 0,
        });
        Decision::Offer {
            job: admission.job,
            release: admission.release,
            reset_window: admission.reset_window,
        }
    }
}

/// Returns the highest open phase if the device may be offered the job now.
/// A device on its first attempt needs a rollout rank below that phase's
/// cumulative share, and room under its cap of `ceil(share × targets)`
/// admissions; a retry needs only an open phase.
fn admission_phase(job: &Job, member: MemberState, device: DeviceId) -> Option<usize> {
    let open_phase = job
        .phases
        .iter()
        .rposition(|phase| phase.opened_at.is_some())?;
    if member.attempts > 0 {
        return Some(open_phase);
    }
    let share = u64::from(job.spec.phases.get(open_phase)?.share_permille);
    if u64::from(rollout_rank(device, job.id)) >= share {
        return None;
    }
    let cap = (share * u64::from(job.counters.targets)).div_ceil(1000);
    (u64::from(job.counters.admitted) < cap).then_some(open_phase)
}

/// A job offer about to be made.
struct Admission {
    job: JobId,
    release: ReleaseId,
    open_phase: usize,
    expected: crate::model::InventoryRef,
    reset_window: Option<ResetWindow>,
}

enum Consider {
    Skip,
    WindowClosed(u32),
    Decide(Decision),
}

fn set_state(request: &mut Request, state: DeviceJobState) {
    if let Some(job) = request.device.job.as_mut() {
        job.state = state;
    }
}

fn refusal(code: RefusalCode, retry_after_s: u32, detail: u32) -> ServerMessage<'static> {
    ServerMessage::Refusal(Refusal {
        code,
        retry_after_s,
        detail,
    })
}

fn unauthenticated(code: RefusalCode, out: &mut [u8]) -> FrameOutcome {
    let refusal = Refusal {
        code,
        retry_after_s: 0,
        detail: 0,
    };
    match encode_unauthenticated_refusal(&refusal, out) {
        Ok(len) => FrameOutcome {
            reply_len: len,
            status: FrameStatus::Unauthenticated(code),
            notifications: Vec::new(),
        },
        Err(error) => FrameOutcome {
            reply_len: 0,
            status: FrameStatus::EncodeFailed(error),
            notifications: Vec::new(),
        },
    }
}

fn dropped(error: FrameError) -> FrameOutcome {
    FrameOutcome {
        reply_len: 0,
        status: FrameStatus::Dropped(error),
        notifications: Vec::new(),
    }
}

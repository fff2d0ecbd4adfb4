//! Rebuilding the job after a reset from the journal and the boot status.

use syssync_proto::message::JobOutcome;
use syssync_proto::{Crypto, FailureCode, JobId, RevertReason, SignedManifest, MAX_MANIFEST_LEN};

use super::record::{JobRecord, Phase, FLAG_INSTALL_REPORTED};
use super::{Engine, Event, InitError};
use crate::boot::{BootControl, BootPhase};
use crate::config::ConfirmPolicy;
use crate::store::{FileStore, JOB_RECORD_LEN};
use crate::time::Instant;

impl<B: BootControl, S: FileStore, C: Crypto> Engine<B, S, C> {
    /// Rebuilds the job from the journal and the boot side's status after a reset.
    // Out of line, like `restore_manifest` (see "Code size" in the engine's module docs).
    #[inline(never)]
    pub(super) fn restore_job(&mut self, now: Instant) -> Result<(), InitError> {
        let mut bytes = [0u8; JOB_RECORD_LEN];
        let found = self
            .store
            .load_job_record(&mut bytes)
            .map_err(|_| InitError::Storage)?;
        let Some(mut record) = found.then(|| JobRecord::decode(&bytes)).flatten() else {
            return Ok(());
        };
        if record.phase == Phase::Committing
            && matches!(
                self.status.phase,
                BootPhase::InstallRequested | BootPhase::Trial | BootPhase::RevertRequested
            )
        {
            // The install was requested just before a reset that kept the
            // journal one step behind.
            record.phase = Phase::Staged;
        }
        let needs_manifest = matches!(
            record.phase,
            Phase::Downloading | Phase::Committing | Phase::Staged
        );
        self.inventory_digest = None;
        let restored = if needs_manifest {
            self.restore_manifest(record)
        } else {
            self.open_job(record, None).is_ok()
        };
        if !restored {
            // The journal lost the manifest: nothing staged can be trusted.
            self.fail(FailureCode::FLASH_WRITE);
            return Ok(());
        }
        let id = record.job;
        let outcome = match (record.phase, self.status.phase) {
            (Phase::Staged, BootPhase::Trial) => {
                if let Some(job) = self.job.as_mut() {
                    job.record.phase = Phase::Trial;
                    job.record.flags &= !FLAG_INSTALL_REPORTED;
                    job.manifest = None;
                }
                self.persist();
                self.next_check_in = now;
                return Ok(());
            }
            (Phase::Staged, BootPhase::InstallRequested) => {
                self.push_reset_wanted(id);
                return Ok(());
            }
            (Phase::Trial, BootPhase::RevertRequested) => {
                JobOutcome::Reverted(RevertReason::APPLICATION_FAILURE)
            }
            // The install or the trial ended before the journal recorded its
            // outcome, which the boot status now gives.
            (Phase::Staged, _) | (Phase::Trial, BootPhase::Idle) => match self.status.last_revert {
                Some(reason) => JobOutcome::Reverted(reason),
                None if record.phase == Phase::Staged => {
                    if self.new_image_running() {
                        JobOutcome::Installed
                    } else {
                        JobOutcome::Failed(FailureCode::INSTALL_REFUSED)
                    }
                }
                None if self.config.confirm_policy == ConfirmPolicy::Server => {
                    // Confirmed just before a reset that lost the journal update.
                    self.clear_job();
                    self.push(Event::Confirmed { job: id });
                    return Ok(());
                }
                None => JobOutcome::Installed,
            },
            _ => return Ok(()),
        };
        self.set_outcome(outcome);
        Ok(())
    }

    /// Starts the job of `record` with its stored manifest, and returns
    /// whether that manifest was there and verified.
    // Out of line because of its 1.5 KiB body buffer (see "Code size" in
    // the engine's module docs).
    #[inline(never)]
    fn restore_manifest(&mut self, record: JobRecord) -> bool {
        let mut body = [0u8; MAX_MANIFEST_LEN];
        let signed = stored_manifest(&mut self.store, record.job, &mut body);
        // The copy on flash is checked like an offer: flash is input too.
        let verified = self.open_job(record, signed.as_ref());
        signed.is_some() && verified.is_ok()
    }

    /// Checks whether the running image is the application image of the
    /// job's manifest. It compares the digests in place, because copying
    /// each into an `Option` first takes more code.
    fn new_image_running(&self) -> bool {
        let new_image = self
            .job
            .as_ref()
            .and_then(|job| job.manifest.as_ref())
            .and_then(|manifest| manifest.application());
        match (self.status.running.as_ref(), new_image) {
            (Some(image), Some((_, file))) => image.sha256 == file.sha256,
            _ => false,
        }
    }

    /// Reverts a trial image that no job of this engine will confirm.
    ///
    /// With the server policy only a `Confirm` for a job on trial makes an
    /// image permanent, so such an image would run unconfirmed until the
    /// trial boot limit. It happens when a cancel arrived after the install
    /// was requested and the boot side could not withdraw the request.
    pub(super) fn revert_orphan_trial(&mut self) {
        if self.status.phase != BootPhase::Trial
            || self.config.confirm_policy != ConfirmPolicy::Server
        {
            return;
        }
        let id = match self.job.as_ref() {
            None => JobId(0),
            Some(job) if job.record.phase == Phase::Reporting => match job.record.outcome {
                Some(JobOutcome::Installed) | None => return,
                Some(_) => job.record.job,
            },
            Some(_) => return,
        };
        if !self.end_trial(false) {
            return;
        }
        self.push_reset_wanted(id);
    }
}

/// Reads the stored signed manifest of job `id`, with its body in `body`,
/// or returns `None` if it is missing, damaged, unreadable or of another
/// job.
///
/// Restoring a job and starting to stage its image share this one reader,
/// so the store's `load_manifest` has one caller.
#[inline(never)]
pub(super) fn stored_manifest<'b, S: FileStore>(
    store: &mut S,
    id: JobId,
    body: &'b mut [u8; MAX_MANIFEST_LEN],
) -> Option<SignedManifest<'b>> {
    // Borrowed, because moving the stored manifest out of the result copies
    // its signature once more.
    let loaded = store.load_manifest(body);
    let Ok(Some(stored)) = &loaded else {
        return None;
    };
    if stored.job != id {
        return None;
    }
    Some(SignedManifest {
        key_id: stored.key_id,
        body: body.get(..stored.len)?,
        signature: stored.signature,
    })
}

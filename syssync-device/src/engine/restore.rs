//! Rebuilding the job after a reset from the journal and the boot status.

use syssync_proto::message::JobOutcome;
use syssync_proto::{
    Crypto, FailureCode, JobId, Manifest, RevertReason, SignedManifest, TrustedKey,
    MAX_MANIFEST_LEN,
};

use super::record::{JobRecord, Phase, FLAG_INSTALL_REPORTED};
use super::{ActiveJob, Engine, Event, InitError};
use crate::boot::{BootControl, BootPhase};
use crate::config::ConfirmPolicy;
use crate::store::{FileStore, JOB_RECORD_LEN};
use crate::time::Instant;

impl<B: BootControl, S: FileStore, C: Crypto> Engine<B, S, C> {
    /// Rebuilds the job from the journal and the boot side's status after a reset.
    // Out of line, like `load_manifest` (see "Code size" in the engine's module docs).
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
        let job = self.job.insert(ActiveJob {
            record,
            manifest: None,
            pending: None,
            staging_begun: false,
            verify: None,
            reset_window: None,
            files_event: false,
        });
        if needs_manifest {
            // Decoded into the job in place: each move of the 1.5 KiB
            // manifest took another stack copy.
            let manifest = job.manifest.insert(Manifest::empty());
            let trusted = &self.config.trusted_keys;
            if !load_manifest(&mut self.store, &self.crypto, trusted, record.job, manifest) {
                job.manifest = None;
            }
        }
        if needs_manifest && self.job.as_ref().is_some_and(|job| job.manifest.is_none()) {
            // The journal lost the manifest: nothing staged can be trusted.
            self.fail(FailureCode::FLASH_WRITE);
            return Ok(());
        }
        let id = record.job;
        match record.phase {
            Phase::Staged => match self.status.phase {
                BootPhase::Trial => {
                    if let Some(job) = self.job.as_mut() {
                        job.record.phase = Phase::Trial;
                        job.record.flags &= !FLAG_INSTALL_REPORTED;
                        job.manifest = None;
                    }
                    self.persist();
                    self.next_check_in = now;
                }
                BootPhase::InstallRequested => self.push_reset_wanted(id),
                _ => {
                    if let Some(reason) = self.status.last_revert {
                        self.set_outcome(JobOutcome::Reverted(reason));
                    } else if self.new_image_running() {
                        self.set_outcome(JobOutcome::Installed);
                    } else {
                        self.set_outcome(JobOutcome::Failed(FailureCode::INSTALL_REFUSED));
                    }
                }
            },
            Phase::Trial => match self.status.phase {
                BootPhase::Trial | BootPhase::InstallRequested | BootPhase::Staging => {}
                BootPhase::RevertRequested => {
                    let reason = RevertReason::APPLICATION_FAILURE;
                    self.set_outcome(JobOutcome::Reverted(reason));
                }
                BootPhase::Idle => {
                    if let Some(reason) = self.status.last_revert {
                        self.set_outcome(JobOutcome::Reverted(reason));
                    } else if self.config.confirm_policy == ConfirmPolicy::Server {
                        // Confirmed just before a reset that lost the journal update.
                        self.clear_job();
                        self.push(Event::Confirmed { job: id });
                    } else {
                        self.set_outcome(JobOutcome::Installed);
                    }
                }
            },
            Phase::Downloading | Phase::Committing | Phase::Reporting => {}
        }
        Ok(())
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

/// Reads the stored manifest of job `id` into `manifest` and returns whether
/// it was there and verified.
// Out of line because of its 1.5 KiB body buffer (see "Code size" in the
// engine's module docs).
#[inline(never)]
fn load_manifest<S: FileStore, C: Crypto>(
    store: &mut S,
    crypto: &C,
    trusted: &[TrustedKey],
    id: JobId,
    manifest: &mut Manifest,
) -> bool {
    let mut body = [0u8; MAX_MANIFEST_LEN];
    let Some(signed) = stored_manifest(store, id, &mut body) else {
        return false;
    };
    // The copy on flash is checked like an offer: flash is input too.
    signed.verify_into(crypto, trusted, manifest).is_ok()
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

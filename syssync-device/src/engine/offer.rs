//! Job offers: the checks before anything is downloaded, and accepting a job.

use syssync_proto::message::{JobOffer, JobOutcome, JobReport};
use syssync_proto::{
    Crypto, FailureCode, FileKind, JobId, Manifest, ManifestError, RejectReason, SignedManifest,
};

use super::record::{JobRecord, Phase};
use super::{ActiveJob, Engine, Event};
use crate::boot::{BootControl, BootPhase};
use crate::config::ExpiryWithoutClock;
use crate::store::FileStore;
use crate::time::{Duration, Instant};

/// The files of an accepted manifest: one bit per manifest index.
struct Plan {
    /// Files that differ from what is installed.
    fetch: u16,
    /// Files already installed as the manifest lists them.
    done: u16,
    /// Bytes to fetch over all files.
    bytes: u32,
}

impl<B: BootControl, S: FileStore, C: Crypto> Engine<B, S, C> {
    // Out of line because it decodes a 1.6 KiB manifest (see "Code size" in
    // the engine's module docs).
    #[inline(never)]
    pub(super) fn handle_offer(&mut self, now: Instant, offer: &JobOffer<'_>) {
        if let Some(job) = self.job.as_ref() {
            if job.record.job == offer.job {
                // The job in progress, offered again: continue from the journal's position.
                return;
            }
            if job.record.phase == Phase::Downloading {
                // The server moved on to another job: drop the unfinished download.
                self.discard_staged();
                self.clear_job();
            }
        }
        // A job that is past its download keeps the device busy, and so
        // does an image that is about to be installed or reverted or is on
        // trial. One rejection serves both.
        let busy = self.job.is_some() || {
            self.refresh_status();
            matches!(
                self.status.phase,
                BootPhase::Trial | BootPhase::InstallRequested | BootPhase::RevertRequested
            )
        };
        if busy {
            self.reject(offer.job, RejectReason::BUSY);
            return;
        }
        // A rejected offer clears the job again.
        let record = JobRecord::new(offer.job, Phase::Downloading);
        let checked = match self.open_job(record, Some(&offer.manifest)) {
            Ok(()) => self.check_manifest(now),
            Err(ManifestError::UnknownKey(_)) | Err(ManifestError::BadSignature) => {
                Err(RejectReason::BAD_SIGNATURE)
            }
            Err(_) => Err(RejectReason::MALFORMED),
        };
        match checked {
            Ok(plan) => self.accept(now, offer, plan),
            Err(reason) => {
                self.job = None;
                self.reject(offer.job, reason);
            }
        }
    }

    /// Starts the job of `record`, with the manifest verified from `signed`
    /// if there is one, and returns the result of that verification. After
    /// an error the job has no manifest.
    ///
    /// The manifest is verified into the job in place, because each move of
    /// its 1.5 KiB, out of a result or into the job, took another stack
    /// copy. Offers and the restart after a reset both start jobs here.
    #[inline(never)]
    pub(super) fn open_job(
        &mut self,
        record: JobRecord,
        signed: Option<&SignedManifest<'_>>,
    ) -> Result<(), ManifestError> {
        // Built with an empty manifest, which takes less code than inserting
        // one afterwards. A job without a signed manifest drops it below.
        let job = self.job.insert(ActiveJob {
            record,
            manifest: Some(Manifest::empty()),
            pending: None,
            staging_begun: false,
            verify: None,
            reset_window: None,
            files_event: false,
        });
        let (Some(signed), Some(manifest)) = (signed, job.manifest.as_mut()) else {
            job.manifest = None;
            return Ok(());
        };
        let verified = signed.verify_into(&self.crypto, &self.config.trusted_keys, manifest);
        if verified.is_err() {
            job.manifest = None;
        }
        verified
    }

    /// Checks the verified manifest of the new job against the device, and
    /// returns which files to fetch.
    fn check_manifest(&mut self, now: Instant) -> Result<Plan, RejectReason> {
        let Some(manifest) = self.job.as_ref().and_then(|job| job.manifest.as_ref()) else {
            return Err(RejectReason::MALFORMED);
        };
        if manifest.target != self.target {
            return Err(RejectReason::WRONG_TARGET);
        }
        match self.unix_now_ms(now) {
            Some(unix_ms) if expired(unix_ms, manifest.expires_at) => {
                return Err(RejectReason::EXPIRED)
            }
            None if self.config.expiry_without_clock == ExpiryWithoutClock::Reject => {
                return Err(RejectReason::EXPIRED)
            }
            _ => {}
        }
        if manifest.security_counter < self.status.security_floor {
            return Err(RejectReason::DOWNGRADE);
        }
        // Summed in 32 bits: a sum that overflows is larger than any free
        // space the store can report.
        let mut plain_space: u32 = 0;
        let mut new_names = 0usize;
        let mut plan = Plan {
            fetch: 0,
            done: 0,
            bytes: 0,
        };
        for (index, file) in manifest.files.iter().enumerate() {
            let unchanged = match file.kind {
                FileKind::Application => {
                    if file.size > self.boot.staging_capacity() {
                        return Err(RejectReason::TOO_LARGE);
                    }
                    self.status
                        .running
                        .as_ref()
                        .is_some_and(|image| image.sha256 == file.sha256 && image.size == file.size)
                }
                FileKind::Plain => {
                    // Matched by reference, because moving the file info
                    // out of the result copies each field.
                    let installed = self.store.find(file.name.as_str());
                    let unchanged = match installed.as_ref().map_err(|_| RejectReason::TOO_LARGE)? {
                        Some(info) => info.sha256 == file.sha256 && info.size == file.size,
                        None => {
                            new_names += 1;
                            false
                        }
                    };
                    if !unchanged {
                        plain_space = plain_space
                            .checked_add(self.store.space_needed(file.size))
                            .ok_or(RejectReason::TOO_LARGE)?;
                    }
                    unchanged
                }
            };
            if unchanged {
                plan.done |= 1 << index;
            } else {
                plan.fetch |= 1 << index;
                plan.bytes = plan.bytes.saturating_add(file.size);
            }
        }
        let free = self
            .store
            .free_space()
            .map_err(|_| RejectReason::TOO_LARGE)?;
        if plain_space > free {
            return Err(RejectReason::TOO_LARGE);
        }
        let installed = self
            .store
            .file_count()
            .map_err(|_| RejectReason::TOO_LARGE)?;
        if installed + new_names > syssync_proto::MAX_INVENTORY_FILES {
            return Err(RejectReason::TOO_LARGE);
        }
        Ok(plan)
    }

    /// Returns the Unix time at `now` in milliseconds, or `None` without a
    /// wall clock or before 1970.
    fn unix_now_ms(&self, now: Instant) -> Option<u64> {
        let offset = self.unix_offset_ms?;
        // 64-bit arithmetic, because a 128-bit division takes about 700 bytes
        // of code on a Cortex-M4. Times beyond i64::MAX milliseconds (292
        // million years) saturate.
        let unix_ms = i64::try_from(now.0)
            .unwrap_or(i64::MAX)
            .saturating_add(offset);
        u64::try_from(unix_ms).ok()
    }

    // Inlined: handle_offer's two rejections then share one copy of the
    // body, which is smaller than the function and its two calls.
    #[inline(always)]
    fn reject(&mut self, job: JobId, reason: RejectReason) {
        self.push(Event::OfferRejected { job, reason });
        self.side_report = Some(JobReport {
            job,
            outcome: JobOutcome::Rejected(reason),
        });
    }

    /// Stores the signed manifest and starts the new job, which already
    /// contains the verified manifest.
    fn accept(&mut self, now: Instant, offer: &JobOffer<'_>, plan: Plan) {
        let stored = self.store.discard_pending().and_then(|()| {
            self.store.store_manifest(
                offer.job,
                offer.manifest.key_id,
                &offer.manifest.signature,
                offer.manifest.body,
            )
        });
        if stored.is_err() {
            self.job = None;
            self.push_storage_failed();
            self.side_report = Some(JobReport {
                job: offer.job,
                outcome: JobOutcome::Failed(FailureCode::FLASH_WRITE),
            });
            return;
        }
        if self.status.phase == BootPhase::Staging {
            // Leftover of an earlier job; staging starts again with this one.
            let _ = self.boot.cancel_staging();
        }
        self.inventory_digest = None;
        if let Some(job) = self.job.as_mut() {
            job.record.done = plan.done;
            job.record.fetch = plan.fetch;
            job.reset_window = offer.reset_window.map(|window| {
                (
                    now + Duration::from_secs(u64::from(window.opens_in_s)),
                    now + Duration::from_secs(u64::from(window.closes_in_s)),
                )
            });
        }
        self.advance_file();
        self.persist();
        self.push(Event::JobAccepted {
            job: offer.job,
            bytes: plan.bytes,
        });
    }
}

/// Returns `true` once the whole second `unix_ms / 1000` is past
/// `expires_at_s`, compared in milliseconds because a 64-bit division costs
/// a Cortex-M4 about 860 bytes of code.
fn expired(unix_ms: u64, expires_at_s: u64) -> bool {
    // `floor(ms / 1000) > s` is true exactly when `ms >= (s + 1) * 1000`. An
    // expiry too large for that product lies beyond every representable time.
    match expires_at_s
        .checked_add(1)
        .and_then(|second| second.checked_mul(1000))
    {
        Some(limit) => unix_ms >= limit,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::expired;

    #[test]
    fn expiry_at_second_boundaries() {
        // Proves that the comparison in milliseconds equals `ms / 1000 > s`.
        for (unix_ms, expires_at_s) in [
            (0, 0),
            (999, 0),
            (1000, 0),
            (1_800_000_000_999, 1_800_000_000),
            (1_800_000_001_000, 1_800_000_000),
            (u64::MAX, u64::MAX / 1000 - 1),
            (u64::MAX, u64::MAX / 1000),
            (u64::MAX, u64::MAX),
        ] {
            assert_eq!(
                expired(unix_ms, expires_at_s),
                unix_ms / 1000 > expires_at_s,
                "{unix_ms} ms against {expires_at_s} s"
            );
        }
    }
}

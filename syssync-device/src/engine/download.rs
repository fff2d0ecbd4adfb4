//! Writing chunks to flash, moving a sector aside after a torn write,
//! verifying finished files and committing them.
//!
//! A chunk is complete once the job record that counts it is in the journal.
//! Before the first write into a sector the engine erases it. After a power
//! cut the chunk in flight is fetched again and written to the same place; if
//! that place is not writable (a torn or already programmed write) and the
//! sector holds earlier chunks of the file, those chunks are copied to the
//! scratch area, the copy is recorded in the journal, the sector is erased and
//! the chunks are copied back. A power cut during that move finishes it from
//! the scratch copy at the next start. So no chunk counted as complete is ever
//! fetched twice.

use syssync_proto::message::JobOutcome;
use syssync_proto::{
    Crypto, FailureCode, FileKind, ManifestFile, Sha256Hasher, Signature, SignedManifest,
    MAX_MANIFEST_LEN,
};

use super::record::{Phase, Relocation, FLAG_STAGING};
use super::restore::stored_manifest;
use super::{ActiveJob, Dest, Engine, Event};
use crate::boot::{BootControl, StagedImage};
use crate::store::FileStore;
use crate::time::Instant;

/// Bytes copied per flash access when moving or hashing data.
const PIECE: usize = 64;

/// Bit by bit, without a 1 KiB lookup table: it checks only the sector
/// copies of a relocation, which follows a failed chunk write.
const CRC: crc::Crc<u32, crc::NoTable> = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Number of consecutive flash failures after which a job fails.
const MAX_STORAGE_FAILURES: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fault;

/// A place that a sector move reads or writes: a file's destination or the
/// store's scratch area.
#[derive(Clone, Copy)]
enum Area<H> {
    Dest(Dest<H>),
    Scratch,
}

impl<B: BootControl, S: FileStore, C: Crypto> Engine<B, S, C> {
    /// Returns `true` while background work waits for [`Engine::handle_timeout`].
    pub(super) fn has_work(&self) -> bool {
        let Some(job) = self.job.as_ref() else {
            return false;
        };
        match job.record.phase {
            Phase::Committing => true,
            Phase::Downloading => {
                if job.record.relocation.is_some() || job.verify.is_some() {
                    return true;
                }
                let Some(manifest) = job.manifest.as_ref() else {
                    return false;
                };
                manifest
                    .files
                    .get(usize::from(job.record.file))
                    .is_some_and(|file| job.record.offset >= file.size)
            }
            _ => false,
        }
    }

    /// Does one bounded step of background work.
    // Out of line, like the other inputs (see "Code size" in the module docs).
    #[inline(never)]
    pub(super) fn work_step(&mut self, now: Instant) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        match job.record.phase {
            Phase::Downloading if job.record.relocation.is_some() => self.resume_relocation(),
            Phase::Downloading if self.has_work() => self.verify_step(),
            Phase::Committing => self.commit_step(now),
            _ => {}
        }
    }

    fn storage_failed(&mut self) {
        self.push_storage_failed();
        self.storage_failures = self.storage_failures.saturating_add(1);
        if self.storage_failures >= MAX_STORAGE_FAILURES {
            self.storage_failures = 0;
            self.fail(FailureCode::FLASH_WRITE);
        }
    }

    pub(super) fn handle_chunk(
        &mut self,
        now: Instant,
        file: u8,
        offset: u32,
        length: u16,
        data: &[u8],
    ) {
        let expected = self.job.as_ref().is_some_and(|job| {
            job.record.phase == Phase::Downloading
                && job.record.file == file
                && job.record.offset == offset
                && job.record.relocation.is_none()
        });
        if !expected {
            self.push(super::Event::UnexpectedFrame);
            return;
        }
        if data.len() != usize::from(length) {
            self.push(Event::ChunkRejected {
                expected: length,
                received: data.len(),
            });
            return;
        }
        if self.write_chunk(file, offset, data).is_err() {
            self.storage_failed();
            self.retry_at = now + crate::time::Duration(self.config.retry_initial_ms);
            return;
        }
        self.storage_failures = 0;
        if let Some(job) = self.job.as_mut() {
            job.record.offset += u32::from(length);
            job.record.bytes_done = job.record.bytes_done.saturating_add(u32::from(length));
        }
        self.persist();
    }

    /// Starts staging the application image `file` of `job`'s manifest,
    /// with the job's signed manifest as the bootloader's evidence. If the
    /// boot side keeps evidence, the signed manifest is read back from the
    /// store into a buffer that lives only in this call.
    ///
    /// It takes the engine's fields instead of `self`, so that `dest` passes
    /// the job's manifest by reference and the image description is built
    /// in this function only.
    #[inline(never)]
    fn begin_staging(
        boot: &mut B,
        store: &mut S,
        job: &ActiveJob<S::Handle, C::Sha256>,
        file: &ManifestFile,
    ) -> Result<(), Fault> {
        let manifest = job.manifest.as_ref().ok_or(Fault)?;
        let image = StagedImage {
            size: file.size,
            sha256: file.sha256,
            target: manifest.target.clone(),
            version: manifest.version,
            security_counter: manifest.security_counter,
        };
        let mut body = [0u8; MAX_MANIFEST_LEN];
        let signed = if B::STORES_EVIDENCE {
            stored_manifest(store, job.record.job, &mut body).ok_or(Fault)?
        } else {
            SignedManifest {
                key_id: 0,
                body: &[],
                signature: Signature([0; 64]),
            }
        };
        boot.begin_staging(&image, &signed).map_err(|_| Fault)
    }

    /// Returns the destination of manifest file `index`, starting staging or
    /// creating the pending file on first use.
    fn dest(&mut self, index: u8) -> Result<Dest<S::Handle>, Fault> {
        let job = self.job.as_ref().ok_or(Fault)?;
        let manifest = job.manifest.as_ref().ok_or(Fault)?;
        let file = manifest.files.get(usize::from(index)).ok_or(Fault)?;
        match file.kind {
            FileKind::Application => {
                if !job.staging_begun {
                    // A manifest has at most one application image, so `file` is it.
                    Self::begin_staging(&mut self.boot, &mut self.store, job, file)?;
                    let job = self.job.as_mut().ok_or(Fault)?;
                    job.staging_begun = true;
                    if !job.record.has_flag(FLAG_STAGING) {
                        job.record.flags |= FLAG_STAGING;
                        self.persist();
                    }
                }
                Ok(Dest::Staging)
            }
            FileKind::Plain => {
                if let Some(handle) = job.pending {
                    return Ok(Dest::File(handle));
                }
                // `file` borrows `self.job` only, so the store can be called
                // with the name in place.
                let handle = self
                    .store
                    .create_pending(file.name.as_str(), file.size)
                    .map_err(|_| Fault)?;
                if let Some(job) = self.job.as_mut() {
                    job.pending = Some(handle);
                }
                Ok(Dest::File(handle))
            }
        }
    }

    fn dest_geometry(&self, dest: Dest<S::Handle>) -> (u32, u32) {
        match dest {
            Dest::Staging => (
                self.boot.staging_erase_size(),
                self.boot.staging_write_size(),
            ),
            Dest::File(_) => (self.store.erase_size(), self.store.write_size()),
        }
    }

    fn dest_erase(&mut self, dest: Dest<S::Handle>, offset: u32) -> Result<(), Fault> {
        match dest {
            Dest::Staging => self.boot.erase_staging(offset).map_err(|_| Fault),
            Dest::File(handle) => self.store.erase_pending(handle, offset).map_err(|_| Fault),
        }
    }

    /// Writes `data` (a multiple of the write size, except at the end of a
    /// file, where the tail is padded with `0xFF`) and reads it back, one
    /// 64-byte piece at a time. The write size divides 64 (checked in
    /// `Engine::new`), so every piece starts on a write boundary.
    fn program(&mut self, dest: Dest<S::Handle>, offset: u32, data: &[u8]) -> Result<(), Fault> {
        let (_, write) = self.dest_geometry(dest);
        let mut done = 0;
        while done < data.len() {
            let take = PIECE.min(data.len() - done);
            let mut piece = [0xFFu8; PIECE];
            piece[..take].copy_from_slice(&data[done..done + take]);
            let padded = take.next_multiple_of(write as usize);
            let piece_offset = offset + done as u32;
            self.area_write(Area::Dest(dest), piece_offset, &piece[..padded])?;
            let mut read_back = [0u8; PIECE];
            self.area_read(Area::Dest(dest), piece_offset, &mut read_back[..take])?;
            if read_back[..take] != piece[..take] {
                return Err(Fault);
            }
            done += take;
        }
        Ok(())
    }

    fn write_chunk(&mut self, index: u8, offset: u32, data: &[u8]) -> Result<(), Fault> {
        let dest = self.dest(index)?;
        let (erase, _) = self.dest_geometry(dest);
        let end = offset + data.len() as u32;
        let mut sector = offset.div_ceil(erase) * erase;
        while sector < end {
            self.dest_erase(dest, sector)?;
            sector += erase;
        }
        if self.program(dest, offset, data).is_ok() {
            return Ok(());
        }
        let within = offset % erase;
        if within == 0 {
            return Err(Fault);
        }
        // The place of this chunk is not writable, and its sector holds
        // earlier chunks: move them aside, erase, move them back.
        self.relocate(index, dest, offset - within, within)?;
        self.program(dest, offset, data)
    }

    fn relocate(
        &mut self,
        index: u8,
        dest: Dest<S::Handle>,
        sector: u32,
        len: u32,
    ) -> Result<(), Fault> {
        self.store.erase_scratch().map_err(|_| Fault)?;
        let crc = self.copy_range(Area::Dest(dest), sector, Some(Area::Scratch), 0, len)?;
        if self.area_crc(Area::Scratch, 0, len)? != crc {
            return Err(Fault);
        }
        let relocation = Relocation {
            file: index,
            sector,
            len,
            crc,
        };
        if let Some(job) = self.job.as_mut() {
            job.record.relocation = Some(relocation);
        }
        self.persist();
        self.restore_sector(dest, relocation)
    }

    fn area_read(
        &mut self,
        area: Area<S::Handle>,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), Fault> {
        Self::read_area(&mut self.boot, &mut self.store, area, offset, buf)
    }

    /// Reads `buf` from `area` at `offset`. It takes the boot side and the
    /// store apart from `self`, so a caller can keep the job borrowed.
    fn read_area(
        boot: &mut B,
        store: &mut S,
        area: Area<S::Handle>,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), Fault> {
        let read = match area {
            Area::Dest(Dest::Staging) => boot.read_staging(offset, buf).is_ok(),
            Area::Dest(Dest::File(handle)) => store.read_pending(handle, offset, buf).is_ok(),
            Area::Scratch => store.read_scratch(offset, buf).is_ok(),
        };
        read.then_some(()).ok_or(Fault)
    }

    fn area_write(&mut self, area: Area<S::Handle>, offset: u32, data: &[u8]) -> Result<(), Fault> {
        let written = match area {
            Area::Dest(Dest::Staging) => self.boot.write_staging(offset, data).is_ok(),
            Area::Dest(Dest::File(handle)) => {
                self.store.write_pending(handle, offset, data).is_ok()
            }
            Area::Scratch => self.store.write_scratch(offset, data).is_ok(),
        };
        written.then_some(()).ok_or(Fault)
    }

    /// Reads `len` bytes of `from` at `from_start` piece by piece, writes
    /// them to `to` at `to_start` unless `to` is `None`, and returns their
    /// CRC-32.
    fn copy_range(
        &mut self,
        from: Area<S::Handle>,
        from_start: u32,
        to: Option<Area<S::Handle>>,
        to_start: u32,
        len: u32,
    ) -> Result<u32, Fault> {
        let mut digest = CRC.digest();
        let mut done = 0u32;
        while done < len {
            let take = (PIECE as u32).min(len - done) as usize;
            let mut piece = [0u8; PIECE];
            self.area_read(from, from_start + done, &mut piece[..take])?;
            digest.update(&piece[..take]);
            if let Some(to) = to {
                self.area_write(to, to_start + done, &piece[..take])?;
            }
            done += take as u32;
        }
        Ok(digest.finalize())
    }

    /// Returns the CRC-32 of `len` bytes of `area` from `start`.
    fn area_crc(&mut self, area: Area<S::Handle>, start: u32, len: u32) -> Result<u32, Fault> {
        self.copy_range(area, start, None, 0, len)
    }

    /// Erases the sector and copies the scratch data back, then clears the
    /// relocation from the journal.
    // Inlined into its two callers: at `opt-level = "z"` that is smaller
    // than one out-of-line copy with its argument passing.
    #[inline(always)]
    fn restore_sector(
        &mut self,
        dest: Dest<S::Handle>,
        relocation: Relocation,
    ) -> Result<(), Fault> {
        self.dest_erase(dest, relocation.sector)?;
        let (sector, len) = (relocation.sector, relocation.len);
        self.copy_range(Area::Scratch, 0, Some(Area::Dest(dest)), sector, len)?;
        if self.area_crc(Area::Dest(dest), sector, len)? != relocation.crc {
            return Err(Fault);
        }
        if let Some(job) = self.job.as_mut() {
            job.record.relocation = None;
        }
        self.persist();
        Ok(())
    }

    /// Finishes a sector move that a reset interrupted.
    fn resume_relocation(&mut self) {
        let Some(relocation) = self.job.as_ref().and_then(|job| job.record.relocation) else {
            return;
        };
        let result = self.dest(relocation.file).and_then(|dest| {
            if self.area_crc(Area::Scratch, 0, relocation.len)? == relocation.crc {
                return self.restore_sector(dest, relocation);
            }
            // An intact sector was restored before the reset, and only the
            // journal lagged.
            let intact = self.area_crc(Area::Dest(dest), relocation.sector, relocation.len)?
                == relocation.crc;
            if let Some(job) = self.job.as_mut() {
                if !intact {
                    // NOTE: both copies are damaged (a second fault during
                    // the move); the chunks of this sector are fetched again.
                    let lost = job.record.offset.saturating_sub(relocation.sector);
                    job.record.offset = relocation.sector;
                    job.record.bytes_done = job.record.bytes_done.saturating_sub(lost);
                }
                job.record.relocation = None;
            }
            self.persist();
            Ok(())
        });
        if result.is_err() {
            self.storage_failed();
        }
    }

    fn verify_step(&mut self) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        let index = job.record.file;
        let Some(size) = job
            .manifest
            .as_ref()
            .and_then(|manifest| manifest.files.get(usize::from(index)))
            .map(|file| file.size)
        else {
            return;
        };
        let dest = match self.dest(index) {
            Ok(dest) => dest,
            Err(Fault) => return self.storage_failed(),
        };
        // The hasher stays in the job between steps, because moving its state
        // out and back copied it twice per step. It records each piece it has
        // hashed, so a failed read resumes after the last one. The job stays
        // borrowed while the boot side or the store reads each piece.
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let crypto = &self.crypto;
        let (hasher, position) = job.verify.get_or_insert_with(|| (crypto.sha256_start(), 0));
        let step_end = size.min(position.saturating_add(u32::from(self.config.chunk_size)));
        while *position < step_end {
            let take = (PIECE as u32).min(step_end - *position) as usize;
            let mut piece = [0u8; PIECE];
            let read = Self::read_area(
                &mut self.boot,
                &mut self.store,
                Area::Dest(dest),
                *position,
                &mut piece[..take],
            );
            if read.is_err() {
                return self.storage_failed();
            }
            hasher.update(&piece[..take]);
            *position += take as u32;
        }
        if *position < size {
            return;
        }
        let Some((hasher, _)) = job.verify.take() else {
            return;
        };
        let digest = hasher.finalize();
        let verified = job
            .manifest
            .as_ref()
            .and_then(|manifest| manifest.files.get(usize::from(index)))
            .is_some_and(|file| file.sha256 == digest);
        if !verified {
            self.fail(FailureCode::DIGEST_MISMATCH);
            return;
        }
        job.record.done |= 1 << index;
        self.advance_file();
        self.persist();
    }

    fn commit_step(&mut self, now: Instant) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        let Some(manifest) = job.manifest.as_ref() else {
            return;
        };
        let id = job.record.job;
        let changes_files = manifest.files.iter().enumerate().any(|(index, file)| {
            file.kind == FileKind::Plain && job.record.fetch & (1 << index) != 0
        }) || !manifest.remove.is_empty();
        if changes_files && !job.files_event {
            if let Some(job) = self.job.as_mut() {
                job.files_event = true;
            }
            self.push(Event::FilesChanging { job: id });
            return;
        }
        let cursor = usize::from(job.record.file);
        let result = if let Some(file) = manifest.files.get(cursor) {
            let wanted = file.kind == FileKind::Plain && job.record.fetch & (1 << cursor) != 0;
            if wanted {
                // `file` borrows `self.job` only, so the store is passed
                // alone and the name needs no copy.
                match Self::commit_file(&mut self.store, file.name.as_str(), &file.sha256) {
                    Ok(true) => Ok(()),
                    Ok(false) => return self.fail(FailureCode::FLASH_WRITE),
                    Err(Fault) => Err(Fault),
                }
            } else {
                Ok(())
            }
        } else if let Some(name) = manifest.remove.get(cursor - manifest.files.len()) {
            self.store
                .remove(name.as_str())
                .map(|_| ())
                .map_err(|_| Fault)
        } else {
            self.finish_commit(now);
            return;
        };
        match result {
            Ok(()) => {
                if let Some(job) = self.job.as_mut() {
                    job.record.file = job.record.file.saturating_add(1);
                }
                self.persist();
            }
            Err(Fault) => self.storage_failed(),
        }
    }

    /// Commits the pending file `name` with digest `sha256`. Returns
    /// `Ok(true)` once the file is installed with that digest, and
    /// `Ok(false)` when it is not and no pending file of that name exists.
    fn commit_file(store: &mut S, name: &str, sha256: &[u8; 32]) -> Result<bool, Fault> {
        if let Ok(Some(info)) = store.find(name) {
            if info.sha256 == *sha256 {
                // Committed before a reset that kept the journal one step behind.
                return Ok(true);
            }
        }
        match store.find_pending(name) {
            Ok(Some(handle)) => store
                .commit(handle, sha256)
                .map(|()| true)
                .map_err(|_| Fault),
            Ok(None) => Ok(false),
            Err(_) => Err(Fault),
        }
    }

    fn finish_commit(&mut self, _now: Instant) {
        let Some(job) = self.job.as_ref() else {
            return;
        };
        let id = job.record.job;
        let window = job.reset_window;
        let has_image = job.manifest.as_ref().is_some_and(|manifest| {
            manifest
                .application()
                .is_some_and(|(index, _)| job.record.fetch & (1 << index) != 0)
        });
        if !has_image {
            self.set_outcome(JobOutcome::Installed);
            self.push(Event::Completed { job: id });
            return;
        }
        if self.boot.request_install().is_err() {
            self.storage_failed();
            return;
        }
        self.refresh_status();
        if let Some(job) = self.job.as_mut() {
            job.record.phase = Phase::Staged;
        }
        if !self.persist() {
            return;
        }
        self.push(Event::ResetWanted {
            job: id,
            not_before: window.map(|(opens, _)| opens),
            deadline: window.map(|(_, closes)| closes),
        });
    }
}

//! The bootloader driver: carries out the decision core's actions on flash.

use core::fmt;
use core::marker::PhantomData;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

use crate::config::{
    chunk_for, evidence_area, policy, round_up, Config, ConfigError, FlashError, PartitionName,
    Region, MAX_CHUNK,
};
use crate::core::{check_descriptor, decide, Action, Event, Halt, Policy};
use crate::descriptor::ImageDescriptor;
use crate::hash::Sha256Hasher;
use crate::log::{Loaded, StateLog};
use crate::record::{Rejection, StateRecord};
use crate::trace::{log_info, log_warn};

#[cfg(feature = "authentication")]
use crate::auth::ImageAuthenticator;

/// The flash devices the bootloader uses, one per partition.
///
/// Each field can be a device, a `&mut` borrow of one (the `embedded-storage`
/// traits are implemented for `&mut T`), or a partition wrapper over a shared device.
#[derive(Debug)]
pub struct BootFlashes<A, S, R, T> {
    /// Device holding the active partition.
    pub active: A,
    /// Device holding the staging partition.
    pub staging: S,
    /// Device holding the recovery partition.
    pub recovery: R,
    /// Device holding the state partition.
    pub state: T,
}

/// Result of one [`BootSide::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Step {
    /// One unit of this action was carried out; call `step` again.
    Continue(Action),
    /// Boot the active image now.
    BootActive,
}

/// Error returned by [`BootSide::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BootError {
    /// A flash operation failed. The driver has dropped its RAM state, so the
    /// next `step` starts again from the state on flash, as after a reset.
    Flash(FlashError),
    /// No verified image can be booted. Every later `step` returns this again.
    Halted(Halt),
}

impl From<FlashError> for BootError {
    fn from(error: FlashError) -> Self {
        Self::Flash(error)
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(error) => write!(f, "{error}"),
            Self::Halted(Halt::RevertFailed) => {
                f.write_str("revert copy failed verification: no bootable image")
            }
            Self::Halted(Halt::NoValidImage) => {
                f.write_str("recovery and active images both failed verification")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyKind {
    /// Active → recovery, hashing the source.
    Backup,
    /// Staging → active.
    Install,
    /// Recovery → active.
    Revert,
}

/// Partition whose contents are hashed by `region_matches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Recovery,
    Active,
}

#[derive(Debug, Clone, Copy)]
struct CopyJob {
    kind: CopyKind,
    size: u32,
    /// Offset of the next destination sector.
    next: u32,
    action: Action,
}

/// The bootloader side: call [`step`](Self::step) until it returns
/// [`Step::BootActive`], then start the active image.
///
/// Each `step` does a bounded amount of work: one record write, one image
/// check, or the erase and copy of one destination sector. A reset at any
/// point is safe, because every phase restarts from the state on flash.
pub struct BootSide<'a, A, S, R, T, H> {
    flashes: BootFlashes<A, S, R, T>,
    hasher: H,
    policy: Policy,
    active: Region,
    staging: Region,
    recovery: Region,
    log: StateLog,
    evidence_offset: u32,
    loaded: Option<Loaded>,
    event: Option<Event>,
    copy: Option<CopyJob>,
    finished: Option<Result<(), Halt>>,
    buf: [u8; MAX_CHUNK as usize],
    #[cfg(feature = "authentication")]
    authenticator: Option<&'a dyn ImageAuthenticator>,
    _authenticator: PhantomData<&'a ()>,
}

impl<A, S, R, T, H> fmt::Debug for BootSide<'_, A, S, R, T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootSide")
            .field("policy", &self.policy)
            .field("record", &self.loaded.map(|loaded| loaded.record))
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl<'a, A, S, R, T, H> BootSide<'a, A, S, R, T, H>
where
    A: NorFlash,
    S: NorFlash,
    R: NorFlash,
    T: NorFlash,
    H: Sha256Hasher,
{
    /// Creates the bootloader driver, checking the layout against each device.
    pub fn new(
        config: &Config,
        flashes: BootFlashes<A, S, R, T>,
        hasher: H,
    ) -> Result<Self, ConfigError> {
        let layout = config.layout();
        let active = Region::new(PartitionName::Active, layout.active);
        let staging = Region::new(PartitionName::Staging, layout.staging);
        let recovery = Region::new(PartitionName::Recovery, layout.recovery);
        active.check(&flashes.active)?;
        staging.check(&flashes.staging)?;
        recovery.check(&flashes.recovery)?;
        let log = StateLog::new(
            Region::new(PartitionName::State, layout.state),
            &flashes.state,
        )?;

        let chunk = Self::chunk();
        check_chunk::<A>(chunk, PartitionName::Active)?;
        check_chunk::<S>(chunk, PartitionName::Staging)?;
        check_chunk::<R>(chunk, PartitionName::Recovery)?;

        let evidence = evidence_area::<S>();
        let policy = policy(config, evidence)?;
        Ok(Self {
            flashes,
            hasher,
            policy,
            active,
            staging,
            recovery,
            log,
            evidence_offset: layout.staging.size - evidence,
            loaded: None,
            event: None,
            copy: None,
            finished: None,
            buf: [0xFF; MAX_CHUNK as usize],
            #[cfg(feature = "authentication")]
            authenticator: None,
            _authenticator: PhantomData,
        })
    }

    /// Returns the copy chunk size: the largest that every image device
    /// supports. It depends on the flash types only, so the compiler folds
    /// it.
    fn chunk() -> u32 {
        chunk_for::<A>().min(chunk_for::<S>()).min(chunk_for::<R>())
    }

    /// Sets the authenticator that staged images must pass.
    ///
    /// Without one, every staged image is rejected with [`Rejection::Signature`].
    #[cfg(feature = "authentication")]
    pub fn set_authenticator(&mut self, authenticator: &'a dyn ImageAuthenticator) {
        self.authenticator = Some(authenticator);
    }

    /// Returns the state record the driver is working from, once loaded.
    pub fn record(&self) -> Option<&StateRecord> {
        self.loaded.as_ref().map(|loaded| &loaded.record)
    }

    /// Returns the flash devices, for example to read counters in tests.
    pub fn flashes(&mut self) -> &mut BootFlashes<A, S, R, T> {
        &mut self.flashes
    }

    /// Consumes the driver and returns the flash devices.
    pub fn into_flashes(self) -> BootFlashes<A, S, R, T> {
        self.flashes
    }

    /// Calls [`step`](Self::step) until it returns [`Step::BootActive`] or an error.
    ///
    /// Every phase finishes in a bounded number of steps, so this returns.
    pub fn run(&mut self) -> Result<(), BootError> {
        loop {
            if self.step()? == Step::BootActive {
                return Ok(());
            }
        }
    }

    /// Carries out the next unit of work.
    pub fn step(&mut self) -> Result<Step, BootError> {
        match self.finished {
            Some(Ok(())) => return Ok(Step::BootActive),
            Some(Err(halt)) => return Err(BootError::Halted(halt)),
            None => {}
        }
        let result = self.step_inner();
        if let Err(BootError::Flash(error)) = result {
            log_warn!(
                "flash error on partition {}: restarting from flash state",
                error.partition as u8
            );
            self.loaded = None;
            self.event = None;
            self.copy = None;
        }
        result
    }

    fn step_inner(&mut self) -> Result<Step, BootError> {
        if let Some(job) = self.copy {
            self.copy_step(job)?;
            return Ok(Step::Continue(job.action));
        }

        let (loaded, event) = match (&mut self.loaded, self.event.take()) {
            (Some(loaded), Some(event)) => (loaded, event),
            (slot, _) => (
                slot.insert(self.log.load(&mut self.flashes.state)?),
                Event::PowerOn,
            ),
        };
        let action = decide(&loaded.record, &event, &self.policy);
        // The arms below copy out only the fields they need, so the record is
        // not copied whole on every step.
        match action {
            Action::WriteRecord(next) => {
                loaded.record = next;
                self.log.append(&mut self.flashes.state, loaded)?;
                log_info!(
                    "state record {} written: phase {}",
                    loaded.record.seq,
                    loaded.record.phase as u8
                );
                self.event = Some(Event::RecordWritten);
            }
            Action::VerifyStaged => {
                let (staged, floor) = (loaded.record.spare, loaded.record.security_floor);
                let result = self.verify_staged(staged, floor)?;
                if let Err(rejection) = result {
                    log_warn!("staged image rejected: reason {}", rejection as u8);
                }
                self.event = Some(Event::StagedChecked(result));
            }
            Action::BackupActive => {
                let size = size_of_image(&loaded.record.active).unwrap_or(self.policy.active_size);
                self.hasher.reset();
                self.start_copy(CopyKind::Backup, size, action, Event::BackupDone(None));
            }
            Action::InstallStaged => {
                let size = size_of_image(&loaded.record.active).unwrap_or(0);
                self.start_copy(
                    CopyKind::Install,
                    size,
                    action,
                    Event::InstallChecked(false),
                );
            }
            Action::RevertFromRecovery => {
                let size = size_of_image(&loaded.record.spare).unwrap_or(0);
                self.start_copy(CopyKind::Revert, size, action, Event::RevertChecked(false));
            }
            Action::CheckRecovery => {
                let ok = self.image_matches(Checked::Recovery, Checked::Recovery)?;
                self.event = Some(Event::RecoveryChecked(ok));
            }
            Action::CheckActive => {
                let ok = self.image_matches(Checked::Active, Checked::Active)?;
                self.event = Some(Event::ActiveChecked(ok));
            }
            Action::BootActive => {
                self.finished = Some(Ok(()));
                return Ok(Step::BootActive);
            }
            Action::Halt(halt) => {
                log_warn!("bootloader halted: reason {}", halt as u8);
                self.finished = Some(Err(halt));
                return Err(BootError::Halted(halt));
            }
        }
        Ok(Step::Continue(action))
    }

    /// Starts a copy, or feeds `failure` if `size` cannot be valid.
    fn start_copy(&mut self, kind: CopyKind, size: u32, action: Action, failure: Event) {
        let (src, dst) = self.copy_regions(kind);
        if size == 0 || size > src.part.size || size > dst.part.size {
            self.event = Some(failure);
            return;
        }
        self.copy = Some(CopyJob {
            kind,
            size,
            next: 0,
            action,
        });
    }

    fn copy_regions(&self, kind: CopyKind) -> (Region, Region) {
        match kind {
            CopyKind::Backup => (self.active, self.recovery),
            CopyKind::Install => (self.staging, self.active),
            CopyKind::Revert => (self.recovery, self.active),
        }
    }

    /// Erases and fills one destination sector; after the last one, verifies the copy.
    fn copy_step(&mut self, mut job: CopyJob) -> Result<(), FlashError> {
        let (src, dst) = self.copy_regions(job.kind);
        let flashes = &mut self.flashes;
        let mut chunk = ChunkCopy {
            buf: &mut self.buf,
            chunk: Self::chunk(),
            size: job.size,
        };
        let hasher = (job.kind == CopyKind::Backup).then_some(&mut self.hasher);
        job.next = match job.kind {
            CopyKind::Backup => chunk.sector(
                &mut flashes.active,
                src,
                &mut flashes.recovery,
                dst,
                job.next,
                hasher,
            )?,
            CopyKind::Install => chunk.sector(
                &mut flashes.staging,
                src,
                &mut flashes.active,
                dst,
                job.next,
                hasher,
            )?,
            CopyKind::Revert => chunk.sector(
                &mut flashes.recovery,
                src,
                &mut flashes.active,
                dst,
                job.next,
                hasher,
            )?,
        };
        if job.next < job.size {
            self.copy = Some(job);
            return Ok(());
        }

        self.copy = None;
        let event = match job.kind {
            CopyKind::Backup => {
                let digest = self.hasher.finish();
                let ok = self.region_matches(Checked::Recovery, job.size, &digest)?;
                Event::BackupDone(ok.then_some(digest))
            }
            // The installed copy must match the new image, which the record
            // now describes as active.
            CopyKind::Install => {
                Event::InstallChecked(self.image_matches(Checked::Active, Checked::Active)?)
            }
            // The reverted copy must match the recovery image (`spare`).
            CopyKind::Revert => {
                Event::RevertChecked(self.image_matches(Checked::Active, Checked::Recovery)?)
            }
        };
        self.event = Some(event);
        Ok(())
    }

    /// Hashes `partition` over the size of the image the record describes as
    /// `described` (`Active` for `active`, `Recovery` for `spare`) and compares
    /// it with that image's SHA-256. False if the record describes no such image.
    fn image_matches(
        &mut self,
        partition: Checked,
        described: Checked,
    ) -> Result<bool, FlashError> {
        let image = self.loaded.as_ref().and_then(|loaded| match described {
            Checked::Active => loaded.record.active.as_ref(),
            Checked::Recovery => loaded.record.spare.as_ref(),
        });
        let Some((size, digest)) = image.map(|image| (image.size, image.sha256)) else {
            return Ok(false);
        };
        self.region_matches(partition, size, &digest)
    }

    /// Hashes the first `size` bytes of `partition` and compares them with `expected`.
    fn region_matches(
        &mut self,
        partition: Checked,
        size: u32,
        expected: &[u8; 32],
    ) -> Result<bool, FlashError> {
        match partition {
            Checked::Recovery => hash_matches(
                &mut self.flashes.recovery,
                self.recovery,
                size,
                &mut self.buf,
                Self::chunk(),
                &mut self.hasher,
                expected,
            ),
            Checked::Active => hash_matches(
                &mut self.flashes.active,
                self.active,
                size,
                &mut self.buf,
                Self::chunk(),
                &mut self.hasher,
                expected,
            ),
        }
    }

    fn verify_staged(
        &mut self,
        staged: Option<ImageDescriptor>,
        security_floor: u32,
    ) -> Result<Result<(), Rejection>, FlashError> {
        let Some(staged) = staged else {
            return Ok(Err(Rejection::Missing));
        };
        if let Err(rejection) = check_descriptor(&staged, &self.policy, security_floor) {
            return Ok(Err(rejection));
        }
        if staged.size > self.evidence_offset {
            return Ok(Err(Rejection::Size));
        }
        let digest_ok = hash_matches(
            &mut self.flashes.staging,
            self.staging,
            staged.size,
            &mut self.buf,
            Self::chunk(),
            &mut self.hasher,
            &staged.sha256,
        )?;
        if !digest_ok {
            return Ok(Err(Rejection::Digest));
        }
        #[cfg(feature = "authentication")]
        if !self.authenticate(&staged)? {
            return Ok(Err(Rejection::Signature));
        }
        Ok(Ok(()))
    }

    /// Reads the evidence stored after the staged image and checks it.
    #[cfg(feature = "authentication")]
    fn authenticate(&mut self, staged: &ImageDescriptor) -> Result<bool, FlashError> {
        use crate::config::MAX_EVIDENCE_LEN;

        let Some(authenticator) = self.authenticator else {
            return Ok(false);
        };
        let mut evidence = [0u8; 2 + MAX_EVIDENCE_LEN + MAX_CHUNK as usize];
        let chunk = Self::chunk() as usize;
        self.staging.read(
            &mut self.flashes.staging,
            self.evidence_offset,
            &mut evidence[..chunk],
        )?;
        let len = u16::from_le_bytes([evidence[0], evidence[1]]) as usize;
        if len > MAX_EVIDENCE_LEN {
            return Ok(false);
        }
        let total = round_up(2 + len as u32, Self::chunk()) as usize;
        let mut at = chunk;
        while at < total {
            let offset = self.evidence_offset + at as u32;
            self.staging.read(
                &mut self.flashes.staging,
                offset,
                &mut evidence[at..at + chunk],
            )?;
            at += chunk;
        }
        Ok(authenticator
            .authenticate(staged, &evidence[2..2 + len])
            .is_ok())
    }
}

/// Returns the size of the described image, if there is one.
fn size_of_image(image: &Option<ImageDescriptor>) -> Option<u32> {
    image.as_ref().map(|image| image.size)
}

fn check_chunk<F: NorFlash>(chunk: u32, name: PartitionName) -> Result<(), ConfigError> {
    let divides = |unit: usize| unit != 0 && chunk.is_multiple_of(unit as u32);
    if !divides(F::WRITE_SIZE)
        || !divides(F::READ_SIZE)
        || !(F::ERASE_SIZE as u32).is_multiple_of(chunk)
    {
        return Err(ConfigError::UnsupportedGeometry(name));
    }
    Ok(())
}

/// Buffer and sizes for copying one destination sector at a time.
struct ChunkCopy<'b> {
    buf: &'b mut [u8; MAX_CHUNK as usize],
    chunk: u32,
    size: u32,
}

impl ChunkCopy<'_> {
    /// Erases the destination sector at `start`, copies the image bytes that fall
    /// in it chunk by chunk, and returns the offset of the next sector.
    fn sector<Src, Dst, H>(
        &mut self,
        src: &mut Src,
        src_region: Region,
        dst: &mut Dst,
        dst_region: Region,
        start: u32,
        mut hasher: Option<&mut H>,
    ) -> Result<u32, FlashError>
    where
        Src: ReadNorFlash,
        Dst: NorFlash,
        H: Sha256Hasher,
    {
        let sector = Dst::ERASE_SIZE as u32;
        let end = start + sector;
        dst_region.erase(dst, start, end)?;

        let chunk = self.chunk as usize;
        let mut at = start;
        while at < end.min(self.size) {
            let valid = (self.size - at).min(self.chunk) as usize;
            src_region.read(src, at, &mut self.buf[..chunk])?;
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&self.buf[..valid]);
            }
            let write_len = round_up(valid as u32, Dst::WRITE_SIZE as u32) as usize;
            // The last write word of the image is padded with erased bytes
            // copied from a whole-array fill. A fill of the range itself, at
            // a runtime offset, would link the generic `memset`.
            if valid < write_len {
                let erased = [0xFFu8; MAX_CHUNK as usize];
                self.buf[valid..write_len].copy_from_slice(&erased[..write_len - valid]);
            }
            dst_region.write(dst, at, &self.buf[..write_len])?;
            at += self.chunk;
        }
        Ok(end)
    }
}

/// Hashes the first `size` bytes of `region` and compares the digest with
/// `expected`; false if `size` is zero or does not fit the region.
fn hash_matches<F: ReadNorFlash, H: Sha256Hasher>(
    flash: &mut F,
    region: Region,
    size: u32,
    buf: &mut [u8; MAX_CHUNK as usize],
    chunk: u32,
    hasher: &mut H,
    expected: &[u8; 32],
) -> Result<bool, FlashError> {
    if size == 0 || size > region.part.size {
        return Ok(false);
    }
    hasher.reset();
    let mut at = 0;
    while at < size {
        let valid = (size - at).min(chunk) as usize;
        region.read(flash, at, &mut buf[..chunk as usize])?;
        hasher.update(&buf[..valid]);
        at += chunk;
    }
    Ok(hasher.finish() == *expected)
}

impl core::error::Error for BootError {}

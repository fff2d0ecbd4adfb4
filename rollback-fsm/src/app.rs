//! The application-side driver: staging, install requests, confirm, and settings.

use core::fmt;

use embedded_storage::nor_flash::NorFlash;

use crate::config::{
    evidence_area, policy, round_up, Config, ConfigError, FlashError, PartitionName, Region,
    MAX_EVIDENCE_LEN,
};
use crate::core::{begin_staging, confirm, report_failure, request_install, Policy, RequestError};
use crate::descriptor::ImageDescriptor;
use crate::log::StateLog;
use crate::record::{Phase, Rejection, RevertReason, StateRecord};
use crate::settings::{Settings, SettingsError};

/// Error returned by [`AppSide`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AppError {
    /// The current phase does not allow the request.
    Request(RequestError),
    /// A flash operation failed.
    Flash(FlashError),
    /// A settings operation failed.
    Settings(SettingsError),
    /// The staging write is outside the image, not aligned to the staging
    /// write size, or a short write that is not the image's last.
    InvalidStagingWrite {
        /// Offset of the rejected write.
        offset: u32,
        /// Length of the rejected write.
        len: usize,
    },
    /// The evidence is longer than [`MAX_EVIDENCE_LEN`] bytes.
    EvidenceTooLong {
        /// Length of the rejected evidence.
        len: usize,
    },
}

impl From<FlashError> for AppError {
    fn from(error: FlashError) -> Self {
        Self::Flash(error)
    }
}

impl From<RequestError> for AppError {
    fn from(error: RequestError) -> Self {
        Self::Request(error)
    }
}

impl From<SettingsError> for AppError {
    fn from(error: SettingsError) -> Self {
        Self::Settings(error)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(RequestError::ImageOnTrial) => f.write_str(
                "request rejected: the running image is on trial; confirm it or let it revert first",
            ),
            Self::Request(RequestError::UpdateInProgress) => {
                f.write_str("request rejected: an update is in progress; reboot to let it finish")
            }
            Self::Request(RequestError::NothingStaged) => {
                f.write_str("request rejected: no image is staged; call begin_staging first")
            }
            Self::Request(RequestError::NotOnTrial) => {
                f.write_str("request rejected: the running image is not on trial")
            }
            Self::Request(RequestError::InvalidDescriptor(rejection)) => {
                write!(f, "invalid image descriptor: {rejection:?}")
            }
            Self::Flash(error) => write!(f, "{error}"),
            Self::Settings(error) => write!(f, "{error}"),
            Self::InvalidStagingWrite { offset, len } => write!(
                f,
                "invalid staging write of {len} bytes at offset {offset}: outside the image or not aligned"
            ),
            Self::EvidenceTooLong { len } => write!(
                f,
                "evidence of {len} bytes is too long: the maximum is {MAX_EVIDENCE_LEN}"
            ),
        }
    }
}

/// State of the staging partition, as reported to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StagedImage {
    /// No image is staged.
    None,
    /// An image is being written.
    Writing(ImageDescriptor),
    /// The bootloader will verify and install this image at the next boot.
    InstallRequested(ImageDescriptor),
    /// The bootloader rejected the last staged image or abandoned the update.
    Rejected(Rejection),
}

/// Update state reported to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Status {
    /// Update phase on flash.
    pub phase: Phase,
    /// Running image, or `None` for an unknown factory image.
    pub running: Option<ImageDescriptor>,
    /// Whether this boot is a trial: confirm or report failure.
    pub on_trial: bool,
    /// Trial boots started so far, this one included.
    pub trial_boots: u8,
    /// Reason of the last revert, kept until the next install starts.
    pub last_revert: Option<RevertReason>,
    /// Staged image state.
    pub staged: StagedImage,
    /// Lowest security counter a new image may have.
    pub security_floor: u32,
}

impl Status {
    fn from_record(record: &StateRecord) -> Self {
        // The staged descriptor is matched by reference: a tuple holding it
        // by value would be one more copy of it.
        let staged = match (record.phase, &record.spare, record.rejection) {
            (Phase::Staging, Some(image), _) => StagedImage::Writing(*image),
            (Phase::InstallRequested, Some(image), _) => StagedImage::InstallRequested(*image),
            (Phase::Idle, _, Some(rejection)) => StagedImage::Rejected(rejection),
            _ => StagedImage::None,
        };
        Self {
            phase: record.phase,
            running: record.active,
            on_trial: record.phase == Phase::Trial,
            trial_boots: record.trial_boots,
            last_revert: record.revert_reason,
            staged,
            security_floor: record.security_floor,
        }
    }
}

/// An application request that changes the state record.
#[derive(Clone, Copy)]
enum Request<'a> {
    BeginStaging {
        descriptor: &'a ImageDescriptor,
        evidence: &'a [u8],
    },
    Install,
    Confirm,
    ReportFailure,
}

/// Staging progress kept in RAM.
///
/// NOTE: a reset ends the session, so staging cannot resume where it stopped.
/// The caller starts again with `begin_staging`, which erases each sector
/// again as the writes reach it.
#[derive(Debug, Clone, Copy)]
struct StagingSession {
    descriptor: ImageDescriptor,
    /// Bytes from the start of staging that are erased or written in this session.
    erased_until: u32,
}

/// The application side: staging, install requests, confirm, failure reports
/// and settings.
///
/// A typical update: [`begin_staging`](Self::begin_staging), then
/// [`write_staging`](Self::write_staging) for each chunk in order, then
/// [`request_install`](Self::request_install) and a reset. After the reset the
/// new image runs on trial and calls [`confirm`](Self::confirm) once healthy,
/// or [`report_failure`](Self::report_failure).
#[derive(Debug)]
pub struct AppSide<S, T, G> {
    staging_flash: S,
    state_flash: T,
    settings: Settings<G>,
    policy: Policy,
    staging: Region,
    log: StateLog,
    evidence_offset: u32,
    session: Option<StagingSession>,
}

impl<S: NorFlash, T: NorFlash, G: NorFlash> AppSide<S, T, G> {
    /// Creates the application-side driver, checking the layout against each device.
    pub fn new(
        config: &Config,
        staging_flash: S,
        state_flash: T,
        settings: Settings<G>,
    ) -> Result<Self, ConfigError> {
        let layout = config.layout();
        let staging = Region::new(PartitionName::Staging, layout.staging);
        staging.check(&staging_flash)?;
        let log = StateLog::new(
            Region::new(PartitionName::State, layout.state),
            &state_flash,
        )?;
        let evidence = evidence_area::<S>();
        let policy = policy(config, evidence)?;
        Ok(Self {
            staging_flash,
            state_flash,
            settings,
            policy,
            staging,
            log,
            evidence_offset: layout.staging.size - evidence,
            session: None,
        })
    }

    /// Returns the largest image `begin_staging` accepts: the smallest of the
    /// active and recovery partitions and the staging partition without its
    /// evidence area.
    pub fn max_image_size(&self) -> u32 {
        self.policy.max_image_size
    }

    /// Returns the staging device, for a caller that writes the image itself,
    /// for example to resume a download after a reset without erasing it again.
    /// Such a caller skips `write_staging`'s order and alignment checks.
    pub fn staging_flash(&mut self) -> &mut S {
        &mut self.staging_flash
    }

    /// Consumes the driver and returns the staging and state devices and the settings store.
    pub fn into_parts(self) -> (S, T, Settings<G>) {
        (self.staging_flash, self.state_flash, self.settings)
    }

    /// Reads the current state record from flash.
    ///
    /// Without a recognised record, this is the safe state
    /// ([`StateRecord::safe`]). [`status`](Self::status) returns the
    /// application's view of the same state.
    pub fn record(&mut self) -> Result<StateRecord, AppError> {
        let result = self.log.load(&mut self.state_flash);
        match &result {
            Ok(loaded) => Ok(loaded.record),
            Err(error) => Err(AppError::Flash(*error)),
        }
    }

    /// Reads the update state from flash.
    pub fn status(&mut self) -> Result<Status, AppError> {
        // Here and in the requests below, the loaded record is borrowed from
        // the result, because moving it out with `?` copies it field by
        // field, which takes more code.
        let result = self.log.load(&mut self.state_flash);
        let loaded = result.as_ref().map_err(|error| *error)?;
        Ok(Status::from_record(&loaded.record))
    }

    /// Starts staging a new image.
    ///
    /// Rejected with [`RequestError::ImageOnTrial`] while the running image is
    /// on trial, because installing another image would replace its recovery
    /// copy. With the `authentication` feature, `evidence` (the signed release
    /// manifest, at most 1 KiB) is stored after the staging area for the
    /// bootloader to check. Without it, `evidence` is ignored.
    pub fn begin_staging(
        &mut self,
        descriptor: &ImageDescriptor,
        evidence: &[u8],
    ) -> Result<(), AppError> {
        if evidence.len() > MAX_EVIDENCE_LEN {
            return Err(AppError::EvidenceTooLong {
                len: evidence.len(),
            });
        }
        self.update(Request::BeginStaging {
            descriptor,
            evidence,
        })?;
        self.session = Some(StagingSession {
            descriptor: *descriptor,
            erased_until: 0,
        });
        Ok(())
    }

    /// Loads the current record, applies `request` to it in place and, if
    /// the record changed, appends it to the state log.
    ///
    /// The four requests share this path, so the firmware has one copy of
    /// the load, the append and their error mapping.
    fn update(&mut self, request: Request<'_>) -> Result<(), AppError> {
        // The loaded record is borrowed from the result, because moving it
        // out with `?` copies it field by field, which takes more code.
        let mut result = self.log.load(&mut self.state_flash);
        let loaded = result.as_mut().map_err(|error| *error)?;
        let record = &mut loaded.record;
        let changed = match request {
            Request::BeginStaging { descriptor, .. } => {
                begin_staging(record, descriptor, &self.policy)
            }
            Request::Install => request_install(record),
            Request::Confirm => confirm(record),
            Request::ReportFailure => report_failure(record),
        }?;
        if !changed {
            return Ok(());
        }
        if let Request::BeginStaging {
            descriptor,
            evidence,
        } = request
        {
            // `begin_staging` has checked the size against the policy's
            // `max_image_size`, which `AppSide::new` caps at
            // `evidence_offset`, so the image ends before the evidence.
            debug_assert!(descriptor.size <= self.evidence_offset);
            self.session = None;
            self.write_evidence(evidence)?;
        }
        self.log.append(&mut self.state_flash, loaded)?;
        Ok(())
    }

    #[cfg(feature = "authentication")]
    fn write_evidence(&mut self, evidence: &[u8]) -> Result<(), FlashError> {
        let start = self.evidence_offset;
        let end = self.staging.part.size;
        self.staging.erase(&mut self.staging_flash, start, end)?;

        // A two-byte length, then the evidence, written in pieces of whole
        // write words, so no copy of the whole evidence is made on the stack.
        let write_size = S::WRITE_SIZE as u32;
        let piece = (crate::config::MAX_CHUNK / write_size * write_size) as usize;
        let length = (evidence.len() as u16).to_le_bytes();
        let mut bytes = length.iter().chain(evidence).copied();
        let total = 2 + evidence.len();
        let mut buf = [0xFFu8; crate::config::MAX_CHUNK as usize];
        let mut done = 0;
        while done < total {
            let n = (total - done).min(piece);
            for (slot, byte) in buf[..n].iter_mut().zip(&mut bytes) {
                *slot = byte;
            }
            let padded = round_up(n as u32, write_size) as usize;
            buf[n..padded].fill(0xFF);
            self.staging
                .write(&mut self.staging_flash, start + done as u32, &buf[..padded])?;
            done += n;
        }
        Ok(())
    }

    #[cfg(not(feature = "authentication"))]
    fn write_evidence(&mut self, _evidence: &[u8]) -> Result<(), FlashError> {
        Ok(())
    }

    /// Writes `data` at `offset` of the staged image, erasing sectors first as
    /// the write reaches them.
    ///
    /// Chunks must come in increasing order of offset, start at a multiple of
    /// the staging write size and, except for the last chunk of the image, be
    /// a multiple of it in length.
    pub fn write_staging(&mut self, offset: u32, data: &[u8]) -> Result<(), AppError> {
        let session = self.session.ok_or(RequestError::NothingStaged)?;
        let write_size = S::WRITE_SIZE as u32;
        let end = offset as u64 + data.len() as u64;
        let invalid = AppError::InvalidStagingWrite {
            offset,
            len: data.len(),
        };
        if end > session.descriptor.size as u64 || !offset.is_multiple_of(write_size) {
            return Err(invalid);
        }
        let end = end as u32;
        if !(data.len() as u32).is_multiple_of(write_size) && end != session.descriptor.size {
            return Err(invalid);
        }

        let sector = S::ERASE_SIZE as u32;
        let mut erased_until = session.erased_until;
        while erased_until < end {
            self.staging
                .erase(&mut self.staging_flash, erased_until, erased_until + sector)?;
            erased_until += sector;
            self.set_erased_until(erased_until);
        }

        let aligned = data.len() / write_size as usize * write_size as usize;
        if aligned > 0 {
            self.staging
                .write(&mut self.staging_flash, offset, &data[..aligned])?;
        }
        if aligned < data.len() {
            let mut tail = [0xFFu8; 256];
            let rest = data.len() - aligned;
            tail[..rest].copy_from_slice(&data[aligned..]);
            let at = offset + aligned as u32;
            self.staging
                .write(&mut self.staging_flash, at, &tail[..write_size as usize])?;
        }
        Ok(())
    }

    /// Erases staging sector `index` ahead of the writes, so erasing can be spread
    /// over calls with bounded work.
    ///
    /// Only the next sector that [`write_staging`](Self::write_staging) would
    /// erase is accepted; earlier sectors already hold staged data.
    pub fn erase_staging_sector(&mut self, index: u32) -> Result<(), AppError> {
        let session = self.session.ok_or(RequestError::NothingStaged)?;
        let sector = S::ERASE_SIZE as u32;
        let image_end = round_up(session.descriptor.size, sector);
        let start = index.saturating_mul(sector);
        if start != session.erased_until || start >= image_end {
            return Err(AppError::InvalidStagingWrite {
                offset: start,
                len: sector as usize,
            });
        }
        self.staging
            .erase(&mut self.staging_flash, start, start + sector)?;
        self.set_erased_until(start + sector);
        Ok(())
    }

    fn set_erased_until(&mut self, erased_until: u32) {
        if let Some(session) = self.session.as_mut() {
            session.erased_until = erased_until;
        }
    }

    /// Marks the staged image for installation at the next boot.
    ///
    /// The bootloader checks size, SHA-256, target type, security counter and,
    /// with the `authentication` feature, the evidence before it touches the active
    /// partition.
    pub fn request_install(&mut self) -> Result<(), AppError> {
        self.update(Request::Install)?;
        self.session = None;
        Ok(())
    }

    /// Confirms the running trial image; it is never reverted afterwards.
    ///
    /// Does nothing if the image is already confirmed. Raises the security
    /// floor to the image's security counter.
    pub fn confirm(&mut self) -> Result<(), AppError> {
        self.update(Request::Confirm)
    }

    /// Reports the running trial image as unhealthy: the next boot reverts it.
    pub fn report_failure(&mut self) -> Result<(), AppError> {
        self.update(Request::ReportFailure)
    }

    /// Reads setting `key` into `buf`; see [`Settings::read`].
    pub fn read_setting(&mut self, key: u16, buf: &mut [u8]) -> Result<Option<usize>, AppError> {
        Ok(self.settings.read(key, buf)?)
    }

    /// Writes setting `key`; see [`Settings::write`].
    pub fn write_setting(&mut self, key: u16, value: &[u8]) -> Result<(), AppError> {
        Ok(self.settings.write(key, value)?)
    }
}

impl core::error::Error for AppError {}

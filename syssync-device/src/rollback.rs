//! [`BootControl`] for `rollback-fsm`'s application side (feature `rollback-fsm`).
//!
//! [`RollbackFsmBoot`] owns a `rollback_fsm::AppSide` over the staging, state
//! and settings flash devices, opened once. Staging writes and erases go
//! straight to the staging partition, because `AppSide` keeps its
//! staging progress in RAM and starts erasing from the first sector again
//! after a reset, which would destroy the chunks a resumed download keeps.
//! Installation, confirm, failure reports and settings go through `AppSide`.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use rollback_fsm::{
    AppError, AppSide, Config, ConfigError, ImageDescriptor, Partition, Phase, Settings,
};
use syssync_proto::{RevertReason, SignedManifest, Version, MAX_SIGNED_MANIFEST_LEN};

use crate::boot::{BootControl, BootPhase, BootStatus, RunningImage, StagedImage};

/// Error of a `rollback-fsm` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackFsmError {
    /// `AppSide` refused the request or its flash failed.
    App(AppError),
    /// The layout does not fit a flash device.
    Config(ConfigError),
    /// A direct staging access failed.
    Staging(NorFlashErrorKind),
    /// The staging access is outside the staging partition.
    OutOfRange,
    /// `AppSide` cannot withdraw an install request; the next boot installs the image.
    CannotCancelInstall,
    /// The target type of the image is not a valid `rollback-fsm` target type.
    InvalidTarget,
    /// The signed manifest does not fit the evidence area.
    EvidenceTooLong,
}

impl core::fmt::Display for RollbackFsmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RollbackFsmError::App(error) => write!(f, "rollback-fsm application side: {error}"),
            RollbackFsmError::Config(error) => write!(f, "rollback-fsm layout: {error}"),
            RollbackFsmError::Staging(kind) => write!(f, "staging flash access failed: {kind:?}"),
            RollbackFsmError::OutOfRange => {
                f.write_str("staging access outside the staging partition")
            }
            RollbackFsmError::CannotCancelInstall => f.write_str(
                "an install request cannot be withdrawn; the next boot installs the image",
            ),
            RollbackFsmError::InvalidTarget => {
                f.write_str("the image's target type is not a valid rollback-fsm target type")
            }
            RollbackFsmError::EvidenceTooLong => {
                f.write_str("the signed manifest does not fit the evidence area of staging")
            }
        }
    }
}

impl core::error::Error for RollbackFsmError {}

impl From<AppError> for RollbackFsmError {
    fn from(error: AppError) -> Self {
        RollbackFsmError::App(error)
    }
}

impl From<ConfigError> for RollbackFsmError {
    fn from(error: ConfigError) -> Self {
        RollbackFsmError::Config(error)
    }
}

/// The boot side of `rollback-fsm`, as the engine uses it.
#[derive(Debug)]
pub struct RollbackFsmBoot<S, T, G> {
    /// Staging partition of the layout, for the direct staging accesses.
    staging: Partition,
    /// The application side, opened once: it checks the layout when it is
    /// built, and each request then reads the state from flash again.
    app: AppSide<S, T, G>,
}

fn version(version: rollback_fsm::Version) -> Version {
    Version::new(version.major, version.minor, version.patch, version.build)
}

impl<S: NorFlash, T: NorFlash, G: NorFlash> RollbackFsmBoot<S, T, G> {
    /// Wraps the application side's flash devices; `config` must be the one
    /// the bootloader uses.
    pub fn new(
        config: Config,
        staging: S,
        state: T,
        settings: G,
        settings_partition: Partition,
    ) -> Result<Self, RollbackFsmError> {
        let settings = Settings::new(settings, settings_partition)?;
        let app = AppSide::new(&config, staging, state, settings)?;
        Ok(RollbackFsmBoot {
            staging: config.layout().staging,
            app,
        })
    }

    /// Returns the flash devices: staging, state and settings.
    pub fn into_parts(self) -> (S, T, G) {
        let (staging, state, settings) = self.app.into_parts();
        (staging, state, settings.into_inner())
    }

    fn staging_address(&self, offset: u32, len: usize) -> Result<u32, RollbackFsmError> {
        let partition = self.staging;
        // `offset + len <= size` without an addition that could overflow,
        // and in the pointer width instead of 64 bits.
        let size = partition.size as usize;
        if len > size || offset as usize > size - len {
            return Err(RollbackFsmError::OutOfRange);
        }
        Ok(partition.offset + offset)
    }
}

impl<S: NorFlash, T: NorFlash, G: NorFlash> BootControl for RollbackFsmBoot<S, T, G> {
    type Error = RollbackFsmError;

    // Without rollback-fsm's `authentication` feature the manifest is not stored.
    const STORES_EVIDENCE: bool = rollback_fsm::STORES_EVIDENCE;

    fn status(&mut self) -> Result<BootStatus, RollbackFsmError> {
        // The record is read rather than `AppSide::status`, which copies
        // both descriptors into a `Status`. It is borrowed from the result,
        // because moving it out with `?` copies it field by field.
        let result = self.app.record();
        let record = match &result {
            Ok(record) => record,
            Err(error) => return Err(RollbackFsmError::App(*error)),
        };
        let phase = match record.phase {
            Phase::Idle => BootPhase::Idle,
            Phase::Staging => BootPhase::Staging,
            Phase::InstallRequested | Phase::Backup | Phase::Install => BootPhase::InstallRequested,
            Phase::Trial => BootPhase::Trial,
            Phase::Revert => BootPhase::RevertRequested,
        };
        let last_revert = record.revert_reason.map(|reason| match reason {
            rollback_fsm::RevertReason::TrialLimit => RevertReason::TRIAL_LIMIT,
            rollback_fsm::RevertReason::ApplicationReportedFailure => {
                RevertReason::APPLICATION_FAILURE
            }
            rollback_fsm::RevertReason::InstallVerifyFailed => RevertReason::VERIFICATION_FAILED,
        });
        Ok(BootStatus {
            phase,
            running: record.active.as_ref().map(|image| RunningImage {
                version: version(image.version),
                size: image.size,
                sha256: image.sha256,
            }),
            security_floor: record.security_floor,
            last_revert,
            // `AppSide::status` reports a rejection in phase `Idle` only.
            last_install_rejected: record.phase == Phase::Idle && record.rejection.is_some(),
        })
    }

    fn staging_capacity(&self) -> u32 {
        self.app.max_image_size()
    }

    fn staging_erase_size(&self) -> u32 {
        S::ERASE_SIZE as u32
    }

    fn staging_write_size(&self) -> u32 {
        S::WRITE_SIZE as u32
    }

    fn begin_staging(
        &mut self,
        image: &StagedImage,
        manifest: &SignedManifest<'_>,
    ) -> Result<(), RollbackFsmError> {
        let descriptor = ImageDescriptor {
            size: image.size,
            sha256: image.sha256,
            target_type: rollback_fsm::TargetType::new(image.target.as_str())
                .map_err(|_| RollbackFsmError::InvalidTarget)?,
            version: rollback_fsm::Version::new(
                image.version.major,
                image.version.minor,
                image.version.patch,
                image.version.build,
            ),
            security_counter: image.security_counter,
        };
        let app = &mut self.app;
        // The record is matched by reference, as in `status`.
        match &app.record() {
            // The same image after a reset: keep what is staged. The staged
            // descriptor is compared by reference, so it is not copied.
            Ok(record)
                if record.phase == Phase::Staging && record.spare.as_ref() == Some(&descriptor) =>
            {
                return Ok(())
            }
            Ok(_) => {}
            Err(error) => return Err(RollbackFsmError::App(*error)),
        }
        // The signed manifest is the evidence that a bootloader built with
        // rollback-fsm's `authentication` feature checks. Without the
        // feature rollback-fsm ignores it, so it is not encoded.
        let mut evidence = [0u8; MAX_SIGNED_MANIFEST_LEN];
        let evidence: &[u8] = if rollback_fsm::STORES_EVIDENCE {
            manifest
                .encode(&mut evidence)
                .map_err(|_| RollbackFsmError::EvidenceTooLong)?
        } else {
            &[]
        };
        Ok(app.begin_staging(&descriptor, evidence)?)
    }

    fn erase_staging(&mut self, offset: u32) -> Result<(), RollbackFsmError> {
        let address = self.staging_address(offset, S::ERASE_SIZE)?;
        self.app
            .staging_flash()
            .erase(address, address + S::ERASE_SIZE as u32)
            .map_err(|error| RollbackFsmError::Staging(error.kind()))
    }

    fn write_staging(&mut self, offset: u32, data: &[u8]) -> Result<(), RollbackFsmError> {
        let address = self.staging_address(offset, data.len())?;
        self.app
            .staging_flash()
            .write(address, data)
            .map_err(|error| RollbackFsmError::Staging(error.kind()))
    }

    fn read_staging(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), RollbackFsmError> {
        let address = self.staging_address(offset, buf.len())?;
        self.app
            .staging_flash()
            .read(address, buf)
            .map_err(|error| RollbackFsmError::Staging(error.kind()))
    }

    fn request_install(&mut self) -> Result<(), RollbackFsmError> {
        Ok(self.app.request_install()?)
    }

    fn cancel_staging(&mut self) -> Result<(), RollbackFsmError> {
        match &self.app.record() {
            // A requested install, reported by `AppSide::status` as
            // `StagedImage::InstallRequested`, cannot be withdrawn.
            Ok(record) if record.phase == Phase::InstallRequested && record.spare.is_some() => {
                Err(RollbackFsmError::CannotCancelInstall)
            }
            // A staging phase boots the running image; the next job's
            // `begin_staging` replaces the descriptor.
            Ok(_) => Ok(()),
            Err(error) => Err(RollbackFsmError::App(*error)),
        }
    }

    fn confirm(&mut self) -> Result<(), RollbackFsmError> {
        Ok(self.app.confirm()?)
    }

    fn report_failure(&mut self) -> Result<(), RollbackFsmError> {
        Ok(self.app.report_failure()?)
    }

    fn read_setting(
        &mut self,
        key: u16,
        buf: &mut [u8],
    ) -> Result<Option<usize>, RollbackFsmError> {
        Ok(self.app.read_setting(key, buf)?)
    }

    fn write_setting(&mut self, key: u16, value: &[u8]) -> Result<(), RollbackFsmError> {
        Ok(self.app.write_setting(key, value)?)
    }
}

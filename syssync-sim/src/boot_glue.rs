//! The board support that connects `syssync-device`'s [`BootControl`] to
//! `rollback-fsm`'s application side, as a firmware integrator writes it.
//!
//! State changes (begin staging, request install, confirm, report failure)
//! and settings go through [`rollback_fsm::AppSide`]. The staged bytes are
//! erased, written and read directly on the staging flash. The engine
//! resumes a download after a reset at the next missing chunk and relocates
//! a sector after a torn write, but `AppSide::write_staging` keeps its erase
//! position in RAM and accepts writes only in order within one boot. The bootloader checks size and SHA-256 of the staged image
//! before it installs it, so a wrong byte is caught either way.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use rollback_fsm::{AppSide, ImageDescriptor, Partition, Phase, Settings, StagedImage as Staged};
use syssync_device::boot::{BootControl, BootPhase, BootStatus, RunningImage, StagedImage};
use syssync_proto::{RevertReason, Version};

use crate::device_node::DeviceFlashes;
use crate::flash::SharedFlash;

/// Error of a boot-side call.
#[derive(Debug)]
pub enum BootGlueError {
    /// The application side rejected the request or its flash failed.
    App(rollback_fsm::AppError),
    /// A staging flash operation failed.
    Flash(flash_sim::FlashSimError),
    /// The offset or length is outside the staging partition.
    OutOfRange,
    /// A value cannot be represented in the bootloader's format.
    Invalid,
}

/// [`BootControl`] over rollback-fsm's application side on simulated flash.
pub struct RollbackBoot<const E: usize> {
    app: AppSide<SharedFlash<E>, SharedFlash<E>, SharedFlash<E>>,
    staging: SharedFlash<E>,
    staging_size: u32,
    /// The last status read from flash. Only the calls of this type change the
    /// state log while the application runs, so each of them drops the cache.
    status: Option<BootStatus>,
}

impl<const E: usize> RollbackBoot<E> {
    /// Builds the boot side over the device's flashes, after each reset.
    pub fn new(
        config: &rollback_fsm::Config,
        flashes: &DeviceFlashes<E>,
        settings_size: u32,
    ) -> Result<Self, BootGlueError> {
        let settings = Settings::new(flashes.settings.clone(), Partition::new(0, settings_size))
            .map_err(|_| BootGlueError::Invalid)?;
        let app = AppSide::new(
            config,
            flashes.staging.clone(),
            flashes.state.clone(),
            settings,
        )
        .map_err(|_| BootGlueError::Invalid)?;
        Ok(Self {
            app,
            staging: flashes.staging.clone(),
            staging_size: config.layout().staging.size,
            status: None,
        })
    }

    fn check_range(&self, offset: u32, len: usize) -> Result<(), BootGlueError> {
        let end = u64::from(offset) + len as u64;
        if end > u64::from(self.staging_size) {
            return Err(BootGlueError::OutOfRange);
        }
        Ok(())
    }
}

fn phase(phase: Phase) -> BootPhase {
    match phase {
        Phase::Idle => BootPhase::Idle,
        Phase::Staging => BootPhase::Staging,
        Phase::InstallRequested | Phase::Backup | Phase::Install => BootPhase::InstallRequested,
        Phase::Trial => BootPhase::Trial,
        Phase::Revert => BootPhase::RevertRequested,
    }
}

fn revert_reason(reason: rollback_fsm::RevertReason) -> RevertReason {
    match reason {
        rollback_fsm::RevertReason::TrialLimit => RevertReason::TRIAL_LIMIT,
        rollback_fsm::RevertReason::ApplicationReportedFailure => RevertReason::APPLICATION_FAILURE,
        rollback_fsm::RevertReason::InstallVerifyFailed => RevertReason::VERIFICATION_FAILED,
    }
}

impl<const E: usize> BootControl for RollbackBoot<E> {
    type Error = BootGlueError;

    fn status(&mut self) -> Result<BootStatus, Self::Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.app.status().map_err(BootGlueError::App)?;
        let status = BootStatus {
            phase: phase(status.phase),
            running: status.running.map(|image| RunningImage {
                version: Version::new(
                    image.version.major,
                    image.version.minor,
                    image.version.patch,
                    image.version.build,
                ),
                size: image.size,
                sha256: image.sha256,
            }),
            security_floor: status.security_floor,
            last_revert: status.last_revert.map(revert_reason),
            last_install_rejected: matches!(status.staged, Staged::Rejected(_)),
        };
        self.status = Some(status);
        Ok(status)
    }

    fn staging_capacity(&self) -> u32 {
        self.staging_size
    }

    fn staging_erase_size(&self) -> u32 {
        E as u32
    }

    fn staging_write_size(&self) -> u32 {
        <SharedFlash<E> as NorFlash>::WRITE_SIZE as u32
    }

    fn begin_staging(&mut self, image: &StagedImage) -> Result<(), Self::Error> {
        let target = rollback_fsm::TargetType::new(image.target.as_str())
            .map_err(|_| BootGlueError::Invalid)?;
        let descriptor = ImageDescriptor {
            size: image.size,
            sha256: image.sha256,
            target_type: target,
            version: rollback_fsm::Version::new(
                image.version.major,
                image.version.minor,
                image.version.patch,
                image.version.build,
            ),
            security_counter: image.security_counter,
        };
        self.status = None;
        self.app
            .begin_staging(&descriptor, &[])
            .map_err(BootGlueError::App)
    }

    fn erase_staging(&mut self, offset: u32) -> Result<(), Self::Error> {
        self.check_range(offset, E)?;
        self.staging
            .erase(offset, offset + E as u32)
            .map_err(BootGlueError::Flash)
    }

    fn write_staging(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        self.check_range(offset, data.len())?;
        self.staging
            .write(offset, data)
            .map_err(BootGlueError::Flash)
    }

    fn read_staging(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.check_range(offset, buf.len())?;
        self.staging.read(offset, buf).map_err(BootGlueError::Flash)
    }

    fn request_install(&mut self) -> Result<(), Self::Error> {
        self.status = None;
        self.app.request_install().map_err(BootGlueError::App)
    }

    fn cancel_staging(&mut self) -> Result<(), Self::Error> {
        // NOTE: rollback-fsm's application side has no call that returns from
        // `Staging` to `Idle`. Leaving the record in `Staging` is safe, because
        // the bootloader boots the active image in that phase and the next
        // `begin_staging` replaces the descriptor.
        Ok(())
    }

    fn confirm(&mut self) -> Result<(), Self::Error> {
        self.status = None;
        self.app.confirm().map_err(BootGlueError::App)
    }

    fn report_failure(&mut self) -> Result<(), Self::Error> {
        self.status = None;
        self.app.report_failure().map_err(BootGlueError::App)
    }

    fn read_setting(&mut self, key: u16, buf: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        self.app.read_setting(key, buf).map_err(BootGlueError::App)
    }

    fn write_setting(&mut self, key: u16, value: &[u8]) -> Result<(), Self::Error> {
        self.app
            .write_setting(key, value)
            .map_err(BootGlueError::App)
    }
}

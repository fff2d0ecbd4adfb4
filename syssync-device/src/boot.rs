//! The boot side as the engine sees it: staging, install, confirm, revert and
//! settings.
//!
//! [`BootControl`] is small on purpose so that any bootloader can carry it. The
//! settings it stores (identity, keys, the replay counter reservation) live in
//! a region that updates never touch.

use core::fmt;

use syssync_proto::{RevertReason, Sha256Digest, SignedManifest, TargetType, Version};

/// The image the device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningImage {
    /// Release version of the image.
    pub version: Version,
    /// Size in bytes.
    pub size: u32,
    /// SHA-256 of the image bytes.
    pub sha256: Sha256Digest,
}

/// What the boot side is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BootPhase {
    /// The running image is confirmed; nothing is staged.
    Idle,
    /// An image is being written into staging.
    Staging,
    /// The next boot verifies and installs the staged image.
    InstallRequested,
    /// The running image is on trial: confirm it or report failure.
    Trial,
    /// The next boot reverts to the previous image.
    RevertRequested,
}

/// The boot side's state, read at construction and after every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootStatus {
    /// Current phase.
    pub phase: BootPhase,
    /// The running image, or `None` for an unknown factory image.
    pub running: Option<RunningImage>,
    /// The anti-rollback counter the device has committed to.
    pub security_floor: u32,
    /// Why the last update was reverted, until the next one starts.
    pub last_revert: Option<RevertReason>,
    /// Whether the bootloader rejected the last staged image without installing it.
    pub last_install_rejected: bool,
}

/// Description of an image to stage, taken from the signed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedImage {
    /// Size in bytes.
    pub size: u32,
    /// SHA-256 of the image bytes.
    pub sha256: Sha256Digest,
    /// Hardware type the image is built for.
    pub target: TargetType,
    /// Release version.
    pub version: Version,
    /// Anti-rollback counter of the release.
    pub security_counter: u32,
}

/// Keys of the settings the engine reads and writes through [`BootControl`].
pub mod setting {
    /// Device id, 8 bytes little-endian.
    pub const DEVICE_ID: u16 = 0x5301;
    /// Device key, 32 bytes.
    pub const DEVICE_KEY: u16 = 0x5302;
    /// Target type, 1 to 32 bytes of UTF-8.
    pub const TARGET_TYPE: u16 = 0x5303;
    /// Account for automatic registration, 8 bytes little-endian.
    pub const ACCOUNT: u16 = 0x5304;
    /// Claim token for automatic registration, 1 to 64 bytes.
    pub const CLAIM_TOKEN: u16 = 0x5305;
    /// Highest replay counter reserved so far, 4 bytes little-endian. Written by the engine.
    pub const COUNTER_RESERVED: u16 = 0x5306;
}

/// The operations the engine needs from the boot side.
///
/// Staging writes may arrive in any order of sectors after a reset: the engine
/// resumes a download where its journal says, and erases a staging sector
/// (with [`erase_staging`](Self::erase_staging)) before the first write into it.
pub trait BootControl {
    /// Error of the underlying flash or state machine.
    type Error: fmt::Debug;

    /// Reads the boot side's state.
    fn status(&mut self) -> Result<BootStatus, Self::Error>;

    /// Returns the largest image the staging partition holds, in bytes.
    fn staging_capacity(&self) -> u32;

    /// Returns the erase size of the staging partition, in bytes.
    fn staging_erase_size(&self) -> u32;

    /// Returns the write size of the staging partition, in bytes.
    fn staging_write_size(&self) -> u32;

    /// Whether [`begin_staging`](Self::begin_staging) keeps the signed
    /// manifest. When it is `false`, the engine does not read the stored
    /// manifest back from flash to start staging, and passes one with an
    /// empty body, key id 0 and an all-zero signature instead.
    const STORES_EVIDENCE: bool = true;

    /// Starts staging `image`, or continues staging it after a reset.
    ///
    /// `manifest` is the signed release manifest the engine accepted for the
    /// job. A bootloader that authenticates images keeps it next to the
    /// staged image (for rollback-fsm, the evidence its `authentication`
    /// feature checks); others can ignore it and set
    /// [`STORES_EVIDENCE`](Self::STORES_EVIDENCE) to `false`.
    fn begin_staging(
        &mut self,
        image: &StagedImage,
        manifest: &SignedManifest<'_>,
    ) -> Result<(), Self::Error>;

    /// Erases the staging sector that starts at `offset`.
    fn erase_staging(&mut self, offset: u32) -> Result<(), Self::Error>;

    /// Writes `data` at `offset` of staging; `offset` and `data.len()` are
    /// multiples of the write size.
    fn write_staging(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error>;

    /// Reads staging bytes at `offset`.
    fn read_staging(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Asks the bootloader to install the staged image at the next boot.
    fn request_install(&mut self) -> Result<(), Self::Error>;

    /// Gives up the staged image (staging or install requested); the next boot
    /// boots the running image.
    fn cancel_staging(&mut self) -> Result<(), Self::Error>;

    /// Makes the running trial image permanent.
    fn confirm(&mut self) -> Result<(), Self::Error>;

    /// Reports the running trial image as failed: the next boot reverts it.
    fn report_failure(&mut self) -> Result<(), Self::Error>;

    /// Reads setting `key` into `buf`; returns its length, or `None` if it is not set.
    fn read_setting(&mut self, key: u16, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;

    /// Writes setting `key`, power-safe: after a reset either the old or the new value is read.
    fn write_setting(&mut self, key: u16, value: &[u8]) -> Result<(), Self::Error>;
}

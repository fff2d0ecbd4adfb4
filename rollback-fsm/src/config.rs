//! Partition layout, configuration and its checks.

use core::fmt;

use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind};

use crate::core::Policy;
use crate::descriptor::TargetType;
use crate::record::RECORD_LEN;

/// Largest copy chunk in bytes; also the largest supported write and read size.
pub(crate) const MAX_CHUNK: u32 = 256;

/// Default number of trial boots before an unconfirmed image is reverted.
pub const DEFAULT_TRIAL_BOOTS: u8 = 3;

/// Largest evidence (signed manifest) stored with a staged image, in bytes.
pub const MAX_EVIDENCE_LEN: usize = 1664;

/// Whether [`crate::AppSide::begin_staging`] stores its evidence: true with
/// the `authentication` feature. Without it the evidence is ignored, so a
/// caller need not build it.
pub const STORES_EVIDENCE: bool = cfg!(feature = "authentication");

/// Names a partition in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PartitionName {
    /// Partition the application executes from.
    Active,
    /// Partition the new image is downloaded into.
    Staging,
    /// Copy of the image that ran before the update.
    Recovery,
    /// State record log.
    State,
    /// Settings store.
    Settings,
}

/// A byte range of one flash device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Partition {
    /// Start offset in the device, in bytes.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

impl Partition {
    /// Creates a partition.
    pub const fn new(offset: u32, size: u32) -> Self {
        Self { offset, size }
    }
}

/// Partition ranges, each on its own flash object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layout {
    /// Active partition.
    pub active: Partition,
    /// Staging partition; with the `authentication` feature its last sectors hold the evidence.
    pub staging: Partition,
    /// Recovery partition; at least as large as the active partition.
    pub recovery: Partition,
    /// State partition; at least two sectors.
    pub state: Partition,
}

/// Error returned when a configuration or layout cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// The trial boot count is zero.
    ZeroTrialBoots,
    /// The target type is empty or longer than 32 bytes.
    InvalidTargetType,
    /// The partition is empty.
    EmptyPartition(PartitionName),
    /// The partition offset or size is not a multiple of the device's erase size.
    NotAligned(PartitionName),
    /// The partition ends beyond the device's capacity.
    OutOfBounds(PartitionName),
    /// The device's write or read size is above 256 bytes or does not divide the copy chunk.
    UnsupportedGeometry(PartitionName),
    /// The state partition has fewer than two sectors or a sector cannot hold a record.
    StateTooSmall,
    /// The recovery partition is smaller than the active partition.
    RecoveryTooSmall,
    /// The staging partition has no room for an image next to the evidence area.
    StagingTooSmall,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroTrialBoots => f.write_str("invalid trial boot count 0: expected 1 to 255"),
            Self::InvalidTargetType => f.write_str("invalid target type: expected 1 to 32 bytes"),
            Self::EmptyPartition(p) => write!(f, "{p:?} partition is empty"),
            Self::NotAligned(p) => write!(
                f,
                "{p:?} partition offset or size is not a multiple of the erase size"
            ),
            Self::OutOfBounds(p) => write!(f, "{p:?} partition ends beyond the flash capacity"),
            Self::UnsupportedGeometry(p) => write!(
                f,
                "{p:?} flash write or read size is above 256 or does not divide the copy chunk"
            ),
            Self::StateTooSmall => f.write_str(
                "state partition needs at least 2 sectors, each large enough for one record",
            ),
            Self::RecoveryTooSmall => {
                f.write_str("recovery partition is smaller than the active partition")
            }
            Self::StagingTooSmall => {
                f.write_str("staging partition has no room for an image next to the evidence area")
            }
        }
    }
}

/// Checked configuration shared by [`crate::BootSide`] and [`crate::AppSide`].
///
/// The bootloader and the application must use the same configuration and the
/// same crate features, because the evidence area exists only with
/// `authentication` (which `signature` turns on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    pub(crate) layout: Layout,
    pub(crate) target_type: TargetType,
    pub(crate) trial_boots: u8,
}

impl Config {
    /// Creates a configuration with [`DEFAULT_TRIAL_BOOTS`] trial boots.
    ///
    /// Sizes that need no flash geometry are checked here; the drivers check the
    /// rest against their flash devices when they are built.
    ///
    /// A firmware with a fixed layout can do this check at build time, where
    /// it costs no code:
    ///
    /// ```
    /// use rollback_fsm::{Config, Layout, Partition};
    ///
    /// const CONFIG: Config = match Config::try_new(
    ///     Layout {
    ///         active: Partition::new(0x0000_8000, 0x0003_8000),
    ///         staging: Partition::new(0x0004_0000, 0x0003_8000),
    ///         recovery: Partition::new(0x0000_0000, 0x0003_8000),
    ///         state: Partition::new(0x0007_8000, 0x0000_8000),
    ///     },
    ///     "sensor-v2",
    /// ) {
    ///     Ok(config) => config,
    ///     Err(_) => panic!("invalid partition layout"),
    /// };
    /// assert_eq!(CONFIG.trial_boots(), 3);
    /// ```
    pub const fn try_new(layout: Layout, target_type: &str) -> Result<Self, ConfigError> {
        let target_type = match TargetType::new(target_type) {
            Ok(target_type) => target_type,
            Err(_) => return Err(ConfigError::InvalidTargetType),
        };
        // One check per partition rather than a loop over an array of them,
        // so a call with a constant layout at run time folds to nothing.
        if layout.active.size == 0 {
            return Err(ConfigError::EmptyPartition(PartitionName::Active));
        }
        if layout.staging.size == 0 {
            return Err(ConfigError::EmptyPartition(PartitionName::Staging));
        }
        if layout.recovery.size == 0 {
            return Err(ConfigError::EmptyPartition(PartitionName::Recovery));
        }
        if layout.state.size == 0 {
            return Err(ConfigError::EmptyPartition(PartitionName::State));
        }
        if layout.recovery.size < layout.active.size {
            return Err(ConfigError::RecoveryTooSmall);
        }
        Ok(Self {
            layout,
            target_type,
            trial_boots: DEFAULT_TRIAL_BOOTS,
        })
    }

    /// Sets the number of trial boots (1 to 255) an unconfirmed image gets.
    pub const fn with_trial_boots(mut self, trial_boots: u8) -> Result<Self, ConfigError> {
        if trial_boots == 0 {
            return Err(ConfigError::ZeroTrialBoots);
        }
        self.trial_boots = trial_boots;
        Ok(self)
    }

    /// Returns the partition layout.
    pub const fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Returns the number of trial boots.
    pub const fn trial_boots(&self) -> u8 {
        self.trial_boots
    }
}

/// Error from a flash operation, with the partition it happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashError {
    /// Partition the operation was on.
    pub partition: PartitionName,
    /// Failure kind reported by the flash driver.
    pub kind: NorFlashErrorKind,
}

#[cfg(feature = "defmt")]
impl defmt::Format for FlashError {
    fn format(&self, f: defmt::Formatter<'_>) {
        // `NorFlashErrorKind` has no `defmt::Format`, so it is logged by name.
        let kind = match self.kind {
            NorFlashErrorKind::NotAligned => "not aligned",
            NorFlashErrorKind::OutOfBounds => "out of bounds",
            _ => "other",
        };
        defmt::write!(f, "FlashError({}, {=str})", self.partition, kind)
    }
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flash operation on the {:?} partition failed: {}",
            self.partition, self.kind
        )
    }
}

/// A partition bound to its name, with bounds-checked access to a flash device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub(crate) name: PartitionName,
    pub(crate) part: Partition,
}

impl Region {
    pub(crate) fn new(name: PartitionName, part: Partition) -> Self {
        Self { name, part }
    }

    fn error(&self, kind: NorFlashErrorKind) -> FlashError {
        FlashError {
            partition: self.name,
            kind,
        }
    }

    fn absolute(&self, offset: u32, len: usize) -> Result<u32, FlashError> {
        // `offset + len <= size` without an addition that could overflow,
        // and in the pointer width instead of 64 bits.
        let size = self.part.size as usize;
        if len > size || offset as usize > size - len {
            return Err(self.error(NorFlashErrorKind::OutOfBounds));
        }
        Ok(self.part.offset + offset)
    }

    pub(crate) fn read<F: embedded_storage::nor_flash::ReadNorFlash>(
        &self,
        flash: &mut F,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), FlashError> {
        let at = self.absolute(offset, buf.len())?;
        flash.read(at, buf).map_err(|e| self.error(flash_kind(&e)))
    }

    pub(crate) fn write<F: NorFlash>(
        &self,
        flash: &mut F,
        offset: u32,
        data: &[u8],
    ) -> Result<(), FlashError> {
        let at = self.absolute(offset, data.len())?;
        flash
            .write(at, data)
            .map_err(|e| self.error(flash_kind(&e)))
    }

    pub(crate) fn erase<F: NorFlash>(
        &self,
        flash: &mut F,
        from: u32,
        to: u32,
    ) -> Result<(), FlashError> {
        let start = self.absolute(from, 0)?;
        let end = self.absolute(to, 0)?;
        flash
            .erase(start, end)
            .map_err(|e| self.error(flash_kind(&e)))
    }

    /// Checks the partition against the device's geometry.
    ///
    /// Always inlined, because the layout, the flash geometry and often the
    /// capacity are constants in a firmware, and then the checks fold away.
    /// With a layout known only at run time, each driver constructor keeps
    /// its own copy of the checks.
    #[inline(always)]
    pub(crate) fn check<F: NorFlash>(&self, flash: &F) -> Result<(), ConfigError> {
        let erase = F::ERASE_SIZE as u64;
        let (offset, size) = (self.part.offset as u64, self.part.size as u64);
        if size == 0 {
            return Err(ConfigError::EmptyPartition(self.name));
        }
        if erase == 0 || offset % erase != 0 || size % erase != 0 {
            return Err(ConfigError::NotAligned(self.name));
        }
        if offset + size > flash.capacity() as u64 {
            return Err(ConfigError::OutOfBounds(self.name));
        }
        let chunk = chunk_for::<F>();
        let fits =
            |unit: usize| unit != 0 && unit as u32 <= chunk && chunk.is_multiple_of(unit as u32);
        if !fits(F::WRITE_SIZE) || !fits(F::READ_SIZE) {
            return Err(ConfigError::UnsupportedGeometry(self.name));
        }
        Ok(())
    }
}

/// Returns the copy chunk size usable on a device: the erase size capped at 256.
pub(crate) fn chunk_for<F: NorFlash>() -> u32 {
    (F::ERASE_SIZE as u32).min(MAX_CHUNK)
}

fn flash_kind<E: embedded_storage::nor_flash::NorFlashError>(error: &E) -> NorFlashErrorKind {
    error.kind()
}

/// Returns `value` rounded up to a multiple of `unit`.
pub(crate) const fn round_up(value: u32, unit: u32) -> u32 {
    value.div_ceil(unit) * unit
}

/// Builds the decision core's policy for a device whose staging partition
/// reserves `evidence_area` bytes at its end.
pub(crate) fn policy(config: &Config, evidence_area: u32) -> Result<Policy, ConfigError> {
    let layout = &config.layout;
    let staging_room = layout
        .staging
        .size
        .checked_sub(evidence_area)
        .filter(|room| *room > 0)
        .ok_or(ConfigError::StagingTooSmall)?;
    Ok(Policy {
        trial_boots: config.trial_boots,
        target_type: config.target_type,
        max_image_size: layout
            .active
            .size
            .min(staging_room)
            .min(layout.recovery.size),
        active_size: layout.active.size,
    })
}

/// Returns the bytes reserved for evidence at the end of the staging partition.
pub(crate) fn evidence_area<F: NorFlash>() -> u32 {
    if cfg!(feature = "authentication") {
        round_up(2 + MAX_EVIDENCE_LEN as u32, F::ERASE_SIZE as u32)
    } else {
        0
    }
}

/// Returns the size of one state-log slot: a write-size marker plus the record body.
pub(crate) fn slot_size(write_size: u32) -> u32 {
    write_size + round_up(RECORD_LEN as u32, write_size)
}

impl core::error::Error for ConfigError {}

impl core::error::Error for FlashError {}

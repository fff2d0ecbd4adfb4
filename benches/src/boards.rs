//! Two simulated boards that update the same way through different
//! bootloaders: `embassy-boot` 0.7 (blocking API) and `rollback-fsm`.
//!
//! Every partition sits on its own [`FlashSim`] device with 4 KiB sectors and
//! write size `W`, and all devices of a board share one [`PowerRail`], so one
//! cut hits all of them. A reset is modelled by dropping the bootloader or
//! application driver and building it again from flash.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use embassy_boot::{
    BlockingFirmwareUpdater, BootLoader, BootLoaderConfig, FirmwareUpdaterConfig,
    FirmwareUpdaterError,
};
use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollback_fsm::{
    AppError, AppSide, BootFlashes, BootSide, Config, ConfigError, ImageDescriptor, Layout,
    Partition, Settings, Sha256, TargetType, Version,
};
use sha2::Digest;

use crate::counts::FlashTotals;

/// Sector (erase) size of every simulated device, in bytes.
pub const SECTOR: usize = 4096;

/// Bytes the application writes per staging call, as an update engine would
/// after receiving one chunk.
pub const STAGING_CHUNK: usize = 1024;

/// Copy buffer of both bootloaders, in bytes. `rollback-fsm` copies in chunks
/// of its erase size capped at 256 bytes; `embassy-boot` gets a buffer of the
/// same size for `prepare_boot`.
pub const COPY_BUFFER: usize = 256;

/// Target type written into the `rollback-fsm` image descriptors.
const TARGET: &str = "bench-board";

/// One simulated flash device of a board.
pub type Device<const W: usize> = FlashSim<SECTOR, W>;

/// A firmware image with its `rollback-fsm` descriptor.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image bytes.
    pub bytes: Vec<u8>,
    /// Size, SHA-256, target type and version, as `rollback-fsm` stages them.
    pub descriptor: ImageDescriptor,
}

impl Image {
    /// Creates an image of `size` pseudo-random bytes with version `1.tag.0`
    /// and security counter `tag`.
    pub fn random(tag: u16, size: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5EED_0000 + u64::from(tag));
        let mut bytes = vec![0u8; size];
        rng.fill_bytes(&mut bytes);
        Self::from_bytes(tag, bytes)
    }

    /// Wraps `bytes` with version `1.tag.0` and security counter `tag`.
    pub fn from_bytes(tag: u16, bytes: Vec<u8>) -> Self {
        let sha256: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        let descriptor = ImageDescriptor {
            size: bytes.len() as u32,
            sha256,
            // The name is a constant shorter than 32 bytes.
            target_type: TargetType::new(TARGET).unwrap_or_else(|_| unreachable!()),
            version: Version::new(1, tag, 0, 0),
            security_counter: u32::from(tag),
        };
        Self { bytes, descriptor }
    }
}

/// Error of one board operation.
#[derive(Debug)]
pub enum BoardError {
    /// `embassy-boot`'s application side (`BlockingFirmwareUpdater`) failed.
    EmbassyUpdater(FirmwareUpdaterError),
    /// `embassy-boot`'s `prepare_boot` failed.
    EmbassyBoot(embassy_boot::BootError),
    /// `rollback-fsm`'s application side failed.
    RollbackApp(AppError),
    /// `rollback-fsm`'s bootloader failed or halted.
    RollbackBoot(rollback_fsm::BootError),
    /// The configuration does not fit the devices.
    Config(ConfigError),
    /// The bootloader or application code panicked, with the panic message.
    Panicked(String),
    /// Every step succeeded but the board is not in the state the scenario expects.
    Unexpected(String),
}

impl fmt::Display for BoardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmbassyUpdater(error) => write!(f, "embassy-boot updater failed: {error:?}"),
            Self::EmbassyBoot(error) => write!(f, "embassy-boot prepare_boot failed: {error:?}"),
            Self::RollbackApp(error) => write!(f, "rollback-fsm application side failed: {error}"),
            Self::RollbackBoot(error) => write!(f, "rollback-fsm bootloader failed: {error}"),
            Self::Config(error) => write!(f, "invalid bootloader configuration: {error}"),
            Self::Panicked(message) => write!(f, "panicked: {message}"),
            Self::Unexpected(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for BoardError {}

/// Result of one power-on of the bootloader.
#[derive(Debug)]
pub enum BootOutcome {
    /// The bootloader handed over to the active image.
    Booted,
    /// The power failed while the bootloader ran.
    PowerLost,
    /// The bootloader failed for another reason.
    Failed(BoardError),
}

/// Board operations that the measurements and the power-cut sweep use.
pub trait Board: Sized {
    /// Bootloader name as printed in tables.
    const NAME: &'static str;

    /// Creates an erased board whose active partition contains `factory`, loaded
    /// as a programmer would; each partition is sized for images of `image_size` bytes.
    fn new(strict: bool, image_size: usize, factory: &Image) -> Result<Self, BoardError>;

    /// Returns a copy of all flash contents on a fresh power rail.
    fn snapshot(&self) -> Self;

    /// Returns the power rail shared by the board's devices.
    fn rail(&self) -> &PowerRail;

    /// Writes `image` to the update partition and requests its installation at the next boot.
    fn stage(&mut self, image: &Image) -> Result<(), BoardError>;

    /// Runs the bootloader of one power-on until it hands over to the active image.
    fn boot(&mut self) -> BootOutcome;

    /// Confirms the running image from the application side.
    fn confirm(&mut self) -> Result<(), BoardError>;

    /// Returns the flash counters of all devices, summed.
    fn totals(&self) -> FlashTotals;

    /// Sets the flash counters of all devices to zero.
    fn reset_counters(&mut self);

    /// Returns true if the active partition starts with `image`, every byte stable.
    fn active_contains(&self, image: &Image) -> bool;

    /// Stages `old` on a factory board, installs and confirms it, so that the
    /// board runs a known image with a history, as in the field.
    fn provisioned(
        strict: bool,
        image_size: usize,
        factory: &Image,
        old: &Image,
    ) -> Result<Self, BoardError> {
        let mut board = Self::new(strict, image_size, factory)?;
        board.stage(old)?;
        board.boot().into_result()?;
        board.confirm()?;
        board.boot().into_result()?;
        if !board.active_contains(old) {
            return Err(BoardError::Unexpected(format!(
                "{}: provisioning did not install the image",
                Self::NAME
            )));
        }
        board.reset_counters();
        Ok(board)
    }
}

impl BootOutcome {
    /// Converts a boot that did not reach the image into an error.
    pub fn into_result(self) -> Result<(), BoardError> {
        match self {
            Self::Booted => Ok(()),
            Self::PowerLost => Err(BoardError::Unexpected("power lost during boot".into())),
            Self::Failed(error) => Err(error),
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic without a message".to_string()
    }
}

/// Runs `f`, turning a panic into [`BoardError::Panicked`].
fn guarded<T>(f: impl FnOnce() -> Result<T, BoardError>) -> Result<T, BoardError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(BoardError::Panicked(panic_message(payload))))
}

fn device<const W: usize>(rail: &PowerRail, strict: bool, capacity: usize, seed: u64) -> Device<W> {
    let config = FlashConfig::new(capacity).strict(strict).seed(seed);
    // Every capacity passed here is a whole number of sectors.
    Device::new(config, rail.clone()).unwrap_or_else(|error| panic!("invalid geometry: {error}"))
}

fn contains_image<const W: usize>(active: &Device<W>, image: &Image) -> bool {
    let len = image.bytes.len();
    active.raw().get(..len) == Some(&image.bytes[..]) && active.unstable_bytes_in(0..len) == 0
}

/// A board booted by `embassy-boot` 0.7: active, DFU and state partitions.
///
/// The DFU partition is one sector larger than the active partition, as the
/// swap algorithm needs, and the state partition has room for
/// `2 + 4 × pages` progress words of the write size.
pub struct EmbassyBoard<const W: usize> {
    rail: PowerRail,
    active: Device<W>,
    dfu: Device<W>,
    state: Device<W>,
}

impl<const W: usize> EmbassyBoard<W> {
    /// Returns the state partition size `embassy-boot` needs for `active_size` bytes.
    pub fn state_size(active_size: usize) -> usize {
        let pages = active_size / SECTOR;
        ((2 + 4 * pages) * W).div_ceil(SECTOR) * SECTOR
    }
}

impl<const W: usize> Board for EmbassyBoard<W> {
    const NAME: &'static str = "embassy-boot";

    fn new(strict: bool, image_size: usize, factory: &Image) -> Result<Self, BoardError> {
        let size = image_size.div_ceil(SECTOR) * SECTOR;
        let rail = PowerRail::new();
        let mut active = device(&rail, strict, size, 1);
        active.load(0, &factory.bytes).map_err(|_| {
            BoardError::Unexpected("factory image larger than the partition".into())
        })?;
        Ok(Self {
            active,
            dfu: device(&rail, strict, size + SECTOR, 2),
            state: device(&rail, strict, Self::state_size(size), 3),
            rail,
        })
    }

    fn snapshot(&self) -> Self {
        let rail = PowerRail::new();
        Self {
            active: self.active.clone_onto(rail.clone()),
            dfu: self.dfu.clone_onto(rail.clone()),
            state: self.state.clone_onto(rail.clone()),
            rail,
        }
    }

    fn rail(&self) -> &PowerRail {
        &self.rail
    }

    fn stage(&mut self, image: &Image) -> Result<(), BoardError> {
        guarded(|| {
            let mut aligned = [0u8; W];
            let config = FirmwareUpdaterConfig {
                dfu: &mut self.dfu,
                state: &mut self.state,
            };
            let mut updater = BlockingFirmwareUpdater::new(config, &mut aligned);
            for (index, chunk) in image.bytes.chunks(STAGING_CHUNK).enumerate() {
                updater
                    .write_firmware(index * STAGING_CHUNK, chunk)
                    .map_err(BoardError::EmbassyUpdater)?;
            }
            updater.mark_updated().map_err(BoardError::EmbassyUpdater)
        })
    }

    fn boot(&mut self) -> BootOutcome {
        let result = guarded(|| {
            let config = BootLoaderConfig {
                active: &mut self.active,
                dfu: &mut self.dfu,
                state: &mut self.state,
            };
            let mut bootloader = BootLoader::new(config);
            let mut buf = [0u8; COPY_BUFFER];
            bootloader
                .prepare_boot(&mut buf)
                .map(|_| ())
                .map_err(BoardError::EmbassyBoot)
        });
        outcome(&self.rail, result)
    }

    fn confirm(&mut self) -> Result<(), BoardError> {
        guarded(|| {
            let mut aligned = [0u8; W];
            let config = FirmwareUpdaterConfig {
                dfu: &mut self.dfu,
                state: &mut self.state,
            };
            let mut updater = BlockingFirmwareUpdater::new(config, &mut aligned);
            updater.mark_booted().map_err(BoardError::EmbassyUpdater)
        })
    }

    fn totals(&self) -> FlashTotals {
        FlashTotals::from_devices([
            self.active.counters(),
            self.dfu.counters(),
            self.state.counters(),
        ])
    }

    fn reset_counters(&mut self) {
        self.active.reset_counters();
        self.dfu.reset_counters();
        self.state.reset_counters();
    }

    fn active_contains(&self, image: &Image) -> bool {
        contains_image(&self.active, image)
    }
}

fn outcome(rail: &PowerRail, result: Result<(), BoardError>) -> BootOutcome {
    match result {
        Ok(()) => BootOutcome::Booted,
        Err(_) if rail.is_down() => BootOutcome::PowerLost,
        Err(error) => BootOutcome::Failed(error),
    }
}

/// A board booted by `rollback-fsm`: active, staging and recovery partitions
/// of the image size, a two-sector state log and a two-sector settings store.
///
/// It is configured with one trial boot, so an image that is not confirmed
/// before the next reset is reverted, as `embassy-boot` does.
pub struct RollbackBoard<const W: usize> {
    rail: PowerRail,
    config: Config,
    active: Device<W>,
    staging: Device<W>,
    recovery: Device<W>,
    state: Device<W>,
    settings: Device<W>,
}

impl<const W: usize> RollbackBoard<W> {
    fn boot_side(
        &mut self,
    ) -> Result<
        BootSide<'_, &mut Device<W>, &mut Device<W>, &mut Device<W>, &mut Device<W>, Sha256>,
        BoardError,
    > {
        let flashes = BootFlashes {
            active: &mut self.active,
            staging: &mut self.staging,
            recovery: &mut self.recovery,
            state: &mut self.state,
        };
        BootSide::new(&self.config, flashes, Sha256::default()).map_err(BoardError::Config)
    }

    fn app_side(
        &mut self,
    ) -> Result<AppSide<&mut Device<W>, &mut Device<W>, &mut Device<W>>, BoardError> {
        let partition = Partition::new(0, 2 * SECTOR as u32);
        let settings = Settings::new(&mut self.settings, partition).map_err(BoardError::Config)?;
        AppSide::new(&self.config, &mut self.staging, &mut self.state, settings)
            .map_err(BoardError::Config)
    }
}

impl<const W: usize> Board for RollbackBoard<W> {
    const NAME: &'static str = "rollback-fsm";

    fn new(strict: bool, image_size: usize, factory: &Image) -> Result<Self, BoardError> {
        let size = image_size.div_ceil(SECTOR) * SECTOR;
        let part = Partition::new(0, size as u32);
        let layout = Layout {
            active: part,
            staging: part,
            recovery: part,
            state: Partition::new(0, 2 * SECTOR as u32),
        };
        let config = Config::try_new(layout, TARGET)
            .and_then(|config| config.with_trial_boots(1))
            .map_err(BoardError::Config)?;
        let rail = PowerRail::new();
        let mut active = device(&rail, strict, size, 1);
        active.load(0, &factory.bytes).map_err(|_| {
            BoardError::Unexpected("factory image larger than the partition".into())
        })?;
        Ok(Self {
            config,
            active,
            staging: device(&rail, strict, size, 2),
            recovery: device(&rail, strict, size, 3),
            state: device(&rail, strict, 2 * SECTOR, 4),
            settings: device(&rail, strict, 2 * SECTOR, 5),
            rail,
        })
    }

    fn snapshot(&self) -> Self {
        let rail = PowerRail::new();
        Self {
            config: self.config,
            active: self.active.clone_onto(rail.clone()),
            staging: self.staging.clone_onto(rail.clone()),
            recovery: self.recovery.clone_onto(rail.clone()),
            state: self.state.clone_onto(rail.clone()),
            settings: self.settings.clone_onto(rail.clone()),
            rail,
        }
    }

    fn rail(&self) -> &PowerRail {
        &self.rail
    }

    fn stage(&mut self, image: &Image) -> Result<(), BoardError> {
        guarded(|| {
            let mut app = self.app_side()?;
            app.begin_staging(&image.descriptor, &[])
                .map_err(BoardError::RollbackApp)?;
            for (index, chunk) in image.bytes.chunks(STAGING_CHUNK).enumerate() {
                app.write_staging((index * STAGING_CHUNK) as u32, chunk)
                    .map_err(BoardError::RollbackApp)?;
            }
            app.request_install().map_err(BoardError::RollbackApp)
        })
    }

    fn boot(&mut self) -> BootOutcome {
        let result = guarded(|| {
            let mut boot = self.boot_side()?;
            boot.run().map_err(BoardError::RollbackBoot)
        });
        outcome(&self.rail, result)
    }

    fn confirm(&mut self) -> Result<(), BoardError> {
        guarded(|| {
            let mut app = self.app_side()?;
            app.confirm().map_err(BoardError::RollbackApp)
        })
    }

    fn totals(&self) -> FlashTotals {
        FlashTotals::from_devices([
            self.active.counters(),
            self.staging.counters(),
            self.recovery.counters(),
            self.state.counters(),
            self.settings.counters(),
        ])
    }

    fn reset_counters(&mut self) {
        self.active.reset_counters();
        self.staging.reset_counters();
        self.recovery.reset_counters();
        self.state.reset_counters();
        self.settings.reset_counters();
    }

    fn active_contains(&self, image: &Image) -> bool {
        contains_image(&self.active, image)
    }
}

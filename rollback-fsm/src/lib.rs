//! Power-safe install, trial boot and revert of firmware images on NOR flash.
//!
//! A device has four partitions, each on a flash object of its own (they may be
//! on different chips with different sector and write sizes):
//!
//! - **active**: where the application executes;
//! - **staging**: where the application writes the new image as it downloads it;
//! - **recovery**: a copy of the image that ran before the update;
//! - **state**: a small log of [`StateRecord`]s.
//!
//! A fifth, **settings**, stores device data ([`Settings`]) that no install or
//! revert touches.
//!
//! The bootloader side ([`BootSide`]) backs the running image up into recovery.
//! Before it touches the active partition, it verifies the staged image: size,
//! SHA-256, target type, security counter and, with the `authentication`
//! feature, an Ed25519 signature. It then installs the image and boots it on trial. The image is reverted
//! from recovery when it reaches the trial boot limit (default 3) unconfirmed
//! or when the application reports failure. A confirmed image is never
//! reverted. The security floor (anti-rollback counter) is raised only by
//! confirm, so a revert is never rejected by it.
//!
//! Decisions are made by a pure core, [`core::decide`], that maps a state record
//! and an event to the next action; the drivers carry the actions out on
//! `embedded-storage` [`NorFlash`](embedded_storage::nor_flash::NorFlash)
//! devices. The on-flash format, the algorithm and its flash cost are specified
//! in `docs/FLASH-FORMAT.md` in the repository.
//!
//! # Features
//!
//! - `sha2` (default): [`Sha256`], a software [`Sha256Hasher`]. Without it, supply
//!   a hasher, for example one driving a hardware hash engine.
//! - `authentication`: staged images must pass an `ImageAuthenticator`, such
//!   as `ManifestAuthenticator`, which checks the signed syssync release
//!   manifest with any `syssync_proto::Crypto` backend. The application
//!   stores the evidence (at most 1664 bytes) at the end of staging.
//! - `signature`: `authentication` with `ed25519-dalek` and syssync-proto's
//!   `RustCrypto`: adds `Ed25519Authenticator` and `ManifestAuthenticator::new`.
//! - `log` or `defmt`: log through that crate; with neither, logging compiles to
//!   nothing. With both, `defmt` is used.
//!
//! The crate is `no_std` and does not allocate.
//!
//! # Panics
//!
//! Nothing that flash returns makes the library panic: flash errors are
//! returned as values, and unrecognised state decodes to the safe state
//! ([`StateRecord::safe`]: boot the active image as it is).
//!
//! # Application side
//!
//! ```
//! use flash_sim::{FlashConfig, FlashSim, PowerRail};
//! use rollback_fsm::{
//!     AppSide, Config, ImageDescriptor, Layout, Partition, Settings, StagedImage, TargetType,
//!     Version,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rail = PowerRail::new();
//! let mut staging: FlashSim<4096, 4> = FlashSim::new(FlashConfig::new(64 * 1024), rail.clone())?;
//! let mut state: FlashSim<4096, 8> = FlashSim::new(FlashConfig::new(8 * 1024), rail.clone())?;
//! let mut settings_flash: FlashSim<4096, 8> = FlashSim::new(FlashConfig::new(8 * 1024), rail)?;
//! let layout = Layout {
//!     active: Partition::new(0x8000, 48 * 1024),
//!     staging: Partition::new(0, 64 * 1024),
//!     recovery: Partition::new(0, 48 * 1024),
//!     state: Partition::new(0, 8 * 1024),
//! };
//! let config = Config::try_new(layout, "sensor-v2")?;
//!
//! let settings = Settings::new(&mut settings_flash, Partition::new(0, 8 * 1024))
//!     ?;
//! let mut app = AppSide::new(&config, &mut staging, &mut state, settings)
//!     ?;
//!
//! // Settings survive every update and any power cut.
//! app.write_setting(7, b"apn.example")?;
//!
//! // Stage an image in 1 KiB chunks, then ask the bootloader to install it.
//! let image = vec![0x5A; 3000];
//! let descriptor = ImageDescriptor {
//!     size: image.len() as u32,
//!     sha256: [0; 32], // the SHA-256 from the release manifest
//!     target_type: TargetType::new("sensor-v2")?,
//!     version: Version::new(1, 4, 0, 17),
//!     security_counter: 3,
//! };
//! app.begin_staging(&descriptor, &[])?;
//! for (index, chunk) in image.chunks(1024).enumerate() {
//!     app.write_staging(index as u32 * 1024, chunk)?;
//! }
//! app.request_install()?;
//! assert_eq!(app.status()?.staged, StagedImage::InstallRequested(descriptor));
//!
//! // After the reset, the new image checks `status().on_trial` and calls
//! // `confirm()` once healthy, or `report_failure()`.
//! let mut buf = [0u8; 32];
//! let len = app.read_setting(7, &mut buf)?;
//! assert_eq!(len.map(|len| &buf[..len]), Some(&b"apn.example"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! # Bootloader loop
//!
//! ```
//! use flash_sim::{FlashConfig, FlashSim, PowerRail};
//! use rollback_fsm::{
//!     AppSide, BootError, BootFlashes, BootSide, Config, ImageDescriptor, Layout, Partition,
//!     Settings, Sha256, Sha256Hasher, Step, TargetType, Version,
//! };
//!
//! # // The example installs an unsigned image, which the `authentication` feature rejects.
//! # #[cfg(feature = "authentication")]
//! # fn main() {}
//! # #[cfg(not(feature = "authentication"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rail = PowerRail::new();
//! let mut active: FlashSim<2048, 8> = FlashSim::new(FlashConfig::new(64 * 1024), rail.clone())?;
//! let mut staging: FlashSim<4096, 1> = FlashSim::new(FlashConfig::new(32 * 1024), rail.clone())?;
//! let mut recovery: FlashSim<4096, 1> = FlashSim::new(FlashConfig::new(32 * 1024), rail.clone())?;
//! let mut state: FlashSim<2048, 8> = FlashSim::new(FlashConfig::new(4096), rail.clone())?;
//! let mut settings_flash: FlashSim<2048, 8> = FlashSim::new(FlashConfig::new(4096), rail)?;
//! let layout = Layout {
//!     active: Partition::new(0x4000, 32 * 1024),
//!     staging: Partition::new(0, 32 * 1024),
//!     recovery: Partition::new(0, 32 * 1024),
//!     state: Partition::new(0, 4096),
//! };
//! let config = Config::try_new(layout, "sensor-v2")
//!     .and_then(|config| config.with_trial_boots(3))
//!     ?;
//!
//! // The application staged an image and requested its installation.
//! let image = vec![0xA5; 5000];
//! let mut hasher = Sha256::default();
//! hasher.update(&image);
//! let descriptor = ImageDescriptor {
//!     size: image.len() as u32,
//!     sha256: hasher.finish(),
//!     target_type: TargetType::new("sensor-v2")?,
//!     version: Version::new(2, 0, 0, 1),
//!     security_counter: 1,
//! };
//! {
//!     let settings = Settings::new(&mut settings_flash, Partition::new(0, 4096))
//!         ?;
//!     let mut app = AppSide::new(&config, &mut staging, &mut state, settings)
//!         ?;
//!     app.begin_staging(&descriptor, &[])?;
//!     app.write_staging(0, &image)?;
//!     app.request_install()?;
//! }
//!
//! // At reset: step until the bootloader says to boot the active image.
//! let flashes = BootFlashes {
//!     active: &mut active,
//!     staging: &mut staging,
//!     recovery: &mut recovery,
//!     state: &mut state,
//! };
//! let mut boot = BootSide::new(&config, flashes, Sha256::default())?;
//! loop {
//!     match boot.step() {
//!         Ok(Step::Continue(_action)) => {
//!             // Kick the watchdog here: each step is bounded.
//!         }
//!         Ok(Step::BootActive) => break, // jump to the application at 0x4000
//!         Err(BootError::Flash(error)) => {
//!             // A flash error: the next step starts again from the state on flash.
//!             return Err(error.into());
//!         }
//!         Err(BootError::Halted(halt)) => {
//!             // No verified image: stay in the bootloader, for example for serial recovery.
//!             return Err(format!("{halt:?}").into());
//!         }
//!     }
//! }
//! assert!(boot.record().is_some_and(|record| record.phase == rollback_fsm::Phase::Trial));
//! drop(boot);
//! assert_eq!(&active.raw()[0x4000..0x4000 + image.len()], &image[..]);
//! # Ok(())
//! # }
//! ```
#![no_std]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(test)]
extern crate std;

mod app;
#[cfg(feature = "authentication")]
mod auth;
mod boot;
mod config;
pub mod core;
mod descriptor;
mod hash;
mod log;
mod record;
mod settings;
mod trace;

pub use app::{AppError, AppSide, StagedImage, Status};
#[cfg(feature = "signature")]
pub use auth::Ed25519Authenticator;
#[cfg(feature = "authentication")]
pub use auth::{AuthError, ImageAuthenticator, ManifestAuthenticator};
pub use boot::{BootError, BootFlashes, BootSide, Step};
pub use config::{
    Config, ConfigError, FlashError, Layout, Partition, PartitionName, DEFAULT_TRIAL_BOOTS,
    MAX_EVIDENCE_LEN, STORES_EVIDENCE,
};
pub use descriptor::{
    ImageDescriptor, InvalidTargetType, TargetType, Version, DESCRIPTOR_LEN, TARGET_TYPE_MAX_LEN,
};
#[cfg(feature = "sha2")]
pub use hash::Sha256;
pub use hash::Sha256Hasher;
pub use record::{
    Decoded, Phase, Rejection, RevertReason, StateRecord, Writer, FORMAT_VERSION, RECORD_LEN,
    RECORD_MAGIC,
};
pub use settings::{Settings, SettingsError, MAX_VALUE_LEN, RESERVED_KEY};

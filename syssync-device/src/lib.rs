//! Device side of syssync: the update engine a firmware integrator embeds.
//!
//! - [`Engine`]: a sans-IO engine that speaks the `syssync-proto` protocol,
//!   downloads releases into staging and a file store, and drives the boot
//!   side through [`BootControl`]. Time and randomness are passed in.
//! - [`NorFileStore`]: a power-safe file store over any `embedded-storage`
//!   NOR flash, used by the engine through the [`FileStore`] trait.
#![no_std]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "blocking")]
pub mod blocking;
pub mod boot;
pub mod config;
mod engine;
pub mod gateway;
pub mod nor_store;
#[cfg(feature = "rollback-fsm")]
pub mod rollback;
pub mod store;
pub mod time;

pub use boot::{BootControl, BootPhase, BootStatus, RunningImage, StagedImage};
pub use config::{Config, ConfigError, ConfirmPolicy, ExpiryWithoutClock};
pub use engine::{Engine, Event, InitError, COUNTER_BLOCK, EVENT_CAPACITY};
pub use gateway::{Gateway, GatewayError};
pub use nor_store::{NorFileStore, PendingFile};
pub use store::{FileInfo, FileStore, StoreError};
pub use time::{Duration, Instant};

//! Power-safe install, trial boot and revert of firmware images on NOR flash.
#![no_std]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(test)]
extern crate std;

mod app;
#[cfg(feature = "signature")]
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
pub use auth::{AuthError, Ed25519Authenticator, ImageAuthenticator};
pub use boot::{BootError, BootFlashes, BootSide, Step};
pub use config::{
    Config, ConfigError, FlashError, Layout, Partition, PartitionName, DEFAULT_TRIAL_BOOTS,
    MAX_EVIDENCE_LEN,
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

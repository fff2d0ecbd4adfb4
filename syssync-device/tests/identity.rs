//! Scenario tests of the identity settings that `Engine::new` reads: which
//! error a missing, malformed or unreadable setting gives, and which
//! settings start automatic registration.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use flash_sim::{FlashConfig, PowerRail};
use syssync_device::boot::setting;
use syssync_device::{Engine, InitError, Instant, NorFileStore};
use syssync_proto::{AccountId, RustCrypto};

/// Builds an engine over a boot side with `model`'s settings, and with the
/// boot side's power cut first if `unreadable`.
fn start(model: BootModel, unreadable: bool) -> Result<Device, InitError> {
    let rail = PowerRail::new();
    let store_flash =
        StoreFlash::new(FlashConfig::new(STORE_CAPACITY).seed(1), rail.clone()).unwrap();
    let store = NorFileStore::new(store_flash, 1).unwrap();
    let boot_rail = PowerRail::new();
    let staging = StagingFlash::new(
        FlashConfig::new(STAGING_CAPACITY).seed(2),
        boot_rail.clone(),
    )
    .unwrap();
    let boot = SimBoot {
        model: Rc::new(RefCell::new(model)),
        staging,
        rail: boot_rail.clone(),
    };
    if unreadable {
        boot_rail.cut_now();
    }
    Engine::new(config(), boot, store, RustCrypto, Instant(1_000), 7)
}

fn with_setting(key: u16, value: Option<&[u8]>) -> BootModel {
    let mut model = initial_model();
    match value {
        Some(value) => model.settings.insert(key, value.to_vec()),
        None => model.settings.remove(&key),
    };
    model
}

#[test]
fn missing_or_malformed_settings_are_named() {
    // Proves that each required setting that is missing or of the wrong
    // length, and an optional counter reservation of the wrong length, is
    // reported with its key.
    let cases: [(u16, Option<&[u8]>); 6] = [
        (setting::DEVICE_ID, None),
        (setting::DEVICE_ID, Some(&[1, 2, 3])),
        (setting::TARGET_TYPE, None),
        (setting::TARGET_TYPE, Some(&[0xFF, 0xFE])),
        (setting::TARGET_TYPE, Some(&[])),
        (setting::COUNTER_RESERVED, Some(&[1, 2])),
    ];
    for (key, value) in cases {
        let result = start(with_setting(key, value), false);
        assert_eq!(
            result.err(),
            Some(InitError::MissingIdentity(key)),
            "{key:#06x} {value:?}"
        );
    }
}

#[test]
fn first_missing_setting_is_reported() {
    // Proves that with several settings missing the error names the first
    // one read: the device id before the target type.
    let mut model = with_setting(setting::DEVICE_ID, None);
    model.settings.remove(&setting::TARGET_TYPE);
    assert_eq!(
        start(model, false).err(),
        Some(InitError::MissingIdentity(setting::DEVICE_ID))
    );
}

#[test]
fn unreadable_settings_are_a_storage_error() {
    // Proves that a boot side that cannot be read gives `Storage`, not a
    // missing setting, although every read after the first fails too.
    assert_eq!(start(initial_model(), true).err(), Some(InitError::Storage));
}

#[test]
fn device_key_fallback_needs_account_and_token() {
    // Proves that without a well-formed device key the engine registers
    // with the account and its claim token, and names the first of them
    // that is missing.
    for key in [None, Some(&[0x5A; 16][..])] {
        let model = with_setting(setting::DEVICE_KEY, key);
        assert_eq!(
            start(model.clone(), false).err(),
            Some(InitError::MissingIdentity(setting::ACCOUNT))
        );

        let mut model = model;
        model
            .settings
            .insert(setting::ACCOUNT, 77u64.to_le_bytes().to_vec());
        assert_eq!(
            start(model.clone(), false).err(),
            Some(InitError::MissingIdentity(setting::CLAIM_TOKEN))
        );

        model
            .settings
            .insert(setting::CLAIM_TOKEN, b"claim".to_vec());
        let mut device = start(model, false).unwrap();
        let mut buf = vec![0u8; syssync_proto::MAX_FRAME_LEN];
        device.set_network(Instant(1_000), true);
        let len = device.poll_transmit(Instant(1_000), &mut buf).unwrap();
        assert_eq!(buf[1], 0x05, "registration request expected");
        let frame = syssync_proto::frame::Frame::parse(&buf[..len]).unwrap();
        assert_eq!(frame.registration_account(), Some(AccountId(77)));
    }
}
